"""End to end: "where is my order?" over SMS, WhatsApp and Telegram, in English and Spanish,
from the signed webhook to the fake provider API; identity proof and lock-out; STOP/START."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db.models import Conversation, Message
from tests.conftest import post_telegram, post_twilio, telegram_update, twilio_params
from tests.messages import eta_window


def sms(client, srv, providers, sender, text, *, whatsapp=False) -> str:
    """Send one signed Twilio webhook; return the text the fake Twilio API received in reply."""
    before = len(providers.twilio_messages())
    assert post_twilio(client, twilio_params(sender, text, whatsapp=whatsapp)).status_code == 200
    srv.dispatcher.drain()
    new = providers.twilio_messages()[before:]
    assert len(new) == 1, [r.value("Body") for r in new]
    return new[0].value("Body")


def telegram(client, srv, providers, chat_id, text, language_code="en") -> str:
    before = len(providers.telegram_calls("sendMessage"))
    assert post_telegram(client, telegram_update(chat_id, text, language_code=language_code)).status_code == 200
    srv.dispatcher.drain()
    new = providers.telegram_calls("sendMessage")[before:]
    assert len(new) == 1
    return new[0].value("text")


def test_english_customer_on_sms(client, srv, providers, seeded):
    body = sms(client, srv, providers, "+15551230001", "hi where is my parcel??")
    assert "Your order LM-10001 is out for delivery." in body
    assert "Expected today" in body or "Expected tomorrow" in body
    assert "AM" in eta_window(body) or "PM" in eta_window(body)  # 12-hour clock in English, in New York time
    assert "https://bot.example.test/t/" in body


def test_spanish_customer_on_whatsapp(client, srv, providers, seeded):
    body = sms(client, srv, providers, "+15551230002", "hola, ¿dónde está mi pedido?", whatsapp=True)
    assert "Tu pedido LM-10002 lleva retraso." in body
    assert "Motivo: heavy traffic." in body and "Nueva estimación" in body
    assert "Síguelo aquí: https://bot.example.test/t/" in body
    window = eta_window(body)
    assert "AM" not in window and "PM" not in window  # 24-hour clock in Spanish


def test_english_and_spanish_on_telegram(client, srv, providers, seeded):
    english = telegram(client, srv, providers, 100001, "where is my order")
    assert "LM-10001 is out for delivery" in english
    spanish = telegram(client, srv, providers, 100002, "dónde está mi paquete", language_code="es")
    assert "Tu pedido LM-10002" in spanish


def test_language_follows_what_the_customer_writes(client, srv, providers, seeded):
    body = sms(client, srv, providers, "+15551230001", "hola, me puedes decir dónde está mi pedido por favor")
    assert "Tu pedido LM-10001 está en reparto." in body


def test_several_active_orders_are_listed_and_one_is_chosen(client, srv, providers, seeded):
    body = sms(client, srv, providers, "+15551230003", "where is my order")
    assert "2 orders on the way" in body
    assert "1. LM-10003" in body and "2. LM-10004" in body  # buttons as a numbered list on SMS
    body = sms(client, srv, providers, "+15551230003", "2")
    assert "LM-10004" in body and "being prepared" in body


def test_unknown_sender_proves_the_order_with_number_and_postcode(client, srv, providers, seeded):
    stranger = "+15557770000"
    body = sms(client, srv, providers, stranger, "where is my order?")
    assert "order number" in body and "postcode" in body
    body = sms(client, srv, providers, stranger, "LM-10001 10001")
    assert "LM-10001 is out for delivery" in body
    # Once proven, the conversation may ask again without proving.
    body = sms(client, srv, providers, stranger, "where is my order?")
    assert "LM-10001 is out for delivery" in body


def test_an_order_number_alone_asks_for_the_postcode(client, srv, providers, seeded):
    stranger = "+15557770001"
    body = sms(client, srv, providers, stranger, "where is order LM-10001")
    assert "postcode" in body and "LM-10001" in body and "out for delivery" not in body
    body = sms(client, srv, providers, stranger, "10001")
    assert "LM-10001 is out for delivery" in body


def test_failed_proof_never_reveals_whether_the_order_exists(client, srv, providers, seeded):
    wrong_postcode = sms(client, srv, providers, "+15557770002", "LM-10001 99999")
    no_such_order = sms(client, srv, providers, "+15557770003", "LM-99999 99999")
    assert wrong_postcode == no_such_order
    assert "don't match" in wrong_postcode and "LM-10001" not in wrong_postcode


def test_five_failed_proofs_lock_the_sender_out(client, srv, providers, seeded):
    stranger = "+15557770004"
    for i in range(5):
        sms(client, srv, providers, stranger, f"LM-1000{i} 0000{i}")
    body = sms(client, srv, providers, stranger, "LM-10001 10001")  # right this time, but locked
    assert "Too many attempts" in body and "out for delivery" not in body
    other = sms(client, srv, providers, "+15557770005", "LM-10001 10001")  # others are not affected
    assert "out for delivery" in other


def test_stop_is_honoured_until_start(client, srv, providers, seeded):
    body = sms(client, srv, providers, "+15551230001", "STOP")
    assert "won't receive any more messages" in body
    before = len(providers.twilio_messages())
    assert post_twilio(client, twilio_params("+15551230001", "where is my order?")).status_code == 200
    srv.dispatcher.drain()
    assert len(providers.twilio_messages()) == before  # stored, not answered
    with srv.db.session() as session:
        assert session.scalar(select(Conversation.opted_out)) is True
        assert session.query(Message).filter_by(direction="in").count() == 2
    body = sms(client, srv, providers, "+15551230001", "START")
    assert "subscribed again" in body
    assert "out for delivery" in sms(client, srv, providers, "+15551230001", "where is my order?")


@pytest.mark.parametrize(("text", "expected"), [
    ("hello", "delivery assistant"),
    ("thanks!", "welcome"),
    ("help", "I can help with your delivery"),
])
def test_greeting_thanks_and_help(client, srv, providers, seeded, text, expected):
    assert expected in sms(client, srv, providers, "+15551230001", text)


def test_change_language_is_remembered(client, srv, providers, seeded):
    body = sms(client, srv, providers, "+15551230001", "/change_language{\"language\": \"fr\"}")
    assert "français" in body
    body = sms(client, srv, providers, "+15551230001", "where is my order")
    assert "Votre commande LM-10001" in body


@pytest.mark.parametrize(("text", "expected"), [
    ("do you speak polish?", "Sorry, I can't write in Polish yet."),
    ("¿se puede en rumano?", "todavía no sé escribir en rumano"),
])
def test_a_language_we_do_not_write_is_named_and_ours_are_offered(client, srv, providers, seeded, text, expected):
    body = sms(client, srv, providers, "+15551230001", text)
    assert expected in body
    assert "Español" in body and "Deutsch" in body  # the languages we do write, as options
    # nothing changed: the next answer is still in English
    assert "Your order LM-10001" in sms(client, srv, providers, "+15551230001", "where is my order")


def test_gibberish_gets_a_clarifying_question_then_an_offer_of_a_person(client, srv, providers, seeded):
    first = sms(client, srv, providers, "+15551230001", "qwzx vbnm plok")
    assert "didn't understand" in first and "1." in first
    second = sms(client, srv, providers, "+15551230001", "zzkq mmvx trrp")
    assert "talk to a person" in second
