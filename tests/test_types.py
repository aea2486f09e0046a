"""The type checker is clean on the product code (bot, handlers, db, nlu, app.py; settings in pyproject.toml).
Run by `make lint` too; here so that CI, which runs `make test`, keeps it clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)  # a cold mypy run is about 30 s of CPU; minutes beside the rest of the suite
def test_mypy_finds_no_error_in_the_product_code(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Success: no issues found" in done.stdout
