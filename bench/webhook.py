"""Benchmark: signed Twilio webhooks per second and latency under the production server.

Runs, in one go: the bare Flask baseline and lastmile on SQLite, and lastmile on PostgreSQL when
a URL is given (--pg-url, or TEST_DATABASE_URL), each under gunicorn exactly as `lastmile serve`
runs it, with the outbox dispatcher sending every reply to a local fake Twilio API.

    .venv/bin/python bench/webhook.py [--requests 2000] [--concurrency 16] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import requests
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes import FakeProviders  # noqa: E402

TOKEN = "bench-token"
LASTMILE = [sys.executable, "-m", "bot.cli"]
GUNICORN = [sys.executable, "-m", "gunicorn"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"server at {url} did not start")


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (gunicorn master + workers), MiB."""
    total = 0
    pids = [pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


def load(base: str, n: int, concurrency: int, sender: str = "+15551230001") -> dict[str, float]:
    validator = RequestValidator(TOKEN)
    url = base + "/webhooks/twilio"
    bodies = []
    for _ in range(n):
        params = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": "AC" + "0" * 32, "From": sender,
                  "To": "+15550100000", "Body": "where is my order?", "NumMedia": "0"}
        bodies.append((urlencode(params), validator.compute_signature(url, params)))
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    index = iter(range(n))

    def worker() -> None:
        nonlocal errors
        session = requests.Session()
        while True:
            with lock:
                i = next(index, None)
            if i is None:
                return
            body, signature = bodies[i]
            start = time.perf_counter()
            response = session.post(url, data=body, headers={
                "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"})
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                errors += response.status_code != 200

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    latencies.sort()
    return {"rps": n / wall, "p50": statistics.median(latencies) * 1000,
            "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000, "errors": errors}


def run_lastmile(name: str, database_url: str, fake: FakeProviders, args) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "TWILIO_AUTH_TOKEN": TOKEN,
           "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_API_BASE_URL": fake.url, "TWILIO_SMS_FROM": "+15550100000",
           "LASTMILE_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    subprocess.run([*LASTMILE, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run([*LASTMILE, "demo", "seed"], env=env, check=True, capture_output=True)
    server = subprocess.Popen([*LASTMILE, "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", str(args.workers)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz")
        load(f"http://127.0.0.1:{port}", 50, 4)  # warm-up: NLU model, connections
        fake.clear()
        result = load(f"http://127.0.0.1:{port}", args.requests, args.concurrency)
        deadline = time.monotonic() + 120
        while len(fake.twilio_messages()) < args.requests and time.monotonic() < deadline:
            time.sleep(0.2)
        result["replies_sent"] = len(fake.twilio_messages())
        result["rss_mib"] = rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    return result


def run_bare(args) -> dict[str, float]:
    port = free_port()
    server = subprocess.Popen([*GUNICORN, "-b", f"127.0.0.1:{port}", "-w", str(args.workers), "-k", "gthread",
                               "--threads", "8", "--chdir", str(ROOT / "bench"), "bare_app:app"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}/")
        load(f"http://127.0.0.1:{port}", 50, 4)
        result = load(f"http://127.0.0.1:{port}", args.requests, args.concurrency)
        result["rss_mib"] = rss_mib(server.pid)
        result["replies_sent"] = float("nan")
    finally:
        server.terminate()
        server.wait(30)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pg-url", default=os.environ.get("TEST_DATABASE_URL"))
    args = parser.parse_args()
    fake = FakeProviders().start()
    rows = []
    print(f"{args.requests} signed webhooks, {args.concurrency} concurrent clients, gunicorn {args.workers} "
          f"workers x 8 threads, {os.cpu_count()} cores\n", flush=True)
    rows.append(("bare Flask endpoint", run_bare(args)))
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("lastmile, SQLite", run_lastmile("sqlite", f"sqlite:///{tmp}/bench.db", fake, args)))
    if args.pg_url:
        rows.append(("lastmile, PostgreSQL", run_lastmile("postgresql", args.pg_url, fake, args)))
    fake.stop()
    best = max(r["rps"] for _, r in rows)
    print(f"{'server':<22} {'msg/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'replies':>8} {'RSS MiB':>8}")
    for name, r in rows:
        bar = "█" * max(1, round(24 * r["rps"] / best))
        replies = "-" if r["replies_sent"] != r["replies_sent"] else f"{int(r['replies_sent'])}"
        print(f"{name:<22} {r['rps']:>8.0f} {r['p50']:>8.1f} {r['p99']:>8.1f} {int(r['errors']):>7} "
              f"{replies:>8} {r['rss_mib']:>8.0f}  {bar}")


if __name__ == "__main__":
    main()
