"""The Twilio Messaging webhook (SMS and WhatsApp): signatures, parsing, once-only, status callbacks."""

from __future__ import annotations

import os
import threading
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from db.models import Conversation, Message, OutboxItem
from db.session import Database
from tests.conftest import (
    TWILIO_TOKEN,
    post_twilio,
    terminate_backends,
    twilio_params,
    twilio_signature,
)


def count(srv, model, *where):
    with srv.db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_signed_sms_is_stored_and_answered_through_the_outbox(client, srv, providers, seeded):
    params = twilio_params("+15551230001", "where is my order?")
    response = post_twilio(client, params)
    assert response.status_code == 200
    assert response.mimetype == "text/xml" and b"<Response>" in response.data
    # Committed before the answer; nothing sent yet (no network call inside the webhook).
    assert count(srv, Message, Message.direction == "in") == 1
    assert providers.twilio_messages() == []
    srv.dispatcher.drain()
    sent = providers.twilio_messages()
    assert len(sent) == 1
    assert sent[0].value("To") == "+15551230001"
    assert sent[0].value("From") == "+15550100000"
    assert "LM-10001" in sent[0].value("Body") and "out for delivery" in sent[0].value("Body")
    with srv.db.session() as session:  # the callback URL names the outbox row, to match reports to it
        row_id = session.scalar(select(OutboxItem.id))
    assert sent[0].value("StatusCallback") == f"https://bot.example.test/webhooks/twilio/status?outbox={row_id}"


def test_wrong_signature_is_refused_and_nothing_is_stored(client, srv, seeded):
    params = twilio_params("+15551230001", "where is my order?")
    forged = twilio_signature("/webhooks/twilio", params, token="not-the-token")
    response = post_twilio(client, params, signature=forged)
    assert response.status_code == 403
    assert response.get_json()["error"]
    assert count(srv, Message) == 0 and count(srv, Conversation) == 0


def test_missing_signature_is_refused(client, srv):
    response = client.post("/webhooks/twilio", data=twilio_params("+15551230001", "hi"))
    assert response.status_code == 403
    assert count(srv, Message) == 0


def test_signature_over_a_tampered_body_is_refused(client, srv):
    params = twilio_params("+15551230001", "hi")
    signature = twilio_signature("/webhooks/twilio", params)
    params["Body"] = "where is my order"
    assert post_twilio(client, params, signature=signature).status_code == 403
    assert count(srv, Message) == 0


def test_signature_is_checked_against_the_public_url_not_the_request_url(client, srv):
    params = twilio_params("+15551230001", "hi")
    # Signed for the URL the app sees behind a proxy, not the public one Twilio called.
    signature = RequestValidator(TWILIO_TOKEN).compute_signature("http://localhost/webhooks/twilio", params)
    assert post_twilio(client, params, signature=signature).status_code == 403
    assert count(srv, Message) == 0


def test_malformed_form_is_a_400_with_a_message(client, srv):
    params = {"Body": "hello", "From": "+15551230001"}  # no MessageSid
    response = post_twilio(client, params)
    assert response.status_code == 400
    assert "MessageSid" in response.get_json()["error"]
    assert count(srv, Message) == 0


def test_non_numeric_num_media_is_a_400(client, srv):
    params = twilio_params("+15551230001", "hi", NumMedia="lots")
    assert post_twilio(client, params).status_code == 400
    assert count(srv, Message) == 0


def test_body_over_one_mebibyte_is_413(client, srv):
    params = twilio_params("+15551230001", "x" * (1024 * 1024 + 10))
    response = post_twilio(client, params)
    assert response.status_code == 413
    assert "1 MiB" in response.get_json()["error"]
    assert count(srv, Message) == 0


def test_same_message_sid_twice_has_one_effect(client, srv, providers, seeded):
    params = twilio_params("+15551230001", "where is my order?")
    assert post_twilio(client, params).status_code == 200
    assert post_twilio(client, params).status_code == 200
    assert count(srv, Message, Message.direction == "in") == 1
    assert count(srv, OutboxItem) == 1
    srv.dispatcher.drain()
    assert len(providers.twilio_messages()) == 1


def test_same_message_sid_ten_times_concurrently_has_one_effect(app, srv, providers, seeded):
    params = twilio_params("+15551230001", "where is my order?")
    body, signature = urlencode(params), twilio_signature("/webhooks/twilio", params)
    statuses: list[int] = []
    barrier = threading.Barrier(10)

    def deliver() -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post("/webhooks/twilio", data=body, headers={"X-Twilio-Signature": signature},
                               content_type="application/x-www-form-urlencoded")
        statuses.append(response.status_code)

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 10
    assert count(srv, Message, Message.direction == "in") == 1
    assert count(srv, Conversation) == 1
    srv.dispatcher.drain()
    assert len(providers.twilio_messages()) == 1


def test_a_message_waits_for_the_turn_that_holds_its_conversation_and_sees_what_it_changed(app, srv, seeded):
    """Two messages of one person in flight at once: the second turn waits for the first to commit, then
    answers from the conversation as the first left it. Here the test holds the conversation's row (locked, as
    a turn holds it) and switches its language; the message sent meanwhile is answered in the new language.
    Without the lock on PostgreSQL, that turn answered from what it read before and overwrote the change."""
    stranger = "+15551230077"
    client = app.test_client()
    assert post_twilio(client, twilio_params(stranger, "hello")).status_code == 200
    statuses: list[int] = []
    with srv.db.session() as session:
        conversation = session.scalar(select(Conversation).where(Conversation.address == stranger)
                                      .with_for_update())
        sending = threading.Thread(target=lambda: statuses.append(
            post_twilio(app.test_client(), twilio_params(stranger, "help")).status_code))
        sending.start()
        sending.join(0.6)  # its look-up and NLU are done by now; its turn waits for this transaction
        assert sending.is_alive() and statuses == []
        conversation.locale = "es"
    sending.join(30)
    assert statuses == [200]
    with srv.db.session() as session:
        conversation = session.scalar(select(Conversation).where(Conversation.address == stranger))
        reply = session.scalars(select(Message).where(Message.conversation_id == conversation.id,
                                                      Message.direction == "out").order_by(Message.id.desc())).first()
        assert conversation.locale == "es"
        assert reply is not None and "Puedo ayudarte" in (reply.text or ""), reply.text


def test_a_notification_to_a_person_is_not_held_up_by_their_turn_in_progress(app, srv, seeded, auth, backend):
    """A turn holds its conversation's row until it commits (FOR NO KEY UPDATE, the lock an UPDATE takes): a
    carrier event's message to the same person, written by another transaction, refers to that row and must not
    wait for the turn (FOR UPDATE would make it). The turn is kept open here by its own inbound insert, waiting
    on the test's uncommitted row with the same provider id."""
    if backend != "postgresql":
        pytest.skip("SQLite has one writer at a time: there is no lock to compare")
    customer = "+15551230003"  # LM-10003 and LM-10004
    assert post_twilio(app.test_client(), twilio_params(customer, "hello")).status_code == 200
    sid = "SM" + "7" * 32
    with Database(srv.db.url, pool_size=1, max_overflow=0).engine.connect() as blocker:  # the app's schema
        other = blocker.exec_driver_sql("INSERT INTO conversations (channel, address, role, state, opted_out, "
                                        "handoff_active, created_at, updated_at) VALUES ('sms', '+15550009999', "
                                        "'customer', '{}', false, false, now(), now()) RETURNING id").scalar_one()
        blocker.exec_driver_sql("INSERT INTO messages (conversation_id, direction, channel, provider_id, sender, "
                                f"kind, data, status, created_at, updated_at) VALUES ({other}, 'in', 'sms', "
                                f"'{sid}', 'customer', 'text', '{{}}', 'received', now(), now())")
        turn_status: list[int] = []
        turn = threading.Thread(target=lambda: turn_status.append(
            post_twilio(app.test_client(), twilio_params(customer, "where is my order?", sid=sid)).status_code))
        turn.start()
        turn.join(1.0)  # its look-up did not see the uncommitted row; its insert now waits on it
        assert turn.is_alive()
        event_status: list[int] = []
        event = threading.Thread(target=lambda: event_status.append(app.test_client().post(
            "/api/v1/orders/LM-10004/events", json={"type": "out_for_delivery"}, headers=auth).status_code))
        event.start()
        event.join(10)
        held_up = event.is_alive()
        blocker.rollback()  # the turn's insert goes through
    turn.join(30)
    event.join(30)
    assert not held_up, "the carrier event waited for the customer's turn"
    assert event_status == [201] and turn_status == [200]


def test_a_message_that_meets_a_pooled_connection_the_database_dropped_is_handled_not_spooled(
        client, srv, providers, seeded, backend):
    """The database restarted, or ended the pool's connections, moments ago: the first statement on such a
    connection fails (idle ones are pinged first; these were used a moment ago). The message is handled again on
    a new connection and answered once, not spooled."""
    if backend != "postgresql":
        pytest.skip("SQLite has no server to drop a connection")
    pool = srv.db.engine.pool
    held = [srv.db.engine.connect() for _ in range(pool.checkedin() + 1)]  # every pooled connection, and one more
    pids = [connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() for connection in held]
    for connection in held:
        connection.close()  # back to the pool, alive as far as the pool knows
    terminate_backends(os.environ["TEST_DATABASE_URL"], pids)
    assert post_twilio(client, twilio_params("+15551230001", "where is my order?")).status_code == 200
    assert count(srv, Message, Message.direction == "in") == 1
    assert not srv.extras["spool"].pending()
    srv.dispatcher.drain()
    assert len(providers.twilio_messages()) == 1


def test_whatsapp_message_uses_the_whatsapp_sender(client, srv, providers, seeded):
    params = twilio_params("+15551230002", "¿dónde está mi pedido?", whatsapp=True, ProfileName="Ana")
    assert post_twilio(client, params).status_code == 200
    srv.dispatcher.drain()
    [sent] = providers.twilio_messages()
    assert sent.value("To") == "whatsapp:+15551230002"
    assert sent.value("From") == "whatsapp:+15550100001"
    with srv.db.session() as session:
        conversation = session.scalar(select(Conversation))
        assert (conversation.channel, conversation.address) == ("whatsapp", "+15551230002")


def test_photo_location_and_button_messages_are_stored_and_answered(client, srv, providers):
    media = providers.url + "/2010-04-01/Accounts/AC0/Messages/MM1/Media"  # the fake: never the real Twilio
    cases = [
        twilio_params("+15559990001", "", NumMedia="1", MediaUrl0=f"{media}/ME1",
                      MediaContentType0="image/jpeg"),
        twilio_params("+15559990001", "", whatsapp=True, Latitude="40.7", Longitude="-74.0", Address="5th Ave"),
        twilio_params("+15559990001", "", NumMedia="1", MediaUrl0=f"{media}/ME2",
                      MediaContentType0="audio/ogg"),
        twilio_params("+15559990001", "Yes", whatsapp=True, ButtonText="Yes", ButtonPayload="/affirm"),
        twilio_params("+15559990001", "", NumMedia="1", MediaUrl0=f"{media}/ME3",
                      MediaContentType0="text/vcard"),
    ]
    for params in cases:
        assert post_twilio(client, params).status_code == 200
    with srv.db.session() as session:
        kinds = session.scalars(select(Message.kind).where(Message.direction == "in").order_by(Message.id)).all()
        assert kinds == ["photo", "location", "voice", "button", "contact"]
        location = session.scalars(select(Message.data).where(Message.kind == "location")).one()
        assert location["location"]["lat"] == 40.7
    srv.dispatcher.drain()
    assert len(providers.twilio_messages()) == 5
    assert all(r.value("Body") for r in providers.twilio_messages())


def test_status_callback_updates_delivery_state(client, srv, providers, seeded):
    post_twilio(client, twilio_params("+15551230001", "where is my order?"))
    srv.dispatcher.drain()
    with srv.db.session() as session:
        out = session.scalar(select(Message).where(Message.direction == "out"))
        sid = out.provider_id
        assert out.status == "sent" and sid.startswith("SM")
    for status in ("delivered", "sent"):  # a late "sent" must not move "delivered" back
        params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC1", "To": "+15551230001"}
        response = post_twilio(client, params, path="/webhooks/twilio/status")
        assert response.status_code == 204
    with srv.db.session() as session:
        assert session.get(Message, out.id).status == "delivered"


def test_status_callback_21610_marks_the_number_opted_out(client, srv, providers, seeded):
    post_twilio(client, twilio_params("+15551230001", "where is my order?"))
    srv.dispatcher.drain()
    with srv.db.session() as session:
        sid = session.scalar(select(Message.provider_id).where(Message.direction == "out"))
    params = {"MessageSid": sid, "MessageStatus": "failed", "ErrorCode": "21610"}
    assert post_twilio(client, params, path="/webhooks/twilio/status").status_code == 204
    with srv.db.session() as session:
        assert session.scalar(select(Conversation.opted_out)) is True
        assert session.scalar(select(Message.status).where(Message.direction == "out")) == "failed"


def test_status_callback_needs_a_signature_and_fields(client, srv):
    params = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    assert client.post("/webhooks/twilio/status", data=params).status_code == 403
    assert post_twilio(client, {"MessageSid": "SM1"}, path="/webhooks/twilio/status").status_code == 400
    bad = {"MessageSid": "SM1", "MessageStatus": "teleported"}
    assert post_twilio(client, bad, path="/webhooks/twilio/status").status_code == 400


def test_unreachable_database_spools_the_message_and_answers_200(providers, tmp_path):
    """Twilio does not redeliver messaging webhooks: a 503 would lose the message (tests/test_spool.py
    replays it); the status callback, which Twilio does retry, still gets 503."""
    from app import create_app
    from bot.web.spool import Spool
    from tests.conftest import base_config

    app = create_app(base_config("postgresql+psycopg://nobody@127.0.0.1:1/nothing", providers.url,
                                 spool={"path": str(tmp_path / "spool")}))
    srv = app.extensions["lastmile"]
    try:
        params = twilio_params("+15551230001", "where is my order?")
        response = post_twilio(app.test_client(), params)
        assert response.status_code == 200
        assert Spool(tmp_path / "spool").status()["waiting"] == 1
        status = {"MessageSid": "SM1", "MessageStatus": "delivered"}
        response = post_twilio(app.test_client(), status, path="/webhooks/twilio/status")
        assert response.status_code == 503 and "database" in response.get_json()["error"]
        assert response.headers["Retry-After"]
    finally:
        srv.extras["spool_replayer"].stop()
        srv.db.dispose()
