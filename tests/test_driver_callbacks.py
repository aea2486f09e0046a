"""Signed carrier callbacks for changes made through the bot: HMAC, idempotency key, retries with backoff
through the outbox, never lost, never twice in effect; the carrier's own events are not echoed."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy import select

from db.models import OutboxItem
from tests.conftest import base_config, post_twilio, twilio_params
from tests.relay_helpers import (  # noqa: F401  (app_config is a fixture)
    DRIVER_PHONE,
    app_config,
    carrier_event,
    code_of,
    drain_until,
    signed_callbacks,
    sms,
)


def webhook_rows(srv) -> list[OutboxItem]:
    with srv.db.session() as session:
        rows = session.scalars(select(OutboxItem).where(OutboxItem.kind == "webhook").order_by(OutboxItem.id)).all()
        session.expunge_all()
        return list(rows)


def test_a_driver_event_reaches_the_carrier_signed_with_an_idempotency_key(client, srv, providers, seeded):
    sms(client, DRIVER_PHONE, f"#{code_of(srv, 'LM-10001')} arrived")
    srv.dispatcher.drain()
    [callback] = signed_callbacks(providers)  # the helper verifies the HMAC over the raw body
    [record] = [r for r in providers.callbacks() if r.path == "/carrier/callback"]
    assert record.headers["Content-Type"] == "application/json"
    assert callback["idempotency_key"].startswith("lastmile-event-")
    assert callback["event"]["type"] == "arriving" and callback["event"]["source"] == "driver"
    assert callback["order"]["ref"] == "LM-10001" and callback["order"]["status"] == "arriving"
    assert "+1555" not in record.body.decode()  # no phone numbers in callbacks


def test_a_500_is_retried_with_the_same_body_and_key(client, srv, providers, seeded):
    providers.fail_next(500, {"error": "down"}, path="/carrier/callback")
    sms(client, DRIVER_PHONE, f"#{code_of(srv, 'LM-10001')} eta 20")
    drain_until(srv, providers, lambda: len([r for r in providers.callbacks() if r.path == "/carrier/callback"]) == 2)
    first, second = [r for r in providers.callbacks() if r.path == "/carrier/callback"]
    assert first.body == second.body
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert len(signed_callbacks(providers)) == 2
    [row] = webhook_rows(srv)
    assert (row.status, row.attempts) == ("sent", 2)


def test_a_redelivered_driver_webhook_has_one_event_and_one_callback(client, srv, providers, seeded):
    params = twilio_params(DRIVER_PHONE, f"#{code_of(srv, 'LM-10001')} arrived")
    assert post_twilio(client, params).status_code == 200
    assert post_twilio(client, params).status_code == 200
    srv.dispatcher.drain()
    assert len(signed_callbacks(providers)) == 1
    assert len(webhook_rows(srv)) == 1


def test_the_carriers_own_events_are_not_echoed_back(client, srv, providers, seeded, auth):
    carrier_event(client, auth, "LM-10001", "arriving")
    srv.dispatcher.drain()
    assert signed_callbacks(providers) == []
    assert webhook_rows(srv) == []


def test_an_unreachable_carrier_is_retried_and_the_callback_kept(database_url, providers, seeded_unreachable):
    srv, client = seeded_unreachable
    sms(client, DRIVER_PHONE, f"#{code_of(srv, 'LM-10001')} arrived")
    srv.dispatcher.drain()
    [row] = webhook_rows(srv)
    assert row.status == "pending" and row.attempts >= 1
    assert "unreachable" in row.last_error
    assert row.payload["headers"]["X-Lastmile-Signature"].startswith("sha256=")


@pytest.fixture
def seeded_unreachable(database_url, providers):
    """An app whose carrier callback URL points at a closed local port."""
    from app import create_app
    from bot.domain.demo_orders import seed

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = base_config(database_url, providers.url, carrier={"callback_url": f"http://127.0.0.1:{port}/cb"},
                         outbox={"backoff_base": 30.0, "backoff_max": 60.0})
    config["secrets"]["carrier_callback_secret"] = "s3cret"
    application = create_app(config)
    srv = application.extensions["lastmile"]
    with srv.db.session() as session:
        seed(session)
    yield srv, application.test_client()
    srv.dispatcher.stop()
    srv.db.dispose()


def test_without_a_callback_url_nothing_is_queued(database_url, providers):
    from app import create_app
    from bot.domain.demo_orders import seed

    application = create_app(base_config(database_url, providers.url))
    srv = application.extensions["lastmile"]
    try:
        with srv.db.session() as session:
            seed(session)
        sms(application.test_client(), DRIVER_PHONE, f"#{code_of(srv, 'LM-10001')} arrived")
        assert webhook_rows(srv) == []
    finally:
        srv.dispatcher.stop()
        srv.db.dispose()
