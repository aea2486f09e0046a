"""Notification policies end to end: quiet hours, opt-out, the WhatsApp 24-hour window, the rate limit."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.domain.notify_policies import eta_moved, mms_capable, quiet_until
from db.models import Notification, ScheduledJob
from tests.conftest import base_config, post_twilio, twilio_params
from tests.notify_helpers import (
    NIGHT,
    bodies,
    conversation,
    eta,
    notifications,
    post_event,
    put_order,
    run_jobs,
)

TEMPLATE_SID = "HX" + "a" * 32


@pytest.fixture
def app_config(database_url, providers):
    return base_config(database_url, providers.url, ratings={"enabled": False}, notifications={
        "quiet_hours": {"enabled": True},
        "rate_limit": {"per_hour": 2, "exempt": ["delivered"]},
        "whatsapp_templates": {"out_for_delivery": TEMPLATE_SID, "eta_updated": "", "delayed": "", "arriving": "",
                               "delivered": "", "failed_attempt": "", "rating_prompt": ""}})


# --- quiet hours -------------------------------------------------------------------------------
def test_at_night_a_notification_is_held_until_morning_then_sent(app, client, srv, providers, auth):
    put_order(client, auth, hour=NIGHT)
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(420))
    srv.dispatcher.drain()
    assert providers.twilio_messages() == []
    assert notifications(srv) == [("out_for_delivery", "held", "quiet_hours")]
    with srv.db.session() as session:
        [job] = session.scalars(select(ScheduledJob)).all()
        # 01:00 local -> released at 08:00 local, 7 hours on
        assert timedelta(hours=6) < job.run_at - datetime.now(UTC) <= timedelta(hours=7)
    assert run_jobs(app, 60) == 0  # still night
    assert run_jobs(app, 7 * 60 + 1) == 1
    srv.dispatcher.drain()
    [body] = bodies(providers)
    assert "out for delivery" in body
    assert notifications(srv) == [("out_for_delivery", "sent", None)]


def test_held_notifications_are_coalesced_and_stale_ones_dropped(app, client, srv, providers, auth):
    put_order(client, auth, hour=NIGHT)
    put_order(client, auth, "LM-2", hour=NIGHT)
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(420))
    post_event(client, auth, "LM-1", "delayed", reason="Snow", eta=eta(540))
    post_event(client, auth, "LM-2", "out_for_delivery", eta=eta(420))
    post_event(client, auth, "LM-2", "delivered")  # exempt: sent at once; the held one is now stale
    srv.dispatcher.drain()
    assert len(providers.twilio_messages()) == 1
    providers.clear()
    run_jobs(app, 7 * 60 + 1)
    srv.dispatcher.drain()
    [body] = bodies(providers)
    assert "LM-1 is delayed. Reason: Snow." in body
    assert notifications(srv, "LM-1") == [("out_for_delivery", "coalesced", "quiet_hours"), ("delayed", "sent", None)]
    assert notifications(srv, "LM-2")[0] == ("out_for_delivery", "superseded", "order is delivered")


# --- opt-out -------------------------------------------------------------------------------------
def test_stop_silences_notifications_and_start_brings_them_back(client, srv, providers, auth):
    put_order(client, auth)
    post_twilio(client, twilio_params("+15557770001", "STOP"))
    srv.dispatcher.drain()
    providers.clear()
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
    srv.dispatcher.drain()
    assert providers.twilio_messages() == []
    assert notifications(srv) == [("out_for_delivery", "skipped", "opted_out")]
    post_twilio(client, twilio_params("+15557770001", "START"))
    post_event(client, auth, "LM-1", "delayed", reason="Traffic")
    srv.dispatcher.drain()
    assert any("is delayed" in body for body in bodies(providers))


def test_twilio_error_21610_opts_the_number_out_of_later_notifications(client, srv, providers, auth):
    put_order(client, auth)
    providers.fail_next(400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400},
                        path="/2010-04-01")
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
    srv.dispatcher.drain()
    assert conversation(srv, "sms", "+15557770001").opted_out
    post_event(client, auth, "LM-1", "delayed", reason="Traffic")
    srv.dispatcher.drain()
    assert len(providers.twilio_messages()) == 1
    assert notifications(srv)[-1] == ("delayed", "skipped", "opted_out")


# --- the WhatsApp 24-hour window -----------------------------------------------------------------
def test_outside_the_whatsapp_window_the_approved_template_is_sent(client, srv, providers, auth):
    put_order(client, auth, whatsapp=True)
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
    srv.dispatcher.drain()
    [sent] = providers.twilio_messages()
    assert sent.value("To") == "whatsapp:+15557770001"
    assert sent.value("ContentSid") == TEMPLATE_SID and "Body" not in sent.form
    variables = json.loads(sent.value("ContentVariables"))
    assert variables["1"] == "LM-1" and variables["3"].startswith("https://bot.example.test/t/")
    assert re.match(r"(today|tomorrow)\b", variables["2"])  # the window, in words (tomorrow late at night)


def test_outside_the_window_without_a_template_the_notification_goes_by_sms(client, srv, providers, auth):
    put_order(client, auth, whatsapp=True)
    post_event(client, auth, "LM-1", "delayed", reason="Traffic")
    srv.dispatcher.drain()
    [sent] = providers.twilio_messages()
    assert sent.value("To") == "+15557770001" and "Traffic" in sent.value("Body")  # the same person, by SMS
    assert notifications(srv) == [("delayed", "sent", "sms_outside_whatsapp_window")]


def test_inside_the_window_whatsapp_gets_free_text(client, srv, providers, auth):
    put_order(client, auth, whatsapp=True)
    post_twilio(client, twilio_params("+15557770001", "hello", whatsapp=True))
    srv.dispatcher.drain()
    providers.clear()
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
    srv.dispatcher.drain()
    [sent] = providers.twilio_messages()
    assert "ContentSid" not in sent.form and "out for delivery" in sent.value("Body")


# --- rate limit ------------------------------------------------------------------------------------
def test_over_the_hourly_limit_notifications_wait_for_a_free_slot(app, client, srv, providers, auth):
    put_order(client, auth)
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
    post_event(client, auth, "LM-1", "eta_updated", eta=eta(120))
    post_event(client, auth, "LM-1", "delayed", reason="Traffic", eta=eta(180))
    post_event(client, auth, "LM-1", "delivered")  # exempt from the limit
    srv.dispatcher.drain()
    assert len(providers.twilio_messages()) == 3
    assert notifications(srv)[2] == ("delayed", "held", "rate_limit")
    run_jobs(app, 61)
    srv.dispatcher.drain()
    assert len(providers.twilio_messages()) == 3  # delivered since: "delayed" is no longer true
    assert notifications(srv)[2] == ("delayed", "superseded", "order is delivered")


def test_a_held_notification_goes_out_when_the_hour_has_passed(app, client, srv, providers, auth):
    put_order(client, auth)
    put_order(client, auth, "LM-2")  # the same customer: one conversation, one limit
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
    post_event(client, auth, "LM-2", "out_for_delivery", eta=eta(60))
    post_event(client, auth, "LM-1", "delayed", reason="Traffic", eta=eta(180))
    srv.dispatcher.drain()
    assert len(providers.twilio_messages()) == 2
    assert notifications(srv)[-1] == ("delayed", "held", "rate_limit")
    assert run_jobs(app, 30) == 0
    run_jobs(app, 61)
    srv.dispatcher.drain()
    assert "LM-1 is delayed" in bodies(providers)[-1]
    with srv.db.session() as session:
        assert session.scalars(select(Notification.status).where(Notification.kind == "delayed")).all() == ["sent"]


# --- the rules themselves ------------------------------------------------------------------------
def test_quiet_hours_cross_midnight_in_the_recipients_zone():
    settings = {"enabled": True, "start": "21:00", "end": "08:00"}
    evening = datetime(2026, 3, 10, 2, 30, tzinfo=UTC)  # 22:30 in New York (EDT)
    release = quiet_until(evening, "America/New_York", settings)
    assert release == datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # 08:00 EDT
    assert quiet_until(datetime(2026, 3, 10, 16, 0, tzinfo=UTC), "America/New_York", settings) is None
    assert quiet_until(evening, "Europe/Paris", settings) == datetime(2026, 3, 10, 7, 0, tzinfo=UTC)  # 03:30
    assert quiet_until(evening, "Asia/Tokyo", settings) is None  # 11:30 in Tokyo
    assert quiet_until(datetime(2026, 3, 10, 21, 0, tzinfo=UTC), "UTC", settings) == datetime(2026, 3, 11, 8, tzinfo=UTC)
    assert quiet_until(evening, "America/New_York", {**settings, "enabled": False}) is None


def test_mms_countries_and_eta_threshold():
    assert mms_capable("+15551230001", ["US", "CA"]) and not mms_capable("+33612345678", ["US", "CA"])
    assert mms_capable("+33612345678", ["FR"])
    t = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert not eta_moved((t, t), (t + timedelta(minutes=15), t), 15)
    assert eta_moved((t, t), (t, t + timedelta(minutes=16)), 15)
    assert eta_moved((None, None), (t, t), 15)
