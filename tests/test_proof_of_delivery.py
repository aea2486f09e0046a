"""Proof of delivery beyond the photo: the recipient's signature (an image) and the parcel's scanned barcode,
from the driver (DELIVERED with two pictures, SIGNATURE later, BARCODE in the text) and from the carrier's API;
stored with the photo, shown on the tracking page, in the order API and to the customer who asks."""

from __future__ import annotations

import pytest

from handlers.driver import parse_command, split_barcode
from tests.conftest import TELEGRAM_TOKEN, TWILIO_SID, TWILIO_TOKEN
from tests.relay_helpers import (  # noqa: F401  (app_config is a fixture)
    DRIVER_PHONE,
    app_config,
    carrier_event,
    code_of,
    order_of,
    sms,
    telegram,
    telegram_texts,
    texts_to,
)

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64
SIGNATURE_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def served(client, url: str) -> bytes:
    """What our signed link to a stored file answers (requested through the test client)."""
    response = client.get(path_of(url))
    assert response.status_code == 200, url
    return response.data


@pytest.mark.parametrize(("text", "barcode", "note"), [
    ("barcode 00340434161234567890 porch", "00340434161234567890", "porch"),
    ("porch, scan: JJD000390007", "JJD000390007", "porch"),
    ("código de barras 1Z999AA10123456784 en la puerta", "1Z999AA10123456784", "en la puerta"),
    ("left with the concierge", None, "left with the concierge"),
    (None, None, None),
])
def test_the_barcode_is_taken_out_of_the_note(text, barcode, note):
    assert split_barcode(text) == (barcode, note)


def test_signature_words_in_five_languages():
    assert [parse_command(w)[0] for w in ("SIGNATURE", "signed", "firma", "signé", "Unterschrift", "assinatura")] \
        == ["signature"] * 6


def test_delivered_with_two_mms_pictures_and_a_barcode(client, srv, providers, seeded, auth):
    photo = providers.add_twilio_media(JPEG, "image/jpeg", (TWILIO_SID, TWILIO_TOKEN))
    signature = providers.add_twilio_media(SIGNATURE_PNG, "image/png", (TWILIO_SID, TWILIO_TOKEN))
    sms(client, DRIVER_PHONE, f"#{code_of(srv, 'LM-10001')} delivered barcode 00340434161234567890 porch",
        NumMedia="2", MediaUrl0=photo, MediaContentType0="image/jpeg", MediaUrl1=signature,
        MediaContentType1="image/png")
    srv.dispatcher.drain()
    order = client.get("/api/v1/orders/LM-10001", headers=auth).get_json()["order"]
    proof = order["proof_of_delivery"]
    assert order["status"] == "delivered"
    # The label's 20 digits are a barcode, not a phone number to hide; the note keeps the rest.
    assert (proof["barcode"], proof["note"]) == ("00340434161234567890", "porch")
    assert served(client, proof["photo_url"]) == JPEG
    assert served(client, proof["signature_url"]) == SIGNATURE_PNG
    assert served(client, order["events"][-1]["proof_of_delivery"]["signature_url"]) == SIGNATURE_PNG
    # The tracking page shows both pictures and the barcode.
    page = client.get(path_of(order["tracking_url"])).get_data(as_text=True)
    assert 'id="proof-signature"' in page and 'id="proof-photo"' in page
    assert "00340434161234567890" in page


def test_a_signature_sent_after_delivered_completes_the_proof_once(client, srv, providers, seeded, auth):
    client.put("/api/v1/drivers/D-7", json={"telegram_chat_id": 7008}, headers=auth)
    code = code_of(srv, "LM-10002")
    photo = [{"file_id": "parcel", "file_unique_id": "p", "width": 1280, "height": 960}]
    providers.add_telegram_file("parcel", JPEG, TELEGRAM_TOKEN)
    telegram(client, 7008, "", photo=photo, caption=f"#{code} delivered")
    srv.dispatcher.drain()
    assert order_of(srv, "LM-10002").proof_signature_url is None
    # Telegram carries one picture per message: the signature follows, captioned SIGNATURE.
    sign = [{"file_id": "sign", "file_unique_id": "g", "width": 600, "height": 200}]
    providers.add_telegram_file("sign", SIGNATURE_PNG, TELEGRAM_TOKEN)
    telegram(client, 7008, "", photo=sign, caption=f"#{code} signature")
    srv.dispatcher.drain()
    assert "signature saved" in telegram_texts(providers, 7008)[-1]
    order = client.get("/api/v1/orders/LM-10002", headers=auth).get_json()["order"]
    assert served(client, order["proof_of_delivery"]["signature_url"]) == SIGNATURE_PNG
    assert served(client, order["proof_of_delivery"]["photo_url"]) == JPEG  # the photo is kept
    assert order["status"] == "delivered"
    # A second signature does not replace the first.
    other = [{"file_id": "sign2", "file_unique_id": "h", "width": 600, "height": 200}]
    providers.add_telegram_file("sign2", JPEG, TELEGRAM_TOKEN)
    telegram(client, 7008, "", photo=other, caption=f"#{code} signature")
    srv.dispatcher.drain()
    assert "already has a signature" in telegram_texts(providers, 7008)[-1]
    order = client.get("/api/v1/orders/LM-10002", headers=auth).get_json()["order"]
    assert served(client, order["proof_of_delivery"]["signature_url"]) == SIGNATURE_PNG


def test_signature_without_a_picture_asks_for_it_and_changes_nothing(client, srv, providers, seeded):
    sms(client, DRIVER_PHONE, f"#{code_of(srv, 'LM-10001')} signature")
    srv.dispatcher.drain()
    assert "send the picture of the signature" in texts_to(providers, DRIVER_PHONE)[-1]
    assert order_of(srv, "LM-10001").status == "out_for_delivery"


def test_a_signature_before_delivered_records_the_delivery(client, srv, providers, seeded):
    signature = providers.add_twilio_media(SIGNATURE_PNG, "image/png", (TWILIO_SID, TWILIO_TOKEN))
    sms(client, DRIVER_PHONE, f"#{code_of(srv, 'LM-10001')} signed", NumMedia="1", MediaUrl0=signature,
        MediaContentType0="image/png")
    srv.dispatcher.drain()
    order = order_of(srv, "LM-10001")
    assert order.status == "delivered" and order.proof_signature_url.startswith("media:")
    assert order.proof_photo_url is None
    assert "signature saved" in texts_to(providers, DRIVER_PHONE)[-1]


def test_the_carrier_sends_signature_and_barcode_and_the_customer_is_told(client, srv, providers, seeded, auth):
    carrier_event(client, auth, "LM-10001", "delivered", proof_of_delivery={
        "photo_url": "https://cdn.carrier.example/pod/1.jpg", "signature_url": "https://cdn.carrier.example/pod/1-sig.png",
        "barcode": "JJD000390007"})
    order = client.get("/api/v1/orders/LM-10001", headers=auth).get_json()["order"]
    assert order["proof_of_delivery"] == {"photo_url": "https://cdn.carrier.example/pod/1.jpg", "note": None,
                                          "signature_url": "https://cdn.carrier.example/pod/1-sig.png",
                                          "barcode": "JJD000390007"}
    # A later delivered event adds what is missing and never overwrites what was recorded.
    carrier_event(client, auth, "LM-10001", "delivered", proof_of_delivery={
        "note": "signed by M. Diaz", "barcode": "SOMETHING-ELSE"})
    proof = client.get("/api/v1/orders/LM-10001", headers=auth).get_json()["order"]["proof_of_delivery"]
    assert (proof["note"], proof["barcode"]) == ("signed by M. Diaz", "JJD000390007")


@pytest.mark.parametrize("proof", [
    {"barcode": "has spaces in it"}, {"barcode": "x" * 129}, {"barcode": ""}, {"barcode": 12345},
    {"signature_url": "y" * 2001}, {"signature": "https://misspelt.example/s.png"},
])
def test_bad_proof_is_422_and_nothing_is_recorded(client, srv, seeded, auth, proof):
    response = client.post("/api/v1/orders/LM-10001/events", json={"type": "delivered", "proof_of_delivery": proof},
                           headers=auth)
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json" and response.get_json()["detail"]
    order = order_of(srv, "LM-10001")
    assert order.status == "out_for_delivery" and order.proof_barcode is None and order.proof_signature_url is None
