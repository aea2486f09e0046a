"""Outbox rows for tests: queue replies, read the rows, make retries due, and sweep until everything settled."""

from __future__ import annotations

import time
from collections import Counter

from sqlalchemy import select, update

from bot.core.messages import Reply
from bot.delivery.outbox import enqueue_reply
from db.models import OutboxItem, utcnow


def queue(srv, texts, address="+15551230001", channel="sms"):
    from bot.domain.conversations import get_or_create

    with srv.db.session() as session:
        conversation = get_or_create(session, channel, address)
        session.flush()
        for text in texts:
            enqueue_reply(session, conversation, Reply(text))


def items(srv):
    with srv.db.session() as session:
        return session.scalars(select(OutboxItem).order_by(OutboxItem.id)).all()


def make_due(srv):
    with srv.db.session() as session:
        session.execute(update(OutboxItem).where(OutboxItem.status == "pending").values(next_attempt_at=utcnow()))


def settle(srv, dispatchers=None, timeout=30.0):
    """Sweep (unless `dispatchers` run elsewhere, in threads) until no row is pending, sending or unknown: a
    drain leaves rows waiting for a retry's backoff or for the provider to be asked about a send of unknown
    outcome."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dispatchers is None:
            srv.dispatcher.drain(timeout=5)
        if all(item.status in ("sent", "failed") for item in items(srv)):
            return
        time.sleep(0.1)
    raise AssertionError(f"not settled: {Counter(item.status for item in items(srv))}")


def settle_retrying(srv, timeout: float = 60.0) -> None:
    """Sweep until every row is sent or failed, making backed-off retries due at once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        make_due(srv)
        try:
            settle(srv, timeout=2)
            return
        except AssertionError:
            continue
    settle(srv, timeout=1)
