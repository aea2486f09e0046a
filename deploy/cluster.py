"""The production topology as plain processes on this machine: a migration, two web nodes, two Celery workers
and one beat, on a PostgreSQL and a Redis you name. `make cluster` runs it in the foreground (Ctrl-C stops
everything); the cluster test drives traffic through it and kills a node with -9.

    python deploy/cluster.py --database-url postgresql://root@127.0.0.1/test --redis-url redis://127.0.0.1/3
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    database_url: str
    redis_url: str
    env: dict[str, str] = field(default_factory=dict)  # extra settings (provider URLs, secrets)
    web_nodes: int = 2
    workers: int = 2
    workdir: Path = field(default_factory=lambda: Path.cwd())
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT),
               "HOME": os.environ.get("HOME", str(self.workdir)), "DATABASE_URL": self.database_url,
               "LASTMILE_OUTBOX_MODE": "celery", "LASTMILE_CELERY_BROKER_URL": self.redis_url,
               "LASTMILE_SECRET_KEY": os.environ.get("LASTMILE_SECRET_KEY", "cluster-local-secret")}
        env.update(self.env)
        return env

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child for its lifetime
        process = subprocess.Popen([sys.executable, "-m", "bot.cli", *args], env=self.environment(),
                                   cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def migrate(self) -> None:
        result = subprocess.run([sys.executable, "-m", "bot.cli", "db", "upgrade"], env=self.environment(),
                                cwd=self.workdir, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"migration failed: {result.stderr.strip()[-500:]}")

    def start_web(self, name: str) -> None:
        port = self.ports.setdefault(name, free_port())
        self._spawn(name, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1")

    def start(self) -> Cluster:
        self.migrate()
        for n in range(1, self.web_nodes + 1):
            self.start_web(f"web{n}")
        for n in range(1, self.workers + 1):
            self._spawn(f"worker{n}", "worker", "--concurrency", "4")
        self._spawn("beat", "beat")
        for name in self.web_names():
            self.wait_ready(name)
        return self

    def web_names(self) -> list[str]:
        return [name for name in self.ports]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def wait_ready(self, name: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited: see {self.workdir / (name + '.log')}")
            try:
                if requests.get(self.url(name) + "/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{name} not ready after {timeout:.0f} s")

    def kill(self, name: str) -> None:
        """kill -9 the node's whole process group (the gunicorn master and its workers)."""
        process = self.processes[name]
        for pid in _children(process.pid) + [process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait(30)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", "postgresql://root@127.0.0.1:5432/test"))
    parser.add_argument("--redis-url", default=os.environ.get("LASTMILE_CELERY_BROKER_URL", "redis://127.0.0.1:6379/3"))
    args = parser.parse_args()
    workdir = ROOT / "instance" / "cluster"
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(args.database_url, args.redis_url, workdir=workdir)
    try:
        cluster.start()
        for name in cluster.web_names():
            print(f"{name}: {cluster.url(name)}  (logs: {workdir / (name + '.log')})")
        print("workers: 2, beat: 1; Ctrl-C stops everything")
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
