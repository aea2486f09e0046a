"""Benchmark: exactly once from the outbox, measured end to end (the numbers in docs/reliability.md).

Each scenario runs `lastmile serve` (gunicorn, 2 workers, one dispatcher thread each; or `--mode celery`:
the web server plus 2 `lastmile worker` processes on Redis) and posts real signed Twilio webhooks, one per
customer. Replies go to the local fake Twilio (bot/testing/fakes.py), which records every message it accepts —
with the outbox row named by its status-callback URL, so a duplicate is exactly "a row accepted twice" —
answers the Messages list, and posts signed status callbacks back.

  slow    every send takes 1.5 s                                                     -> duplicates
  faults  30 % of sends fail: 12 % 500, 6 % 429 (Retry-After: 1), 6 % reset before acceptance,
          3 % accepted-then-reset, 3 % accepted-then-silent past the client timeout  -> delivered, duplicates
  kill    kill -9 of the whole server (master and workers) mid-burst, then restart   -> lost, duplicates,
                                                                                        resume time

    .venv/bin/python bench/outbox_reliability.py [slow] [faults] [kill] [--customers N] [--mode thread|celery]
        [--database-url URL] [--redis-url URL]

Defaults from config.yml are used (lease 10 s, reconcile_after 5 s, concurrency 8) except the Twilio client
timeout (3 s, `--twilio-timeout`), so that accepted-then-silent sends are given up on sooner.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import requests
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.testing.fakes import FakeProviders  # noqa: E402

TOKEN = "bench-token"
SID = "AC" + "0" * 32
SMS_FROM = "+15550100000"
FAULT_RATES = {"500": 0.12, "429": 0.06, "reset": 0.06, "accept_then_reset": 0.03, "accept_then_silent": 0.03}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """The server (and Celery workers) under test, restartable on the same port and database."""

    def __init__(self, args: argparse.Namespace, url: str, fake: FakeProviders, workdir: str) -> None:
        self.args, self.url, self.port = args, url, free_port()
        config = Path(workdir) / "bench.yml"
        config.write_text(f"channels:\n  twilio:\n    timeout: {args.twilio_timeout}\n")
        self.env = {**os.environ, "DATABASE_URL": url, "TWILIO_API_BASE_URL": fake.url, "TWILIO_ACCOUNT_SID": SID,
                    "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_SMS_FROM": SMS_FROM, "LASTMILE_CONFIG": str(config),
                    "LASTMILE_PUBLIC_BASE_URL": self.base, "LASTMILE_SECRET_KEY": "bench",
                    "LASTMILE_OUTBOX_MODE": args.mode, "LASTMILE_CELERY_BROKER_URL": args.redis_url}
        self.procs: list[subprocess.Popen] = []
        self.workdir = workdir

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start and wait until /healthz answers; returns the monotonic time it did."""
        cli = [sys.executable, "-m", "bot.cli"]
        self.procs = [subprocess.Popen([*cli, "serve", "--port", str(self.port), "--workers", "2"], cwd=ROOT,
                                       env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True)]
        if self.args.mode == "celery":
            self.procs += [subprocess.Popen([*cli, "worker", "--concurrency", "4"], cwd=self.workdir,
                                            env={**self.env, "PYTHONPATH": str(ROOT)},  # beat's file in workdir
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                            start_new_session=True) for _ in range(2)]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base}/healthz", timeout=1).ok:
                    return time.monotonic()
            except requests.RequestException:
                time.sleep(0.1)
        self.kill()
        raise SystemExit("the server did not start")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        for proc in self.procs:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            proc.wait(30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


def fresh_database(url: str) -> None:
    from sqlalchemy import create_engine, text

    from db.migrate import upgrade
    from db.session import Database, normalize_url

    if url.startswith("postgres"):
        engine = create_engine(normalize_url(url))
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    database = Database(url)
    upgrade(database)
    database.dispose()


def post_webhooks(base: str, senders: list[str], concurrency: int, acked: dict[str, float]) -> None:
    """One signed inbound SMS per sender; `acked[sender]` = when it was answered 200."""
    url = f"{base}/webhooks/twilio"
    validator = RequestValidator(TOKEN)
    local = threading.local()

    def one(sender: str) -> None:
        params = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": SID, "From": sender, "To": SMS_FROM,
                  "Body": "where is my order?", "NumMedia": "0"}
        http = getattr(local, "http", None) or requests.Session()
        local.http = http
        try:
            response = http.post(url, data=urlencode(params), timeout=30, headers={
                "X-Twilio-Signature": validator.compute_signature(url, params),
                "Content-Type": "application/x-www-form-urlencoded"})
        except requests.RequestException:
            return  # not acknowledged (the server is down): Twilio would not count it as delivered to us
        if response.status_code == 200:
            acked[sender] = time.monotonic()

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, senders))


def rows_by_status(url: str) -> Counter:
    from sqlalchemy import func, select

    from db.models import OutboxItem
    from db.session import Database

    database = Database(url)
    try:
        with database.session() as session:
            return Counter(dict(session.execute(select(OutboxItem.status, func.count())
                                                .where(OutboxItem.kind == "message").group_by(OutboxItem.status)).all()))
    finally:
        database.dispose()


def wait_settled(url: str, acked: dict[str, float], timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = rows_by_status(url)
        if counts and not (counts["pending"] + counts["sending"] + counts["unknown"]):
            return time.monotonic()
        time.sleep(0.5)
    return float("nan")


def report(url: str, fake: FakeProviders, acked: dict[str, float], senders: list[str]) -> dict[str, object]:
    from sqlalchemy import func, select

    from db.models import OutboxAttempt, OutboxItem
    from db.session import Database

    counts = rows_by_status(url)
    rows = sum(counts.values())
    accepted = [m for m in fake.accepted if m.outbox_id is not None]
    per_row = Counter(m.outbox_id for m in accepted)
    answered = {m.to for m in accepted}
    first_reply: dict[str, datetime] = {}
    for m in accepted:
        first_reply[m.to] = min(first_reply.get(m.to, m.created), m.created)
    database = Database(url)
    with database.session() as session:
        log = Counter(dict(session.execute(select(OutboxAttempt.outcome, func.count())
                                           .group_by(OutboxAttempt.outcome)).all()))
        first_try = sorted((sent - created).total_seconds() for created, sent in session.execute(
            select(OutboxItem.created_at, OutboxItem.sent_at)
            .where(OutboxItem.status == "sent", OutboxItem.attempts == 1, OutboxItem.kind == "message")))
    database.dispose()
    times = sorted(m.created for m in accepted)
    span = (times[-1] - times[0]).total_seconds() if len(times) > 1 else float("nan")
    return {
        "customers": len(senders), "acknowledged": len(acked), "rows": rows, "rows by status": dict(counts),
        "accepted messages": len(accepted), "rows accepted": len(per_row),
        "duplicates": len(accepted) - len(per_row), "customers with a duplicate": len(
            {m.to for m in accepted if per_row[m.outbox_id] > 1}),
        "delivered %": round(100 * len(per_row) / rows, 2) if rows else float("nan"),
        "acknowledged but never answered (lost)": len([s for s in acked if s not in answered]),
        "throughput msg/s (first to last accepted)": round(len(accepted) / span, 1) if span == span else "-",
        "reply latency of rows sent at their first attempt, p50 / p95 s": (
            f"{_pct(first_try, 50):.2f} / {_pct(first_try, 95):.2f}" if first_try else "-"),
        "faults injected": dict(fake.faults_injected), "lookups (Messages list reads)": len(fake.twilio_lookups()),
        "attempt log": dict(log),
    }


def _pct(values: list[float], pct: int) -> float:
    return values[min(len(values) - 1, int(len(values) * pct / 100))]


def held_ids(url: str) -> list[int]:
    from sqlalchemy import select

    from db.models import OutboxItem
    from db.session import Database

    database = Database(url)
    try:
        with database.session() as session:
            return list(session.scalars(select(OutboxItem.id).where(OutboxItem.status == "sending")))
    finally:
        database.dispose()


def all_sent(url: str, ids: list[int]) -> bool:
    from sqlalchemy import func, select

    from db.models import OutboxItem
    from db.session import Database

    database = Database(url)
    try:
        with database.session() as session:
            return session.scalar(select(func.count()).where(OutboxItem.id.in_(ids), OutboxItem.status == "sent")) == len(ids)
    finally:
        database.dispose()


def scenario(name: str, args: argparse.Namespace) -> dict[str, object]:
    fake = FakeProviders().start()
    if not args.no_status_callbacks:
        fake.send_status_callbacks(TOKEN)
    workdir = tempfile.mkdtemp(prefix="lastmile-reliability-")
    url = args.database_url or f"sqlite:///{workdir}/bench.db"
    fresh_database(url)
    stack = Stack(args, url, fake, workdir)
    senders = [f"+1555{7 if name != 'kill' else 6}70{i:04d}" for i in range(args.customers)]
    acked: dict[str, float] = {}
    extra: dict[str, object] = {}
    try:
        stack.start()
        if name == "slow":
            fake.send_delay = 1.5
        elif name == "faults":
            fake.silent_seconds = args.twilio_timeout + 5
            fake.chaos(FAULT_RATES, seed=args.seed)
        elif name == "kill":
            fake.send_delay = 0.25  # a backlog builds up behind the burst
        started = time.monotonic()
        poster = threading.Thread(target=post_webhooks, args=(stack.base, senders, 16, acked))
        poster.start()
        if name == "kill":
            extra = kill_and_restart(stack, fake, url, args)
        poster.join()
        settled = wait_settled(url, acked, timeout=900)
        extra["seconds to settle every row"] = round(settled - started, 1)
        stack.stop()
    finally:
        stack.kill()
        fake.stop()
    return {"scenario": name, "mode": args.mode, "status callbacks": not args.no_status_callbacks, "database": url.split(":", 1)[0], **report(url, fake, acked, senders),
            **extra}


def kill_and_restart(stack: Stack, fake: FakeProviders, url: str, args: argparse.Namespace) -> dict[str, object]:
    while len(fake.accepted) < args.customers // 4:
        time.sleep(0.02)
    stack.kill()
    killed_at, accepted_at_kill = time.monotonic(), len(fake.accepted)
    at_kill = rows_by_status(url)
    held = held_ids(url)  # claimed by the dead server: some of them were in the middle of a call
    time.sleep(1.0)
    ready = stack.start()
    first_after = held_settled = None
    deadline = time.monotonic() + 120
    while (first_after is None or held_settled is None) and time.monotonic() < deadline:
        if first_after is None and len(fake.accepted) > accepted_at_kill:
            first_after = time.monotonic()
        if held_settled is None and all_sent(url, held):
            held_settled = time.monotonic()
        time.sleep(0.05)
    return {"rows at the kill": dict(at_kill), "server down and restarted in s": round(ready - killed_at, 1),
            "first send after the kill, s": round(first_after - killed_at, 1) if first_after else "never",
            "first send after the restart, s": round(max(0.0, first_after - ready), 2) if first_after else "never",
            "rows the dead server held, all settled s after the kill": (
                round(held_settled - killed_at, 1) if held_settled else "never")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", default=["slow", "faults", "kill"], help="slow, faults, kill")
    parser.add_argument("--customers", type=int, default=0, help="default: 160 slow, 300 faults and kill")
    parser.add_argument("--mode", choices=["thread", "celery"], default="thread")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file (PostgreSQL: dropped!)")
    parser.add_argument("--redis-url", default=os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/12"))
    parser.add_argument("--twilio-timeout", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--no-status-callbacks", action="store_true",
                        help="the fake posts no status callbacks: unknown outcomes are settled by lookups only")
    args = parser.parse_args()
    unknown = set(args.scenarios) - {"slow", "faults", "kill"}
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    customers = args.customers
    for name in args.scenarios:
        args.customers = customers or (160 if name == "slow" else 300)
        started = datetime.now(UTC)
        result = scenario(name, args)
        print(f"\n## {name} ({started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores)")
        for key, value in result.items():
            print(f"- {key}: {value}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
