"""Benchmark: signed Twilio webhooks per second and latency under the production server, and the CPU one
inbound message costs in-process.

Runs, in one go: the bare Flask baseline and lastmile on SQLite, and lastmile on PostgreSQL when
a URL is given (--pg-url, or TEST_DATABASE_URL), each under gunicorn exactly as `lastmile serve`
runs it, with the outbox dispatcher sending every reply to a local fake Twilio API. Then, in this
process (Flask's test client, no server, no dispatcher): CPU time and SQL statements per inbound
message, and per redelivered (duplicate) message, against the bare Flask endpoint in the same run.
CPU time does not count waiting, so it holds on a loaded machine better than rates do.

    .venv/bin/python bench/webhook.py [--requests 2000] [--concurrency 16] [--pg-url URL]
    .venv/bin/python bench/webhook.py --in-process-only [--in-process 1000]
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

from bot.testing.fakes import FakeProviders  # noqa: E402

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


def pss_mib(pid: int) -> float:
    """Proportional memory (PSS) of gunicorn's master and workers, MiB: pages the forked workers
    share (the NLU model loaded before the fork) are counted once, not once per process."""
    total = 0
    pids = [pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


def cpu_split(server_pid: int) -> dict[str, float]:
    """CPU seconds so far: the server's processes, this process (the load generator and the fake Twilio),
    PostgreSQL's processes, and the whole machine (/proc/stat), so that a run shows where the cores went."""
    from bench.notify import cpu_seconds

    clock = os.sysconf("SC_CLK_TCK")
    postgres = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, fields = stat.read_text().rsplit(")", 1)
        except (FileNotFoundError, ProcessLookupError):
            continue
        if name.endswith("(postgres"):
            fields = fields.split()
            postgres += int(fields[11]) + int(fields[12])
    busy = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    machine = sum(int(v) for i, v in enumerate(busy) if i not in (3, 4))  # all but idle and iowait
    this = os.times()
    return {"server": cpu_seconds(server_pid), "bench": this.user + this.system, "postgres": postgres / clock,
            "machine": machine / clock}


def cpu_per_message(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
    return {f"cpu_{k}": 1000 * (after[k] - before[k]) / n for k in before}


# Seeded customers (their orders are found: status, ETA, link) and 200 other numbers (asked to prove an
# order): many conversations, as in real traffic, each one's replies kept in order by the outbox.
SENDERS = ["+15551230001", "+15551230002", "+15551230003"] + [f"+1555880{i:04d}" for i in range(200)]


def load(base: str, n: int, concurrency: int) -> dict[str, float]:
    validator = RequestValidator(TOKEN)
    url = base + "/webhooks/twilio"
    bodies = []
    for i in range(n):
        sender = SENDERS[i % len(SENDERS)]
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
           "LASTMILE_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "LASTMILE_SECRET_KEY": "bench"}
    subprocess.run([*LASTMILE, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run([*LASTMILE, "demo", "seed"], env=env, check=True, capture_output=True)
    server = subprocess.Popen([*LASTMILE, "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", str(args.workers), "--threads", str(args.threads)], env=env,
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz")
        load(f"http://127.0.0.1:{port}", 50, 4)  # warm-up: NLU model, connections
        fake.clear()
        started, cpu_before = time.monotonic(), cpu_split(server.pid)
        result = load(f"http://127.0.0.1:{port}", args.requests, args.concurrency)
        deadline = time.monotonic() + 300
        while len(fake.twilio_messages()) < args.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        result.update(cpu_per_message(cpu_before, cpu_split(server.pid), args.requests))
        result["replies_sent"] = len(fake.twilio_messages())
        result["replies_per_s"] = result["replies_sent"] / (time.monotonic() - started)
        result["pss_mib"] = pss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    return result


def run_bare(args) -> dict[str, float]:
    port = free_port()
    server = subprocess.Popen([*GUNICORN, "-b", f"127.0.0.1:{port}", "-w", str(args.workers), "-k", "gthread",
                               "--threads", str(args.threads), "--chdir", str(ROOT / "bench"), "bare_app:app"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}/")
        load(f"http://127.0.0.1:{port}", 50, 4)
        cpu_before = cpu_split(server.pid)
        result = load(f"http://127.0.0.1:{port}", args.requests, args.concurrency)
        result.update(cpu_per_message(cpu_before, cpu_split(server.pid), args.requests))
        result["pss_mib"] = pss_mib(server.pid)
        result["replies_sent"] = result["replies_per_s"] = float("nan")
    finally:
        server.terminate()
        server.wait(30)
    return result


def in_process(database_url: str | None, n: int) -> dict[str, float]:
    """CPU ms and SQL statements per inbound message through the Flask test client (the webhook, the engine,
    the reply's outbox row; no dispatcher), after one message from every sender (their conversations exist,
    as in steady traffic). `database_url` None: the bare Flask endpoint."""
    from sqlalchemy import event

    from bot.testing.config import PUBLIC_URL, TWILIO_TOKEN, base_config

    validator = RequestValidator(TWILIO_TOKEN)
    if database_url is None:
        import importlib.util

        spec = importlib.util.spec_from_file_location("bare_app", ROOT / "bench" / "bare_app.py")
        bare = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bare)
        client, statements = bare.app.test_client(), [0]
    else:
        from app import create_app
        from bot.domain.demo_orders import seed
        from db.migrate import upgrade
        from db.session import Database

        database = Database(database_url)
        upgrade(database)
        database.dispose()
        config = base_config(database_url, "http://127.0.0.1:9", outbox={"mode": "off"})
        config["logging"] = {"access_log": False}
        app = create_app(config)
        srv = app.extensions["lastmile"]
        with srv.db.session() as session:
            seed(session)
        client, statements = app.test_client(), [0]

        def count(*_args) -> None:
            statements[0] += 1

        event.listen(srv.db.engine, "before_cursor_execute", count)

    def post(i: int, sid: str | None = None) -> None:
        params = {"MessageSid": sid or "SM" + uuid.uuid4().hex, "AccountSid": "AC" + "0" * 32,
                  "From": SENDERS[i % len(SENDERS)], "To": "+15550100000", "Body": "where is my order?",
                  "NumMedia": "0"}
        signature = validator.compute_signature(PUBLIC_URL + "/webhooks/twilio", params)
        response = client.post("/webhooks/twilio", data=params, headers={"X-Twilio-Signature": signature})
        assert response.status_code == 200, response.status_code

    for i in range(len(SENDERS)):
        post(i)
    statements[0] = 0
    started = time.process_time()
    for i in range(n):
        post(i)
    cpu, per_message = (time.process_time() - started) / n, statements[0] / n
    sid = "SM" + uuid.uuid4().hex
    post(0, sid)
    statements[0] = 0
    started = time.process_time()
    for _ in range(n // 4):
        post(0, sid)
    duplicate_cpu, duplicate_statements = (time.process_time() - started) / (n // 4), statements[0] / (n // 4)
    import cProfile  # Python function calls per message: they do not move with the machine's load as CPU time does
    import pstats

    profile = cProfile.Profile()
    profile.enable()
    for i in range(n // 4):
        post(i)
    profile.disable()
    return {"cpu_ms": cpu * 1000, "statements": per_message, "duplicate_cpu_ms": duplicate_cpu * 1000,
            "duplicate_statements": duplicate_statements, "calls": pstats.Stats(profile).total_calls / (n // 4)}


def report_in_process(args) -> None:
    rows = [("bare Flask endpoint", in_process(None, args.in_process))]
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("lastmile, SQLite", in_process(f"sqlite:///{tmp}/inprocess.db", args.in_process)))
    if args.pg_url:
        from bench.fuzz import drop_schema, pg_schema_url

        try:
            rows.append(("lastmile, PostgreSQL", in_process(pg_schema_url(args.pg_url, "bench_webhook"),
                                                            args.in_process)))
        finally:
            drop_schema(args.pg_url, "bench_webhook")
    load = os.getloadavg()
    print(f"\nIn-process, {args.in_process} messages (load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}); "
          "CPU of this process only (PostgreSQL's own CPU is not counted):")
    print(f"{'server':<22} {'CPU ms/msg':>10} {'x bare':>7} {'calls/msg':>9} {'SQL/msg':>8} {'dup CPU ms':>10} "
          f"{'dup SQL':>8}")
    bare = rows[0][1]["cpu_ms"]
    for name, r in rows:
        print(f"{name:<22} {r['cpu_ms']:>10.2f} {r['cpu_ms'] / bare:>7.1f} {r['calls']:>9.0f} {r['statements']:>8.1f} "
              f"{r['duplicate_cpu_ms']:>10.2f} {r['duplicate_statements']:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    parser.add_argument("--pg-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--in-process", type=int, default=1000, help="messages for the in-process CPU measure")
    parser.add_argument("--in-process-only", action="store_true", help="skip the servers")
    args = parser.parse_args()
    if args.in_process_only:
        report_in_process(args)
        return
    fake = FakeProviders().start()
    rows = []
    print(f"{args.requests} signed webhooks, {args.concurrency} concurrent clients, gunicorn {args.workers} "
          f"workers x {args.threads} threads, {os.cpu_count()} cores\n", flush=True)
    rows.append(("bare Flask endpoint", run_bare(args)))
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("lastmile, SQLite", run_lastmile("sqlite", f"sqlite:///{tmp}/bench.db", fake, args)))
    if args.pg_url:
        from bench.fuzz import drop_schema, pg_schema_url  # (bench.fuzz imports this module)

        try:  # a schema of its own, empty: rows left by another run are not counted as this run's replies
            rows.append(("lastmile, PostgreSQL", run_lastmile("postgresql", pg_schema_url(args.pg_url, "bench_webhook"),
                                                              fake, args)))
        finally:
            drop_schema(args.pg_url, "bench_webhook")
    fake.stop()
    best = max(r["rps"] for _, r in rows)
    print(f"{'server':<22} {'msg/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'replies':>8} "
          f"{'replies/s':>9} {'PSS MiB':>8}")
    for name, r in rows:
        bar = "█" * max(1, round(24 * r["rps"] / best))
        nan = r["replies_sent"] != r["replies_sent"]
        replies = "-" if nan else f"{int(r['replies_sent'])}"
        per_s = "-" if nan else f"{r['replies_per_s']:.0f}"
        print(f"{name:<22} {r['rps']:>7.0f} {r['p50']:>7.1f} {r['p99']:>7.1f} {int(r['errors']):>6} "
              f"{replies:>8} {per_s:>9} {r['pss_mib']:>8.0f}  {bar}")
    print("\nCPU ms per message, from the first request to the last reply sent (the load generator and the fake "
          "Twilio run in this process):")
    print(f"{'server':<22} {'server':>7} {'bench':>7} {'postgres':>8} {'machine':>8}")
    for name, r in rows:
        print(f"{name:<22} {r['cpu_server']:>7.2f} {r['cpu_bench']:>7.2f} {r['cpu_postgres']:>8.2f} "
              f"{r['cpu_machine']:>8.2f}")
    report_in_process(args)


if __name__ == "__main__":
    main()
