"""Train a Rasa NLU model and run a Rasa server as subprocesses of `.venv-rasa` (tests, bench)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path

import requests

logger = logging.getLogger(__name__)

RASA_DIR = Path(__file__).resolve().parent
REPO_ROOT = RASA_DIR.parent.parent
RASA_VENV = REPO_ROOT / ".venv-rasa"
CONFIG = RASA_DIR / "config.yml"
TEST_CONFIG = RASA_DIR / "config.test.yml"
MODEL_NAME = "lastmile-nlu"


class RasaError(RuntimeError):
    """Training failed, or the server did not come up."""


def rasa_executable(venv: Path = RASA_VENV) -> Path:
    """The `rasa` command of the venv; RasaError when the venv has none."""
    exe = venv / "bin" / "rasa"
    if not exe.exists():
        raise RasaError(f"{exe} not found: run `make rasa-venv`")
    return exe


def rasa_env(cache_dir: Path, threads: int | None = None) -> dict[str, str]:
    """Environment for a Rasa subprocess: no telemetry, quiet TensorFlow, a private cache."""
    env = dict(os.environ)
    env.update(
        RASA_TELEMETRY_ENABLED="false",
        SQLALCHEMY_SILENCE_UBER_WARNING="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        RASA_CACHE_DIRECTORY=str(cache_dir),
        PYTHONWARNINGS="ignore",
    )
    if threads:
        env["TF_INTRA_OP_PARALLELISM_THREADS"] = str(threads)
        env["TF_INTER_OP_PARALLELISM_THREADS"] = str(threads)
    env.pop("PYTHONPATH", None)  # the app's venv must not leak into Rasa's
    return env


def train(
    data_dir: Path,
    out_dir: Path,
    config: Path = CONFIG,
    *,
    venv: Path = RASA_VENV,
    log_path: Path | None = None,
    timeout: float = 3600,
) -> Path:
    """Train an NLU-only model (`rasa train nlu`) and return the path of its archive."""
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_path or out_dir / "train.log"
    command = [
        str(rasa_executable(venv)), "train", "nlu",
        "--config", str(Path(config).resolve()), "--nlu", str(Path(data_dir).resolve()),
        "--out", str(out_dir.resolve()), "--fixed-model-name", MODEL_NAME,
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        result = subprocess.run(
            command,
            cwd=out_dir,
            env=rasa_env(out_dir / ".cache"),
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    model = out_dir / f"{MODEL_NAME}.tar.gz"
    if result.returncode != 0 or not model.exists():
        raise RasaError(f"rasa train failed ({result.returncode}):\n{_tail(log_path)}")
    return model


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RasaServer:
    """`rasa run --enable-api` on a free local port, as a context manager."""

    def __init__(self, model: Path, *, workdir: Path, venv: Path = RASA_VENV, port: int = 0):
        self.model = model
        self.workdir = workdir
        self.venv = venv
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    def start(self, ready_timeout: float = 300) -> RasaServer:
        command = [
            str(rasa_executable(self.venv)), "run", "--enable-api",
            "-i", "127.0.0.1", "-p", str(self.port), "--model", str(Path(self.model).resolve()),
        ]  # fmt: skip
        self.workdir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=rasa_env(self.workdir / ".cache"),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_ready(ready_timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        with requests.Session() as session:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RasaError(
                        f"rasa run exited ({self.process.returncode}):\n{_tail(self.log_path)}"
                    )
                try:
                    status = session.get(f"{self.url}/status", timeout=2)
                    if status.ok and status.json().get("model_file"):
                        return
                except (requests.RequestException, ValueError):
                    pass
                time.sleep(0.5)
        raise RasaError(f"rasa run not ready after {timeout:.0f}s:\n{_tail(self.log_path)}")

    def peak_rss_bytes(self) -> int:
        """Peak resident memory (VmHWM) of the server and its child processes."""
        if self.process is None:
            return 0
        return sum(_vm_hwm(pid) for pid in _process_tree(self.process.pid))

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> RasaServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(child) for child in children.read_text().split())
            except OSError:
                pass
    return pids


def _vm_hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
