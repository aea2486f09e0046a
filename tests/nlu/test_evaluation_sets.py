"""The development sets (dev, dev2) and the held-out set: every intent in every language, and no line
copied from training."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.embedded.features import fold
from nlu.evaluate import load_examples
from nlu.training_data import load_training_data
from nlu.types import INTENTS, LANGUAGES

SETS_DIR = Path(__file__).resolve().parents[2] / "nlu" / "evaluation"
SETS = {"dev": 10, "dev2": 8, "heldout": 15}  # each set, and its fewest examples per intent and language


@pytest.fixture(scope="module")
def training_texts() -> set[str]:
    return {fold(e.text) for e in load_training_data().examples}


@pytest.mark.parametrize("name", SETS)
def test_covers_every_intent_and_language(name):
    examples = load_examples(SETS_DIR / name)
    for language in LANGUAGES:
        for intent in INTENTS:
            n = sum(1 for e in examples if e.language == language and e.intent == intent)
            assert n >= SETS[name], (language, intent, n)


@pytest.mark.parametrize("name", SETS)
def test_sentences_are_not_training_sentences(name, training_texts):
    copied = [e.text for e in load_examples(SETS_DIR / name) if len(e.text.split()) >= 3 and fold(e.text) in training_texts]
    assert not copied
