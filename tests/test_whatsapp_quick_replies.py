"""Native WhatsApp quick-reply buttons where a Twilio Content API quick-reply template is configured for the
question: sent as ContentSid + ContentVariables instead of a numbered list; a tap comes back as ButtonPayload."""

from __future__ import annotations

import json

import pytest

from tests.conftest import base_config, post_twilio, twilio_params
from tests.notify_helpers import eta, post_event, put_order

ANA = "+15557770001"
QUICK_ES = "HX" + "a" * 32
QUICK_DEFAULT = "HX" + "b" * 32


@pytest.fixture
def app_config(database_url, providers):
    return base_config(database_url, providers.url, notifications={"whatsapp_quick_replies": {
        "failed_attempt": {"es": QUICK_ES, "default": QUICK_DEFAULT}}})


def to_ana(providers) -> list:
    return [r for r in providers.twilio_messages() if r.value("To") == "whatsapp:" + ANA]


def test_a_question_with_options_goes_as_quick_reply_buttons_and_a_tap_answers_it(client, srv, providers, auth):
    put_order(client, auth, phone=ANA, whatsapp=True, locale="es")
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(30))
    assert post_twilio(client, twilio_params(ANA, "hola", whatsapp=True)).status_code == 200  # window open
    srv.dispatcher.drain()
    providers.clear()
    post_event(client, auth, "LM-1", "failed_attempt", reason="Nadie en casa")
    srv.dispatcher.drain()
    [sent] = to_ana(providers)
    assert sent.value("ContentSid") == QUICK_ES and not sent.value("Body")
    variables = json.loads(sent.value("ContentVariables"))
    assert "Nadie en casa" in variables["1"]
    assert [variables[k] for k in ("3", "5", "7")] == [
        "/reschedule", '/change_address{"option": "neighbour"}', '/change_address{"option": "pickup_point"}']
    assert all(variables[k] for k in ("2", "4", "6")) and "8" not in variables
    # Ana taps the first button: Twilio posts its id as ButtonPayload.
    providers.clear()
    tap = twilio_params(ANA, variables["2"], whatsapp=True, ButtonText=variables["2"], ButtonPayload="/reschedule")
    assert post_twilio(client, tap).status_code == 200
    srv.dispatcher.drain()
    [answer] = to_ana(providers)
    assert answer.value("Body") and "?" in answer.value("Body")  # the reschedule question, as free text


def test_without_a_quick_reply_template_the_options_are_a_numbered_list(client, srv, providers, auth):
    put_order(client, auth, phone=ANA, whatsapp=True, locale="en")
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(30))
    assert post_twilio(client, twilio_params(ANA, "hello", whatsapp=True)).status_code == 200
    srv.dispatcher.drain()
    srv.config["notifications"]["whatsapp_quick_replies"]["failed_attempt"] = ""
    providers.clear()
    post_event(client, auth, "LM-1", "failed_attempt", reason="Nobody home")
    srv.dispatcher.drain()
    [sent] = to_ana(providers)
    assert not sent.value("ContentSid") and "\n1. Another day" in sent.value("Body")
