"""The Telegram webhook: secret-token header, Update parsing, recorded payloads, once-only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.models import Message, OutboxItem
from tests.conftest import post_telegram, telegram_update

PAYLOADS = sorted((Path(__file__).parent / "payloads" / "telegram").glob("*.json"))


def inbound_count(srv) -> int:
    with srv.db.session() as session:
        return session.scalar(select(func.count()).select_from(Message).where(Message.direction == "in"))


def test_update_from_a_linked_chat_is_answered_through_the_bot_api(client, srv, providers, seeded):
    response = post_telegram(client, telegram_update(100001, "where is my parcel?"))
    assert response.status_code == 200 and response.get_json() == {"ok": True}
    srv.dispatcher.drain()
    [call] = providers.telegram_calls("sendMessage")
    assert call.path == "/bot123456:TEST-telegram-token/sendMessage"
    assert str(call.value("chat_id")) == "100001"
    assert "LM-10001" in call.value("text")


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", "test-telegram-secre"])
def test_wrong_or_missing_secret_is_403_and_nothing_is_stored(client, srv, secret):
    response = post_telegram(client, telegram_update(100001, "hi"), secret=secret)
    assert response.status_code == 403
    assert inbound_count(srv) == 0


def test_malformed_json_is_400(client, srv):
    headers = {"X-Telegram-Bot-Api-Secret-Token": "test-telegram-secret"}
    response = client.post("/webhooks/telegram", data="{not json", headers=headers, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]
    response = client.post("/webhooks/telegram", json={"message": {}}, headers=headers)
    assert response.status_code == 400
    assert inbound_count(srv) == 0


def test_same_update_id_twice_has_one_effect(client, srv, providers, seeded):
    update = telegram_update(100001, "where is my parcel?", update_id=555)
    assert post_telegram(client, update).status_code == 200
    assert post_telegram(client, update).status_code == 200
    srv.dispatcher.drain()
    assert inbound_count(srv) == 1
    assert len(providers.telegram_calls("sendMessage")) == 1


@pytest.mark.parametrize("path", PAYLOADS, ids=[p.stem for p in PAYLOADS])
def test_recorded_telegram_payloads_never_give_a_500(client, srv, providers, path):
    update = json.loads(path.read_text())
    response = post_telegram(client, update)
    if "update_id" not in update:  # a bare CallbackQuery object, not an Update
        assert response.status_code == 400 and response.get_json()["error"]
        return
    assert response.status_code == 200, response.data
    stored = inbound_count(srv)
    # Inline queries are not conversation messages; everything else is stored and answered.
    is_inline = "inline_query" in update or "chosen_inline_result" in update
    assert stored == (0 if is_inline else 1)
    srv.dispatcher.drain()
    assert len(providers.telegram_calls("sendMessage")) == stored


def test_button_press_is_stored_as_a_button_and_answered(client, srv, providers, seeded):
    update = {"update_id": 777, "callback_query": {
        "id": "1", "chat_instance": "x", "data": "/track_order",
        "from": {"id": 100001, "is_bot": False, "first_name": "Alice", "language_code": "en"},
        "message": {"message_id": 5, "date": 1764244800, "chat": {"id": 100001, "type": "private"}, "text": "?"}}}
    assert post_telegram(client, update).status_code == 200
    with srv.db.session() as session:
        message = session.scalar(select(Message).where(Message.direction == "in"))
        assert (message.kind, message.intent) == ("button", "track_order")
    srv.dispatcher.drain()
    [call] = providers.telegram_calls("sendMessage")
    assert "LM-10001" in call.value("text")


def test_photo_sticker_voice_location_contact_are_answered(client, srv, providers):
    base = {"message_id": 1, "date": 1764244800, "chat": {"id": 4242, "type": "private"},
            "from": {"id": 4242, "is_bot": False, "first_name": "Ana"}}
    extras = [
        {"photo": [{"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90},
                   {"file_id": "big", "file_unique_id": "b", "width": 800, "height": 800}]},
        {"sticker": {"file_id": "st", "file_unique_id": "st", "width": 512, "height": 512, "is_animated": False,
                     "is_video": False, "type": "regular", "emoji": "👍"}},
        {"voice": {"file_id": "v", "file_unique_id": "v", "duration": 3}},
        {"location": {"latitude": 40.7, "longitude": -74.0}},
        {"contact": {"phone_number": "+15550009999", "first_name": "Neighbour"}},
    ]
    for i, extra in enumerate(extras):
        assert post_telegram(client, {"update_id": 900 + i, "message": {**base, **extra}}).status_code == 200
    with srv.db.session() as session:
        kinds = session.scalars(select(Message.kind).where(Message.direction == "in").order_by(Message.id)).all()
        photo = session.scalar(select(Message.data).where(Message.kind == "photo"))
    assert kinds == ["photo", "sticker", "voice", "location", "contact"]
    assert photo["media"][0]["url"].startswith("media:")  # our copy, downloaded after commit (tests/test_media.py)
    assert session_source(srv, photo["media"][0]["url"]) == "telegram-file:big"  # the largest size
    srv.dispatcher.drain()
    assert len(providers.telegram_calls("sendMessage")) == 5


def test_edited_message_is_stored_once_per_update(client, srv, providers):
    update = json.loads((Path(__file__).parent / "payloads" / "telegram" / "06_edited_message.json").read_text())
    assert post_telegram(client, update).status_code == 200
    with srv.db.session() as session:
        assert session.scalar(select(Message.kind).where(Message.direction == "in")) == "edited"


def test_start_deep_link_links_the_chat_to_the_order(client, srv, providers, seeded):
    from db.models import Order

    with srv.db.session() as session:
        token = session.scalar(select(Order.tracking_token).where(Order.ref == "LM-10002"))
    assert post_telegram(client, telegram_update(5551, f"/start {token}", language_code="es")).status_code == 200
    srv.dispatcher.drain()
    assert "LM-10002" in providers.telegram_calls("sendMessage")[-1].value("text")
    # The chat now has the order without proving anything else.
    assert post_telegram(client, telegram_update(5551, "dónde está mi pedido", language_code="es")).status_code == 200
    srv.dispatcher.drain()
    assert "Tu pedido LM-10002" in providers.telegram_calls("sendMessage")[-1].value("text")


def test_start_with_an_unknown_token_just_greets(client, srv, providers):
    assert post_telegram(client, telegram_update(5552, "/start AAAAAAAAAAAAAAAAAAAAAAAAAA")).status_code == 200
    srv.dispatcher.drain()
    text = providers.telegram_calls("sendMessage")[-1].value("text")
    assert "delivery assistant" in text


# --- button presses are answered (answerCallbackQuery) ------------------------------------------
def press(chat_id: int, data: str, *, update_id: int, query_id: str, language_code: str = "en") -> dict:
    return {"update_id": update_id, "callback_query": {
        "id": query_id, "chat_instance": "-5", "data": data,
        "from": {"id": chat_id, "is_bot": False, "first_name": "Ana", "language_code": language_code},
        "message": {"message_id": 5, "date": 1764244800, "chat": {"id": chat_id, "type": "private"}, "text": "?"}}}


def test_a_button_press_is_answered_in_the_webhook_reply_with_no_call_of_ours(client, srv, providers):
    # Telegram's own example of a callback_query Update (from its webhook guide), as the Bot API posts it.
    update = json.loads((Path(__file__).parent / "payloads" / "telegram" / "13_callback_query.json").read_text())
    response = post_telegram(client, update)
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == {"method": "answerCallbackQuery", "callback_query_id": "4382bfdwdsb323b2d9"}
    assert inbound_count(srv) == 1
    srv.dispatcher.drain()
    assert providers.telegram_calls("answerCallbackQuery") == []  # Telegram runs the method named in our reply
    # A plain message is still acknowledged with {"ok": true}, not a method.
    assert post_telegram(client, telegram_update(1111111, "hi")).get_json() == {"ok": True}


@pytest.mark.parametrize("locale,toast", [("en", "Thanks!"), ("es", "¡Gracias!"), ("fr", "Merci !"),
                                          ("de", "Danke!"), ("pt", "Obrigado!")])
def test_a_rating_button_is_thanked_in_the_customers_language(client, srv, auth, providers, locale, toast):
    from tests.notify_helpers import post_event, put_order

    put_order(client, auth, phone=None, telegram=4242, locale=locale)
    post_event(client, auth, "LM-1", "delivered")
    update = press(4242, '/rate_delivery{"rating": 5}', update_id=777002, query_id="cb-rate", language_code="en")
    response = post_telegram(client, update)
    assert response.status_code == 200
    assert response.get_json() == {"method": "answerCallbackQuery", "callback_query_id": "cb-rate", "text": toast}
    # Telegram redelivers the same update: answered again (the spinner may still turn), no second thanks.
    again = post_telegram(client, update)
    assert again.get_json() == {"method": "answerCallbackQuery", "callback_query_id": "cb-rate"}
    assert inbound_count(srv) == 1


@pytest.mark.slow
def test_poll_mode_answers_the_button_press_through_the_bot_api(tmp_path, providers):
    import os
    import subprocess
    import sys

    from tests.conftest import TELEGRAM_SECRET, TELEGRAM_TOKEN

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": f"sqlite:///{tmp_path}/poll.db",
           "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN, "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
           "TELEGRAM_API_BASE_URL": providers.url, "LASTMILE_PUBLIC_BASE_URL": "https://bot.example.test"}

    def lastmile(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, env=env,
                              timeout=180)

    assert lastmile("demo", "seed").returncode == 0
    providers.updates = [press(100001, "/track_order", update_id=42, query_id="cb-poll")]
    result = lastmile("telegram", "poll", "--once")
    assert result.returncode == 0, result.stderr
    [answer] = providers.telegram_calls("answerCallbackQuery")
    assert answer.value("callback_query_id") == "cb-poll" and answer.value("text") is None
    [reply] = providers.telegram_calls("sendMessage")
    assert "LM-10001" in reply.value("text")


def session_source(srv, reference: str) -> str | None:
    from db.models import MediaFile

    with srv.db.session() as session:
        return session.get(MediaFile, int(reference.removeprefix("media:"))).source


# --- message ids count per chat --------------------------------------------------------------------
def test_replies_in_two_chats_with_the_same_message_id_are_both_recorded_once(client, srv, providers):
    # Telegram numbers a bot's messages within each chat: both chats' first replies are message 1.
    for update_id, chat_id in ((1, 7101), (2, 7102)):
        assert post_telegram(client, telegram_update(chat_id, "hi", update_id=update_id)).status_code == 200
    srv.dispatcher.drain()
    assert sorted(str(c.value("chat_id")) for c in providers.telegram_calls("sendMessage")) == ["7101", "7102"]
    with srv.db.session() as session:
        sent = session.execute(select(Message.provider_id, Message.status).where(Message.direction == "out")
                               .order_by(Message.provider_id)).all()
    assert [tuple(row) for row in sent] == [("7101:1", "sent"), ("7102:1", "sent")]
    # An inbound update whose id is a sent message's number is a new message, not a duplicate.
    assert post_telegram(client, telegram_update(7101, "thanks", update_id=1)).status_code == 200  # redelivery
    assert post_telegram(client, telegram_update(7102, "thanks", update_id=3)).status_code == 200
    assert inbound_count(srv) == 3


def test_a_sent_message_whose_id_is_already_stored_is_not_sent_again(client, srv, providers):
    # Rows written before ids carried their chat (or any clash): the send happened, so it is recorded as
    # sent, without the clashing id, and never repeated.
    assert post_telegram(client, telegram_update(7201, "hi", update_id=11)).status_code == 200
    with srv.db.session() as session:
        conversation_id = session.scalar(select(Message.conversation_id).where(Message.direction == "in"))
        session.add(Message(conversation_id=conversation_id, direction="in", channel="telegram",
                            provider_id="7201:1", text="legacy"))
    srv.dispatcher.drain()
    srv.dispatcher.drain()
    assert len(providers.telegram_calls("sendMessage")) == 1
    with srv.db.session() as session:
        reply = session.scalars(select(Message).where(Message.direction == "out")).one()
        assert (reply.status, reply.provider_id) == ("sent", None)
        assert session.scalars(select(OutboxItem.status)).all() == ["sent"]
