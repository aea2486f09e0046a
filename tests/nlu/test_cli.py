"""`lastmile nlu parse|evaluate|train` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from nlu.cli import nlu_group

HELDOUT_EN = Path(__file__).resolve().parents[2] / "nlu" / "evaluation" / "heldout" / "en.yml"


def test_parse_prints_json_lines(embedded):
    stdin = "where is my parcel LM-10001\n\nno estaré en casa hasta las 6\n5 ⭐\n"
    result = CliRunner().invoke(nlu_group, ["parse", "--timezone", "Europe/Madrid"], input=stdin)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["intent"] for r in rows] == ["track_order", "reschedule", "rate_delivery"]
    assert rows[0]["entities"] == [{"entity": "order_id", "value": "LM-10001", "start": 19, "end": 27}]
    assert rows[1]["language"] == "es"
    assert set(rows[2]) == {"text", "intent", "confidence", "language", "entities"}


def test_evaluate_prints_a_report(embedded):
    result = CliRunner().invoke(nlu_group, ["evaluate", "--backend", "embedded", "--data", str(HELDOUT_EN)])
    assert result.exit_code == 0, result.output
    assert "macro-F1" in result.output and "latency" in result.output
