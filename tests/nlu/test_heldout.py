"""The embedded backend on the held-out set (never used for training) meets its targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.evaluate import evaluate, load_examples
from nlu.types import LANGUAGES

HELDOUT = Path(__file__).parent / "heldout"


@pytest.fixture(scope="module")
def report(embedded):
    return evaluate(embedded, load_examples(HELDOUT))


# The targets of tracker issue 3 (measured numbers in docs/nlu.md). Per language (>= 0.90) and
# out-of-scope false accepts (0 of 75 measured; 4 would fail) are met; overall macro-F1 (0.938
# measured after the neighbour relabel and mini-batch training) is not yet. The model and data were tuned on tests/nlu/dev and cross-validation only,
# never on these lines.
NOT_YET = pytest.mark.xfail(reason="held-out macro-F1 target (0.95) not met yet (see docs/nlu.md)", strict=True)


@NOT_YET
def test_macro_f1(report):
    assert report.macro_f1 >= 0.95, report.render()


def test_macro_f1_per_language(report):
    assert set(report.per_language_macro_f1) == set(LANGUAGES)
    for language, f1 in report.per_language_macro_f1.items():
        assert f1 >= 0.90, (language, f1)


def test_out_of_scope_false_accepts(report):
    assert report.oos_false_accept_rate <= 0.05


def test_floor_against_regressions(report):
    """What the model does today, minus a margin: a drop below this is a regression."""
    assert report.macro_f1 >= 0.91
    assert min(report.per_language_macro_f1.values()) >= 0.89
    assert report.oos_false_accept_rate <= 0.12


def test_report_dict_and_render(report):
    data = report.to_dict()
    assert {"macro_f1", "per_intent", "per_language_macro_f1", "confusions", "oos_false_accept_rate",
            "latency_ms"} <= set(data)
    assert data["per_intent"]["track_order"]["support"] == 75
    text = report.render()
    assert "macro-F1" in text and "█" in text
