"""The development sets, never trained on, used to tune the model and data: nlu/evaluation/dev (written
with the first training data) and nlu/evaluation/dev2 (written later by writers who saw neither the
training data nor the other sets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.evaluate import evaluate, load_examples

SETS_DIR = Path(__file__).resolve().parents[2] / "nlu" / "evaluation"


@pytest.mark.parametrize("name", ["dev", "dev2"])
def test_dev_scores(embedded, name):
    """Regression floor on each development set (measured numbers in docs/nlu.md)."""
    report = evaluate(embedded, load_examples(SETS_DIR / name))
    assert report.macro_f1 >= 0.93, report.render()
    assert min(report.per_language_macro_f1.values()) >= 0.90, report.per_language_macro_f1
    assert report.oos_false_accept_rate <= 0.10
