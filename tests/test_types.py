"""The type checker is clean on the product code (bot, handlers, db, nlu, app.py; settings in pyproject.toml).
Run by `make lint` too; here so that CI, which runs `make test`, keeps it clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# mypy's own incremental cache (.mypy_cache, the one `make lint` keeps): it rechecks what changed since the last
# run and what depends on it, ~3 s; a cold run (a fresh checkout, CI) is about 30 s of CPU, minutes beside the suite.
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_mypy_finds_no_error_in_the_product_code():
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Success: no issues found" in done.stdout
