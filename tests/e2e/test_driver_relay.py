"""End to end over the real webhooks and the fake providers: a customer on WhatsApp and a driver on SMS
talk through the bot without seeing each other's number; reroutes accepted and refused by the driver
reach the carrier's callback signed (retried after a 500); a delivered photo becomes proof of delivery."""

from __future__ import annotations

import hashlib
import hmac
import json

from tests.conftest import PUBLIC_URL, TWILIO_SID, TWILIO_TOKEN
from tests.messages import quoted
from tests.relay_helpers import (  # noqa: F401  (app_config is a fixture)
    ANA,
    CALLBACK_SECRET,
    DRIVER_PHONE,
    app_config,
    code_of,
    drain_until,
    sms,
    texts_to,
)


def carrier_posts(providers):
    return [r for r in providers.callbacks() if r.path == "/carrier/callback"]


def verified(record) -> dict:
    signature = record.headers["X-Lastmile-Signature"]
    expected = "sha256=" + hmac.new(CALLBACK_SECRET.encode(), record.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected)
    return json.loads(record.body)


def test_customer_on_whatsapp_and_driver_on_sms(client, srv, providers, seeded, auth):
    # The carrier registers the driver (English, SMS) and the order is already out (demo: LM-10002, delayed).
    response = client.put("/api/v1/drivers/D-7", json={"phone": DRIVER_PHONE, "locale": "en", "whatsapp": False},
                          headers=auth)
    assert response.status_code == 200
    code = code_of(srv, "LM-10002")

    # 1. A gate code from the Spanish customer on WhatsApp reaches the driver's phone on SMS.
    sms(client, ANA, "el código de la puerta es 4512", whatsapp=True)
    srv.dispatcher.drain()
    [to_driver] = texts_to(providers, DRIVER_PHONE)
    assert f"#{code} (LM-10002) delivery instructions [es]: \"el código de la puerta es 4512\"" in to_driver
    assert ANA not in to_driver and "1230002" not in to_driver
    assert len(texts_to(providers, ANA, whatsapp=True)) == 1  # the customer's confirmation

    # 2. The driver's answer reaches the customer on WhatsApp, from the bot's number, masked.
    sms(client, DRIVER_PHONE, "Estoy en la puerta, mi número es 555-123-9007")
    srv.dispatcher.drain()
    to_customer = [r for r in providers.twilio_messages() if r.value("To") == "whatsapp:" + ANA][-1]
    assert to_customer.value("From") == "whatsapp:+15550100001"
    assert "«Estoy en la puerta, mi número es [" in to_customer.value("Body")
    assert "9007" not in quoted(to_customer.value("Body")) and DRIVER_PHONE not in to_customer.value("Body")

    # 3. A reroute the driver accepts: both sides told, the carrier gets a signed event after a 500.
    sms(client, ANA, "por favor entregar en Calle Mayor 12", whatsapp=True)
    srv.dispatcher.drain()
    assert "Accept? Reply YES or NO." in texts_to(providers, DRIVER_PHONE)[-1]
    providers.fail_next(500, {"error": "carrier down"}, path="/carrier/callback")  # not the SMS sent alongside
    sms(client, DRIVER_PHONE, f"#{code} yes")
    changes = lambda: [r for r in carrier_posts(providers) if b'"address_changed"' in r.body]  # noqa: E731
    drain_until(srv, providers, lambda: len(changes()) >= 2)
    failed, retried = changes()[:2]
    assert failed.body == retried.body and failed.headers["Idempotency-Key"] == retried.headers["Idempotency-Key"]
    event = verified(retried)
    assert event["event"]["type"] == "address_changed" and event["event"]["source"] == "driver"
    assert event["order"]["address"]["line1"] == "Calle Mayor 12"
    assert "Calle Mayor 12" in texts_to(providers, ANA, whatsapp=True)[-1]
    assert texts_to(providers, DRIVER_PHONE)[-1].startswith(f"Thanks. #{code} (LM-10002): delivery changed")

    # 4. A reschedule the driver refuses: both sides told, nothing changes, nothing pushed.
    posts_before = len(carrier_posts(providers))
    sms(client, ANA, "¿pueden entregarlo mañana por la tarde?", whatsapp=True)
    srv.dispatcher.drain()
    assert "Accept? Reply YES or NO." in texts_to(providers, DRIVER_PHONE)[-1]
    sms(client, DRIVER_PHONE, "NO")
    srv.dispatcher.drain()
    assert "the customer will be told" in texts_to(providers, DRIVER_PHONE)[-1]
    assert texts_to(providers, ANA, whatsapp=True)[-1] != texts_to(providers, ANA, whatsapp=True)[-2]
    assert len(carrier_posts(providers)) == posts_before

    # 5. Delivered with a photo (MMS): proof of delivery on the order, pushed to the carrier.
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 64
    photo = providers.add_twilio_media(jpeg, "image/jpeg", (TWILIO_SID, TWILIO_TOKEN))
    sms(client, DRIVER_PHONE, f"#{code} delivered", NumMedia="1", MediaUrl0=photo, MediaContentType0="image/jpeg")
    srv.dispatcher.drain()
    order = client.get("/api/v1/orders/LM-10002", headers=auth).get_json()["order"]
    assert order["status"] == "delivered"
    # Our copy (downloaded with the account's credentials), by a signed link: the carrier can open it.
    assert client.get(order["proof_of_delivery"]["photo_url"].removeprefix(PUBLIC_URL)).data == jpeg
    assert order["instructions"] == "el código de la puerta es 4512"
    delivered = [verified(r) for r in carrier_posts(providers) if b'"delivered"' in r.body]
    assert delivered and delivered[-1]["event"]["proof_of_delivery"]["photo_url"].startswith(PUBLIC_URL + "/media/")
