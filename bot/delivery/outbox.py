"""The outbox: every outgoing message and callback is a row, written in the same transaction as
the change that caused it, then sent by the dispatcher exactly once where the provider lets us check
(Twilio), at least once where it does not (Telegram, callbacks), in order per lane.

A lane is one conversation (or one callback target): an item is sent only when every earlier
item of its lane is finished. Rows are claimed with a compare-and-set update and a renewed lease, so
several processes (threads, gunicorn workers, Celery workers) can sweep the same table; a send whose
outcome is unknown is reconciled with the provider before anything is sent again (docs/reliability.md).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import requests
from sqlalchemy import Table, bindparam, case, func, insert, or_, select, update
from sqlalchemy.orm import Session

from bot.channels import sms_encoding
from bot.channels.base import Channel, SendError, parse_retry_after
from bot.core import logs, metrics
from bot.core.messages import Reply
from bot.core.registry import registry_of
from bot.delivery.pacing import SendPacer
from bot.delivery.recording import GroupCommit, by_id, messages_sent
from db.models import Conversation, Message, OutboxAttempt, OutboxItem, utcnow
from db.session import Database, add_row, insert_statement, rows_changed

logger = logging.getLogger(__name__)

OUTBOX = cast(Table, OutboxItem.__table__)  # Core statements: the dispatcher's hot path needs no unit of work
ATTEMPTS = cast(Table, OutboxAttempt.__table__)


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
    """Store an outgoing message and its outbox row; the caller's transaction commits both. Every outbox row is
    inserted when it is queued (`add_row`, not at the next flush), so a lane's rows are in the order queued."""
    message = add_row(
        session, Message,
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
    queue_message(session, conversation, message, reply)
    return message


def queue_message(session: Session, conversation: Conversation, message: Message, reply: Reply) -> None:
    """The outbox rows that send `message` (stored already, e.g. held until now) in the conversation's lane."""
    message.status = "queued"
    if message.id is None:  # added to the session, not flushed yet
        session.flush()
    # An SMS over the segment budget goes as several, in order in the conversation's lane; the message row
    # keeps the whole reply (its options are what a numbered answer refers to).
    parts = sms_encoding.split_reply(reply) if conversation.channel == "sms" else [reply]
    request_id = logs.current_request_id()
    session.connection().execute(insert_statement(OUTBOX), [  # no autoflush: the session's changes go at commit
        {"kind": "message", "lane": f"{conversation.channel}:{conversation.address}", "message_id": message.id,
         "channel": conversation.channel, "to_address": conversation.address,
         "payload": {**part.to_dict(), "request_id": request_id}}
        for part in parts
    ])


def enqueue_to_address(session: Session, channel: str, address: str, reply: Reply, *, lane: str) -> OutboxItem:
    """A message to an address that is no conversation of ours (a brand's seller, by email): an outbox row
    without a message row, sent and retried like any other."""
    return add_row(session, OutboxItem, kind="message", lane=lane, channel=channel, to_address=address,
                   payload={**reply.to_dict(), "request_id": logs.current_request_id()})


def enqueue_webhook(
    session: Session, url: str, body: str, headers: dict[str, str], *, lane: str | None = None
) -> OutboxItem:
    """An HTTP POST retried until the receiver answers 2xx (carrier callbacks, helpdesks)."""
    request_id = logs.current_request_id()
    if request_id:  # the receiver can match the callback with our logs
        headers = {**headers, "X-Request-ID": request_id}
    return add_row(session, OutboxItem, kind="webhook", lane=lane or f"webhook:{url}", to_address=url,
                   payload={"body": body, "headers": headers, "request_id": request_id})


UNFINISHED = ("pending", "sending", "unknown")  # a lane's head is its oldest unfinished row
CLAIMABLE = ("pending", "unknown")
WEBHOOK_TIMEOUT = 10.0


@dataclass
class SweepResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unknown: int = 0  # the outcome of a send is unknown: the provider is asked before anything is resent
    lost: int = 0  # the lease was lost before the result could be recorded; the row's next holder settles it

    @property
    def total(self) -> int:
        return self.sent + self.retried + self.failed + self.unknown + self.lost

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


@dataclass(frozen=True, slots=True)
class _Claimed:
    """What a sending thread needs of a claimed row, read once under its lease."""

    id: int
    token: str
    kind: str
    channel: str | None
    to: str
    payload: dict[str, Any]
    attempts: int
    provider_id: str | None
    in_flight_since: datetime | None
    unknown_since: datetime | None
    message_id: int | None


# What a claim reads of each row (in _Claimed's order after the token).
CLAIMED_COLUMNS = (OUTBOX.c.id, OUTBOX.c.kind, OUTBOX.c.channel, OUTBOX.c.to_address, OUTBOX.c.payload,
                   OUTBOX.c.attempts, OUTBOX.c.provider_id, OUTBOX.c.in_flight_since, OUTBOX.c.unknown_since,
                   OUTBOX.c.message_id)


# The claim, built once. The head of each lane is its oldest unfinished row; only a head may be sent, so a lane's
# rows go out in order. The heads come from one window over the unfinished rows (linear, one index range): a join
# of the due rows with a GROUP BY of the heads was planned by PostgreSQL as a nested loop whenever the outbox had
# just grown faster than its statistics (1,000 rows inserted in a burst: 1.7 s per claim, quadratic).
_UNFINISHED = (
    select(OUTBOX.c.id, OUTBOX.c.status, OUTBOX.c.next_attempt_at,
           func.min(OUTBOX.c.id).over(partition_by=OUTBOX.c.lane).label("head_id"))
    .where(OUTBOX.c.status.in_(UNFINISHED))
    .subquery()
)
_DUE_HEADS = (
    select(_UNFINISHED.c.id)
    .where(_UNFINISHED.c.id == _UNFINISHED.c.head_id, _UNFINISHED.c.status.in_(CLAIMABLE),
           _UNFINISHED.c.next_attempt_at <= bindparam("now"))
    .order_by(_UNFINISHED.c.id)
    .limit(bindparam("limit"))
    .scalar_subquery()
)
CLAIM = (
    update(OUTBOX)
    .where(OUTBOX.c.id.in_(_DUE_HEADS), OUTBOX.c.status.in_(CLAIMABLE))
    .values(status="sending", lease_token=bindparam("token"), locked_until=bindparam("locked_until"))
    .returning(*CLAIMED_COLUMNS)
)


@dataclass(frozen=True, slots=True)
class _Sent:
    """A provider's id for a row, to be recorded (with others, in one transaction) by `_write_sent`."""

    row: _Claimed
    provider_id: str
    outcome: str  # sent | known | found
    detail: str | None
    started: datetime | None


class OutboxDispatcher:
    """Sends due outbox rows. `run_once()` is one sweep; `start()` sends continuously in a thread.

    Exactly once, as far as each provider allows (docs/reliability.md):
    - a claim gives each row a fresh `lease_token` and a short lease, renewed while its send is in
      progress; a compare-and-set on (status, token, no provider id yet) immediately before the provider
      call and another when recording the result make sure only the holder sends and records;
    - a bounded pool of threads sends, at most one row per lane at a time (order per conversation), so one
      slow call holds only its own conversation;
    - a send whose outcome is unknown (timeout or reset after the request was written) leaves the row
      `unknown`: it is sent again only after the provider's list says it was not accepted, and a status
      callback naming the row settles it at once;
    - a dead holder's rows return when their lease runs out: `pending` if no call had started, `unknown`
      if one had.
    """

    def __init__(
        self,
        database: Database,
        channels: dict[str, Channel],
        config: dict[str, Any],
        *,
        hooks: list[Callable[[], int]] | None = None,
        media: Any = None,
    ) -> None:
        self.db = database
        self.media = media  # bot.media.MediaService: downloads (kind "media"), signed links in replies
        self.channels = channels
        self.config = config
        self.settings = config.get("outbox", {})
        self.batch_size = int(self.settings.get("batch_size", 50))
        self.max_attempts = int(self.settings.get("max_attempts", 8))
        self.backoff_base = float(self.settings.get("backoff_base", 2.0))
        self.backoff_max = float(self.settings.get("backoff_max", 600))
        self.backoff_jitter = min(1.0, max(0.0, float(self.settings.get("backoff_jitter", 0.5))))
        self.lease = timedelta(seconds=float(self.settings.get("lease_seconds", 10)))
        self.concurrency = max(1, int(self.settings.get("concurrency", 8)))
        self.reconcile_after = float(self.settings.get("reconcile_after", 5))
        self.clock_skew = timedelta(seconds=float(self.settings.get("clock_skew", 60)))
        self.poll_interval = float(self.settings.get("poll_interval", 0.5))
        self.hooks = hooks if hooks is not None else []  # periodic work, e.g. scheduled jobs
        self.http = requests.Session()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._held: dict[str, set[int]] = {}  # lease token -> rows being processed under it
        self._held_lock = threading.Lock()
        self._heartbeat: threading.Thread | None = None
        self.pacer = SendPacer(database, config, self._stop)  # outbox.pacing: messages/s per sender
        self._recorder = GroupCommit(self._write_sent)  # sends recorded together (bot/delivery/recording.py)

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
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:  # rows claimed but not started keep their lease and come back when it ends
            pool.shutdown(wait=True, cancel_futures=True)
        for channel in self.channels.values():
            channel.close()
        self.http.close()

    def wake(self) -> None:
        """Called after a commit that added outbox rows: sweep now instead of at the next poll."""
        self._wake.set()

    def _loop(self) -> None:
        self._pump(forever=True)

    # --- sweeps ------------------------------------------------------------------------------
    def run_once(self, *, housekeeping: bool = True) -> SweepResult:
        """One sweep: claim a batch of lane heads and send them concurrently (their leases renewed) until
        every one is settled. `housekeeping` also runs the hooks (due jobs) and returns expired leases."""
        result = SweepResult()
        if housekeeping:
            self._housekeeping()
        # The rows the pool's threads start at once are marked in flight with the claim; the others each just
        # before their call (the mark is the compare-and-set immediately before the provider call).
        token, claimed = self._claim_rows(self.batch_size, start=self.concurrency)
        futures = [self._submit(token, row.id, (row, started)) for row, started in claimed]
        wait(futures)
        for future in futures:
            result.add(future.result())
        return result

    def drain(self, timeout: float = 60.0) -> SweepResult:
        """Send until nothing is due nor in flight (tests, CLI chat, Celery). Rows waiting for a retry or
        for their provider to be asked are left. `timeout` only bounds a queue that keeps refilling: the
        rows of one conversation go one after another, and on a loaded machine three of them took over the
        10 s this used to be (a test then saw the rest sent by its next drain)."""
        return self._pump(forever=False, deadline=time.monotonic() + timeout)

    def _pump(self, *, forever: bool, deadline: float | None = None) -> SweepResult:
        """Keep up to `concurrency` sends in flight, claiming lane heads as threads free up; housekeeping
        once per poll interval (the leases are renewed by `_renew_loop`)."""
        result = SweepResult()
        in_flight: set[Future[str]] = set()
        last_housekeeping = -1e9
        while not self._stop.is_set():
            self._wake.clear()
            for future in [f for f in in_flight if f.done()]:
                in_flight.discard(future)
                result.add(future.result())
            claimed = 0
            try:
                if time.monotonic() - last_housekeeping >= self.poll_interval:
                    last_housekeeping = time.monotonic()
                    self._housekeeping()
                free = self.concurrency - len(in_flight)
                if free > 0:
                    token, rows = self._claim_rows(free, start=free)  # each gets a free thread at once
                    for row, started in rows:
                        future = self._submit(token, row.id, (row, started))
                        future.add_done_callback(lambda _f: self._wake.set())
                        in_flight.add(future)
                    claimed = len(rows)
            except Exception:
                if not forever:
                    raise
                logger.exception("outbox sweep failed; retrying")
            if not forever and not in_flight and not claimed:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            if claimed == 0 or len(in_flight) >= self.concurrency:
                self._wake.wait(self.poll_interval)
        for future in in_flight:  # a deadline or stop: wait for the sends already started
            try:
                result.add(future.result())
            except CancelledError:  # never started (the pool was shut down): its lease runs out
                result.add("lost")
        return result

    def _housekeeping(self) -> None:
        for hook in self.hooks:  # each opens the transactions it needs (most rounds: a read, nothing to do)
            hook()
        self._recover_expired()

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="outbox-send")
            return self._pool

    def _submit(self, token: str, item_id: int,
                claimed: tuple[_Claimed, datetime | None] | None = None) -> Future[str]:
        with self._held_lock:
            self._held.setdefault(token, set()).add(item_id)
            if self._heartbeat is None or not self._heartbeat.is_alive():
                self._heartbeat = threading.Thread(target=self._renew_loop, name="outbox-leases", daemon=True)
                self._heartbeat.start()
        return self._executor().submit(self._process_held, token, item_id, claimed)

    def _renew_loop(self) -> None:
        """Renew the leases of the rows being worked on, on a thread of its own, so that neither a slow
        hook (a scheduled job) nor a sweep waiting for the database delays it."""
        while not self._stop.wait(self._renew_every):
            with self._held_lock:
                if not self._held:
                    self._heartbeat = None
                    return
            self._renew_leases()

    def _process_held(self, token: str, item_id: int, claimed: tuple[_Claimed, datetime | None] | None) -> str:
        try:
            return self._process(token, item_id, claimed)
        except Exception:
            logger.exception("outbox item %s: processing failed; it returns when its lease ends", item_id)
            return "lost"
        finally:
            with self._held_lock:
                rows = self._held.get(token)
                if rows is not None:
                    rows.discard(item_id)
                    if not rows:
                        del self._held[token]

    # --- leases ------------------------------------------------------------------------------
    @property
    def _renew_every(self) -> float:
        return max(0.05, self.lease.total_seconds() / 3)

    def _claim(self, limit: int) -> tuple[str, list[int]]:
        """Mark up to `limit` due lane heads as ours in one statement, under a fresh lease token."""
        token, rows = self._claim_rows(limit, start=0)
        return token, [row.id for row, _ in rows]

    def _claim_rows(self, limit: int, *, start: int) -> tuple[str, list[tuple[_Claimed, datetime | None]]]:
        """Mark up to `limit` due lane heads as ours in one statement, under a fresh lease token, and read them
        (RETURNING); in the same transaction, mark the first `start` of them that are plainly to be sent in
        flight, in one statement (`_mark_in_flight_many`): they are handed to threads that call their providers
        at once. Returns the rows in id order, each with the start of its call if it was marked.

        The status test is re-checked on each row as it is updated, so two sweepers racing for the same
        rows split them: on PostgreSQL the loser waits for the winner's commit and then skips rows that
        are no longer claimable; SQLite's BEGIN IMMEDIATE serialises the sweeps.
        """
        token = uuid.uuid4().hex
        now = utcnow()
        with self.db.session() as session:
            rows = sorted((_Claimed(r.id, token, r.kind, r.channel, r.to_address or "", dict(r.payload), r.attempts,
                                    r.provider_id, r.in_flight_since, r.unknown_since, r.message_id)
                           for r in session.execute(CLAIM, {"now": now, "limit": limit, "token": token,
                                                            "locked_until": now + self.lease})),
                          key=lambda row: row.id)
            plain = [row.id for row in rows if self._plainly_to_send(row)][:start]
            started = self._mark_in_flight_many(session, token, plain)
        return token, [(row, started.get(row.id)) for row in rows]

    def _plainly_to_send(self, row: _Claimed) -> bool:
        """Not known to be accepted already, no send of unknown outcome to reconcile, attempts left."""
        return not row.provider_id and row.unknown_since is None and row.attempts < self.max_attempts

    def _renew_leases(self) -> None:
        """Extend the leases of every row this dispatcher is still working on. A lease that has run out
        is renewed too as long as nobody took the row back (its token is still ours)."""
        with self._held_lock:
            tokens = [token for token, rows in self._held.items() if rows]
        if not tokens:
            return
        try:
            with self.db.session() as session:
                session.execute(
                    update(OutboxItem)
                    .where(OutboxItem.status == "sending", OutboxItem.lease_token.in_(tokens))
                    .values(locked_until=utcnow() + self.lease)
                )
        except Exception:
            logger.exception("outbox: renewing leases failed")

    def _recover_expired(self) -> None:
        """Rows whose holder died: back to the queue, or to `unknown` if a provider call had started."""
        now = utcnow()
        with self._held_lock:  # never our own rows, even if a renewal came late: we are alive
            ours = [token for token, rows in self._held.items() if rows]
        expired = (OutboxItem.status == "sending", OutboxItem.locked_until < now,
                   or_(OutboxItem.lease_token.is_(None), OutboxItem.lease_token.not_in(ours)))
        # Twice a second in every process: a read first, so that the usual answer (none) takes no write lock.
        with self.db.read_session() as session:
            if session.scalar(select(OutboxItem.id).where(*expired).limit(1)) is None:
                return
        with self.db.session() as session:
            untouched = rows_changed(session.execute(
                update(OutboxItem)
                .where(*expired, OutboxItem.in_flight_since.is_(None))
                .values(status=case((OutboxItem.unknown_since.is_not(None), "unknown"), else_="pending"),
                        locked_until=None, lease_token=None)
            ))
            interrupted = rows_changed(session.execute(
                update(OutboxItem)
                .where(*expired, OutboxItem.in_flight_since.is_not(None))
                .values(status="unknown", unknown_since=func.coalesce(OutboxItem.unknown_since,
                                                                      OutboxItem.in_flight_since),
                        next_attempt_at=now, locked_until=None, lease_token=None)
            ))
        if untouched or interrupted:
            logger.warning("outbox: %d expired lease(s) taken back, %d of them with a send of unknown outcome",
                           untouched + interrupted, interrupted)

    # --- one row -----------------------------------------------------------------------------
    def _process(self, token: str, item_id: int, claimed: tuple[_Claimed, datetime | None] | None = None) -> str:
        # Read and marked in flight with the claim, or else read (and marked, if plainly to be sent) now.
        row, started = claimed if claimed is not None and claimed[1] is not None else self._open(token, item_id)
        if row is None:
            return "lost"
        if started is not None:
            return self._call_and_record(row, started)
        if row.provider_id:  # a status callback (or a late answer) said the provider accepted it
            return self._settle_sent(row, row.provider_id, "known")
        if row.unknown_since is not None:
            verdict = self._reconcile(row)
            if verdict != "absent":
                return verdict
        return self._send(row)

    def _open(self, token: str, item_id: int) -> tuple[_Claimed | None, datetime | None]:
        """Read the claimed row; when it is plainly to be sent, also take the compare-and-set before the
        call in the same transaction (one write transaction per send, not two)."""
        with self.db.session() as session:
            item = session.get(OutboxItem, item_id)
            if item is None or item.status != "sending" or item.lease_token != token:
                return None, None
            row = _Claimed(item.id, token, item.kind, item.channel, item.to_address or "", dict(item.payload),
                           item.attempts, item.provider_id, item.in_flight_since, item.unknown_since, item.message_id)
            if not self._plainly_to_send(row):
                return row, None
            started = self._mark_in_flight(session, row)
        return row, started  # not started: `_send` tries once more and sees why

    def _mark_in_flight(self, session: Session, row: _Claimed) -> datetime | None:
        """The compare-and-set immediately before the provider call: still ours, and not known to be
        accepted already (a status callback may have recorded a provider id meanwhile)."""
        return self._mark_in_flight_many(session, row.token, [row.id]).get(row.id)

    def _mark_in_flight_many(self, session: Session, token: str, ids: list[int]) -> dict[int, datetime]:
        """`_mark_in_flight` for several rows of one claim in one statement; returns the rows it held."""
        if not ids:
            return {}
        started = utcnow()
        held = session.scalars(
            update(OUTBOX)
            .where(OUTBOX.c.id.in_(ids), OUTBOX.c.status == "sending", OUTBOX.c.lease_token == token,
                   OUTBOX.c.provider_id.is_(None))
            .values(in_flight_since=started, attempts=OUTBOX.c.attempts + 1, locked_until=started + self.lease)
            .returning(OUTBOX.c.id)
        ).all()
        return dict.fromkeys(held, started)

    def _ambiguity_window(self, row: _Claimed) -> timedelta:
        """How long after a call started its outcome may still change: our client's timeout, then some
        time for the provider to list what it accepted."""
        if row.kind == "webhook":
            timeout = WEBHOOK_TIMEOUT
        else:
            channel = self.channels.get(row.channel or "")
            timeout = channel.send_timeout if channel is not None else 0.0
        return timedelta(seconds=timeout + self.reconcile_after)

    def _reconcile(self, row: _Claimed) -> str:
        """A former send of this row has an unknown outcome: ask the provider before sending again.
        Returns "absent" when sending again is safe (or, without a lookup, the only way to deliver)."""
        now = utcnow()
        if row.in_flight_since is not None and now < row.in_flight_since + self._ambiguity_window(row):
            return self._release_unknown(row, row.in_flight_since + self._ambiguity_window(row))
        channel = self.channels.get(row.channel or "") if row.kind == "message" else None
        if channel is None or not channel.supports_lookup:
            self._log(row, "unverified_resend", detail="the provider cannot be asked; sent again (at least once)")
            return "absent"
        assert row.unknown_since is not None
        try:
            candidates = channel.find_sent(Reply.from_dict(row.payload), row.to, row.unknown_since - self.clock_skew)
        except SendError as exc:
            return self._release_unknown(row, now + timedelta(seconds=self._backoff(row.attempts)),
                                         outcome="lookup_error", detail=exc.reason)
        with self.db.session() as session:  # messages already recorded for other rows are not this one's
            taken = set(session.scalars(select(OutboxItem.provider_id).where(
                OutboxItem.provider_id.in_(candidates), OutboxItem.id != row.id))) if candidates else set()
        mine = [sid for sid in candidates if sid not in taken]
        if mine:
            detail = None
            if len(mine) > 1:
                detail = f"{len(mine)} accepted messages match this row: {', '.join(mine)}"
                logger.error("outbox item %s: the provider accepted it %d times", row.id, len(mine))
            return self._settle_sent(row, mine[0], "found", detail=detail)
        self._log(row, "absent", detail=f"{len(candidates)} listed message(s) since {row.unknown_since:%H:%M:%S}, "
                                        "none unclaimed")
        return "absent"

    def _send(self, row: _Claimed) -> str:
        if row.attempts >= self.max_attempts:
            return self._record_failure(row, row.attempts, None,
                                        SendError(f"gave up after {row.attempts} attempts", permanent=True))
        with self.db.session() as session:
            started = self._mark_in_flight(session, row)
        if started is None:
            return self._after_lost_claim(row)
        return self._call_and_record(row, started)

    def _call_and_record(self, row: _Claimed, started: datetime) -> str:
        with logs.request_id(row.payload.get("request_id")):  # the request that queued the row, in every line
            return self._call_and_record_row(row, started)

    def _call_and_record_row(self, row: _Claimed, started: datetime) -> str:
        attempts = row.attempts + 1
        if row.kind == "message":  # the sender's next slot (outbox.pacing), waited for just before the call
            self.pacer.wait_turn(row.channel)
        try:
            provider_id = self._call(row)
        except SendError as exc:
            return self._record_failure(row, attempts, started, exc)
        except Exception as exc:  # a bug in a sender must not stall the lane forever
            logger.exception("outbox item %s: unexpected send error", row.id)
            return self._record_failure(row, attempts, started, SendError(exc.__class__.__name__, ambiguous=True))
        return self._settle_sent(row, provider_id, "sent", started=started)

    def _call(self, row: _Claimed) -> str:
        if row.kind == "webhook":
            return self._post_webhook(row.to, row.payload)
        if row.kind == "media":  # a file someone sent, downloaded after the webhook's commit
            if self.media is None:
                raise SendError("no media service to download with")
            return self.media.fetch(int(row.payload["media_id"]))
        channel = self.channels.get(row.channel or "")
        if channel is None:
            raise SendError(f"no channel {row.channel!r}", permanent=True)
        reply = Reply.from_dict(row.payload)
        if reply.media and self.media is not None:  # media:<id> becomes a signed link (waits for the download,
            reply = self.media.outgoing(reply, final=row.attempts + 1 >= self.max_attempts)  # not on the last try)
        return channel.send(reply, row.to, ref=str(row.id))

    def _after_lost_claim(self, row: _Claimed) -> str:
        with self.db.session() as session:
            item = session.get(OutboxItem, row.id)
            known = (item.provider_id if item is not None and item.status == "sending"
                     and item.lease_token == row.token else None)
        if known:
            return self._settle_sent(row, known, "known")
        logger.warning("outbox item %s: lease lost before sending; left to its new holder", row.id)
        return "lost"

    # --- recording ---------------------------------------------------------------------------
    def _settle_sent(self, row: _Claimed, provider_id: str, outcome: str, *, detail: str | None = None,
                     started: datetime | None = None) -> str:
        """Record the provider's id for the row: written together with the other threads' results waiting at the
        same moment (`_write_sent`, one transaction)."""
        settled, outcome = self._recorder.submit(_Sent(row, provider_id, outcome, detail, started))
        if not settled:
            logger.warning("outbox item %s: accepted as %s after its lease was lost; recorded for its holder",
                           row.id, provider_id)
            return "lost"
        logger.info("outbox item %s %s on %s", row.id, outcome, row.channel or "webhook")
        metrics.SENDS.labels(row.channel or "webhook", "sent", "").inc()
        return "sent"

    def _write_sent(self, batch: list[_Sent]) -> list[tuple[bool, str]]:
        """Record provider ids in one transaction: one compare-and-set UPDATE for all the rows, each with its own
        lease token and provider id; the attempts logged in one INSERT; the messages marked sent in one UPDATE.
        Returns, per item, whether its row was settled and the outcome logged."""
        if len({sent.row.id for sent in batch}) < len(batch):  # one row under two claims (taken back): apart
            return [result for sent in batch for result in self._write_sent([sent])]
        now = utcnow()
        with self.db.session() as session:
            settled = set(session.scalars(
                update(OUTBOX)
                .where(OUTBOX.c.id.in_([sent.row.id for sent in batch]), OUTBOX.c.status == "sending",
                       OUTBOX.c.lease_token == by_id(OUTBOX.c.id, {sent.row.id: sent.row.token for sent in batch}))
                .values(provider_id=by_id(OUTBOX.c.id, {sent.row.id: sent.provider_id for sent in batch}),
                        **_sent_values(now))
                .returning(OUTBOX.c.id)
            ).all())
            results = []
            for sent in batch:
                done, outcome = sent.row.id in settled, sent.outcome
                if not done and outcome == "sent":
                    done, outcome = self._settle_after_lease(session, sent, now), "sent_after_lease"
                results.append((done, outcome if done else "lease_lost"))
            session.execute(insert(ATTEMPTS), [
                {"outbox_id": sent.row.id, "outcome": outcome, "provider_id": sent.provider_id, "detail": sent.detail,
                 "started_at": sent.started} for sent, (_, outcome) in zip(batch, results, strict=True)])
            messages_sent(session, {sent.row.message_id: sent.provider_id
                                    for sent, (done, _) in zip(batch, results, strict=True)
                                    if done and sent.row.message_id is not None})
        return results

    @staticmethod
    def _settle_after_lease(session: Session, sent: _Sent, now: datetime) -> bool:
        """The lease was lost during the call (the row is `unknown` now, or being looked up by its new holder):
        its outcome is known, so record it for whoever holds the row."""
        settled = rows_changed(session.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id == sent.row.id, OUTBOX.c.status.in_(CLAIMABLE), OUTBOX.c.provider_id.is_(None))
            .values(provider_id=sent.provider_id, **_sent_values(now))
        )) == 1
        if not settled:
            session.execute(update(OUTBOX).where(OUTBOX.c.id == sent.row.id, OUTBOX.c.provider_id.is_(None))
                            .values(provider_id=sent.provider_id))
        return settled

    def _record_failure(self, row: _Claimed, attempts: int, started: datetime | None, exc: SendError) -> str:
        last_error = f"{exc.code or ''} {exc.reason}".strip()
        common = {"locked_until": None, "lease_token": None, "last_error": last_error}
        if exc.ambiguous:
            outcome, result = "unknown", "unknown"
            values = {**common, "status": "unknown", "unknown_since": row.unknown_since or started,
                      "next_attempt_at": (started or utcnow()) + self._ambiguity_window(row)}
        elif exc.permanent or attempts >= self.max_attempts:
            outcome, result = "error", "failed"
            values = {**common, "status": "failed", "in_flight_since": None}
        else:
            outcome, result = "error", "retried"
            delay = self._backoff(attempts, exc.retry_after)
            values = {**common, "status": "pending", "in_flight_since": None,
                      "next_attempt_at": utcnow() + timedelta(seconds=delay)}
        with self.db.session() as session:
            recorded = rows_changed(session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == row.id, OutboxItem.status == "sending", OutboxItem.lease_token == row.token)
                .values(**values)
            ))
            session.add(OutboxAttempt(outbox_id=row.id, outcome=outcome if recorded else "lease_lost",
                                      detail=last_error, started_at=started))
            if recorded:
                _message_failed(session, row.id, exc, final=result == "failed")
        if not recorded:
            logger.warning("outbox item %s: lease lost before its failure could be recorded", row.id)
            return "lost"
        metrics.SENDS.labels(row.channel or "webhook", result, str(exc.code or "")).inc()
        logger.warning("outbox item %s %s after attempt %s: %s", row.id,
                       {"failed": "failed", "retried": "will retry", "unknown": "has an unknown outcome"}[result],
                       attempts, last_error)
        return result

    def _release_unknown(self, row: _Claimed, until: datetime, *, outcome: str | None = None,
                         detail: str | None = None) -> str:
        """Give the row back, still `unknown`, to be looked at again at `until`."""
        with self.db.session() as session:
            session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == row.id, OutboxItem.status == "sending", OutboxItem.lease_token == row.token)
                .values(status="unknown", next_attempt_at=until, locked_until=None, lease_token=None)
            )
            if outcome:
                session.add(OutboxAttempt(outbox_id=row.id, outcome=outcome, detail=detail))
        return "unknown"

    def _log(self, row: _Claimed, outcome: str, *, detail: str | None = None) -> None:
        with self.db.session() as session:
            session.add(OutboxAttempt(outbox_id=row.id, outcome=outcome, detail=detail))

    def _backoff(self, attempts: int, retry_after: float | None = None) -> float:
        """Exponential backoff with jitter (up to `backoff_jitter` of it taken off at random, so rows that
        failed together do not retry together); a provider's Retry-After is a floor."""
        delay = min(self.backoff_max, self.backoff_base * 2 ** max(0, attempts - 1))
        delay *= 1 - self.backoff_jitter * random.random()
        if retry_after is not None:
            delay = max(delay, float(retry_after))
        return delay

    def _post_webhook(self, url: str, payload: dict[str, Any]) -> str:
        # Signed now, at send time (Standard Webhooks).
        from bot.delivery import webhook_signing as endpoints

        try:
            headers = endpoints.signed_headers(self.db, self.config, payload)
        except endpoints.UnsignedDelivery as exc:
            raise SendError(str(exc), permanent=True) from None
        try:
            response = self.http.post(url, data=payload["body"].encode(), headers=headers, timeout=WEBHOOK_TIMEOUT)
        except requests.RequestException as exc:
            endpoints.record_delivery(self.db, self.config, payload, f"unreachable: {exc.__class__.__name__}")
            raise SendError(f"callback unreachable: {exc.__class__.__name__}") from None
        endpoints.record_delivery(self.db, self.config, payload,
                                  None if 200 <= response.status_code < 300 else f"answered {response.status_code}")
        if 200 <= response.status_code < 300:
            return f"http-{response.status_code}"
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise SendError(f"callback answered {response.status_code}", code=str(response.status_code),
                        retry_after=retry_after)


def _sent_values(now: datetime) -> dict[str, Any]:
    return {"status": "sent", "sent_at": now, "locked_until": None, "lease_token": None, "in_flight_since": None,
            "unknown_since": None, "last_error": None}


def _message_failed(session: Session, item_id: int, exc: SendError, *, final: bool) -> None:
    item = session.get(OutboxItem, item_id)
    message = session.get(Message, item.message_id) if item is not None and item.message_id else None
    if message is None:
        return
    message.status = "failed" if final else "queued"
    message.error_code, message.error_message = exc.code, exc.reason
    for listener in registry_of(session).send_failure_listeners:  # in the registry's order
        listener(session, message, exc.code, exc.reason, final)


def record_status_callback(session: Session, item_id: int, provider_id: str, status: str) -> None:
    """A Twilio status callback whose URL names outbox row `item_id`: the provider accepted a message for
    it, so the row is sent, whatever our side knew (a lost answer, an unknown outcome, a lapsed lease).
    A second, different message for the same row is recorded as such: it was a duplicate."""
    item = session.get(OutboxItem, item_id)
    if item is None or item.kind != "message" or item.channel not in ("sms", "whatsapp") \
            or item.provider_id == provider_id:
        return
    if item.provider_id is not None:
        logger.error("outbox item %s: a second accepted message reported by a status callback", item_id)
        session.add(OutboxAttempt(outbox_id=item_id, outcome="callback", provider_id=provider_id,
                                  detail=f"duplicate: {status}; the row was sent as {item.provider_id}"))
        return
    settled = rows_changed(session.execute(
        update(OutboxItem)
        .where(OutboxItem.id == item_id, OutboxItem.provider_id.is_(None),
               OutboxItem.status.in_(("pending", "unknown", "failed")))
        .values(status="sent", provider_id=provider_id, sent_at=utcnow(), locked_until=None, lease_token=None,
                in_flight_since=None, unknown_since=None, last_error=None)
    ))
    if not settled:  # being sent or looked up right now: its holder sees the provider id and stops there
        session.execute(update(OutboxItem).where(OutboxItem.id == item_id, OutboxItem.provider_id.is_(None))
                        .values(provider_id=provider_id))
    session.add(OutboxAttempt(outbox_id=item_id, outcome="callback", provider_id=provider_id,
                              detail=f"status callback: {status}"))
    if settled:
        if item.message_id is not None:
            messages_sent(session, {item.message_id: provider_id})
    else:
        message = session.get(Message, item.message_id) if item.message_id else None
        if message is not None and message.provider_id is None:
            message.provider_id = provider_id


@dataclass(slots=True)
class Requeued:
    requeued: list[int]
    skipped_opted_out: list[int]
    not_failed: list[int]


def troubled_rows(session: Session, limit: int = 100, statuses: tuple[str, ...] = ("failed",)) -> list[OutboxItem]:
    """Rows an operator should look at, newest first: failed for good, and (when asked) sends whose
    outcome is still being reconciled with the provider (`unknown`)."""
    return list(session.scalars(select(OutboxItem).where(OutboxItem.status.in_(statuses))
                                .order_by(OutboxItem.id.desc()).limit(limit)))


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
            item.lease_token = item.in_flight_since = item.unknown_since = None
            if message is not None:
                message.status = "queued"
            result.requeued.append(item.id)
    if result.requeued:
        logger.info("outbox: %d failed row(s) requeued by an operator", len(result.requeued))
    return result
