"""Driver commands over the real webhooks: ETA, arrived, delivered with a photo (MMS, WhatsApp, Telegram),
failed with a reason, help; in five languages; each an order event pushed to the carrier."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from db.models import Order, OrderEvent
from handlers.driver import parse_command, yes_or_no
from tests.conftest import PUBLIC_URL, TELEGRAM_TOKEN, TWILIO_SID, TWILIO_TOKEN
from tests.relay_helpers import (  # noqa: F401  (app_config is a fixture)
    ALICE,
    DRIVER_PHONE,
    app_config,
    code_of,
    order_of,
    signed_callbacks,
    sms,
    telegram,
    telegram_texts,
    texts_to,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("eta 15", ("eta", 15)), ("ETA: 20 min", ("eta", 20)), ("15 min", ("eta", 15)), ("llego en 10 minutos", ("eta", 10)),
    ("15", (None, None)), ("eta 999", (None, None)),
    ("arrived", ("arrived", None)), ("He llegado!", ("arrived", None)), ("je suis là", ("arrived", None)),
    ("Bin da", ("arrived", None)), ("cheguei", ("arrived", None)),
    ("delivered", ("delivered", None)), ("DELIVERED: left with the concierge", ("delivered", "left with the concierge")),
    ("entregado", ("delivered", None)), ("livré", ("delivered", None)), ("zugestellt", ("delivered", None)),
    ("failed nobody home", ("failed", "nobody home")), ("no entregado: nadie en casa", ("failed", "nadie en casa")),
    ("échec absent", ("failed", "absent")), ("nicht zugestellt niemand da", ("failed", "niemand da")),
    ("ayuda", ("help", None)), ("Hilfe", ("help", None)),
    ("at the gate, where are you?", (None, None)),
])
def test_commands_are_understood_in_five_languages(text, expected):
    assert parse_command(text) == expected


def test_yes_and_no_in_five_languages():
    assert [yes_or_no(w) for w in ("YES", "sí", "Oui", "ja", "sim")] == [True] * 5
    assert [yes_or_no(w) for w in ("no", "Non", "nein", "não")] == [False] * 4
    assert yes_or_no("maybe later") is None


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64  # what a JPEG starts with: enough to be taken for one


def served(client, url: str) -> bytes:
    """What our signed link to a stored file answers (requested through the test client)."""
    path = url.removeprefix(PUBLIC_URL)
    assert path.startswith("/media/"), url
    response = client.get(path)
    assert response.status_code == 200
    return response.data


def events(srv, ref):
    with srv.db.session() as session:
        order = session.scalar(select(Order).where(Order.ref == ref))
        return [(e.type, e.source, e.data) for e in session.scalars(
            select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id))]


def test_eta_update_becomes_an_event_with_a_window_from_now(client, srv, providers, seeded):
    code = code_of(srv, "LM-10001")
    sms(client, DRIVER_PHONE, f"#{code} eta 15")
    srv.dispatcher.drain()
    type_, source, data = events(srv, "LM-10001")[-1]
    assert (type_, source) == ("eta_updated", "driver")
    order = order_of(srv, "LM-10001")
    assert round((order.eta_end - order.eta_start).total_seconds() / 60) == 15
    assert re.match(rf"#{code} \(LM-10001\): ETA updated; the customer now expects (today|tomorrow)\b",
                    texts_to(providers, DRIVER_PHONE)[-1])
    [callback] = [c for c in signed_callbacks(providers) if c["event"]["type"] == "eta_updated"]
    assert callback["event"]["source"] == "driver" and callback["order"]["ref"] == "LM-10001"
    assert "customer" not in callback["order"]


def test_arrived_moves_the_order_to_arriving(client, srv, providers, seeded):
    sms(client, DRIVER_PHONE, f"#{code_of(srv, 'LM-10003')} arrived")
    srv.dispatcher.drain()
    assert order_of(srv, "LM-10003").status == "arriving"
    assert events(srv, "LM-10003")[-1][:2] == ("arriving", "driver")


def test_delivered_with_an_mms_photo_is_proof_of_delivery(client, srv, providers, seeded, auth):
    photo = providers.add_twilio_media(JPEG, "image/jpeg", (TWILIO_SID, TWILIO_TOKEN))
    sms(client, DRIVER_PHONE, f"#{code_of(srv, 'LM-10001')} delivered, left with the concierge", NumMedia="1",
        MediaUrl0=photo, MediaContentType0="image/jpeg")
    srv.dispatcher.drain()
    body = client.get("/api/v1/orders/LM-10001", headers=auth).get_json()["order"]
    assert body["status"] == "delivered"
    assert body["proof_of_delivery"]["note"] == "left with the concierge"
    assert served(client, body["proof_of_delivery"]["photo_url"]) == JPEG  # our copy, by a signed link
    assert body["events"][-1]["source"] == "driver"
    assert "with your photo as proof" in texts_to(providers, DRIVER_PHONE)[-1]


def test_delivered_with_a_telegram_photo_by_a_spanish_driver(client, srv, providers, seeded, auth):
    client.put("/api/v1/drivers/D-7", json={"telegram_chat_id": 7007, "locale": "es"}, headers=auth)
    photo = [{"file_id": "small-id", "file_unique_id": "s", "width": 90, "height": 90},
             {"file_id": "big-id", "file_unique_id": "b", "width": 1280, "height": 960}]
    providers.add_telegram_file("big-id", JPEG, TELEGRAM_TOKEN)
    telegram(client, 7007, "", photo=photo, caption=f"#{code_of(srv, 'LM-10002')} entregado")
    srv.dispatcher.drain()
    body = client.get("/api/v1/orders/LM-10002", headers=auth).get_json()["order"]
    assert served(client, body["proof_of_delivery"]["photo_url"]) == JPEG  # resolved through getFile
    assert body["status"] == "delivered"
    # The confirmation is in Spanish when a Spanish catalog has it; the order label is always there.
    assert f"#{code_of(srv, 'LM-10002')} (LM-10002)" in telegram_texts(providers, 7007)[-1]


def test_delivered_with_a_whatsapp_image(client, srv, providers, seeded, auth):
    client.put("/api/v1/drivers/D-7", json={"whatsapp": True}, headers=auth)
    photo = providers.add_twilio_media(JPEG, "image/jpeg", (TWILIO_SID, TWILIO_TOKEN))
    sms(client, DRIVER_PHONE, f"#{code_of(srv, 'LM-10003')} delivered", whatsapp=True, NumMedia="1",
        MediaUrl0=photo, MediaContentType0="image/jpeg")
    srv.dispatcher.drain()
    assert order_of(srv, "LM-10003").proof_photo_url.startswith("media:")
    assert texts_to(providers, DRIVER_PHONE, whatsapp=True)


def test_failed_needs_a_reason_and_then_records_it(client, srv, providers, seeded):
    code = code_of(srv, "LM-10001")
    sms(client, DRIVER_PHONE, f"#{code} failed")
    srv.dispatcher.drain()
    assert "please add the reason" in texts_to(providers, DRIVER_PHONE)[-1]
    assert order_of(srv, "LM-10001").status == "out_for_delivery"
    sms(client, DRIVER_PHONE, f"#{code} failed nobody home, call 555 123 4567")
    srv.dispatcher.drain()
    order = order_of(srv, "LM-10001")
    assert order.status == "failed_attempt"
    assert order.status_reason == "nobody home, call [number hidden]"


def test_a_command_on_a_delivered_order_changes_nothing(client, srv, providers, seeded, auth):
    code = code_of(srv, "LM-10001")
    sms(client, DRIVER_PHONE, f"#{code} delivered")
    sms(client, DRIVER_PHONE, f"#{code} arrived")
    srv.dispatcher.drain()
    assert order_of(srv, "LM-10001").status == "delivered"
    assert "nothing changed" in texts_to(providers, DRIVER_PHONE)[-1]


def test_help_lists_the_commands(client, srv, providers, seeded):
    sms(client, DRIVER_PHONE, "help")
    srv.dispatcher.drain()
    answer = texts_to(providers, DRIVER_PHONE)[-1]
    for word in ("ETA 15", "ARRIVED", "DELIVERED", "FAILED", "YES or NO"):
        assert word in answer


def test_a_command_without_code_uses_the_last_customer(client, srv, providers, seeded):
    sms(client, ALICE, "the gate code is 4512")
    sms(client, DRIVER_PHONE, "arrived")
    srv.dispatcher.drain()
    assert order_of(srv, "LM-10001").status == "arriving"
    assert order_of(srv, "LM-10003").status == "out_for_delivery"


def test_a_shared_location_updates_the_order(client, srv, providers, seeded):
    sms(client, ALICE, "the gate code is 4512")
    sms(client, DRIVER_PHONE, "", Latitude="40.7484", Longitude="-73.9857")
    order = order_of(srv, "LM-10001")
    assert (order.location_lat, order.location_lng) == (40.7484, -73.9857)
