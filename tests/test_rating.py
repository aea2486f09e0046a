"""Ratings after delivery, through the real webhooks: the prompt, scores in any form, comments, low ratings."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from db.models import Handoff, Rating
from tests.conftest import post_telegram, post_twilio, telegram_update, twilio_params
from tests.notify_helpers import bodies, conversation, post_event, put_order, run_jobs

PHONE = "+15557770001"


def rating(srv, ref: str = "LM-1") -> tuple[int, str | None] | None:
    from db.models import Order

    with srv.db.session() as session:
        found = session.scalar(select(Rating).join(Order, Order.id == Rating.order_id).where(Order.ref == ref))
        return (found.score, found.comment) if found else None


def say(client, srv, text: str, *, whatsapp: bool = False) -> str:
    """Send an SMS (or WhatsApp) as the customer; return the bot's answer."""
    before = len(bodies_of(srv))
    assert post_twilio(client, twilio_params(PHONE, text, whatsapp=whatsapp)).status_code == 200
    srv.dispatcher.drain()
    return "\n".join(bodies_of(srv)[before:])


def bodies_of(srv) -> list[str]:
    from db.models import Message

    with srv.db.session() as session:
        return [m.text or "" for m in session.scalars(select(Message).where(Message.direction == "out")
                                                    .order_by(Message.id))]


@pytest.fixture
def delivered(app, client, srv, auth, providers):
    put_order(client, auth, team="Manhattan")
    post_event(client, auth, "LM-1", "driver_assigned", driver_ref="D-9")
    post_event(client, auth, "LM-1", "delivered")
    srv.dispatcher.drain()
    providers.clear()
    return app


def test_the_prompt_comes_half_an_hour_after_delivery_and_a_digit_is_a_rating(delivered, client, srv, providers):
    assert run_jobs(delivered, 29) == 0
    assert run_jobs(delivered, 31) == 1
    srv.dispatcher.drain()
    [prompt] = bodies(providers)
    assert prompt == "How was your delivery of order LM-1? Reply with a number from 1 (bad) to 5 (great)."
    answer = say(client, srv, "4")
    assert "Thank you for rating your delivery 4 out of 5!" in answer
    assert say(client, srv, "The driver was very friendly") .startswith("Thanks, I've passed your comment")
    assert rating(srv) == (4, "The driver was very friendly")
    with srv.db.session() as session:
        found = session.scalar(select(Rating))
        assert found.team == "Manhattan" and found.driver_id is not None


@pytest.mark.parametrize("text,score", [("⭐⭐⭐⭐⭐", 5), ("3/5", 3), ("cinco estrellas", 5), ("très bien", 4),
                                        ("👍", 5), ("terrible", 1), ("sehr gut", 4), ("two", 2)])
def test_ratings_in_stars_emoji_and_words_in_every_language(delivered, client, srv, text, score):
    run_jobs(delivered, 31)
    srv.dispatcher.drain()
    say(client, srv, text)
    assert rating(srv)[0] == score


def test_telegram_prompt_has_star_buttons_and_a_press_rates(app, client, srv, auth, providers):
    put_order(client, auth, phone=None, telegram=4242)
    post_event(client, auth, "LM-1", "delivered")
    run_jobs(app, 31)
    srv.dispatcher.drain()
    [prompt] = providers.telegram_calls("sendMessage")[-1:]
    keyboard = json.loads(prompt.value("reply_markup"))["inline_keyboard"]
    payloads = [b["callback_data"] for row in keyboard for b in row]
    assert payloads[-1] == '/rate_delivery{"rating": 5}' and len(payloads) == 5
    press = {"update_id": 777001, "callback_query": {
        "id": "cb1", "from": {"id": 4242, "is_bot": False, "first_name": "Ana", "language_code": "en"},
        "chat_instance": "1", "data": '/rate_delivery{"rating": 5}',
        "message": {"message_id": 5, "date": 1764244800, "chat": {"id": 4242, "type": "private"}, "text": "How"}}}
    assert post_telegram(client, press).status_code == 200
    assert rating(srv) == (5, None)


def test_whatsapp_prompt_is_a_numbered_list(delivered, client, srv, providers):
    put_order(client, srv_auth(delivered), "LM-2", phone="+15557770009", whatsapp=True)
    post_twilio(client, twilio_params("+15557770009", "hi", whatsapp=True))
    post_event(client, srv_auth(delivered), "LM-2", "delivered")
    run_jobs(delivered, 31)
    srv.dispatcher.drain()
    prompt = [b for b in bodies(providers) if "How was your delivery of order LM-2" in b][0]
    assert "\n1. ⭐\n2. ⭐⭐\n3. ⭐⭐⭐\n4. ⭐⭐⭐⭐\n5. ⭐⭐⭐⭐⭐" in prompt


def srv_auth(app) -> dict[str, str]:
    from bot.web.api_keys import create_api_key

    with app.extensions["lastmile"].db.session() as session:
        return {"Authorization": f"Bearer {create_api_key(session, 'second')}"}


def test_a_low_rating_asks_what_went_wrong_and_opens_a_handoff(delivered, client, srv):
    run_jobs(delivered, 31)
    srv.dispatcher.drain()
    assert "What went wrong?" in say(client, srv, "1")
    answer = say(client, srv, "The parcel was thrown over the fence")
    assert "passing you to a person" in answer
    assert rating(srv) == (1, "The parcel was thrown over the fence")
    with srv.db.session() as session:
        [handoff] = session.scalars(select(Handoff)).all()
    assert handoff.reason == "low_rating" and handoff.details["rating"] == 1
    assert handoff.details["comment"] == "The parcel was thrown over the fence" and handoff.order_id is not None
    assert conversation(srv, "sms", PHONE).handoff_active


def test_a_low_rating_without_a_comment_still_reaches_a_person(delivered, client, srv):
    run_jobs(delivered, 31)
    srv.dispatcher.drain()
    say(client, srv, "2")
    run_jobs(delivered, 31 + 31)
    with srv.db.session() as session:
        [handoff] = session.scalars(select(Handoff)).all()
    assert handoff.reason == "low_rating" and handoff.details["rating"] == 2 and handoff.details["comment"] is None


def test_not_a_rating_asks_again_once_then_lets_it_go(delivered, client, srv):
    run_jobs(delivered, 31)
    srv.dispatcher.drain()
    again = say(client, srv, "blue bananas")
    assert "Please rate your delivery from 1 (bad) to 5 (great)." in again
    third = say(client, srv, "purple monkeys")
    assert "Please rate your delivery" not in third
    assert rating(srv) is None
    assert (conversation(srv, "sms", PHONE).state or {}).get("awaiting") != "rating"


def test_a_new_rating_replaces_the_old_one(delivered, client, srv):
    run_jobs(delivered, 31)
    srv.dispatcher.drain()
    say(client, srv, "3")
    say(client, srv, "no thanks")
    say(client, srv, "/rate_delivery{\"rating\": 5}")
    assert rating(srv)[0] == 5
    with srv.db.session() as session:
        assert len(session.scalars(select(Rating)).all()) == 1


def test_no_prompt_when_already_rated(delivered, client, srv, providers):
    say(client, srv, "/rate_delivery{\"rating\": 4}")
    providers.clear()
    run_jobs(delivered, 31)
    srv.dispatcher.drain()
    assert not any("How was your delivery" in b for b in bodies(providers))


def test_rating_before_delivery_is_refused_politely(app, client, srv, auth):
    put_order(client, auth)
    answer = say(client, srv, "/rate_delivery{\"rating\": 5}")
    assert "once your order has been delivered" in answer
    assert rating(srv) is None


def test_proof_of_delivery_sends_the_photo_and_note(app, client, srv, auth, providers):
    put_order(client, auth)
    post_event(client, auth, "LM-1", "delivered", proof_of_delivery={
        "photo_url": "https://carrier.example.test/pod.jpg", "note": "Behind the blue pot"})
    srv.dispatcher.drain()
    providers.clear()
    post_twilio(client, twilio_params(PHONE, "/proof_of_delivery"))
    srv.dispatcher.drain()
    [sent] = providers.twilio_messages()
    assert "Driver's note: Behind the blue pot" in sent.value("Body")
    assert sent.form["MediaUrl"] == ["https://carrier.example.test/pod.jpg"]


def test_proof_of_delivery_asked_in_words(app, client, srv, auth, providers):
    put_order(client, auth)
    post_event(client, auth, "LM-1", "delivered", proof_of_delivery={"note": "With the doorman"})
    srv.dispatcher.drain()
    answer = say(client, srv, "where did you leave my parcel?")
    assert "Driver's note: With the doorman" in answer


def test_proof_of_delivery_before_delivery_gives_the_status(app, client, srv, auth):
    put_order(client, auth)
    post_event(client, auth, "LM-1", "out_for_delivery")
    assert "out for delivery" in say(client, srv, "/proof_of_delivery")


def test_telegram_customer_asks_for_the_photo(app, client, srv, auth, providers):
    put_order(client, auth, phone=None, telegram=4242)
    post_event(client, auth, "LM-1", "delivered", proof_of_delivery={"photo_url": "https://c.example.test/p.jpg"})
    srv.dispatcher.drain()
    providers.clear()
    post_telegram(client, telegram_update(4242, "/proof_of_delivery"))
    srv.dispatcher.drain()
    [photo] = providers.telegram_calls("sendPhoto")
    assert photo.value("photo") == "https://c.example.test/p.jpg"
