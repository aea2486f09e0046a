"""Leave-one-source-out evaluation: for each source of training data, train without it and score
on it (macro-F1, per-intent F1, false-action rate with and without the decision policy).

Sources are named by nlu/sources.py.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from nlu.evaluate import EvaluationReport, evaluate
from nlu.policy import ACTION_INTENTS, OUT_OF_SCOPE, acts
from nlu.sources import source_of
from nlu.training_data import DATA_DIR, Example, TrainingData, load_training_data


@dataclass(slots=True)
class SourceScore:
    source: str
    n_train: int
    report: EvaluationReport
    false_action_rate: float  # out_of_scope examples the backend's answer would act on
    policy_false_action_rate: float  # ... acted on under nlu.policy, sender with active orders
    n_out_of_scope: int
    train_seconds: float

    def row(self) -> str:
        fa = f"{self.false_action_rate:.1%}" if self.n_out_of_scope else "-"
        pfa = f"{self.policy_false_action_rate:.1%}" if self.n_out_of_scope else "-"
        return (f"| {self.source} | {self.report.n_examples} | {self.n_train} | {self.report.macro_f1:.3f} | "
                f"{self.report.accuracy:.3f} | {fa} | {pfa} |")


def false_actions(backend, examples: list[Example]) -> tuple[float, float, int]:
    """Share of the out_of_scope examples given an action intent: as parsed, and under the
    policy for a sender with active orders (the more permissive case)."""
    oos = [ex for ex in examples if ex.intent == OUT_OF_SCOPE]
    if not oos:
        return 0.0, 0.0, 0
    plain = policy = 0
    for ex in oos:
        intent = backend.parse(ex.text, locale=ex.language)
        plain += intent.name in ACTION_INTENTS
        policy += acts(intent, has_active_orders=True) in ACTION_INTENTS
    return round(plain / len(oos), 4), round(policy / len(oos), 4), len(oos)


def split(data: TrainingData, source: str) -> tuple[TrainingData, list[Example]]:
    """The training data without `source`, and `source`'s examples."""
    kept = [ex for ex in data.examples if source_of(ex.source) != source]
    held = [ex for ex in data.examples if source_of(ex.source) == source]
    return TrainingData(kept, data.synonyms, data.regexes, data.lookups), held


def backend_for(data: TrainingData):
    """An embedded backend over a model trained on `data` (not cached)."""
    from nlu.embedded.artifact import train
    from nlu.embedded.backend import EmbeddedBackend

    return EmbeddedBackend.from_artifact(train(data))


def by_source(data_dir: Path = DATA_DIR, sources: list[str] | None = None) -> list[SourceScore]:
    data = load_training_data(data_dir)
    present = sorted({source_of(ex.source) for ex in data.examples})
    out = []
    for source in sources or present:
        train_data, held = split(data, source)
        started = time.perf_counter()
        backend = backend_for(train_data)
        seconds = time.perf_counter() - started
        report = evaluate(backend, held)
        plain, policy, n_oos = false_actions(backend, held)
        out.append(SourceScore(source, len(train_data.examples), report, plain, policy, n_oos, seconds))
    return out


def render(scores: list[SourceScore], intents_shown: int = 18) -> str:
    lines = ["| source (held out) | examples | trained on | macro-F1 | accuracy | false actions | "
             "false actions, policy |", "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [s.row() for s in scores]
    with_in_scope = [s for s in scores if any(i != OUT_OF_SCOPE for i in s.report.per_intent)]
    if with_in_scope:
        mean = sum(s.report.macro_f1 for s in with_in_scope) / len(with_in_scope)
        with_oos = [s for s in scores if s.n_out_of_scope]
        fa = sum(s.false_action_rate for s in with_oos) / max(1, len(with_oos))
        pfa = sum(s.policy_false_action_rate for s in with_oos) / max(1, len(with_oos))
        lines.append(f"| **mean** | | | {mean:.3f} | | {fa:.1%} | {pfa:.1%} |")
    per_intent: dict[str, dict[str, float]] = defaultdict(dict)
    for s in scores:
        for intent, score in s.report.per_intent.items():
            per_intent[intent][s.source] = score.f1
    names = [s.source for s in scores]
    lines += ["", "| per-intent F1 | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for intent in sorted(per_intent)[:intents_shown]:
        cells = [f"{per_intent[intent][n]:.2f}" if n in per_intent[intent] else "" for n in names]
        lines.append(f"| {intent} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
