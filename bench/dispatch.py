"""Benchmark: the outbox dispatcher alone. Queues replies in many conversations, then one dispatcher (its
thread pool, `outbox.concurrency` sends at a time) drains them to a fake Twilio API running in another
process, so the CPU time measured here is the dispatcher's own.

    .venv/bin/python bench/dispatch.py [--rows 2000] [--lanes 2000] [--concurrency 8] [--database-url URL]

Reports per sent row: the dispatcher's CPU time (this process: the claim, the sends' HTTP requests, the
recording), SQL statements, transactions (commits), and the wall-clock rate (which depends on the machine's
load more than anything else: the load average is printed with it). Every row must end `sent` with one
accepted message each at the fake.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def serve_fake(pipe, stop) -> None:  # in a child process
    from bot.testing.fakes import FakeProviders

    fake = FakeProviders().start()
    pipe.send(fake.url)
    stop.wait()
    pipe.send(len(fake.twilio_messages()))
    fake.stop()


def run(database_url: str, rows: int, lanes: int, concurrency: int) -> dict[str, float]:
    from sqlalchemy import event, func, select

    from app import create_app
    from bot.core.messages import Reply
    from bot.delivery.outbox import OutboxDispatcher, enqueue_reply
    from bot.domain.conversations import get_or_create
    from bot.testing.config import base_config
    from db.migrate import upgrade
    from db.models import OutboxAttempt, OutboxItem
    from db.session import Database

    stop = multiprocessing.Event()
    parent, child = multiprocessing.Pipe()
    fake = multiprocessing.Process(target=serve_fake, args=(child, stop), daemon=True)
    fake.start()
    fake_url = parent.recv()
    try:
        database = Database(database_url)
        upgrade(database)
        database.dispose()
        config = base_config(database_url, fake_url, outbox={"mode": "off", "concurrency": concurrency})
        config["logging"] = {"access_log": False}
        app = create_app(config)
        srv = app.extensions["lastmile"]
        with srv.db.session() as session:
            conversations = [get_or_create(session, "sms", f"+1555{n:07d}") for n in range(lanes)]
            session.flush()
            for n in range(rows):
                enqueue_reply(session, conversations[n % lanes], Reply(f"Your order {n} is out for delivery."))
        dispatcher = OutboxDispatcher(srv.db, srv.channels, config)
        counts = {"statements": 0, "commits": 0}

        def statement(*_args) -> None:
            counts["statements"] += 1

        def commit(*_args) -> None:
            counts["commits"] += 1

        event.listen(srv.db.engine, "before_cursor_execute", statement)
        event.listen(srv.db.engine, "commit", commit)
        load = os.getloadavg()[0]
        cpu, wall = time.process_time(), time.perf_counter()
        result = dispatcher.drain(timeout=600)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        load = max(load, os.getloadavg()[0])
        event.remove(srv.db.engine, "before_cursor_execute", statement)
        event.remove(srv.db.engine, "commit", commit)
        dispatcher.stop()
        with srv.db.session() as session:
            sent = session.scalar(select(func.count()).select_from(OutboxItem).where(OutboxItem.status == "sent"))
            logged = session.scalar(select(func.count()).select_from(OutboxAttempt))
        srv.db.dispose()
    finally:
        stop.set()
        accepted = parent.recv() if fake.is_alive() else -1
        fake.join(10)
    assert sent == rows == result.sent, (sent, rows, result)
    assert accepted == rows, f"the fake accepted {accepted} messages for {rows} rows"
    assert logged == rows, f"{logged} attempts logged for {rows} rows"
    return {"rows": rows, "wall_s": wall, "rate": rows / wall, "cpu_ms": 1000 * cpu / rows,
            "statements": counts["statements"] / rows, "commits": counts["commits"] / rows, "load": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--lanes", type=int, default=None, help="conversations (default: one per row)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--database-url", default=None, help="PostgreSQL (runs in its schema bench_dispatch)")
    args = parser.parse_args()
    lanes = args.lanes or args.rows
    print(f"{args.rows} rows in {lanes} conversations, one dispatcher, {args.concurrency} sending threads, "
          f"{os.cpu_count()} cores")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(("SQLite", run(f"sqlite:///{tmp}/dispatch.db", args.rows, lanes, args.concurrency)))
    if args.database_url:
        from bench.fuzz import pg_schema_url

        results.append(("PostgreSQL", run(pg_schema_url(args.database_url, "bench_dispatch"), args.rows, lanes,
                                          args.concurrency)))
    print(f"{'database':<11} {'sent/s':>7} {'CPU ms/row':>10} {'SQL/row':>8} {'commits/row':>11} {'load':>5}")
    for name, r in results:
        print(f"{name:<11} {r['rate']:>7.0f} {r['cpu_ms']:>10.2f} {r['statements']:>8.2f} {r['commits']:>11.2f} "
              f"{r['load']:>5.1f}")


if __name__ == "__main__":
    main()
