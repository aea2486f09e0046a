"""Timed work persisted in the database, run by the dispatcher, once, across processes.

`schedule()` adds a job inside the caller's transaction; `run_due_jobs()` claims due jobs with
a compare-and-set update (so several web processes never run one job twice) and calls the
function the registry lists for its kind (`jobs` in app.py build_registry).

A job's effects and its "done" mark commit in one transaction, and "done" is a compare-and-set
on the claim (status running, same attempt number): a job whose lease ran out and was claimed
again elsewhere rolls its own effects back, so every job takes effect once even across restarts
and several web processes. `job_now()` is the time the run is for (the sweep's `now`).
"""

from __future__ import annotations

import contextvars
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.core.registry import registry_of
from db.models import ScheduledJob, utcnow
from db.session import rows_changed

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 5
_run_time: contextvars.ContextVar[datetime | None] = contextvars.ContextVar("job_run_time", default=None)


class LostClaim(Exception):
    """The job's lease ran out and another worker claimed it: this run's effects are rolled back."""


def job_now() -> datetime:
    """Inside a job: the time the sweep runs it for (tests and catch-up runs pass a later `now`)."""
    return _run_time.get() or utcnow()


def schedule(
    session: Session,
    kind: str,
    run_at: datetime,
    payload: dict[str, Any] | None = None,
    *,
    dedupe_key: str | None = None,
) -> ScheduledJob | None:
    """Add a job; with a `dedupe_key` already scheduled, nothing is added and None is returned."""
    if dedupe_key is not None:
        existing = session.scalar(select(ScheduledJob).where(ScheduledJob.dedupe_key == dedupe_key))
        if existing is not None:
            return None
    new = ScheduledJob(kind=kind, run_at=run_at, payload=payload or {}, dedupe_key=dedupe_key)
    try:
        with session.begin_nested():
            session.add(new)
    except IntegrityError:
        return None
    return new


def cancel(session: Session, dedupe_key: str) -> bool:
    return bool(rows_changed(session.execute(
        update(ScheduledJob)
        .where(ScheduledJob.dedupe_key == dedupe_key, ScheduledJob.status == "pending")
        .values(status="cancelled", finished_at=utcnow())
    )))


def run_due_jobs(database: Any, limit: int = 50, now: datetime | None = None) -> int:
    """Run due jobs, each in its own transaction; returns how many ran."""
    now = now or utcnow()
    with database.read_session() as session:  # the dispatcher asks twice a second: usually nothing is due
        if session.scalar(select(ScheduledJob.id).where(or_(
                and_(ScheduledJob.status == "running", ScheduledJob.locked_until < now),
                and_(ScheduledJob.status == "pending", ScheduledJob.run_at <= now))).limit(1)) is None:
            return 0
    with database.session() as session:
        session.execute(
            update(ScheduledJob)
            .where(ScheduledJob.status == "running", ScheduledJob.locked_until < now)
            .values(status="pending")
        )
        due = session.scalars(
            select(ScheduledJob.id)
            .where(ScheduledJob.status == "pending", ScheduledJob.run_at <= now)
            .order_by(ScheduledJob.run_at, ScheduledJob.id)
            .limit(limit)
        ).all()
    ran = 0
    for job_id in due:
        with database.session() as session:
            won = rows_changed(session.execute(
                update(ScheduledJob)
                .where(ScheduledJob.id == job_id, ScheduledJob.status == "pending")
                .values(status="running", locked_until=now + LEASE, attempts=ScheduledJob.attempts + 1)
            ))
            attempt = session.scalar(select(ScheduledJob.attempts).where(ScheduledJob.id == job_id)) if won else 0
        if not won:
            continue
        ran += 1
        token = _run_time.set(now)
        try:
            _run_one(database, job_id, attempt)
        finally:
            _run_time.reset(token)
    return ran


def _run_one(database: Any, job_id: int, attempt: int) -> None:
    claim = (ScheduledJob.id == job_id, ScheduledJob.status == "running", ScheduledJob.attempts == attempt)
    try:
        with database.session() as session:
            item = session.get(ScheduledJob, job_id)
            function = registry_of(session).jobs.get(item.kind)
            if function is None:
                raise LookupError(f"no job function for kind {item.kind!r}")
            function(session, dict(item.payload))
            session.flush()
            done = rows_changed(session.execute(update(ScheduledJob).where(*claim).values(
                status="done", finished_at=utcnow(), locked_until=None)))
            if not done:
                raise LostClaim(f"scheduled job {job_id} was claimed again elsewhere")
    except LostClaim:
        logger.warning("scheduled job %s: lease lost, this run rolled back", job_id)
    except Exception as exc:
        logger.exception("scheduled job %s failed", job_id)
        with database.session() as session:
            item = session.get(ScheduledJob, job_id)
            if item.status != "running" or item.attempts != attempt:
                return
            item.last_error = f"{exc.__class__.__name__}: {exc}"[:500]
            item.locked_until = None
            if item.attempts >= MAX_ATTEMPTS:
                item.status, item.finished_at = "failed", utcnow()
            else:
                item.status, item.run_at = "pending", utcnow() + timedelta(seconds=30 * item.attempts)
