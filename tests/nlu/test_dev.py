"""The development set (tests/nlu/dev): written separately from the training data and the
held-out set, used to tune the model and data; never trained on."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.evaluate import evaluate, load_examples

DEV = Path(__file__).parent / "dev"


@pytest.fixture(scope="module")
def report(embedded):
    return evaluate(embedded, load_examples(DEV))


def test_dev_scores(report):
    """Regression floor on the development set (measured numbers in docs/nlu.md)."""
    assert report.macro_f1 >= 0.93, report.render()
    assert min(report.per_language_macro_f1.values()) >= 0.90, report.per_language_macro_f1
    assert report.oos_false_accept_rate <= 0.10
