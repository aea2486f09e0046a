"""Helpers shared by the driver relay tests (no tests here): signed messages in, what the fakes received out."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from sqlalchemy import select

from db.models import Order
from tests.conftest import base_config, post_telegram, post_twilio, telegram_update, twilio_params

DRIVER_PHONE = "+15551239007"  # D-7 in the demo data, English, on SMS
ALICE = "+15551230001"  # LM-10001, out for delivery, English, SMS
ANA = "+15551230002"  # LM-10002, delayed (out), Spanish, WhatsApp
BEN = "+15551230003"  # LM-10003 out for delivery, LM-10004 created
CALLBACK_SECRET = "test-carrier-callback-secret"


@pytest.fixture
def app_config(database_url, providers) -> dict[str, Any]:
    """Overrides conftest's: the carrier callback points at the fake, with a known signing secret; a test
    module uses it with `from tests.relay_helpers import app_config`."""
    config = base_config(database_url, providers.url, carrier={"callback_url": providers.url + "/carrier/callback"},
                         relay={"blocked_patterns": [r"\bidiot\b", r"https?://"]})
    config["secrets"]["carrier_callback_secret"] = CALLBACK_SECRET
    return config


def sms(client, sender: str, text: str, *, whatsapp: bool = False, **extra: str) -> None:
    response = post_twilio(client, twilio_params(sender, text, whatsapp=whatsapp, **extra))
    assert response.status_code == 200, response.data


def telegram(client, chat_id: int, text: str, **update: Any) -> None:
    body = telegram_update(chat_id, text)
    body["message"].update(update)
    assert post_telegram(client, body).status_code == 200


def texts_to(providers, phone: str, *, whatsapp: bool = False) -> list[str]:
    """Bodies the fake Twilio API was asked to send to `phone`."""
    to = ("whatsapp:" if whatsapp else "") + phone
    return [r.value("Body") or "" for r in providers.twilio_messages() if r.value("To") == to]


def telegram_texts(providers, chat_id: int) -> list[str]:
    return [r.value("text") or r.value("caption") or "" for r in providers.telegram_calls()
            if str(r.value("chat_id")) == str(chat_id)]


def order_of(srv, ref: str) -> Order:
    with srv.db.session() as session:
        order = session.scalar(select(Order).where(Order.ref == ref))
        session.expunge(order)
        return order


def code_of(srv, ref: str) -> str:
    return order_of(srv, ref).short_code


def carrier_event(client, auth, ref: str, type_: str, **fields: Any):
    response = client.post(f"/api/v1/orders/{ref}/events", json={"type": type_, **fields}, headers=auth)
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def signed_callbacks(providers) -> list[dict[str, Any]]:
    """Callbacks the fake carrier received, each checked for a valid HMAC signature over the raw body."""
    out = []
    for record in providers.callbacks():
        if record.path != "/carrier/callback":
            continue
        expected = "sha256=" + hmac.new(CALLBACK_SECRET.encode(), record.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(record.headers.get("X-Lastmile-Signature", ""), expected)
        body = json.loads(record.body)
        assert record.headers.get("Idempotency-Key") == body["idempotency_key"]
        assert record.headers.get("X-Lastmile-Timestamp") == str(body["sent_at"])
        out.append(body)
    return out


def drain_until(srv, providers, predicate, timeout: float = 15.0) -> None:
    """Sweep the outbox (retries are due after a short backoff in tests) until `predicate()` holds; the
    deadline is generous for a loaded 2-core machine, the loop returns as soon as it holds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        srv.dispatcher.drain()
        if predicate():
            return
        time.sleep(0.03)
    raise AssertionError("condition not reached")
