"""The development set (tests/nlu/dev): written separately from the training data and the
held-out set, used to tune the model and data; never trained on."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.embedded.features import fold
from nlu.evaluate import evaluate, load_examples
from nlu.training_data import load_training_data
from nlu.types import INTENTS, LANGUAGES

DEV = Path(__file__).parent / "dev"
HELDOUT = Path(__file__).parent / "heldout"


@pytest.fixture(scope="module")
def report(embedded):
    return evaluate(embedded, load_examples(DEV))


def test_dev_covers_every_intent_and_language():
    examples = load_examples(DEV)
    for language in LANGUAGES:
        for intent in INTENTS:
            n = sum(1 for e in examples if e.language == language and e.intent == intent)
            assert n >= 10, (language, intent, n)


def test_dev_sentences_are_not_training_sentences():
    training = {fold(e.text) for e in load_training_data().examples}
    copied = [e.text for e in load_examples(DEV) if len(e.text.split()) >= 3 and fold(e.text) in training]
    assert not copied


def test_dev_scores(report):
    """Regression floor on the development set (measured numbers in docs/nlu.md)."""
    assert report.macro_f1 >= 0.93, report.render()
    assert min(report.per_language_macro_f1.values()) >= 0.90, report.per_language_macro_f1
    assert report.oos_false_accept_rate <= 0.10
