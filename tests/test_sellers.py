"""Sellers told, end to end: two brands each with order 1001; a failed attempt of brand A's order reaches brand A's
seller by email (the local SMTP server) and by a webhook signed with its own secret (checked with the
`standardwebhooks` library), never brand B's; the customer's choice follows; low ratings are told, good ones not;
a redelivered event tells nobody twice; a failing receiver is retried; bad seller settings are refused whole."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bot.testing.config import base_config
from db.models import Brand, OutboxAttempt, OutboxItem
from tests.email_helpers import email_settings, smtp  # noqa: F401  (smtp is a fixture)
from tests.notify_helpers import local_hour_zone, run_jobs
from tests.outbox_helpers import make_due, settle_retrying
from tests.relay_helpers import drain_until, sms, texts_to

ANA, BEA = "+15557770001", "+15557770002"
REASON = "nobody home, gate locked"


@pytest.fixture
def app_config(database_url, providers, smtp):
    return base_config(database_url, providers.url, channels={"email": email_settings(smtp.port)})


def seller(providers, ref: str, **extra) -> dict:
    return {"email": f"ops@{ref}.example", "webhook_url": f"{providers.url}/seller/{ref}", **extra}


@pytest.fixture
def shops(client, auth, providers) -> dict[str, str]:
    """Brands acme (Spanish-speaking seller) and bolt, each with a seller and an order 1001; their secrets."""
    secrets = {}
    for ref, name, locale in (("acme", "Acme Shoes", "es"), ("bolt", "Bolt Bikes", "en")):
        response = client.put(f"/api/v1/brands/{ref}", json={"name": name, "default_locale": locale,
                                                             "seller": seller(providers, ref)}, headers=auth)
        assert response.status_code == 201, response.get_json()
        secrets[ref] = response.get_json()["brand"]["seller"]["webhook_secret"]
    for ref, phone in (("acme", ANA), ("bolt", BEA)):
        body = {"brand": ref, "customer": {"name": "Ana", "phone": phone, "locale": "en",
                                           "timezone": local_hour_zone(12)},
                "address": {"line1": "1 Main St", "postcode": "10001", "country": "US"}}
        response = client.put("/api/v1/orders/1001", json=body, headers=auth)
        assert response.status_code == 201, response.get_json()
    return secrets


def event(client, auth, brand: str, type_: str, status: int = 201, **fields):
    response = client.post(f"/api/v1/orders/1001/events?brand={brand}", json={"type": type_, **fields},
                           headers=auth)
    assert response.status_code == status, response.get_json()


def hooks(providers, ref: str) -> list:
    return [r for r in providers.callbacks() if r.path == f"/seller/{ref}"]


def verified(call, secret: str) -> dict:
    headers = {k.lower(): v for k, v in call.headers.items()}
    return Webhook(secret).verify(call.body, headers)


def mails_to(smtp, address: str) -> list:
    return [m for m in smtp.mailbox.messages if m["To"] == address]


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def test_a_failed_attempt_reaches_its_brands_seller_by_email_and_signed_webhook_then_the_choice(
        client, srv, auth, providers, smtp, shops):
    event(client, auth, "acme", "out_for_delivery")
    event(client, auth, "acme", "failed_attempt", reason=REASON, idempotency_key="carrier-evt-7")
    settle_retrying(srv)
    [call] = hooks(providers, "acme")
    message = verified(call, shops["acme"])
    assert message["type"] == "seller.failed_attempt"
    data = message["data"]
    assert data["brand"] == "acme" and data["order"]["ref"] == "1001" and data["event"]["reason"] == REASON
    assert data["order"]["tracking_url"].startswith("https://") and ANA not in call.body.decode()
    assert {k.lower(): v for k, v in call.headers.items()}["idempotency-key"] == data["idempotency_key"]
    with pytest.raises(WebhookVerificationError):  # brand B's secret does not verify brand A's webhook
        verified(call, shops["bolt"])
    [mail] = mails_to(smtp, "ops@acme.example")
    body = text_of(mail)
    assert mail["Subject"] == "Acme Shoes: falló el intento de entrega del pedido 1001"  # the seller's language
    assert REASON in body and data["order"]["tracking_url"] in body and "Acme Shoes" in body
    assert mail.get_body(("html",)) is not None
    assert hooks(providers, "bolt") == [] and mails_to(smtp, "ops@bolt.example") == []

    # The carrier delivers the same event again: nobody is told twice.
    event(client, auth, "acme", "failed_attempt", status=200, reason=REASON, idempotency_key="carrier-evt-7")
    settle_retrying(srv)
    assert len(hooks(providers, "acme")) == 1 and len(mails_to(smtp, "ops@acme.example")) == 1

    # The customer picks the pickup point (the third option of the failed-attempt message, by number on SMS).
    assert "3. A pickup point" in texts_to(providers, ANA)[-1]
    sms(client, ANA, "3")
    settle_retrying(srv)
    follow_up = verified(hooks(providers, "acme")[-1], shops["acme"])
    assert follow_up["type"] == "seller.customer_choice" and follow_up["data"]["choice"] == {"option": "pickup_point"}
    assert len(hooks(providers, "acme")) == 2
    [_, second] = mails_to(smtp, "ops@acme.example")
    assert "un punto de recogida" in text_of(second)
    assert hooks(providers, "bolt") == [] and mails_to(smtp, "ops@bolt.example") == []


def test_a_cancelled_order_is_a_delivery_exception_and_events_filter_the_kinds(client, srv, auth, providers, smtp,
                                                                               shops):
    response = client.put("/api/v1/brands/bolt", json={"name": "Bolt Bikes", "seller": seller(
        providers, "bolt", events=["delivery_exception"])}, headers=auth)
    assert response.get_json()["brand"]["seller"]["webhook_secret"] == "whsec_…" + shops["bolt"][-4:]  # kept
    event(client, auth, "bolt", "failed_attempt", reason=REASON)
    event(client, auth, "bolt", "cancelled", reason="address does not exist")
    settle_retrying(srv)
    [call] = hooks(providers, "bolt")
    message = verified(call, shops["bolt"])
    assert message["type"] == "seller.delivery_exception"
    assert message["data"]["event"]["reason"] == "address does not exist"
    [mail] = mails_to(smtp, "ops@bolt.example")
    assert mail["Subject"] == "Bolt Bikes: order 1001 will not be delivered"
    assert "Reason: address does not exist" in text_of(mail)


def deliver_and_prompt(app, client, srv, auth, brand: str) -> None:
    event(client, auth, brand, "driver_assigned", driver_ref="D-1")
    event(client, auth, brand, "delivered")
    assert run_jobs(app, 31) == 1  # the rating prompt
    srv.dispatcher.drain()


def test_a_low_rating_and_its_comment_are_told_and_a_good_one_is_not(app, client, srv, auth, providers, smtp, shops):
    deliver_and_prompt(app, client, srv, auth, "bolt")
    sms(client, BEA, "5")
    settle_retrying(srv)
    assert hooks(providers, "bolt") == [] and mails_to(smtp, "ops@bolt.example") == []

    deliver_and_prompt(app, client, srv, auth, "acme")
    sms(client, ANA, "1")
    settle_retrying(srv)
    [call] = hooks(providers, "acme")
    message = verified(call, shops["acme"])
    assert message["type"] == "seller.low_rating" and message["data"]["rating"]["score"] == 1
    sms(client, ANA, "The box was crushed")
    settle_retrying(srv)
    comment = verified(hooks(providers, "acme")[-1], shops["acme"])["data"]["rating"]
    assert comment == {"score": 1, "comment": "The box was crushed", "comment_only": True}
    first, second = mails_to(smtp, "ops@acme.example")
    assert "1" in first["Subject"] and "The box was crushed" in text_of(second)


def test_the_threshold_is_the_sellers(app, client, srv, auth, providers, smtp, shops):
    client.put("/api/v1/brands/bolt", json={"seller": seller(providers, "bolt", low_rating_at_most=4)},
               headers=auth)
    deliver_and_prompt(app, client, srv, auth, "bolt")
    sms(client, BEA, "4")
    settle_retrying(srv)
    assert verified(hooks(providers, "bolt")[0], shops["bolt"])["data"]["rating"]["score"] == 4


def test_a_receiver_answering_500_is_retried_and_told_once(client, srv, auth, providers, smtp, shops):
    providers.fail_next(500, path="/seller/acme", times=1)
    event(client, auth, "acme", "failed_attempt", reason=REASON)
    drain_until(srv, providers, lambda: (make_due(srv), len(hooks(providers, "acme")) == 2)[1])
    settle_retrying(srv)
    first, second = hooks(providers, "acme")
    assert first.body == second.body and verified(second, shops["acme"])["type"] == "seller.failed_attempt"
    with srv.db.session() as session:
        row = session.scalar(select(OutboxItem).where(OutboxItem.to_address == providers.url + "/seller/acme"))
        assert row.status == "sent"
        outcomes = session.scalars(select(OutboxAttempt.outcome).where(OutboxAttempt.outbox_id == row.id)
                                   .order_by(OutboxAttempt.id)).all()
        assert outcomes == ["error", "sent"]
    assert len(mails_to(smtp, "ops@acme.example")) == 1


def test_a_brand_without_a_seller_tells_nobody_and_nothing_breaks(client, srv, auth, providers, smtp, shops):
    assert client.put("/api/v1/brands/acme", json={"name": "Acme Shoes"}, headers=auth).status_code == 200
    event(client, auth, "acme", "failed_attempt", reason=REASON)
    settle_retrying(srv)
    assert hooks(providers, "acme") == [] and smtp.mailbox.messages == []
    assert "A pickup point" in texts_to(providers, ANA)[-1]  # the customer is told as ever
    with srv.db.session() as session:
        assert session.scalar(select(Brand.settings).where(Brand.ref == "acme")) == {}


def test_a_seller_email_only_gets_no_webhook_and_no_secret(client, srv, auth, providers, smtp, shops):
    response = client.put("/api/v1/brands/acme", json={"seller": {"email": "ops@acme.example"}}, headers=auth)
    assert response.get_json()["brand"]["seller"] == {"email": "ops@acme.example"}
    event(client, auth, "acme", "failed_attempt", reason=REASON)
    settle_retrying(srv)
    assert hooks(providers, "acme") == [] and len(mails_to(smtp, "ops@acme.example")) == 1


def test_a_secret_given_signs_and_is_only_shown_masked(client, srv, auth, providers, smtp, shops):
    mine = "whsec_" + "c2VsbGVyLXNlY3JldC1vZi1hY21lLXNob2VzLTEyMzQ="
    response = client.put("/api/v1/brands/acme", json={"seller": seller(providers, "acme", webhook_secret=mine)},
                          headers=auth)
    assert response.get_json()["brand"]["seller"]["webhook_secret"] == "whsec_…" + mine[-4:]
    assert mine not in json.dumps(client.get("/api/v1/brands/acme", headers=auth).get_json())
    event(client, auth, "acme", "failed_attempt", reason=REASON)
    settle_retrying(srv)
    assert verified(hooks(providers, "acme")[0], mine)["type"] == "seller.failed_attempt"


BAD_SELLERS = [
    ({"events": ["failed_attempt"]}, "seller"),
    ({"email": "ops@acme.example", "webhook_secret": "whsec_" + "a" * 40}, "seller.webhook_secret"),
    ({"webhook_url": "https://acme.example/h", "webhook_secret": "whsec_c2hvcnQ="}, "seller.webhook_secret"),
    ({"webhook_url": "https://acme.example/h", "webhook_secret": "plain words"}, "seller.webhook_secret"),
    ({"email": "ops@acme.example", "low_rating_at_most": 6}, "seller.low_rating_at_most"),
    ({"email": "ops@acme.example", "low_rating_at_most": "2"}, "seller.low_rating_at_most"),
    ({"email": "not an address"}, "seller.email"),
    ({"email": "ops@acme.example", "events": ["low_rating", "everything"]}, "seller.events[1]"),
    ({"email": "ops@acme.example", "webhook_url": "ftp://acme.example/h"}, "seller.webhook_url"),
    ({"email": "ops@acme.example", "webhook_url": "https://:80/h"}, "seller.webhook_url"),
    ({"email": "ops@acme.example", "webhook_url": "https://[oops/h"}, "seller.webhook_url"),
    ({"email": "ops@acme.example", "phone": "+15550001111"}, "seller.phone"),
]


@pytest.mark.parametrize(("seller_body", "field"), BAD_SELLERS, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD_SELLERS)])
def test_bad_seller_settings_are_refused_whole(client, auth, seller_body, field):
    response = client.put("/api/v1/brands/shop", json={"name": "Shop", "seller": seller_body}, headers=auth)
    assert response.status_code == 422 and response.content_type == "application/problem+json"
    problem = response.get_json()
    assert problem["detail"] and field in [d["field"] for d in problem["details"]]
    assert client.get("/api/v1/brands/shop", headers=auth).status_code == 404  # nothing stored
