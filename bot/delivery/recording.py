"""Recording sends in batches (group commit): the sending threads of a dispatcher hand what they have to record
to one writer at a time, and the writer records everything waiting in one transaction. An idle dispatcher writes
each result at once (a batch of one); a busy one writes as many as finished while the last batch was written,
so transactions (and PostgreSQL's commit flushes, SQLite's write lock) are shared instead of paid per send.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Table, case, exists, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from db.models import Message

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

MESSAGES = cast(Table, Message.__table__)


class _Slot(Generic[T]):
    __slots__ = ("item", "done", "result", "error")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """`submit(item)` returns `write([..., item, ...])`'s result for `item`, written together with whatever other
    threads submitted meanwhile. If a batch fails, each of its items is written alone, so one bad item costs the
    others nothing; an item that fails alone raises in the thread that submitted it."""

    def __init__(self, write: Callable[[list[T]], list[R]]) -> None:
        self._write = write
        self._queue: list[_Slot[T]] = []
        self._queue_lock = threading.Lock()
        self._writer = threading.Lock()  # one batch at a time; the others queue up behind it meanwhile

    def submit(self, item: T) -> R:
        slot = _Slot(item)
        with self._queue_lock:
            self._queue.append(slot)
        with self._writer:
            if not slot.done:  # else an earlier writer took it with its batch, and its result is in the slot
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._write_batch(batch)
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[no-any-return]

    def _write_batch(self, batch: list[_Slot[T]]) -> None:
        try:
            try:
                for slot, result in zip(batch, self._write([slot.item for slot in batch]), strict=True):
                    slot.result = result
                return
            except Exception as exc:
                if len(batch) == 1:
                    batch[0].error = exc
                    return
                logger.warning("outbox: recording %d results together failed (%s); recording each alone",
                               len(batch), exc.__class__.__name__)
            for slot in batch:
                try:
                    slot.result = self._write([slot.item])[0]
                except Exception as exc:
                    slot.error = exc
        finally:
            for slot in batch:
                slot.done = True


def by_id(id_column: ColumnElement[int], values: dict[int, Any]) -> ColumnElement[Any]:
    """`CASE id WHEN 1 THEN a WHEN 2 THEN b END`: a value per row in one UPDATE."""
    return case(values, value=id_column)


def messages_sent(session: Session, provider_ids: dict[int, str]) -> None:
    """The message rows (id -> the provider id of their send) were sent: status `sent` unless a later status is
    known, and the provider id recorded, all in one statement. A provider id already stored on another message
    of the channel (UNIQUE(channel, provider_id)) must not undo the send: that message is kept without it."""
    if not provider_ids:
        return
    wanted = by_id(MESSAGES.c.id, provider_ids)
    other = MESSAGES.alias("other")
    clash = exists().where(other.c.channel == MESSAGES.c.channel, other.c.provider_id == wanted,
                           other.c.id != MESSAGES.c.id)
    recorded = session.execute(
        update(MESSAGES).where(MESSAGES.c.id.in_(list(provider_ids)))
        .values(status=case((MESSAGES.c.status.in_(("queued", "sending")), "sent"), else_=MESSAGES.c.status),
                provider_id=case((clash, MESSAGES.c.provider_id), else_=wanted))
        .returning(MESSAGES.c.id, MESSAGES.c.provider_id)
    ).all()
    for message_id, provider_id in recorded:
        if provider_id != provider_ids[message_id]:
            logger.error("message %s: provider id %s is already on another message; the message is kept without "
                         "it", message_id, provider_ids[message_id])
