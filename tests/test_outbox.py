"""The outbox dispatcher: retries with backoff, Retry-After, permanent errors, order per conversation,
pending rows sent after a restart, and leases that return a dead worker's rows to the queue."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from bot.delivery.outbox import OutboxDispatcher, enqueue_webhook
from db.models import Conversation, Message, OutboxItem, utcnow
from tests.conftest import post_twilio, twilio_params
from tests.outbox_helpers import items, make_due, queue


def test_server_error_is_retried_with_backoff_until_sent(srv, providers):
    queue(srv, ["hello"])
    providers.fail_next(500, {"code": 20500, "message": "internal", "status": 500}, times=2)
    srv.dispatcher.run_once()
    [item] = items(srv)
    assert (item.status, item.attempts) == ("pending", 1) and "500" in item.last_error
    assert item.next_attempt_at > utcnow() - timedelta(seconds=1)
    make_due(srv)
    srv.dispatcher.run_once()
    make_due(srv)
    srv.dispatcher.run_once()
    [item] = items(srv)
    assert (item.status, item.attempts) == ("sent", 3)
    assert len(providers.twilio_messages()) == 3  # two failures, one success
    with srv.db.session() as session:
        message = session.get(Message, item.message_id)
        assert message.status == "sent" and message.provider_id == item.provider_id


def test_retry_after_on_429_is_honoured(srv, providers):
    queue(srv, ["hello"])
    providers.fail_next(429, {"code": 20429, "message": "Too Many Requests", "status": 429},
                        headers={"Retry-After": "120"})
    before = utcnow()
    srv.dispatcher.run_once()
    [item] = items(srv)
    assert item.status == "pending"
    assert item.next_attempt_at >= before + timedelta(seconds=119)


def test_permanent_errors_fail_at_once_with_the_reason(srv, providers):
    for code in (21211, 21610, 63016):
        providers.clear()
        queue(srv, [f"for {code}"], address=f"+1555000{code}")
        providers.fail_next(400, {"code": code, "message": "nope", "status": 400})
        srv.dispatcher.run_once()
    rows = items(srv)
    assert [r.status for r in rows] == ["failed", "failed", "failed"]
    assert [r.attempts for r in rows] == [1, 1, 1]
    assert "invalid" in rows[0].last_error and "unsubscribed" in rows[1].last_error
    assert "24-hour window" in rows[2].last_error
    with srv.db.session() as session:
        messages = session.scalars(select(Message).order_by(Message.id)).all()
        assert [m.error_code for m in messages] == ["21211", "21610", "63016"]
        opted = session.scalar(select(Conversation.opted_out).where(Conversation.address == "+155500021610"))
        assert opted is True  # 21610: the number replied STOP to Twilio


def test_gives_up_after_max_attempts(srv, providers):
    srv.dispatcher.max_attempts = 3
    queue(srv, ["hello"])
    providers.fail_next(503, {"code": 20503, "message": "unavailable", "status": 503}, times=3)
    for _ in range(3):
        make_due(srv)
        srv.dispatcher.run_once()
    [item] = items(srv)
    assert (item.status, item.attempts) == ("failed", 3)


def test_messages_of_one_conversation_go_out_in_order_even_across_retries(srv, providers):
    queue(srv, ["first", "second", "third"])
    # The other lane on Telegram: lanes are sent concurrently, so a scripted Twilio failure must not be able
    # to land on the other lane's send instead of "first" (it did, now and then).
    queue(srv, ["other conversation"], address="4242", channel="telegram")
    providers.fail_next(500, {"code": 20500, "message": "x", "status": 500}, path="/2010-04-01")
    srv.dispatcher.run_once()  # "first" fails; "second" and "third" wait behind it; the other lane goes
    assert [r.value("Body") for r in providers.twilio_messages()] == ["first"]
    assert [r.value("text") for r in providers.telegram_calls("sendMessage")] == ["other conversation"]
    make_due(srv)
    srv.dispatcher.drain()
    bodies = [r.value("Body") for r in providers.twilio_messages()]
    assert bodies == ["first", "first", "second", "third"]


def test_pending_rows_are_sent_by_a_new_dispatcher_after_a_restart(srv, providers, app_config):
    queue(srv, ["left behind"])
    fresh = OutboxDispatcher(srv.db, srv.channels, app_config)
    fresh.start()
    try:
        hits = providers.wait_for(lambda r: r.value("Body") == "left behind", timeout=10)
    finally:
        fresh.stop()
    assert len(hits) == 1


def test_a_dead_workers_lease_expires_and_the_row_is_sent(srv, providers):
    queue(srv, ["stuck"])
    with srv.db.session() as session:
        session.execute(update(OutboxItem).values(status="sending", locked_until=utcnow() - timedelta(seconds=1)))
    srv.dispatcher.run_once()
    assert [r.status for r in items(srv)] == ["sent"]


def test_two_dispatchers_never_send_a_row_twice(srv, providers, app_config):
    queue(srv, [f"m{i}" for i in range(10)], address="+15551230009")
    queue(srv, [f"n{i}" for i in range(10)], address="+15551230008")
    other = OutboxDispatcher(srv.db, srv.channels, app_config)
    import threading

    threads = [threading.Thread(target=d.drain) for d in (srv.dispatcher, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bodies = [r.value("Body") for r in providers.twilio_messages()]
    assert sorted(bodies) == sorted([f"m{i}" for i in range(10)] + [f"n{i}" for i in range(10)])
    assert [b for b in bodies if b.startswith("m")] == [f"m{i}" for i in range(10)]


def test_webhook_rows_retry_until_the_receiver_answers_2xx(srv, providers):
    with srv.db.session() as session:
        enqueue_webhook(session, providers.url + "/carrier", '{"a": 1}', {"Content-Type": "application/json"})
    providers.fail_next(500, {"error": "boom"}, path="/carrier")
    srv.dispatcher.run_once()
    make_due(srv)
    srv.dispatcher.run_once()
    calls = providers.callbacks()
    assert len(calls) == 2 and calls[1].json == {"a": 1}
    assert [r.status for r in items(srv)] == ["sent"]


def test_webhook_reply_survives_a_provider_outage_end_to_end(client, srv, providers, seeded):
    providers.fail_next(500, {"code": 20500, "message": "x", "status": 500}, times=2)
    assert post_twilio(client, twilio_params("+15551230001", "where is my order?")).status_code == 200
    for _ in range(3):
        make_due(srv)
        srv.dispatcher.run_once()
    delivered = [r for r in providers.twilio_messages()]
    assert len(delivered) == 3 and "LM-10001" in delivered[-1].value("Body")


def test_an_operator_requeues_failed_rows_and_they_are_sent(srv, providers):
    from bot.delivery.outbox import requeue_failed

    srv.dispatcher.max_attempts = 1
    queue(srv, ["first"], address="+15551230001")
    queue(srv, ["second"], address="+15551230002")
    providers.fail_next(503, {"code": 20503, "message": "unavailable", "status": 503}, times=2)
    srv.dispatcher.run_once()
    assert [i.status for i in items(srv)] == ["failed", "failed"]
    with srv.db.session() as session:  # the second customer has since sent STOP
        session.execute(update(Conversation).where(Conversation.address == "+15551230002").values(opted_out=True))
    first, second = (i.id for i in items(srv))

    result = requeue_failed(srv.db, [first, second, 424242])
    assert (result.requeued, result.skipped_opted_out, result.not_failed) == ([first], [second], [424242])
    rows = items(srv)
    assert [(r.status, r.attempts) for r in rows] == [("pending", 0), ("failed", 1)]
    srv.dispatcher.run_once()
    assert [r.status for r in items(srv)] == ["sent", "failed"]
    assert [m.value("Body") for m in providers.twilio_messages()][-1] == "first"
    with srv.db.session() as session:
        message = session.get(Message, items(srv)[0].message_id)
        assert message.status == "sent"
    assert requeue_failed(srv.db).requeued == []  # nothing failed is left but the opted-out row
