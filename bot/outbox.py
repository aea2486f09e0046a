"""The outbox: every outgoing message and callback is a row, written in the same transaction as
the change that caused it, then sent by the dispatcher at least once, in order per lane.

A lane is one conversation (or one callback target): an item is sent only when every earlier
item of its lane is finished. Rows are claimed with a compare-and-set update and a lease, so
several processes (threads, gunicorn workers, Celery workers) can sweep the same table.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.channels.base import Channel, SendError
from bot.messages import Reply
from db.models import Conversation, Message, OutboxItem, utcnow
from db.session import Database

logger = logging.getLogger(__name__)

OPT_OUT_CODES = {"21610"}  # Twilio: the recipient replied STOP to the sending number


def enqueue_reply(
    session: Session,
    conversation: Conversation,
    reply: Reply,
    *,
    sender: str = "bot",
    order_id: int | None = None,
    agent_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> Message:
    """Store an outgoing message and its outbox row; the caller's transaction commits both."""
    message = Message(
        conversation_id=conversation.id,
        direction="out",
        channel=conversation.channel,
        sender=sender,
        kind="template" if reply.template else ("photo" if reply.media else "text"),
        text=reply.text,
        data={**reply.to_dict(), **(data or {})},
        status="queued",
        order_id=order_id,
        agent_id=agent_id,
    )
    session.add(message)
    session.flush()
    session.add(
        OutboxItem(
            kind="message",
            lane=f"{conversation.channel}:{conversation.address}",
            message_id=message.id,
            channel=conversation.channel,
            to_address=conversation.address,
            payload=reply.to_dict(),
        )
    )
    return message


def enqueue_webhook(
    session: Session, url: str, body: str, headers: dict[str, str], *, lane: str | None = None
) -> OutboxItem:
    """An HTTP POST retried until the receiver answers 2xx (carrier callbacks, helpdesks)."""
    item = OutboxItem(kind="webhook", lane=lane or f"webhook:{url}", to_address=url,
                      payload={"body": body, "headers": headers})
    session.add(item)
    return item


@dataclass
class SweepResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.sent + self.retried + self.failed


class OutboxDispatcher:
    """Sends due outbox rows. `run_once()` is one sweep; `start()` runs sweeps in a thread."""

    def __init__(
        self,
        database: Database,
        channels: dict[str, Channel],
        config: dict[str, Any],
        *,
        hooks: list[Callable[[Session], int]] | None = None,
    ) -> None:
        self.db = database
        self.channels = channels
        self.settings = config.get("outbox", {})
        self.batch_size = int(self.settings.get("batch_size", 50))
        self.max_attempts = int(self.settings.get("max_attempts", 8))
        self.backoff_base = float(self.settings.get("backoff_base", 2.0))
        self.backoff_max = float(self.settings.get("backoff_max", 600))
        self.lease = timedelta(seconds=float(self.settings.get("lease_seconds", 60)))
        self.poll_interval = float(self.settings.get("poll_interval", 0.5))
        self.hooks = hooks if hooks is not None else []  # periodic work, e.g. scheduled jobs
        self.http = requests.Session()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="outbox-dispatcher", daemon=True)
        self._thread.start()
        logger.info("outbox dispatcher started")

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
            self._thread = None
        for channel in self.channels.values():
            channel.close()
        self.http.close()

    def wake(self) -> None:
        """Called after a commit that added outbox rows: sweep now instead of at the next poll."""
        self._wake.set()

    def _loop(self) -> None:
        last_housekeeping = 0.0
        while not self._stop.is_set():
            # While busy, sweeps follow each other at once; the writes of housekeeping are kept to
            # one per poll interval so they do not compete with webhooks for the database.
            housekeeping = time.monotonic() - last_housekeeping >= self.poll_interval
            if housekeeping:
                last_housekeeping = time.monotonic()
            try:
                busy = self.run_once(housekeeping=housekeeping).total > 0
            except Exception:
                logger.exception("outbox sweep failed; retrying")
                busy = False
            if not busy:
                self._wake.wait(self.poll_interval)
                self._wake.clear()

    # --- one sweep ---------------------------------------------------------------------------
    def run_once(self, *, housekeeping: bool = True) -> SweepResult:
        """One sweep. `housekeeping` also runs the hooks (due jobs) and returns expired leases."""
        result = SweepResult()
        if housekeeping:
            for hook in self.hooks:
                with self.db.session() as session:
                    hook(session)
        for item_id in self._claim(recover_leases=housekeeping):
            outcome = self._deliver(item_id)
            setattr(result, outcome, getattr(result, outcome) + 1)
        return result

    def drain(self, timeout: float = 10.0) -> SweepResult:
        """Sweep until nothing is due (tests, CLI chat). Items waiting for a retry are left."""
        total = SweepResult()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.run_once()
            total.sent += result.sent
            total.retried += result.retried
            total.failed += result.failed
            if result.total == 0:
                break
        return total

    def _claim(self, *, recover_leases: bool = True) -> list[int]:
        """Mark a batch of due rows as ours in one statement (one commit), first in each lane only.

        The `status == 'pending'` test is re-checked on each row as it is updated, so two sweepers
        racing for the same rows split them: on PostgreSQL the loser waits for the winner's commit and
        then skips rows that are no longer pending; SQLite's BEGIN IMMEDIATE serialises the sweeps.
        """
        now = utcnow()
        # The head of each lane: its oldest unfinished row. Only a head may be sent, so a lane's rows
        # go out in order; one GROUP BY instead of a per-row NOT EXISTS keeps this linear.
        heads = (
            select(OutboxItem.lane, func.min(OutboxItem.id).label("head_id"))
            .where(OutboxItem.status.in_(("pending", "sending")))
            .group_by(OutboxItem.lane)
            .subquery()
        )
        due = (
            select(OutboxItem.id)
            .join(heads, OutboxItem.id == heads.c.head_id)
            .where(OutboxItem.status == "pending", OutboxItem.next_attempt_at <= now)
            .order_by(OutboxItem.id)
            .limit(self.batch_size)
            .scalar_subquery()
        )
        with self.db.session() as session:
            if recover_leases:  # rows whose worker died mid-send go back when their lease runs out
                session.execute(
                    update(OutboxItem)
                    .where(OutboxItem.status == "sending", OutboxItem.locked_until < now)
                    .values(status="pending", locked_until=None)
                )
            claimed = session.scalars(
                update(OutboxItem)
                .where(OutboxItem.id.in_(due), OutboxItem.status == "pending")
                .values(status="sending", locked_until=now + self.lease)
                .returning(OutboxItem.id)
            ).all()
        return sorted(claimed)

    def _deliver(self, item_id: int) -> str:
        with self.db.session() as session:
            item = session.get(OutboxItem, item_id)
            assert item is not None
            kind, channel_name, to, payload = item.kind, item.channel, item.to_address, dict(item.payload)
            attempts = item.attempts
        try:
            if kind == "webhook":
                provider_id = self._post_webhook(to or "", payload)
            else:
                channel = self.channels.get(channel_name or "")
                if channel is None:
                    raise SendError(f"no channel {channel_name!r}", permanent=True)
                provider_id = channel.send(Reply.from_dict(payload), to or "")
        except SendError as exc:
            return self._record_failure(item_id, attempts + 1, exc)
        except Exception as exc:  # a bug in a sender must not stall the lane forever
            logger.exception("outbox item %s: unexpected send error", item_id)
            return self._record_failure(item_id, attempts + 1, SendError(exc.__class__.__name__))
        with self.db.session() as session:
            item = session.get(OutboxItem, item_id)
            item.status, item.provider_id, item.sent_at = "sent", provider_id, utcnow()
            item.attempts, item.locked_until, item.last_error = attempts + 1, None, None
            if item.message_id:
                message = session.get(Message, item.message_id)
                if message is not None:
                    message.provider_id = provider_id
                    if message.status in ("queued", "sending"):
                        message.status = "sent"
        logger.info("outbox item %s sent on %s", item_id, channel_name or "webhook")
        return "sent"

    def _record_failure(self, item_id: int, attempts: int, exc: SendError) -> str:
        final = exc.permanent or attempts >= self.max_attempts
        with self.db.session() as session:
            item = session.get(OutboxItem, item_id)
            item.attempts, item.locked_until = attempts, None
            item.last_error = f"{exc.code or ''} {exc.reason}".strip()
            if final:
                item.status = "failed"
            else:
                delay = min(self.backoff_max, self.backoff_base * 2 ** (attempts - 1))
                if exc.retry_after is not None:
                    delay = max(delay, float(exc.retry_after))
                item.status, item.next_attempt_at = "pending", utcnow() + timedelta(seconds=delay)
            if item.message_id:
                message = session.get(Message, item.message_id)
                if message is not None:
                    message.status = "failed" if final else "queued"
                    message.error_code, message.error_message = exc.code, exc.reason
                    if exc.code in OPT_OUT_CODES:
                        conversation = session.get(Conversation, message.conversation_id)
                        if conversation is not None:
                            conversation.opted_out = True
        logger.warning(
            "outbox item %s %s after attempt %s: %s",
            item_id, "failed" if final else "will retry", attempts, item.last_error,
        )
        return "failed" if final else "retried"

    def _post_webhook(self, url: str, payload: dict[str, Any]) -> str:
        try:
            response = self.http.post(url, data=payload["body"].encode(), headers=payload.get("headers") or {},
                                      timeout=10)
        except requests.RequestException as exc:
            raise SendError(f"callback unreachable: {exc.__class__.__name__}") from None
        if 200 <= response.status_code < 300:
            return f"http-{response.status_code}"
        retry_after = _retry_after(response.headers.get("Retry-After"))
        raise SendError(f"callback answered {response.status_code}", code=str(response.status_code),
                        retry_after=retry_after)


@dataclass(slots=True)
class Requeued:
    requeued: list[int]
    skipped_opted_out: list[int]
    not_failed: list[int]


def requeue_failed(db: Database, ids: list[int] | None = None) -> Requeued:
    """Give failed rows (all of them, or `ids`) a fresh set of attempts: status pending, due now,
    their messages queued again. Rows of conversations that have since opted out stay failed
    (carrier rules: nothing more is sent after STOP); ids that are not failed rows are reported."""
    result = Requeued([], [], [])
    with db.session() as session:
        query = (
            select(OutboxItem, Message, Conversation.opted_out)
            .outerjoin(Message, Message.id == OutboxItem.message_id)
            .outerjoin(Conversation, Conversation.id == Message.conversation_id)
            .where(OutboxItem.status == "failed")
            .order_by(OutboxItem.id)
        )
        if ids is not None:
            query = query.where(OutboxItem.id.in_(ids))
        rows = session.execute(query).all()
        result.not_failed = sorted(set(ids or ()) - {item.id for item, _, _ in rows})
        now = utcnow()
        for item, message, opted_out in rows:
            if opted_out:
                result.skipped_opted_out.append(item.id)
                continue
            item.status, item.attempts, item.next_attempt_at, item.locked_until = "pending", 0, now, None
            if message is not None:
                message.status = "queued"
            result.requeued.append(item.id)
    if result.requeued:
        logger.info("outbox: %d failed row(s) requeued by an operator", len(result.requeued))
    return result


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(tz=utcnow().tzinfo)).total_seconds())
        except (TypeError, ValueError):
            return None
