"""Exactly once from the outbox: sends only under a held lease, leases renewed while slow sends run, a pool
of senders so one slow call holds only its conversation, and sends of unknown outcome reconciled with the
provider's Messages list (or a status callback) before anything is sent again. Real database, real HTTP to
the local fake Twilio/Telegram, real signatures on status callbacks."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from app import create_app
from bot.delivery.outbox import OutboxDispatcher
from db.models import Message, OutboxAttempt, OutboxItem, utcnow
from tests.conftest import base_config, post_twilio
from tests.outbox_helpers import items, make_due, queue, settle

FAULT_RATES = {"500": 0.12, "429": 0.06, "reset": 0.06, "accept_then_reset": 0.03, "accept_then_silent": 0.03}


@pytest.fixture
def fast_config(database_url, providers):
    """Short client timeout and reconciliation delay, so ambiguous sends settle within a test."""
    return base_config(database_url, providers.url,
                       channels={"twilio": {"timeout": 1}, "telegram": {"timeout": 1}},
                       outbox={"reconcile_after": 0.2, "lease_seconds": 3, "concurrency": 4})


@pytest.fixture
def fast_app(fast_config):
    app = create_app(fast_config)
    yield app
    srv = app.extensions["lastmile"]
    srv.dispatcher.stop()
    srv.db.dispose()


@pytest.fixture
def fast(fast_app):
    return fast_app.extensions["lastmile"]


def attempts_log(srv, item_id):
    with srv.db.session() as session:
        return session.scalars(select(OutboxAttempt.outcome).where(OutboxAttempt.outbox_id == item_id)
                               .order_by(OutboxAttempt.id)).all()


def test_a_row_whose_lease_was_taken_back_is_not_sent_by_its_former_holder(srv, providers, app_config):
    queue(srv, ["only once"])
    stalled = OutboxDispatcher(srv.db, srv.channels, app_config)
    token, [item_id] = stalled._claim(10)  # claimed, then the holder stalls past its lease
    with srv.db.session() as session:
        session.execute(update(OutboxItem).values(locked_until=utcnow() - timedelta(seconds=1)))
    assert srv.dispatcher.run_once().sent == 1  # another dispatcher takes the row back and sends it
    assert stalled._process(token, item_id) == "lost"  # the compare-and-set before the call refuses
    assert len(providers.twilio_messages()) == 1
    assert attempts_log(srv, item_id) == ["sent"]


def test_slow_provider_longer_than_the_lease_two_dispatchers_send_each_row_once(srv, providers, app_config):
    """The issue's case: each send takes 1.5 s, longer than the lease; renewal keeps the rows held."""
    providers.send_delay = 1.5
    app_config["outbox"].update(lease_seconds=1.0, concurrency=6, poll_interval=0.1)
    for n in range(6):
        queue(srv, [f"lane{n} first", f"lane{n} second"], address=f"+1555123{n:04d}")
    dispatchers = [OutboxDispatcher(srv.db, srv.channels, app_config) for _ in range(2)]
    for dispatcher in dispatchers:
        dispatcher.start()
    try:
        settle(srv, dispatchers, timeout=60)
    finally:
        for dispatcher in dispatchers:
            dispatcher.stop()
    per_row = Counter(m.outbox_id for m in providers.accepted)
    assert len(per_row) == 12 and max(per_row.values()) == 1  # every row, none twice
    with srv.db.session() as session:  # and no lease ran out: each row sent once by its holder, nothing to reconcile
        assert session.scalars(select(OutboxAttempt.outcome)).all() == ["sent"] * 12
    bodies = [m.body for m in providers.accepted]
    for n in range(6):  # in order within each conversation
        assert bodies.index(f"lane{n} first") < bodies.index(f"lane{n} second")


def test_one_slow_send_holds_only_its_own_conversation(fast, providers):
    providers.silent_seconds = 3
    providers.fault_next("accept_then_silent")  # the first send: accepted, then no answer for 3 s
    queue(fast, ["slow one"], address="+15551239000")
    for n in range(4):
        queue(fast, [f"quick {n}"], address=f"+1555124{n:04d}")
    started = time.monotonic()
    fast.dispatcher.start()
    hits = [providers.wait_for(lambda r, n=n: r.value("Body") == f"quick {n}", timeout=10) for n in range(4)]
    quick_done = time.monotonic() - started
    assert all(hits) and quick_done < 2.5  # not queued behind the 1 s timeout of the slow send
    settle(fast, dispatchers=[fast.dispatcher], timeout=30)
    assert Counter(m.body for m in providers.accepted)["slow one"] == 1


@pytest.mark.parametrize("fault", ["accept_then_reset", "accept_then_silent"])
def test_an_accepted_send_whose_answer_was_lost_is_found_not_resent(fast, providers, fault):
    providers.silent_seconds = 2.5
    providers.fault_next(fault)
    queue(fast, ["hello"])
    assert fast.dispatcher.run_once().unknown == 1
    [item] = items(fast)
    assert item.status == "unknown" and item.provider_id is None
    settle(fast)
    [item] = items(fast)
    [accepted] = providers.accepted
    assert (item.status, item.provider_id) == ("sent", accepted.sid)
    assert len(providers.twilio_messages()) == 1 and providers.twilio_lookups()
    lookup = providers.twilio_lookups()[0].query
    assert lookup["To"] == ["+15551230001"] and lookup["From"] == ["+15550100000"] and "DateSent>" in lookup
    assert attempts_log(fast, item.id) == ["unknown", "found"]
    with fast.db.session() as session:
        assert session.get(Message, item.message_id).provider_id == accepted.sid


def test_a_reset_before_acceptance_is_looked_up_then_sent_again(fast, providers):
    providers.fault_next("reset")
    queue(fast, ["hello"])
    fast.dispatcher.run_once()
    settle(fast)
    [item] = items(fast)
    assert item.status == "sent" and len(providers.accepted) == 1 and len(providers.twilio_messages()) == 2
    assert attempts_log(fast, item.id) == ["unknown", "absent", "sent"]


def test_the_same_text_sent_earlier_to_the_same_person_is_not_taken_for_this_row(fast, providers):
    queue(fast, ["1. yes"])
    fast.dispatcher.run_once()  # sent, its sid recorded on the first row
    providers.fault_next("reset")
    queue(fast, ["1. yes"])
    fast.dispatcher.run_once()
    settle(fast)
    first, second = items(fast)
    assert len(providers.accepted) == 2 and first.provider_id != second.provider_id
    assert attempts_log(fast, second.id) == ["unknown", "absent", "sent"]


def test_a_status_callback_settles_an_unknown_row_without_a_lookup(fast, fast_app, providers):
    providers.fault_next("accept_then_reset")
    queue(fast, ["hello"])
    fast.dispatcher.run_once()
    [accepted] = providers.accepted
    url = urlsplit(accepted.status_callback)
    assert url.query == f"outbox={items(fast)[0].id}"
    params = {"MessageSid": accepted.sid, "MessageStatus": "delivered", "AccountSid": "AC" + "0" * 32}
    response = post_twilio(fast_app.test_client(), params, path=f"{url.path}?{url.query}")
    assert response.status_code == 204
    [item] = items(fast)
    assert (item.status, item.provider_id) == ("sent", accepted.sid)
    make_due(fast)
    fast.dispatcher.drain()
    assert providers.twilio_lookups() == [] and len(providers.twilio_messages()) == 1
    assert attempts_log(fast, item.id) == ["unknown", "callback"]
    with fast.db.session() as session:
        message = session.get(Message, item.message_id)
        assert (message.provider_id, message.status) == (accepted.sid, "delivered")


def test_a_status_callback_signed_for_another_row_is_refused(fast, fast_app, providers):
    queue(fast, ["hello"])
    fast.dispatcher.run_once()
    [accepted] = providers.accepted
    params = {"MessageSid": "SM" + "f" * 32, "MessageStatus": "sent"}
    from tests.conftest import twilio_signature

    signature = twilio_signature(f"/webhooks/twilio/status?outbox={items(fast)[0].id}", params)
    response = post_twilio(fast_app.test_client(), params, path="/webhooks/twilio/status?outbox=999", signature=signature)
    assert response.status_code == 403
    assert items(fast)[0].provider_id == accepted.sid


def test_when_the_provider_cannot_be_asked_the_row_stays_unknown(fast, providers):
    providers.fault_next("accept_then_reset")
    queue(fast, ["hello"])
    fast.dispatcher.run_once()
    providers.fail_next(503, {"code": 20503, "message": "unavailable", "status": 503}, method="GET", times=2)
    deadline = time.monotonic() + 20
    while len(providers.twilio_lookups()) < 1 and time.monotonic() < deadline:
        fast.dispatcher.run_once()
        time.sleep(0.1)
    [item] = items(fast)
    assert item.status == "unknown" and len(providers.twilio_messages()) == 1
    assert "lookup_error" in attempts_log(fast, item.id)
    settle(fast)
    [item] = items(fast)
    assert item.status == "sent" and len(providers.accepted) == 1


def test_thirty_percent_faults_two_dispatchers_all_delivered_none_twice(fast, fast_config, providers):
    providers.silent_seconds = 1.5
    for fault in ("accept_then_reset", "accept_then_silent", "reset"):
        providers.fault_next(fault, times=2)  # certain, then 30 % at random
    providers.chaos(FAULT_RATES, seed=12)
    rows = 0
    for n in range(30):
        texts = [f"c{n} reply {k}" for k in range(1 + n % 2)]
        queue(fast, texts, address=f"+1555125{n:04d}")
        rows += len(texts)
    dispatchers = [fast.dispatcher, OutboxDispatcher(fast.db, fast.channels, fast_config)]
    for dispatcher in dispatchers:
        dispatcher.start()
    try:
        settle(fast, dispatchers, timeout=120)
    finally:
        dispatchers[1].stop()
    per_row = Counter(m.outbox_id for m in providers.accepted)
    assert [item.status for item in items(fast)] == ["sent"] * rows
    assert len(per_row) == rows and max(per_row.values()) == 1
    assert providers.faults_injected["accept_then_reset"] >= 2 and providers.faults_injected["accept_then_silent"] >= 2
    assert all(item.provider_id == next(m.sid for m in providers.accepted if m.outbox_id == item.id)
               for item in items(fast))


def test_backoff_is_jittered_and_retry_after_is_a_floor(srv, providers, app_config):
    app_config["outbox"].update(backoff_base=10.0, backoff_max=600.0)
    dispatcher = OutboxDispatcher(srv.db, srv.channels, app_config)
    for n in range(12):
        queue(srv, [f"m{n}"], address=f"+1555126{n:04d}")
    providers.fail_next(500, {"code": 20500, "message": "x", "status": 500}, times=12)
    before = utcnow()
    assert dispatcher.run_once().retried == 12
    after = utcnow()  # each failure happened between these two: a loaded machine sends slowly
    due = [item.next_attempt_at for item in items(srv)]
    # 10 s, up to half of it taken off at random
    assert all(before + timedelta(seconds=4.9) <= d <= after + timedelta(seconds=10.1) for d in due)
    delays = [(d - before).total_seconds() for d in due]
    assert max(delays) - min(delays) > 1.0  # spread, not one thundering herd
    make_due(srv)
    providers.fail_next(429, {"code": 20429, "message": "slow down", "status": 429}, headers={"Retry-After": "90"},
                        times=12)
    before = utcnow()
    dispatcher.run_once()
    assert all(item.next_attempt_at >= before + timedelta(seconds=89) for item in items(srv))


def test_telegram_has_no_lookup_so_an_unknown_send_is_sent_again_and_recorded_so(fast, providers):
    providers.fault_next("accept_then_reset", path="/bot")
    queue(fast, ["hola"], address="4242", channel="telegram")
    fast.dispatcher.run_once()
    settle(fast)
    [item] = items(fast)
    assert item.status == "sent"
    assert len(providers.telegram_calls("sendMessage")) == 2  # at least once: the residual, documented
    log = attempts_log(fast, item.id)
    # On a loaded machine the first call may time out while connecting (1 s here): a send that never reached
    # the provider is an ordinary `error`, retried at once, before the scripted fault.
    assert log[-3:] == ["unknown", "unverified_resend", "sent"] and set(log[:-3]) <= {"error"}



DISPATCHER_PROCESS = """
import json, sys, time
from app import create_app
app = create_app(json.loads(sys.argv[1]))
app.extensions["lastmile"].dispatcher.start()
print("started", flush=True)
time.sleep(600)
"""


def test_kill_9_of_a_dispatcher_mid_send_loses_nothing_and_sends_nothing_twice(fast, fast_config, providers):
    """A dispatcher process is killed with SIGKILL while sends are in flight (the fake accepts them after the
    kill); a fresh dispatcher takes its rows back when their lease ends and finds the accepted ones in the
    Messages list instead of sending them again."""
    import json
    import signal
    import subprocess
    import sys

    providers.send_delay = 0.6
    for n in range(16):
        queue(fast, [f"burst {n}"], address=f"+1555128{n:04d}")
    config = {**fast_config, "outbox": {**fast_config["outbox"], "lease_seconds": 2}}
    dead = subprocess.Popen([sys.executable, "-c", DISPATCHER_PROCESS, json.dumps(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert dead.stdout.readline().strip() == "started"
        # Killed once at least 4 sends were accepted and one more has reached the fake but not been answered:
        # the fake accepts that one after the kill. (Killing on the count of accepted sends alone sometimes hit
        # the gap between two rounds of sends on a loaded machine, with nothing in flight: CI, stop 18.)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
                len(providers.accepted) >= 4 and len(providers.twilio_messages()) > len(providers.accepted)):
            time.sleep(0.01)
    finally:
        dead.send_signal(signal.SIGKILL)
        dead.wait(30)
    killed_at = time.monotonic()
    with fast.db.session() as session:
        held = session.scalars(select(OutboxItem.id).where(OutboxItem.status == "sending")).all()
    assert held  # the dead process was in the middle of sending
    fast.dispatcher.start()
    settle(fast, dispatchers=[fast.dispatcher], timeout=60)
    assert time.monotonic() - killed_at < 20  # lease (2 s) + client timeout and reconcile delay, not a minute
    per_row = Counter(m.outbox_id for m in providers.accepted)
    assert len(per_row) == 16 and max(per_row.values()) == 1
    with fast.db.session() as session:
        outcomes = Counter(session.scalars(select(OutboxAttempt.outcome).where(OutboxAttempt.outbox_id.in_(held))))
    assert outcomes["found"] >= 1  # accepted after the kill: found in the Messages list, not sent again


def test_a_message_still_queued_at_twilio_is_found_by_its_creation_date(fast, providers):
    """Twilio sets DateSent only when a message leaves its queue: the DateSent-filtered list misses it, so the
    newest page for the same To/From is read too and matched on DateCreated."""
    providers.keep_queued = True
    providers.fault_next("accept_then_reset")
    queue(fast, ["hello"])
    fast.dispatcher.run_once()
    settle(fast)
    [item] = items(fast)
    [accepted] = providers.accepted
    assert (item.status, item.provider_id) == ("sent", accepted.sid) and len(providers.twilio_messages()) == 1
    queries = [r.query for r in providers.twilio_lookups()]
    assert "DateSent>" in queries[0] and not any(k.startswith("DateSent") for k in queries[1])
