"""The dispatcher's writes in batches: a claim marks the rows it hands to free threads in flight in one
statement, and sends are recorded together (one UPDATE with each row's own lease token and provider id, the
attempts in one INSERT, the messages in one UPDATE), with every row's compare-and-set kept. Real database, real
HTTP to the local fake Twilio."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from bot.delivery.outbox import OutboxDispatcher, _Sent
from bot.delivery.recording import GroupCommit
from db.models import Message, OutboxAttempt, OutboxItem, utcnow
from tests.outbox_helpers import queue


def lanes(srv, count):
    for n in range(count):
        queue(srv, [f"reply {n}"], address=f"+1555777{n:04d}")


def statements_like(srv, prefix):
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        if " ".join(statement.split()).startswith(prefix):
            seen.append(statement)

    event.listen(srv.db.engine, "before_cursor_execute", record)
    return seen


def test_a_claimed_batch_is_marked_in_flight_in_one_statement_and_each_row_keeps_its_own_provider_id(
        srv, providers, app_config):
    lanes(srv, 6)
    marks = statements_like(srv, "UPDATE outbox SET attempts=")
    dispatcher = OutboxDispatcher(srv.db, srv.channels, app_config)
    try:
        assert dispatcher.run_once(housekeeping=False).sent == 6
    finally:
        dispatcher.stop()
    assert len(marks) == 1  # six rows, one compare-and-set before their calls
    accepted = {message.outbox_id: message.sid for message in providers.accepted}
    with srv.db.session() as session:
        rows = session.scalars(select(OutboxItem).order_by(OutboxItem.id)).all()
        assert [(row.status, row.attempts, row.lease_token, row.in_flight_since) for row in rows] == \
            [("sent", 1, None, None)] * 6
        assert {row.id: row.provider_id for row in rows} == accepted  # the CASE gave each row its own id
        for row in rows:
            message = session.get(Message, row.message_id)
            assert (message.status, message.provider_id) == ("sent", row.provider_id)
        logged = session.execute(select(OutboxAttempt.outbox_id, OutboxAttempt.outcome, OutboxAttempt.provider_id)
                                 .where(OutboxAttempt.outcome == "sent")).all()
        assert sorted(logged) == sorted((row.id, "sent", row.provider_id) for row in rows)


def test_one_batch_records_each_row_under_its_own_lease(srv, providers, app_config):
    """Three results recorded together: one row still ours (sent), one taken back and `unknown` meanwhile
    (sent_after_lease: its outcome is known now), one claimed by another dispatcher since (lease_lost, the
    provider id left on the row for its new holder)."""
    lanes(srv, 3)
    ours = OutboxDispatcher(srv.db, srv.channels, app_config)
    other = OutboxDispatcher(srv.db, srv.channels, app_config)
    token, claimed = ours._claim_rows(10, start=3)
    (kept, kept_started), (lapsed, lapsed_started), (taken, taken_started) = claimed
    assert None not in (kept_started, lapsed_started, taken_started)

    def expire(row_id):
        with srv.db.session() as session:
            session.execute(update(OutboxItem).where(OutboxItem.id == row_id)
                            .values(locked_until=utcnow() - timedelta(seconds=1)))
        other._recover_expired()  # a call had started: back as `unknown`

    expire(taken.id)
    other_token, [retaken] = other._claim(10)
    assert retaken == taken.id
    expire(lapsed.id)
    results = ours._write_sent([_Sent(kept, "SMkept", "sent", None, kept_started),
                                _Sent(lapsed, "SMlapsed", "sent", None, lapsed_started),
                                _Sent(taken, "SMtaken", "sent", None, taken_started)])
    assert results == [(True, "sent"), (True, "sent_after_lease"), (False, "lease_lost")]
    with srv.db.session() as session:
        rows = {row.id: row for row in session.scalars(select(OutboxItem))}
        assert (rows[kept.id].status, rows[kept.id].provider_id) == ("sent", "SMkept")
        assert (rows[lapsed.id].status, rows[lapsed.id].provider_id) == ("sent", "SMlapsed")
        assert (rows[taken.id].status, rows[taken.id].lease_token, rows[taken.id].provider_id) == \
            ("sending", other_token, "SMtaken")
        outcomes = dict(session.execute(select(OutboxAttempt.outbox_id, OutboxAttempt.outcome)).all())
        assert outcomes == {kept.id: "sent", lapsed.id: "sent_after_lease", taken.id: "lease_lost"}
        statuses = {row.message_id: (message.status, message.provider_id) for row in rows.values()
                    for message in [session.get(Message, row.message_id)]}
        assert statuses == {kept.message_id: ("sent", "SMkept"), lapsed.message_id: ("sent", "SMlapsed"),
                            taken.message_id: ("queued", None)}
    other.stop()
    ours.stop()


def test_a_provider_id_stored_on_another_message_spares_the_rest_of_the_batch(srv, providers, app_config):
    lanes(srv, 2)
    dispatcher = OutboxDispatcher(srv.db, srv.channels, app_config)
    token, [(first, started_first), (second, started_second)] = dispatcher._claim_rows(10, start=2)
    with srv.db.session() as session:  # an older inbound message already carries the id the first send gets
        conversation_id = session.scalar(select(Message.conversation_id).where(Message.id == first.message_id))
        session.add(Message(conversation_id=conversation_id, direction="in", channel="sms", provider_id="SMclash"))
    results = dispatcher._write_sent([_Sent(first, "SMclash", "sent", None, started_first),
                                      _Sent(second, "SMsecond", "sent", None, started_second)])
    assert results == [(True, "sent"), (True, "sent")]  # the send happened: never undone, never repeated
    with srv.db.session() as session:
        assert session.scalars(select(OutboxItem.status)).all() == ["sent", "sent"]
        first_message, second_message = session.get(Message, first.message_id), session.get(Message, second.message_id)
        assert (first_message.status, first_message.provider_id) == ("sent", None)
        assert (second_message.status, second_message.provider_id) == ("sent", "SMsecond")
    dispatcher.stop()


def _blocked_first_batch(write_items):
    """A GroupCommit whose first write waits until released, so that others queue up behind it."""
    entered, release, batches = threading.Event(), threading.Event(), []

    def write(items):
        batches.append(sorted(items))
        if len(batches) == 1:
            entered.set()
            assert release.wait(10)
        return write_items(items)

    return GroupCommit(write), entered, release, batches


def _submit_all(group, entered, release, items):
    results: dict[int, object] = {}

    def submit(item):
        try:
            results[item] = group.submit(item)
        except ValueError as exc:
            results[item] = exc

    first = threading.Thread(target=submit, args=(items[0],))
    first.start()
    assert entered.wait(10)
    others = [threading.Thread(target=submit, args=(item,)) for item in items[1:]]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 10
    while len(group._queue) < len(others) and time.monotonic() < deadline:  # all waiting behind the writer
        time.sleep(0.01)
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    return results


def test_results_that_wait_for_a_write_go_together_in_the_next():
    group, entered, release, batches = _blocked_first_batch(lambda items: [f"recorded {i}" for i in items])
    results = _submit_all(group, entered, release, [0, 1, 2, 3])
    assert batches == [[0], [1, 2, 3]]
    assert results == {i: f"recorded {i}" for i in range(4)}


def test_a_failing_result_costs_the_others_of_its_batch_nothing():
    def write(items):
        if 2 in items:
            raise ValueError("cannot record 2")
        return [f"recorded {i}" for i in items]

    group, entered, release, batches = _blocked_first_batch(write)
    results = _submit_all(group, entered, release, [0, 1, 2, 3])
    assert batches == [[0], [1, 2, 3], [1], [2], [3]]  # the batch failed: each alone
    assert {i: results[i] for i in (0, 1, 3)} == {0: "recorded 0", 1: "recorded 1", 3: "recorded 3"}
    assert isinstance(results[2], ValueError)  # raised in the thread that submitted it


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_drain_sends_every_row_once_in_lane_order(srv, providers, app_config, concurrency):
    app_config["outbox"]["concurrency"] = concurrency
    for n in range(5):
        queue(srv, [f"lane {n} first", f"lane {n} second", f"lane {n} third"], address=f"+1555666{n:04d}")
    dispatcher = OutboxDispatcher(srv.db, srv.channels, app_config)
    try:
        assert dispatcher.drain(timeout=60).sent == 15
    finally:
        dispatcher.stop()
    sent = [(message.value("To"), message.value("Body")) for message in providers.twilio_messages()]
    assert len(sent) == len(set(sent)) == 15
    for n in range(5):
        assert [body for to, body in sent if to == f"+1555666{n:04d}"] == \
            [f"lane {n} first", f"lane {n} second", f"lane {n} third"]
    with srv.db.session() as session:
        assert set(session.scalars(select(OutboxAttempt.outcome))) == {"sent"}


def test_a_claim_stays_fast_when_the_outbox_has_just_grown_by_thousands(srv, app_config):
    """Lane heads come from one window over the unfinished rows: a join of the due rows with a GROUP BY of the
    heads was planned by PostgreSQL as a nested loop after a burst (its statistics still saying the table is
    nearly empty): 1.7 s per claim at 2,000 rows, quadratic beyond (here 6,000 rows: about 7 s)."""
    from bot.delivery.outbox import OUTBOX

    now = utcnow()
    if not srv.db.is_sqlite:  # statistics of an empty outbox, as after a quiet night
        with srv.db.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE outbox")
    with srv.db.session() as session:
        session.execute(OUTBOX.insert(), [
            {"kind": "message", "lane": f"sms:+1555{n % 3000:07d}", "channel": "sms", "to_address": f"+1555{n:07d}",
             "payload": {"text": "burst"}, "status": "pending", "attempts": 0, "next_attempt_at": now}
            for n in range(6000)])
    dispatcher = OutboxDispatcher(srv.db, srv.channels, app_config)
    started = time.perf_counter()
    token, ids = dispatcher._claim(8)
    elapsed = time.perf_counter() - started
    with srv.db.session() as session:
        first = session.scalar(select(OutboxItem.id).order_by(OutboxItem.id))
    assert ids == list(range(first, first + 8))  # the oldest heads, one per lane
    assert elapsed < 3.0, f"a claim took {elapsed:.1f} s"
    dispatcher.stop()


def test_housekeeping_with_nothing_to_do_writes_nothing(app, srv, app_config):
    """The dispatcher looks for due jobs and expired leases twice a second in every process: when there are none it
    reads and takes no write transaction (on SQLite each one queued behind every inbound message's turn)."""
    from app import dispatcher_hooks

    dispatcher = OutboxDispatcher(srv.db, srv.channels, app_config, hooks=dispatcher_hooks(app))
    try:
        dispatcher._housekeeping()  # the first round schedules the daily retention purge, once per process
        writes = statements_like(srv, ("UPDATE", "INSERT", "DELETE", "BEGIN IMMEDIATE"))
        reads = statements_like(srv, ("SELECT",))
        dispatcher._housekeeping()
        assert writes == []
        assert len(reads) == 2  # due jobs, expired leases
    finally:
        dispatcher.stop()
