"""The scheduler: due jobs run once across racing dispatchers, survive restarts, roll back a lost claim."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot.delivery.outbox import OutboxDispatcher
from bot.delivery.scheduler import MAX_ATTEMPTS, run_due_jobs, schedule
from db.models import ScheduledJob, utcnow

RUNS: list[int] = []
RUNS_LOCK = threading.Lock()


def record_run(session, payload):
    with RUNS_LOCK:
        RUNS.append(payload["n"])


def always_fails(session, payload):
    raise RuntimeError("the remote end is down")


def overtaken_while_running(session, payload):
    """Adds a follow-up job, then its claim changes under it (as when a lease runs out and another
    worker claims the job: same row, next attempt number)."""
    schedule(session, "test.record", utcnow(), {"n": -1}, dedupe_key="effect-of-overtaken")
    session.execute(update(ScheduledJob).where(ScheduledJob.kind == "test.slow_and_overtaken")
                    .values(attempts=ScheduledJob.attempts + 1))


TEST_JOBS = {"test.record": record_run, "test.fails": always_fails,
             "test.slow_and_overtaken": overtaken_while_running}


@pytest.fixture(autouse=True)
def registered_test_jobs(srv):
    """This module's job kinds, in the app's registry beside the product's."""
    srv.registry.jobs.update(TEST_JOBS)


def add_jobs(srv, count: int, kind: str = "test.record", *, minutes: float = 0) -> None:
    with srv.db.session() as session:
        for n in range(count):
            schedule(session, kind, utcnow() + timedelta(minutes=minutes), {"n": n})


def statuses(srv) -> list[str]:
    with srv.db.session() as session:
        return list(session.scalars(select(ScheduledJob.status).order_by(ScheduledJob.id)))


def test_racing_dispatchers_run_each_due_job_once(app, srv, app_config):
    """Two dispatchers (as in two web processes) sweep the same 120 due jobs at the same moment."""
    from app import dispatcher_hooks

    RUNS.clear()
    add_jobs(srv, 120)
    dispatchers = [OutboxDispatcher(srv.db, {}, app_config, hooks=dispatcher_hooks(app)) for _ in range(2)]
    barrier = threading.Barrier(len(dispatchers))
    errors: list[BaseException] = []

    def sweep(dispatcher: OutboxDispatcher) -> None:
        try:
            barrier.wait()
            for _ in range(4):  # each sweep runs up to 50 due jobs
                dispatcher.run_once()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=sweep, args=(d,)) for d in dispatchers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for dispatcher in dispatchers:
        dispatcher.http.close()
    assert errors == []
    assert sorted(RUNS) == list(range(120))  # every job once, none twice
    assert set(statuses(srv)) == {"done"}


def test_a_job_is_not_run_before_its_time(app, srv):
    RUNS.clear()
    add_jobs(srv, 1, minutes=10)
    with app.app_context():
        assert run_due_jobs(srv.db) == 0
        assert run_due_jobs(srv.db, now=utcnow() + timedelta(minutes=11)) == 1
    assert RUNS == [0]


def test_a_job_claimed_by_a_crashed_worker_runs_after_its_lease(app, srv):
    RUNS.clear()
    add_jobs(srv, 1)
    with srv.db.session() as session:  # a worker claimed it, then died before finishing
        session.execute(update(ScheduledJob).values(status="running", attempts=1,
                                                    locked_until=utcnow() + timedelta(minutes=5)))
    with app.app_context():
        assert run_due_jobs(srv.db) == 0  # the lease still holds
        assert run_due_jobs(srv.db, now=utcnow() + timedelta(minutes=6)) == 1
    assert RUNS == [0] and statuses(srv) == ["done"]


def test_jobs_survive_a_restart(app_config, srv):
    from app import create_app

    RUNS.clear()
    add_jobs(srv, 3)
    srv.dispatcher.stop()
    srv.db.dispose()
    restarted = create_app(app_config)  # a new process: only the database remembers
    restarted.extensions["lastmile"].registry.jobs.update(TEST_JOBS)
    try:
        restarted.extensions["lastmile"].dispatcher.drain()
    finally:
        restarted.extensions["lastmile"].dispatcher.stop()
        restarted.extensions["lastmile"].db.dispose()
    assert sorted(RUNS) == [0, 1, 2]


def test_the_dispatcher_runs_due_jobs_as_part_of_its_sweep(srv):
    RUNS.clear()
    add_jobs(srv, 2)
    srv.dispatcher.drain()
    assert sorted(RUNS) == [0, 1]


def test_a_failing_job_is_retried_with_backoff_then_failed(app, srv):
    add_jobs(srv, 1, "test.fails")
    later = utcnow()
    with app.app_context():
        for _ in range(MAX_ATTEMPTS):
            later += timedelta(minutes=10)
            assert run_due_jobs(srv.db, now=later) == 1
    with srv.db.session() as session:
        found = session.scalar(select(ScheduledJob))
        assert found.status == "failed" and found.attempts == MAX_ATTEMPTS
        assert found.last_error == "RuntimeError: the remote end is down"


def test_a_run_that_lost_its_claim_rolls_its_effects_back(app, srv):
    add_jobs(srv, 1, "test.slow_and_overtaken")
    with app.app_context():
        run_due_jobs(srv.db)
    with srv.db.session() as session:
        assert session.scalar(select(ScheduledJob).where(ScheduledJob.dedupe_key == "effect-of-overtaken")) is None
        assert session.scalar(select(ScheduledJob.status)) == "running"  # retried when the lease runs out


def test_a_dedupe_key_schedules_once(srv):
    with srv.db.session() as session:
        assert schedule(session, "test.record", utcnow(), {"n": 1}, dedupe_key="once") is not None
        assert schedule(session, "test.record", utcnow(), {"n": 2}, dedupe_key="once") is None
    assert statuses(srv) == ["pending"]
