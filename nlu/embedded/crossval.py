"""K-fold cross-validation over the training data: out-of-fold intent probabilities and their
scores at a range of fallback thresholds (the threshold is chosen here, never on held-out data)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nlu.evaluate import _macro, _scores
from nlu.training_data import Example, TrainingData

OUT_OF_SCOPE = "out_of_scope"


@dataclass(slots=True)
class OutOfFold:
    """Out-of-fold probabilities (one row per example) and the labels they are scored on."""

    intents: tuple[str, ...]
    probs: np.ndarray
    labels: list[str]
    languages: list[str | None]

    def predictions(self, threshold: float) -> list[str]:
        from nlu.embedded.artifact import decide

        return [decide(self.intents, row, threshold)[0] for row in self.probs]

    def score(self, threshold: float) -> dict:
        return score(self.labels, self.predictions(threshold), self.languages)


def score(labels: Sequence[str], predicted: Sequence[str], languages: Sequence[str | None]) -> dict:
    """macro-F1, macro-F1 per language, out-of-scope false-accept rate, accuracy."""
    pairs = list(zip(labels, predicted, strict=True))
    per_language = {}
    for lang in sorted({lang or "?" for lang in languages}):
        per_language[lang] = _macro(_scores(p for p, lg in zip(pairs, languages, strict=True) if (lg or "?") == lang))
    oos = [p for e, p in pairs if e == OUT_OF_SCOPE]
    return {
        "macro_f1": _macro(_scores(pairs)),
        "per_language": per_language,
        "oos_false_accept": round(sum(p != OUT_OF_SCOPE for p in oos) / len(oos), 4) if oos else 0.0,
        "accuracy": round(sum(e == p for e, p in pairs) / len(pairs), 4) if pairs else 0.0,
    }


def out_of_fold(data: TrainingData, folds: int = 5, seed: int = 0) -> OutOfFold:
    """Train on k-1 folds and predict the k-th (stratified by intent and language); examples
    differing only by case/punctuation stay in the same fold so they cannot leak."""
    from nlu.embedded.artifact import intent_probabilities, train
    from nlu.embedded.features import normalize

    rng = np.random.default_rng(seed)
    groups: dict[tuple, list[int]] = {}
    for i, ex in enumerate(data.examples):
        groups.setdefault((ex.intent, ex.language), []).append(i)
    fold_of = np.zeros(len(data.examples), dtype=int)
    key_fold: dict[str, int] = {}
    for ids in groups.values():
        order = rng.permutation(len(ids))
        for rank, j in enumerate(order):
            i = ids[j]
            key = normalize(data.examples[i].text).strip(" .!?")
            fold_of[i] = key_fold.setdefault(key, rank % folds)
    probs: np.ndarray | None = None
    intents: tuple[str, ...] = ()
    for k in range(folds):
        train_ex = [ex for ex, f in zip(data.examples, fold_of, strict=True) if f != k]
        test_ids = np.flatnonzero(fold_of == k)
        part = TrainingData(train_ex, data.synonyms, data.regexes, data.lookups)
        artifact = train(part, with_language_head=False)
        featurizer = artifact.featurizer()
        if probs is None:
            intents = artifact.intents
            probs = np.zeros((len(data.examples), len(intents)), dtype=np.float32)
        for row in test_ids:
            p = intent_probabilities(artifact, featurizer, data.examples[row].text)
            probs[row] = [p[artifact.intents.index(name)] if name in artifact.intents else 0.0 for name in intents]
    assert probs is not None
    return OutOfFold(intents, probs, [ex.intent for ex in data.examples], [ex.language for ex in data.examples])


def probabilities(artifact, examples: Sequence[Example]) -> OutOfFold:
    """The artifact's probabilities for `examples` (a development set), in the same shape."""
    from nlu.embedded.artifact import intent_probabilities

    featurizer = artifact.featurizer()
    probs = np.array([intent_probabilities(artifact, featurizer, ex.text) for ex in examples], dtype=np.float32)
    return OutOfFold(artifact.intents, probs, [ex.intent for ex in examples], [ex.language for ex in examples])
