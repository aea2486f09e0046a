"""Carrier events become notifications on the customer's channel, through the real API and fake providers."""

from __future__ import annotations

import json
import re

from sqlalchemy import func, select

from db.models import Message, Notification, OrderEvent, ScheduledJob
from tests.conftest import post_twilio, twilio_params
from tests.messages import eta_window
from tests.notify_helpers import (
    NIGHT,
    PHOTO,
    bodies,
    eta,
    notifications,
    post_event,
    put_order,
    run_jobs,
)


def test_out_for_delivery_reaches_sms_with_window_link_and_invitation(client, srv, providers, auth):
    put_order(client, auth)
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
    assert providers.twilio_messages() == []  # nothing sent inside the API call
    srv.dispatcher.drain()
    [sent] = providers.twilio_messages()
    body = sent.value("Body")
    assert sent.value("To") == "+15557770001"
    assert re.search(r"Your order LM-1 is out for delivery\. Expected (today|tomorrow)\b", body)  # late at night: tomorrow
    assert "https://bot.example.test/t/" in body
    assert "instructions for the driver" in body
    assert notifications(srv) == [("out_for_delivery", "sent", None)]


def test_the_same_event_twice_is_one_notification_with_or_without_a_key(client, srv, providers, auth):
    put_order(client, auth)
    window = eta(60)
    post_event(client, auth, "LM-1", "out_for_delivery", eta=window, idempotency_key="k1")
    post_event(client, auth, "LM-1", "out_for_delivery", eta=window, idempotency_key="k1", status=200)
    post_event(client, auth, "LM-1", "out_for_delivery", eta=window)  # a repeat without a key
    srv.dispatcher.drain()
    assert len(providers.twilio_messages()) == 1
    assert notifications(srv) == [("out_for_delivery", "sent", None), ("out_for_delivery", "skipped", "duplicate")]


def test_eta_updated_only_when_the_window_moves_past_the_threshold(client, srv, providers, auth):
    put_order(client, auth)
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
    post_event(client, auth, "LM-1", "eta_updated", eta=eta(70))  # 10 minutes: not worth a message
    post_event(client, auth, "LM-1", "eta_updated", eta=eta(80))  # 20 from what the customer was told
    srv.dispatcher.drain()
    texts = bodies(providers)
    assert len(texts) == 2
    assert re.match(r"New delivery time for your order LM-1: (today|tomorrow)\b", texts[1])
    assert [n[2] for n in notifications(srv)] == [None, "small_change", None]


def test_delayed_tells_the_reason_and_the_new_estimate(client, srv, providers, auth):
    put_order(client, auth)
    post_event(client, auth, "LM-1", "delayed", reason="Heavy traffic.", eta=eta(180))
    srv.dispatcher.drain()
    [body] = bodies(providers)
    assert re.search(r"Your order LM-1 is delayed\. Reason: Heavy traffic\. New estimate: (today|tomorrow)\b", body)
    assert "Sorry for the wait." in body


def test_arriving_says_how_many_stops_and_is_sent_even_at_night(client, srv, providers, auth):
    put_order(client, auth, hour=NIGHT)
    post_event(client, auth, "LM-1", "arriving", stops_away=3)
    srv.dispatcher.drain()
    [body] = bodies(providers)
    assert "the driver is 3 stops away" in body


def test_arriving_in_minutes_when_no_stop_count(client, srv, providers, auth):
    put_order(client, auth)
    post_event(client, auth, "LM-1", "arriving", eta=eta(10, 20))
    srv.dispatcher.drain()
    [body] = bodies(providers)
    assert "the driver is about 10 minutes away" in body or "the driver is about 9 minutes away" in body


def test_delivered_on_us_sms_is_an_mms_with_the_photo(client, srv, providers, auth):
    put_order(client, auth)
    post_event(client, auth, "LM-1", "delivered", proof_of_delivery={"photo_url": PHOTO, "note": "Left at the door"})
    srv.dispatcher.drain()
    [sent] = providers.twilio_messages()
    assert sent.form["MediaUrl"] == [PHOTO]
    assert "has been delivered" in sent.value("Body") and "Driver's note: Left at the door" in sent.value("Body")
    assert PHOTO not in sent.value("Body")


def test_delivered_on_sms_outside_mms_countries_links_the_photo(client, srv, providers, auth):
    put_order(client, auth, phone="+33612345678")
    post_event(client, auth, "LM-1", "delivered", proof_of_delivery={"photo_url": PHOTO})
    srv.dispatcher.drain()
    [sent] = providers.twilio_messages()
    assert "MediaUrl" not in sent.form
    assert f"Photo: {PHOTO}" in sent.value("Body")


def test_delivered_on_whatsapp_and_telegram_carries_the_image(client, srv, providers, auth):
    put_order(client, auth, whatsapp=True)
    put_order(client, auth, "LM-2", phone=None, telegram=4242)
    # WhatsApp free text needs a recent message from the customer.
    post_twilio(client, twilio_params("+15557770001", "hi", whatsapp=True))
    srv.dispatcher.drain()
    providers.clear()
    post_event(client, auth, "LM-1", "delivered", proof_of_delivery={"photo_url": PHOTO})
    post_event(client, auth, "LM-2", "delivered", proof_of_delivery={"photo_url": PHOTO, "note": "Porch"})
    srv.dispatcher.drain()
    [whatsapp] = providers.twilio_messages()
    assert whatsapp.value("To") == "whatsapp:+15557770001" and whatsapp.form["MediaUrl"] == [PHOTO]
    [photo] = providers.telegram_calls("sendPhoto")
    assert photo.value("chat_id") == "4242" and photo.value("photo") == PHOTO
    assert "Driver's note: Porch" in photo.value("caption")


def test_failed_attempt_offers_options_as_buttons_or_a_numbered_list(client, srv, providers, auth):
    put_order(client, auth, phone=None, telegram=4242)
    put_order(client, auth, "LM-2", phone="+15557770002")
    post_event(client, auth, "LM-1", "failed_attempt", reason="Nobody home")
    post_event(client, auth, "LM-2", "failed_attempt", reason="Nobody home")
    srv.dispatcher.drain()
    [telegram] = providers.telegram_calls("sendMessage")
    assert "We couldn't deliver your order LM-1. Reason: Nobody home." in telegram.value("text")
    keyboard = json.loads(telegram.value("reply_markup"))["inline_keyboard"]
    payloads = [button["callback_data"] for row in keyboard for button in row]
    assert payloads == ["/reschedule", '/change_address{"option": "neighbour"}',
                        '/change_address{"option": "pickup_point"}']
    [sms] = bodies(providers)
    assert "1. Another day\n2. Leave it with a neighbour\n3. A pickup point" in sms
    with srv.db.session() as session:  # so that "1" typed on SMS means "Another day"
        from db.models import Conversation

        state = session.scalar(select(Conversation.state).where(Conversation.address == "+15557770002"))
    assert state["buttons"][0] == ["Another day", "/reschedule"]


def test_an_event_for_an_unknown_order_is_a_404_and_sends_nothing(client, srv, providers, auth):
    response = client.post("/api/v1/orders/NOPE/events", json={"type": "out_for_delivery"}, headers=auth)
    assert response.status_code == 404 and response.get_json()["error"]
    srv.dispatcher.drain()
    assert providers.requests == []
    with srv.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Notification)) == 0


def test_an_event_out_of_order_is_stored_but_never_notified_backwards(client, srv, providers, auth):
    put_order(client, auth)
    delivered = post_event(client, auth, "LM-1", "delivered", occurred_at="2026-01-02T15:00:00Z")
    assert delivered["applied"] is True
    late = post_event(client, auth, "LM-1", "out_for_delivery", occurred_at="2026-01-02T09:00:00Z")
    later = post_event(client, auth, "LM-1", "out_for_delivery", occurred_at="2026-01-02T16:00:00Z")
    assert late["applied"] is False and later["applied"] is False
    srv.dispatcher.drain()
    assert len(providers.twilio_messages()) == 1 and "has been delivered" in bodies(providers)[0]
    with srv.db.session() as session:
        assert session.scalar(select(func.count()).select_from(OrderEvent)) == 3
    assert [n[0] for n in notifications(srv)] == ["delivered"]


def test_notifications_reach_a_telegram_only_customer_in_their_language(client, srv, providers, auth):
    put_order(client, auth, phone=None, telegram=4242, locale="es")
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
    srv.dispatcher.drain()
    [sent] = providers.telegram_calls("sendMessage")
    assert sent.value("chat_id") == "4242"
    text = sent.value("text")
    window = eta_window(text)
    assert "LM-1" in text and "PM" not in window and "AM" not in window  # Spanish: a 24-hour clock


def test_every_notification_is_a_recorded_outbox_message(client, srv, providers, auth):
    put_order(client, auth)
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
    with srv.db.session() as session:
        [message] = session.scalars(select(Message).where(Message.direction == "out")).all()
        assert message.data["notification"] == "out_for_delivery" and message.order_id is not None
        assert session.scalar(select(func.count()).select_from(ScheduledJob)) == 0


def test_delivered_schedules_one_rating_prompt(client, srv, providers, auth):
    put_order(client, auth)
    post_event(client, auth, "LM-1", "delivered")
    with srv.db.session() as session:
        [job] = session.scalars(select(ScheduledJob)).all()
    assert job.kind == "ratings.prompt" and job.status == "pending"
    assert run_jobs(srv_app(client), 5) == 0  # not due before 30 minutes


def srv_app(client):
    return client.application
