"""Benchmark: carrier events in, notifications out. 10,000 `out_for_delivery` events through the carrier
API of lastmile under gunicorn (as `lastmile serve` runs it), every notification sent by the outbox
dispatchers to a local fake Twilio API.

    .venv/bin/python bench/notify.py [--events 10000] [--concurrency 16] [--workers 2] [--database-url URL]
    .venv/bin/python bench/notify.py --events 600 --pacing 20    # sends paced at 20 msg/s from the one number
    .venv/bin/python bench/notify.py --in-process-only [--events 600] [--database-url URL]

Reports events accepted per second, messages delivered per second (end to end, and the dispatchers'
own throughput from first to last send), the server's CPU time per event (all its processes; it holds on
a loaded machine better than rates do) and the peak memory (RSS) of the server's processes. With
--pacing N the fake Twilio refuses (429) a sender above N msg/s and the measured rate is reported.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.testing.fakes import FakeProviders  # noqa: E402

TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def daytime_zone() -> str:
    """A zone where it is now midday, so quiet hours hold nothing back."""
    from db.models import utcnow

    offset = (12 - utcnow().hour + 12) % 24 - 12
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


def prepare(url: str, count: int) -> str:
    """Migrate, add `count` orders (one customer each, on SMS) and return a carrier API key."""
    from bot.domain import orders as order_rules
    from bot.web.api_keys import create_api_key
    from db.migrate import upgrade
    from db.models import Customer, Order, utcnow
    from db.session import Database

    database = Database(url)
    upgrade(database)
    zone, start = daytime_zone(), utcnow() + timedelta(hours=1)
    with database.session() as session:
        for n in range(count):
            customer = Customer(name=f"Bench {n}", phone=f"+1555{n:07d}", locale="en", timezone=zone)
            session.add(Order(ref=f"B-{n}", customer=customer, tracking_token=order_rules.new_token(),
                              postcode="10001", window_start=start, window_end=start + timedelta(hours=2),
                              extra={}))
        key = create_api_key(session, "bench")
    database.dispose()
    return key


def start_server(url: str, fake_url: str, port: int, workers: int, pacing: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "LASTMILE_PACING_SMS": str(pacing), "TWILIO_API_BASE_URL": fake_url, "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
           "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_SMS_FROM": "+15550100000",
           "LASTMILE_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "LASTMILE_SECRET_KEY": "bench"}
    server = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", str(port),
                               "--workers", str(workers)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                return server
        except requests.RequestException:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not start")


def peak_rss_mb(root_pid: int) -> tuple[float, float]:
    """(largest single process, all processes) peak RSS in MiB: gunicorn's master and workers."""
    pids = [root_pid]
    children = Path(f"/proc/{root_pid}/task/{root_pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    peaks = []
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        except FileNotFoundError:
            continue
    return max(peaks, default=0.0), sum(peaks)


def cpu_seconds(root_pid: int) -> float:
    """User + system CPU time of gunicorn's master and workers so far."""
    pids = [root_pid]
    children = Path(f"/proc/{root_pid}/task/{root_pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (FileNotFoundError, IndexError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def post_events(base: str, key: str, count: int, concurrency: int) -> int:
    local = threading.local()

    def one(n: int) -> int:
        http = getattr(local, "http", None) or requests.Session()
        local.http = http
        response = http.post(f"{base}/api/v1/orders/B-{n}/events", json={"type": "out_for_delivery"},
                             headers={"Authorization": f"Bearer {key}"}, timeout=30)
        return response.status_code

    with ThreadPoolExecutor(concurrency) as pool:
        return sum(status == 201 for status in pool.map(one, range(count)))


def run(args: argparse.Namespace) -> dict[str, float]:
    fake = FakeProviders().start()
    workdir = tempfile.mkdtemp(prefix="lastmile-bench-")
    url = args.database_url or f"sqlite:///{workdir}/bench.db"
    key = prepare(url, args.events)
    port = free_port()
    server = start_server(url, fake.url, port, args.workers, args.pacing)
    if args.pacing:
        fake.sender_rate = args.pacing
    first_sent: list[float] = []
    stop = threading.Event()

    def watch_first_send() -> None:
        while not stop.is_set() and not first_sent:
            if fake.twilio_messages():
                first_sent.append(time.perf_counter())
            time.sleep(0.01)

    watcher = threading.Thread(target=watch_first_send, daemon=True)
    try:
        cpu_before = cpu_seconds(server.pid)
        started = time.perf_counter()
        watcher.start()
        accepted = post_events(f"http://127.0.0.1:{port}", key, args.events, args.concurrency)
        accepted_at, backlog_from = time.perf_counter(), time.monotonic()
        during_ingest = len(fake.twilio_messages())
        deadline = accepted_at + 900
        while len(fake.twilio_messages()) < accepted and time.perf_counter() < deadline:
            time.sleep(0.05)
        delivered_at = time.perf_counter()
        delivered = len(fake.twilio_messages())
        largest, total = peak_rss_mb(server.pid)
        cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        stop.set()
        server.terminate()
        server.wait(30)
        fake.stop()
    first = first_sent[0] if first_sent else started
    return {"events": args.events, "accepted": accepted, "delivered": delivered, "during_ingest": during_ingest,
            "events_per_s": accepted / (accepted_at - started),
            "messages_per_s": delivered / (delivered_at - started),
            "dispatcher_per_s": delivered / max(delivered_at - first, 1e-9),
            "seconds": delivered_at - started, "rss_worker_mb": largest, "rss_total_mb": total,
            "cpu_ms_per_event": 1000 * cpu / max(accepted, 1), "sender_rate": fake.send_rate("+15550100000", backlog_from),
            "refused_429": fake.rate_refusals, "load": os.getloadavg(),
            "backend": "postgresql" if url.startswith("postgres") else "sqlite"}


def in_process(url: str, events: int) -> dict[str, float]:
    """One `out_for_delivery` event per new customer through the carrier API in this process (Flask's test client,
    no server, no dispatcher): CPU ms, Python function calls (counted by cProfile, which does not move with the
    machine's load as CPU time does) and SQL statements per event."""
    import cProfile
    import pstats

    from sqlalchemy import event as sa_event

    from app import create_app
    from bot.testing.config import base_config

    key = prepare(url, events + 50)
    config = base_config(url, "http://127.0.0.1:9", outbox={"mode": "off"})
    config["logging"] = {"access_log": False}
    app = create_app(config)
    client, headers, statements = app.test_client(), {"Authorization": f"Bearer {key}"}, [0]

    def post(n: int) -> None:
        response = client.post(f"/api/v1/orders/B-{n}/events", json={"type": "out_for_delivery"}, headers=headers)
        assert response.status_code == 201, response.status_code

    for n in range(events, events + 50):  # warm up: the NLU model, the compiled statements
        post(n)

    def count(*_args) -> None:
        statements[0] += 1

    sa_event.listen(app.extensions["lastmile"].db.engine, "before_cursor_execute", count)
    half = events // 2
    started = time.process_time()
    for n in range(half):
        post(n)
    cpu, per_event = (time.process_time() - started) / half, statements[0] / half
    profile = cProfile.Profile()
    profile.enable()
    for n in range(half, events):
        post(n)
    profile.disable()
    return {"cpu_ms": cpu * 1000, "statements": per_event,
            "calls": pstats.Stats(profile).total_calls / (events - half)}


def report_in_process(args) -> None:
    from bench.fuzz import drop_schema, pg_schema_url

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("SQLite", in_process(f"sqlite:///{tmp}/events.db", args.events)))
    if args.database_url and args.database_url.startswith("postgres"):
        try:
            rows.append(("PostgreSQL", in_process(pg_schema_url(args.database_url, "bench_notify"), args.events)))
        finally:
            drop_schema(args.database_url, "bench_notify")
    load = os.getloadavg()
    print(f"In-process, {args.events} events, one new customer each (load average {load[0]:.1f}):")
    print(f"{'database':<12} {'CPU ms/event':>12} {'calls/event':>12} {'SQL/event':>10}")
    for name, r in rows:
        print(f"{name:<12} {r['cpu_ms']:>12.2f} {r['calls']:>12.0f} {r['statements']:>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--pacing", type=float, default=0.0, help="messages/s per sender (0: unpaced)")
    parser.add_argument("--in-process-only", action="store_true",
                        help="CPU, function calls and statements per event in this process (SQLite, and PostgreSQL "
                             "with --database-url); no server")
    args = parser.parse_args()
    if args.in_process_only:
        report_in_process(args)
        return
    result = run(args)
    rows = [("database", result["backend"]), ("events sent / accepted", f"{result['events']} / {result['accepted']}"),
            ("events accepted per second", f"{result['events_per_s']:.0f}"),
            ("messages delivered to fake Twilio", f"{result['delivered']} ({result['during_ingest']} while ingesting)"),
            ("messages delivered per second (end to end)", f"{result['messages_per_s']:.0f}"),
            ("dispatcher throughput (first to last send)", f"{result['dispatcher_per_s']:.0f} msg/s"),
            ("total time", f"{result['seconds']:.1f} s"),
            ("server CPU per event (all processes, sending included)", f"{result['cpu_ms_per_event']:.1f} ms"),
            ("rate at the fake from +15550100000, once all events are in", f"{result['sender_rate']:.2f} msg/s"),
            ("429 answers (pacing on: the fake refuses above it)", f"{result['refused_429']}"),
            ("load average during the run", " ".join(f"{v:.1f}" for v in result["load"])),
            ("peak RSS, largest process / all", f"{result['rss_worker_mb']:.0f} / {result['rss_total_mb']:.0f} MiB")]
    width = max(len(name) for name, _ in rows)
    print("| " + "measure".ljust(width) + " | value |")
    print("|" + "-" * (width + 2) + "|-------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
