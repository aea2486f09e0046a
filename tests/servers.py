"""`lastmile serve` as a real subprocess on a free port, as an operator runs it (gunicorn, forked workers)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import requests

from deploy.cluster import free_port

ROOT = Path(__file__).resolve().parents[1]


def server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment: this checkout on the path, a SQLite file in `tmp_path`, a secret key."""
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'lastmile.db'}", "LASTMILE_SECRET_KEY": "test-server", **extra}


@contextmanager
def lastmile_serve(tmp_path: Path, env: dict[str, str], *, workers: int = 1,
                   output: IO[bytes] | int = subprocess.DEVNULL) -> Iterator[str]:
    """Yields the base URL once /healthz answers (90 s at most); the server is terminated on exit."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", str(workers)], env=env, cwd=tmp_path, stdout=output,
                              stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert server.poll() is None, "lastmile serve exited"
            try:
                if requests.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
