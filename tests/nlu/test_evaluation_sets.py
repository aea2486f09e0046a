"""The development sets (dev, dev2) and the held-out set: every intent in every language, and no line
copied from training."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.embedded.features import fold
from nlu.evaluate import load_examples
from nlu.training_data import load_training_data
from nlu.types import INTENTS, LANGUAGES

HERE = Path(__file__).parent
SETS = [pytest.param(HERE / "dev", 10, id="dev"), pytest.param(HERE / "dev2", 8, id="dev2"),
        pytest.param(HERE / "heldout", 15, id="heldout")]


@pytest.mark.parametrize(("folder", "minimum"), SETS)
def test_covers_every_intent_and_language(folder, minimum):
    examples = load_examples(folder)
    for language in LANGUAGES:
        for intent in INTENTS:
            n = sum(1 for e in examples if e.language == language and e.intent == intent)
            assert n >= minimum, (language, intent, n)


@pytest.mark.parametrize(("folder", "minimum"), SETS)
def test_sentences_are_not_training_sentences(folder, minimum):
    training = {fold(e.text) for e in load_training_data().examples}
    copied = [e.text for e in load_examples(folder) if len(e.text.split()) >= 3 and fold(e.text) in training]
    assert not copied
