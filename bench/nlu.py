"""Embedded classifier vs real Rasa, same training data, same held-out set: one table.

    .venv/bin/python bench/nlu.py                     # full: Rasa with nlu/rasa/config.yml
    .venv/bin/python bench/nlu.py --rasa-config nlu/rasa/config.test.yml   # quick
    .venv/bin/python bench/nlu.py --no-rasa           # embedded only
    .venv/bin/python bench/nlu.py --rasa-epochs 30    # nlu/rasa/config.yml with fewer DIET epochs

Both backends are trained from scratch (the embedded one into a temporary cache), then
evaluated with nlu.evaluate on nlu/evaluation/heldout. Rasa is trained and served from
.venv-rasa (make rasa-venv) and queried over HTTP through RasaBackend, set up as in
production (the embedded backend as fallback and language detector; a fallback during
the bench is an error). Memory is peak RSS: of this process for the embedded backend
(it lives in the app's process), of `rasa train` and of the `rasa run` server for Rasa.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from nlu.embedded.backend import EmbeddedBackend  # noqa: E402
from nlu.evaluate import EvaluationReport, evaluate, load_examples  # noqa: E402
from nlu.rasa.server import CONFIG, RASA_VENV, RasaServer, train  # noqa: E402
from nlu.rasa_backend import RasaBackend  # noqa: E402
from nlu.types import LANGUAGES  # noqa: E402

logger = logging.getLogger("bench.nlu")
MB = 1024 * 1024
WARM_UP = ("hello", "hola", "bonjour", "hallo", "olá", "where is my parcel LM123456")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "nlu" / "data")
    parser.add_argument("--heldout", type=Path, default=REPO_ROOT / "nlu" / "evaluation" / "heldout")
    parser.add_argument("--rasa-config", type=Path, default=CONFIG)
    parser.add_argument("--rasa-epochs", type=int, help="override the DIET epochs of --rasa-config")
    parser.add_argument("--rasa-timeout", type=float, default=3 * 3600,
                        help="give up training Rasa after this many seconds (default 3 h)")
    parser.add_argument("--no-rasa", action="store_true", help="bench the embedded backend only")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    examples = load_examples(args.heldout)
    logger.info("%d held-out examples from %s", len(examples), args.heldout)
    columns: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-nlu-") as tmp:
        embedded, columns["embedded"] = bench_embedded(
            args.data, Path(tmp) / "embedded", args.heldout, examples
        )
        if not args.no_rasa and not RASA_VENV.exists():
            logger.warning(
                "%s missing (make rasa-venv): benching the embedded backend only", RASA_VENV
            )
        elif not args.no_rasa:
            config = args.rasa_config
            if args.rasa_epochs:
                config = with_epochs(config, args.rasa_epochs, Path(tmp) / "rasa-config.yml")
            epochs = dietc_epochs(config)
            columns[f"Rasa 3.6 (DIET, {epochs} epochs)"] = bench_rasa(
                args.data, config, Path(tmp) / "rasa", examples, embedded, timeout=args.rasa_timeout
            )

    print(f"\n{len(examples)} held-out examples; {platform.processor() or platform.machine()}, "
          f"{_cpus()} CPUs; Python {platform.python_version()} (Rasa: 3.10)\n")  # fmt: skip
    print(markdown_table(columns))
    if args.json:
        args.json.write_text(json.dumps(columns, indent=2))
    return 0


def bench_embedded(
    data: Path, cache: Path, heldout: Path, examples: list
) -> tuple[EmbeddedBackend, dict]:
    backend = EmbeddedBackend(data, cache_dir=cache)
    cpu_before = _self_cpu_seconds()
    started = time.perf_counter()
    backend.artifact  # noqa: B018 (trains: the cache directory is empty)
    train_seconds = time.perf_counter() - started
    train_cpu = _self_cpu_seconds() - cpu_before
    train_rss = _peak_rss_bytes()
    logger.info("embedded: trained in %.1fs", train_seconds)
    for text in WARM_UP:
        backend.parse(text)
    report = evaluate(backend, examples)
    result = _scores(report)
    result.update(
        train_seconds=train_seconds, train_cpu_seconds=train_cpu, train_peak_rss_mb=train_rss / MB
    )
    result.update(_embedded_serving(data, cache, heldout))
    return backend, result


# A fresh process that loads the cached model (as the app does at start-up) and parses
# the held-out set: its peak RSS is what the embedded backend costs when serving.
_SERVING_PROBE = """
import json, sys, time
from nlu.embedded.backend import EmbeddedBackend
from nlu.evaluate import load_examples
data, cache, heldout = sys.argv[1:4]
started = time.perf_counter()
backend = EmbeddedBackend(data, cache_dir=cache)
backend.parse("hello")
start_seconds = time.perf_counter() - started
for example in load_examples(heldout):
    backend.parse(example.text, locale=example.language)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork + exec, so a
# bench process that has just trained would be measured instead of this one
rss_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"start_seconds": start_seconds, "serve_peak_rss_mb": rss_kb / 1024}))
"""


def _embedded_serving(data: Path, cache: Path, heldout: Path) -> dict:
    probe = subprocess.run(
        [sys.executable, "-c", _SERVING_PROBE, str(data), str(cache), str(heldout)],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(probe.stdout.strip().splitlines()[-1])


def bench_rasa(data: Path, config: Path, workdir: Path, examples: list, fallback, *,
               timeout: float = 3 * 3600) -> dict:
    logger.info("rasa: training with %s (this can take a while on few cores)", config)
    cpu_before = _children_cpu_seconds()
    started = time.perf_counter()
    model = train(data, workdir / "models", config, timeout=timeout)
    train_seconds = time.perf_counter() - started
    train_cpu = _children_cpu_seconds() - cpu_before
    train_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    logger.info("rasa: trained in %.1fs; serving", train_seconds)
    with RasaServer(model, workdir=workdir) as server:
        backend = RasaBackend(server.url, timeout=30.0, fallback=fallback)
        try:
            for text in WARM_UP:
                backend.parse(text)
            report = evaluate(backend, examples)
        finally:
            backend.close()
        serve_rss = server.peak_rss_bytes()
        start_seconds = server.startup_seconds
    if backend.stats["fallbacks"]:
        raise SystemExit(f"Rasa failed during the bench: {backend.stats}")
    result = _scores(report)
    result.update(
        train_seconds=train_seconds,
        train_cpu_seconds=train_cpu,
        start_seconds=start_seconds,
        train_peak_rss_mb=train_rss / MB,
        serve_peak_rss_mb=serve_rss / MB,
        model_bytes=model.stat().st_size,
    )
    return result


def _diet(doc: dict) -> dict | None:
    """The DIETClassifier component of a Rasa config, or None."""
    return next((c for c in doc.get("pipeline") or [] if c.get("name") == "DIETClassifier"), None)


def with_epochs(config: Path, epochs: int, out: Path) -> Path:
    """A copy of `config` whose DIETClassifier trains `epochs` epochs."""
    doc = yaml.safe_load(config.read_text())
    diet = _diet(doc)
    if diet is None:
        raise SystemExit(f"{config}: no DIETClassifier to set the epochs of")
    diet["epochs"] = epochs
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def dietc_epochs(config: Path) -> int | str:
    diet = _diet(yaml.safe_load(config.read_text()))
    return diet.get("epochs", 300) if diet else "?"


def markdown_table(columns: dict[str, dict]) -> str:
    rows = [
        ("macro-F1", "macro_f1", "{:.3f}"),
        ("accuracy", "accuracy", "{:.3f}"),
        *[(f"macro-F1 {lang}", f"f1_{lang}", "{:.3f}") for lang in LANGUAGES],
        ("OOS false-accept rate", "oos_false_accept_rate", "{:.1%}"),
        ("latency p50 (ms)", "p50_ms", "{:.2f}"),
        ("latency p99 (ms)", "p99_ms", "{:.2f}"),
        ("training wall time (s)", "train_seconds", "{:.0f}"),
        ("training CPU time (s)", "train_cpu_seconds", "{:.0f}"),
        ("start-up / model load (s)", "start_seconds", "{:.1f}"),
        ("peak RSS, training (MB)", "train_peak_rss_mb", "{:.0f}"),
        ("peak RSS, serving (MB)", "serve_peak_rss_mb", "{:.0f}"),
    ]
    names = list(columns)
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for label, key, fmt in rows:
        cells = [fmt.format(columns[n][key]) if key in columns[n] else "–" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _scores(report: EvaluationReport) -> dict:
    out = {
        "n_examples": report.n_examples,
        "macro_f1": report.macro_f1,
        "accuracy": report.accuracy,
        "oos_false_accept_rate": report.oos_false_accept_rate,
        "p50_ms": report.latency_p50_ms,
        "p99_ms": report.latency_p99_ms,
    }
    out.update({f"f1_{lang}": f1 for lang, f1 in report.per_language_macro_f1.items()})
    return out


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    raise SystemExit(main())
