"""Twilio conventions for a carrier's volume: a Messaging Service instead of one sending number (its pool,
opt-out handling and encoding), and ValidityPeriod on time-critical notifications so an "arriving in 10
minutes" SMS stuck in a queue is dropped rather than delivered hours late."""

from __future__ import annotations

import pytest

from app import create_app
from bot.core.config import ConfigError, load_config
from tests.conftest import base_config, post_twilio, twilio_params
from tests.notify_helpers import eta, post_event, put_order
from tests.outbox_helpers import items, settle

SERVICE = "MG" + "1" * 32


@pytest.fixture
def app_config(database_url, providers):
    return base_config(database_url, providers.url, channels={"twilio": {
        "messaging_service_sid": SERVICE, "timeout": 1}}, outbox={"reconcile_after": 0.2, "lease_seconds": 3})


def test_replies_go_through_the_messaging_service_not_a_number(client, srv, providers, seeded):
    assert post_twilio(client, twilio_params("+15551230001", "where is my order?")).status_code == 200
    srv.dispatcher.drain()
    [sent] = providers.twilio_messages()
    assert sent.value("MessagingServiceSid") == SERVICE and sent.value("From") is None
    assert sent.value("ValidityPeriod") is None  # a reply to the customer: Twilio's default


def test_time_critical_notifications_carry_a_validity_period(client, srv, providers, auth):
    put_order(client, auth)
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
    post_event(client, auth, "LM-1", "arriving", stops_away=1)
    srv.dispatcher.drain()
    periods = [m.value("ValidityPeriod") for m in providers.twilio_messages()]
    assert periods == ["3600", "600"]  # notifications.expires_after in config.yml


@pytest.mark.parametrize("fault", ["accept_then_reset", "accept_then_silent"])
def test_an_ambiguous_send_through_the_service_is_found_by_recipient_and_service(srv, providers, fault, seeded,
                                                                                 client):
    """With a Messaging Service the sending number is Twilio's choice: the lookup lists by recipient and
    matches the service, and the message is not sent twice."""
    providers.silent_seconds = 2.5
    providers.fault_next(fault)
    assert post_twilio(client, twilio_params("+15551230001", "where is my order?")).status_code == 200
    settle(srv)
    [accepted] = providers.accepted
    [item] = [i for i in items(srv) if i.kind == "message"]
    assert (item.status, item.provider_id) == ("sent", accepted.sid)
    assert accepted.messaging_service_sid == SERVICE
    lookup = providers.twilio_lookups()[0].query
    assert lookup["To"] == ["+15551230001"] and "From" not in lookup


def test_whatsapp_has_its_own_service(database_url, providers):
    app = create_app(base_config(database_url, providers.url, channels={"twilio": {
        "whatsapp_messaging_service_sid": "MG" + "2" * 32}}))
    try:
        channels = app.extensions["lastmile"].channels
        assert channels["whatsapp"].messaging_service_sid == "MG" + "2" * 32
        assert channels["sms"].messaging_service_sid == ""  # SMS still from sms_from
    finally:
        app.extensions["lastmile"].db.dispose()


@pytest.mark.parametrize("seconds", [0, 36001, "soon", True])
def test_a_validity_period_twilio_would_refuse_stops_start_up(tmp_path, seconds):
    path = tmp_path / "bad.yml"
    path.write_text(f"notifications:\n  expires_after:\n    arriving: {seconds if seconds is not True else 'true'}\n")
    with pytest.raises(ConfigError) as info:
        load_config(environ={"LASTMILE_CONFIG": str(path)})
    assert "notifications.expires_after.arriving" in str(info.value)
