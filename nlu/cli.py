"""`lastmile nlu ...`: train the embedded model, evaluate a backend, parse texts from stdin."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import click

logger = logging.getLogger(__name__)

HELDOUT_DIR = Path(__file__).resolve().parent / "evaluation" / "heldout"
DEV_DIR = HELDOUT_DIR.parent / "dev"

nlu_group = click.Group("nlu", help="The intent layer: train, evaluate and try the NLU backends.")


def _nlu_config() -> dict:
    """The `nlu` section of the app config, which `lastmile` hands down as the context's `obj`; else defaults."""
    context = click.get_current_context(silent=True)
    root = context.find_root().obj if context is not None else None
    return dict((root or {}).get("nlu") or {})


@nlu_group.command("train")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Directory of Rasa NLU YAML files (default: nlu/data).")
def train_command(data_dir: Path | None) -> None:
    """Train the embedded classifier and cache it in nlu/.cache/."""
    from nlu.embedded.artifact import artifact_path, train
    from nlu.training_data import DATA_DIR, load_training_data

    data_dir = data_dir or DATA_DIR
    path = artifact_path(data_dir)
    data = load_training_data(data_dir)
    started = time.perf_counter()
    with click.progressbar(length=1, label="training", file=sys.stderr) as bar:
        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        artifact = train(data, key=path.stem, progress=progress)
    artifact.save(path)
    elapsed = time.perf_counter() - started
    click.echo(f"trained on {artifact.n_examples} examples ({len(artifact.intents)} intents, "
               f"{len(artifact.vocab)} features) in {elapsed:.2f}s")
    click.echo(f"artifact {path} ({path.stat().st_size / 1024:.0f} KiB), temperature {artifact.temperature:.2f}")


@nlu_group.command("evaluate")
@click.option("--backend", type=click.Choice(["embedded", "rasa"]), default=None,
              help="Backend to evaluate (default: the configured one).")
@click.option("--data", "data_path", type=click.Path(exists=True, path_type=Path), default=HELDOUT_DIR,
              show_default=True, help="A Rasa NLU YAML test file or a directory of them.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--by-source", "by_source", is_flag=True,
              help="Leave-one-source-out over nlu/data: train without each source, score on it.")
@click.option("--source", "sources", multiple=True, help="With --by-source: only these sources.")
def evaluate_command(backend: str | None, data_path: Path, as_json: bool, by_source: bool,
                     sources: tuple[str, ...]) -> None:
    """Score a backend on held-out examples: per-intent F1, per language, OOS, latency."""
    from nlu import backend_from_config
    from nlu.evaluate import evaluate, load_examples

    if by_source:
        from nlu.by_source import by_source as leave_one_out
        from nlu.by_source import render

        scores = leave_one_out(sources=list(sources) or None)
        if as_json:
            click.echo(json.dumps([{"source": s.source, "n_train": s.n_train, "train_seconds": s.train_seconds,
                                    "false_action_rate": s.false_action_rate,
                                    "policy_false_action_rate": s.policy_false_action_rate,
                                    **s.report.to_dict()} for s in scores], ensure_ascii=False, indent=2))
        else:
            click.echo(render(scores))
        return

    config = _nlu_config()
    if backend:
        config["backend"] = backend
    report = evaluate(backend_from_config(config), load_examples(data_path))
    click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) if as_json else report.render())


@nlu_group.command("parse")
@click.option("--locale", default=None, help="Conversation locale, e.g. es or pt_BR.")
@click.option("--timezone", default=None, help="IANA time zone for dates, e.g. Europe/Madrid.")
@click.option("--backend", type=click.Choice(["embedded", "rasa"]), default=None)
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
def parse_command(locale: str | None, timezone: str | None, backend: str | None, source) -> None:
    """Read one text per line (stdin or SOURCE); print one JSON object per line."""
    from nlu import backend_from_config

    config = _nlu_config()
    if backend:
        config["backend"] = backend
    nlu = backend_from_config(config)
    for line in source:
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        intent = nlu.parse(text, locale=locale, timezone=timezone)
        click.echo(json.dumps({
            "text": text, "intent": intent.name, "confidence": round(intent.confidence, 4),
            "language": intent.language,
            "entities": [{"entity": e.entity, "value": e.value, "start": e.start, "end": e.end}
                         for e in intent.entities],
        }, ensure_ascii=False))


@nlu_group.command("crossval")
@click.option("--folds", default=5, show_default=True, help="Number of folds.")
@click.option("--dev", "dev_path", type=click.Path(exists=True, path_type=Path), default=DEV_DIR,
              show_default=True, help="Development set scored by the model trained on all the data.")
def crossval_command(folds: int, dev_path: Path) -> None:
    """Cross-validate the embedded model on the training data and score the development set,
    at several fallback thresholds (how the default threshold is chosen; never on held-out)."""
    from nlu.embedded.artifact import train
    from nlu.embedded.crossval import out_of_fold, probabilities
    from nlu.evaluate import load_examples
    from nlu.training_data import load_training_data

    data = load_training_data()
    oof = out_of_fold(data, folds=folds)
    dev = probabilities(train(data, with_language_head=False), load_examples(dev_path))
    click.echo(f"{'threshold':>9}  {'cv macro-F1':>11} {'cv OOS FA':>9}  {'dev macro-F1':>12} {'dev OOS FA':>10}  dev per language")
    for threshold in (0.3, 0.4, 0.5, 0.6, 0.7):
        a, b = oof.score(threshold), dev.score(threshold)
        langs = " ".join(f"{k} {v:.3f}" for k, v in b["per_language"].items())
        click.echo(f"{threshold:9.2f}  {a['macro_f1']:11.4f} {a['oos_false_accept']:9.1%}  "
                   f"{b['macro_f1']:12.4f} {b['oos_false_accept']:10.1%}  {langs}")
