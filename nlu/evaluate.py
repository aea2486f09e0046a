"""Evaluate an NLU backend on Rasa YAML test files: per-intent P/R/F1, confusions, OOS, latency."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nlu.training_data import Example, TrainingData, data_files, load_file
from nlu.types import NLUBackend

__all__ = ["EvaluationReport", "Example", "IntentScore", "Prediction", "evaluate", "load_examples"]

OUT_OF_SCOPE = "out_of_scope"


def load_examples(path: str | Path) -> list[Example]:
    """The intent examples of a Rasa NLU YAML file, or of every .yml/.yaml file in a directory
    (the file stem, when a language code like `en`, becomes Example.language)."""
    data = TrainingData()
    for file in data_files(path):
        load_file(file, data)
    return data.examples


@dataclass(frozen=True, slots=True)
class Prediction:
    text: str
    expected: str
    predicted: str
    confidence: float
    language: str | None
    seconds: float


@dataclass(frozen=True, slots=True)
class IntentScore:
    precision: float
    recall: float
    f1: float
    support: int


def _scores(pairs: Iterable[tuple[str, str]]) -> dict[str, IntentScore]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    support: Counter[str] = Counter()
    for expected, predicted in pairs:
        support[expected] += 1
        if expected == predicted:
            tp[expected] += 1
        else:
            fp[predicted] += 1
            fn[expected] += 1
    out = {}
    for intent in sorted(support):
        p = tp[intent] / (tp[intent] + fp[intent]) if tp[intent] + fp[intent] else 0.0
        r = tp[intent] / (tp[intent] + fn[intent]) if tp[intent] + fn[intent] else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        out[intent] = IntentScore(round(p, 4), round(r, 4), round(f, 4), support[intent])
    return out


def _macro(scores: dict[str, IntentScore]) -> float:
    return round(sum(s.f1 for s in scores.values()) / len(scores), 4) if scores else 0.0


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(slots=True)
class EvaluationReport:
    """Scores over intents (macro-F1 averages the intents present in the test set)."""

    n_examples: int
    accuracy: float
    macro_f1: float
    per_intent: dict[str, IntentScore]
    per_language_macro_f1: dict[str, float]
    confusions: list[tuple[str, str, int]]  # (expected, predicted, count), most frequent first
    oos_false_accept_rate: float  # share of out_of_scope examples given an in-scope intent
    latency_p50_ms: float
    latency_p99_ms: float
    errors: list[Prediction] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "n_examples": self.n_examples,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_intent": {k: asdict(v) for k, v in self.per_intent.items()},
            "per_language_macro_f1": dict(self.per_language_macro_f1),
            "confusions": [{"expected": e, "predicted": p, "count": c} for e, p, c in self.confusions],
            "oos_false_accept_rate": self.oos_false_accept_rate,
            "latency_ms": {"p50": self.latency_p50_ms, "p99": self.latency_p99_ms},
            "errors": [asdict(e) for e in self.errors],
        }

    def render(self, width: int = 30, max_errors: int = 15) -> str:
        """A console table with text bar charts."""

        def bar(value: float) -> str:
            filled = round(value * width)
            return "█" * filled + "·" * (width - filled)

        lines = [f"{self.n_examples} examples   accuracy {self.accuracy:.3f}   macro-F1 {self.macro_f1:.3f}",
                 "", f"{'intent':<22} {'prec':>5} {'rec':>5} {'F1':>5} {'n':>4}  F1"]
        for intent, s in sorted(self.per_intent.items(), key=lambda kv: kv[1].f1):
            lines.append(f"{intent:<22} {s.precision:5.2f} {s.recall:5.2f} {s.f1:5.2f} {s.support:4d}  {bar(s.f1)}")
        lines += ["", f"{'language':<22} {'macro-F1':>8}"]
        for lang, f1 in sorted(self.per_language_macro_f1.items()):
            lines.append(f"{lang:<22} {f1:8.3f}  {bar(f1)}")
        lines += ["", f"out-of-scope false accepts: {self.oos_false_accept_rate:.1%}",
                  f"latency: p50 {self.latency_p50_ms:.3f} ms   p99 {self.latency_p99_ms:.3f} ms"]
        if self.confusions:
            lines += ["", "most confused (expected -> predicted):"]
            lines += [f"  {c:3d}  {e} -> {p}" for e, p, c in self.confusions[:10]]
        if self.errors and max_errors:
            lines += ["", "some errors:"]
            lines += [f"  [{e.language}] {e.text!r}: {e.expected} -> {e.predicted} ({e.confidence:.2f})"
                      for e in self.errors[:max_errors]]
        return "\n".join(lines)


def evaluate(backend: NLUBackend, examples: Sequence[Example]) -> EvaluationReport:
    """Parse every example (with its language as locale) and score the intents."""
    predictions = []
    for ex in examples:
        started = time.perf_counter()
        intent = backend.parse(ex.text, locale=ex.language)
        elapsed = time.perf_counter() - started
        predictions.append(Prediction(ex.text, ex.intent, intent.name, round(intent.confidence, 4),
                                      ex.language, elapsed))
    pairs = [(p.expected, p.predicted) for p in predictions]
    per_intent = _scores(pairs)
    by_language: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for p in predictions:
        by_language[p.language or "?"].append((p.expected, p.predicted))
    confusions = Counter((p.expected, p.predicted) for p in predictions if p.expected != p.predicted)
    oos = [p for p in predictions if p.expected == OUT_OF_SCOPE]
    latencies = [p.seconds * 1000 for p in predictions]
    return EvaluationReport(
        n_examples=len(predictions),
        accuracy=round(sum(e == p for e, p in pairs) / len(pairs), 4) if pairs else 0.0,
        macro_f1=_macro(per_intent),
        per_intent=per_intent,
        per_language_macro_f1={lang: _macro(_scores(ps)) for lang, ps in sorted(by_language.items())},
        confusions=[(e, p, c) for (e, p), c in confusions.most_common()],
        oos_false_accept_rate=round(sum(p.predicted != OUT_OF_SCOPE for p in oos) / len(oos), 4) if oos else 0.0,
        latency_p50_ms=round(_percentile(latencies, 0.5), 4),
        latency_p99_ms=round(_percentile(latencies, 0.99), 4),
        errors=[p for p in predictions if p.expected != p.predicted],
    )
