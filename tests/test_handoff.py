"""Handoff to a person: the triggers, the bot's silence during handoff, release and the idle return."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.delivery.scheduler import run_due_jobs
from bot.domain import conversations, handoffs, helpdesk
from db.models import Agent, Conversation, Handoff, Message, OutboxItem, ScheduledJob, utcnow
from tests.conftest import post_telegram, post_twilio, telegram_update, twilio_params

ALICE = "+15551230001"


def say(client, text, sender=ALICE):
    response = post_twilio(client, twilio_params(sender, text))
    assert response.status_code == 200
    return response


def count(srv, model, *where):
    with srv.db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def only_handoff(srv) -> Handoff:
    with srv.db.session() as session:
        rows = session.scalars(select(Handoff)).all()
        assert len(rows) == 1
        session.expunge_all()
        return rows[0]


def conversation_of(srv, address=ALICE, channel="sms") -> Conversation:
    with srv.db.session() as session:
        conversation = session.scalar(select(Conversation).where(Conversation.channel == channel,
                                                                 Conversation.address == address))
        session.expunge_all()
        return conversation


def make_agent(srv, username="sam", role="agent") -> int:
    with srv.db.session() as session:
        agent = Agent(username=username, name=username.title(), password_hash="x", role=role)
        session.add(agent)
        session.flush()
        return agent.id


def test_asking_for_a_person_opens_a_handoff_and_tells_the_customer_once_with_the_wait(client, srv, providers,
                                                                                      seeded):
    say(client, "where is my order")
    say(client, "I want to talk to a person")
    handoff = only_handoff(srv)
    assert handoff.reason == "human_handoff" and handoff.priority == 2 and handoff.status == "open"
    assert handoff.sla_due_at - handoff.opened_at == timedelta(minutes=60)
    assert handoff.order_id is not None  # the order the customer was asking about
    assert conversation_of(srv).handoff_active
    srv.dispatcher.drain()
    bodies = [m.value("Body") for m in providers.twilio_messages()]
    assert len(bodies) == 2
    assert "passing you to a person" in bodies[1] and "1 hour" in bodies[1]


def test_report_problem_is_urgent_with_the_shorter_sla(client, srv, seeded):
    say(client, "my parcel arrived damaged")
    handoff = only_handoff(srv)
    assert handoff.reason == "report_problem" and handoff.priority == 1
    assert handoff.sla_due_at - handoff.opened_at == timedelta(minutes=15)
    assert handoff.details["text"] == "my parcel arrived damaged"


def button_press(chat_id: int, data: str, update_id: int) -> dict:
    return {"update_id": update_id, "callback_query": {
        "id": f"cb{update_id}", "chat_instance": "1", "data": data,
        "from": {"id": chat_id, "is_bot": False, "first_name": "Alice", "language_code": "en"},
        "message": {"message_id": 5, "date": 1764244800, "chat": {"id": chat_id, "type": "private"},
                    "text": "Which order?"}}}


def test_bot_is_silent_during_handoff_for_any_intent_and_button_and_messages_queue_for_the_agent(
        client, srv, providers, seeded):
    say(client, "I want to talk to a person")
    assert post_telegram(client, telegram_update(100001, "I want a person")).status_code == 200
    outbox_before = count(srv, OutboxItem)
    assert outbox_before == 2  # one notice per conversation
    for text in ("where is my order", "hello", "1", "/track_order", "qwxz blorp", "help"):
        say(client, text)
    assert post_telegram(client, telegram_update(100001, "where is my order")).status_code == 200
    assert post_telegram(client, button_press(100001, "/track_order", 777001)).status_code == 200
    assert count(srv, OutboxItem) == outbox_before
    with srv.db.session() as session:
        inbound = session.scalars(select(Message).where(Message.direction == "in")).all()
        queued = [m for m in inbound if (m.data or {}).get("queued_for_agent")]
        assert len(queued) == 8
        assert {m.intent for m in queued} >= {"track_order", "greet", "help"}
        assert any(m.kind == "button" for m in queued)
    srv.dispatcher.drain()
    assert len(providers.twilio_messages()) == 1


def test_stop_is_still_honoured_during_handoff(client, srv, providers, seeded):
    say(client, "I want to talk to a person")
    say(client, "STOP")
    srv.dispatcher.drain()
    assert "won't receive any more messages" in providers.twilio_messages()[-1].value("Body")
    assert conversation_of(srv).opted_out


def test_bot_speaks_again_after_release_and_the_customer_is_told(client, srv, providers, seeded):
    agent_id = make_agent(srv)
    say(client, "I want to talk to a person")
    say(client, "where is my order")  # queued, unanswered
    srv.dispatcher.drain()
    assert len(providers.twilio_messages()) == 1
    with srv.db.session() as session:
        handoff = session.scalar(select(Handoff))
        agent = session.get(Agent, agent_id)
        handoffs.take(session, handoff, agent)
        conversation = session.get(Conversation, handoff.conversation_id)
        handoffs.agent_reply(session, conversation, agent, "Hi, this is Sam. Your parcel arrives at 3pm.")
        handoffs.release(session, handoff, agent_id=agent_id)
    srv.dispatcher.drain()
    bodies = [m.value("Body") for m in providers.twilio_messages()]
    assert bodies[1] == "Hi, this is Sam. Your parcel arrives at 3pm."
    assert "back with the delivery assistant" in bodies[2]
    say(client, "where is my order")
    srv.dispatcher.drain()
    assert "LM-10001" in providers.twilio_messages()[-1].value("Body")
    handoff = only_handoff(srv)
    assert handoff.status == "released" and handoff.closed_by == "agent" and handoff.first_response_at


def test_two_misses_offer_a_person_and_yes_opens_a_fallback_handoff(client, srv, providers, seeded):
    say(client, "qwxz blorp fnargle")
    say(client, "zzkq vvlp")
    srv.dispatcher.drain()
    assert "talk to a person" in providers.twilio_messages()[-1].value("Body")
    say(client, "yes")
    handoff = only_handoff(srv)
    assert handoff.reason == "fallback" and handoff.priority == 2


def test_the_talk_to_a_person_button_after_two_misses_opens_a_fallback_handoff(client, srv, seeded):
    say(client, "qwxz blorp fnargle")
    say(client, "zzkq vvlp")
    say(client, "1")  # the first numbered button on SMS
    assert only_handoff(srv).reason == "fallback"


def test_no_after_the_offer_keeps_the_bot(client, srv, providers, seeded):
    say(client, "qwxz blorp fnargle")
    say(client, "zzkq vvlp")
    say(client, "no")
    assert count(srv, Handoff) == 0
    assert not conversation_of(srv).handoff_active


def test_open_handoff_from_other_code_reuses_the_open_one_and_raises_its_priority(client, srv, seeded):
    say(client, "I want to talk to a person")
    with srv.db.session() as session:
        conversation = session.scalar(select(Conversation))
        again = handoffs.open_handoff(session, conversation, "low_rating", details={"score": 1})
        assert again.priority == 1 and again.reason == "human_handoff"
    assert count(srv, Handoff) == 1
    assert count(srv, Message, Message.direction == "out") == 1  # told once


def test_open_handoff_outside_a_turn_writes_the_notice_in_the_customers_language(client, srv, providers, seeded):
    # Ana wrote on WhatsApp a moment ago: the 24-hour window is open for free text (tests/test_whatsapp_window.py)
    assert post_twilio(client, twilio_params("+15551230002", "hola", whatsapp=True)).status_code == 200
    srv.dispatcher.drain()
    providers.clear()
    with srv.db.session() as session:
        from bot.domain.conversations import conversation_with
        from db.models import Customer

        ana = session.scalar(select(Customer).where(Customer.phone == "+15551230002"))
        conversation = conversation_with(session, ana)
        handoff = handoffs.open_handoff(session, conversation, "driver_flag", details={"note": "dog"})
        assert handoff.priority == 1
    srv.dispatcher.drain()
    sent = providers.twilio_messages()
    assert sent[0].value("To") == "whatsapp:+15551230002"
    assert "15" in sent[0].value("Body")  # the urgent SLA, whatever the translation


def test_idle_handoff_returns_to_the_bot_with_a_notice(app, client, srv, providers, seeded):
    say(client, "I want to talk to a person")
    opened_at = only_handoff(srv).opened_at
    with srv.db.session() as session:
        job = session.scalar(select(ScheduledJob).where(ScheduledJob.kind == handoffs.IDLE_JOB))
        assert job.run_at - opened_at == timedelta(minutes=30)
        # 31 minutes pass with no agent activity
        job.run_at -= timedelta(minutes=31)
        session.scalar(select(Handoff)).opened_at -= timedelta(minutes=31)
    with app.app_context():
        assert run_due_jobs(srv.db) == 1
    handoff = only_handoff(srv)
    assert handoff.status == "released" and handoff.closed_by == "idle"
    assert not conversation_of(srv).handoff_active
    srv.dispatcher.drain()
    assert "back to help" in providers.twilio_messages()[-1].value("Body")


def test_agent_activity_postpones_the_idle_return(app, client, srv, seeded):
    agent_id = make_agent(srv)
    start = utcnow() - timedelta(minutes=40)
    reply_at = utcnow() - timedelta(minutes=10)
    with app.app_context(), srv.db.session() as session:
        conversation = conversations.get_or_create(session, "sms", ALICE)
        handoffs.open_handoff(session, conversation, "human_handoff", now=start)
        handoffs.agent_reply(session, conversation, session.get(Agent, agent_id), "Looking into it", now=reply_at)
    with app.app_context():
        assert run_due_jobs(srv.db) == 1
    assert only_handoff(srv).status == "assigned"
    with srv.db.session() as session:
        pending = session.scalars(select(ScheduledJob).where(ScheduledJob.status == "pending")).all()
        assert [j.run_at for j in pending] == [reply_at + timedelta(minutes=30)]


def test_release_of_a_conversation_not_in_handoff_is_a_conflict(client, srv, seeded):
    say(client, "I want to talk to a person")
    with srv.db.session() as session:
        handoff = session.scalar(select(Handoff))
        handoffs.close(session, handoff)
    with srv.db.session() as session:
        handoff = session.scalar(select(Handoff))
        try:
            handoffs.release(session, handoff)
        except handoffs.HandoffConflict as exc:
            assert "not in handoff" in str(exc)
        else:
            raise AssertionError("released twice")


@pytest.fixture
def helpdesk_config(app_config, providers):
    """Listed before `app`: the app is built with a helpdesk webhook URL and secret."""
    app_config["support"] = {"webhook_url": providers.url + "/helpdesk"}
    app_config["secrets"]["support_webhook_secret"] = "hd-secret"
    return app_config


def test_signed_webhook_to_the_helpdesk_on_open_and_close(helpdesk_config, app, client, srv, providers, seeded):
    post_twilio(client, twilio_params(ALICE, "I want to talk to a person"))
    with app.app_context(), srv.db.session() as session:
        handoffs.close(session, session.scalar(select(Handoff)), by="agent")
    srv.dispatcher.drain()
    calls = [c for c in providers.callbacks() if c.path == "/helpdesk"]
    assert [c.headers["X-Lastmile-Event"] for c in calls] == ["handoff.opened", "handoff.closed"]
    for call in calls:
        assert helpdesk.verify(call.body, "hd-secret", call.headers["X-Lastmile-Signature"])
        assert not helpdesk.verify(call.body, "other-secret", call.headers["X-Lastmile-Signature"])
    body = json.loads(calls[0].body)
    assert body["handoff"]["reason"] == "human_handoff" and body["conversation"]["channel"] == "sms"
    assert ALICE not in calls[0].body.decode()  # no phone number leaves for the helpdesk


def test_helpdesk_webhook_is_retried_until_accepted(helpdesk_config, app, srv, providers):
    providers.fail_next(503, times=1, path="/helpdesk")
    with app.app_context(), srv.db.session() as session:
        conversation = conversations.get_or_create(session, "sms", ALICE)
        handoffs.open_handoff(session, conversation, "driver_flag", notify_customer=False)
    srv.dispatcher.drain()
    assert providers.wait_for(lambda r: r.path == "/helpdesk" and r.method == "POST")
    deadline = time.monotonic() + 15  # the retry is due after a short backoff (0.01-0.05 s in tests)
    while True:
        srv.dispatcher.drain()
        with srv.db.session() as session:
            item = session.scalar(select(OutboxItem).where(OutboxItem.kind == "webhook"))
            if item.status == "sent" or time.monotonic() > deadline:
                break
        time.sleep(0.02)
    assert item.status == "sent" and item.attempts == 2
