"""A driver on WhatsApp whose 24-hour window has closed: with a `driver_message` template for their language
they get that approved "you have a message" template (once), and the messages wait until they answer; without
one, the messages go by SMS to the same number as before."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from db.models import Message
from tests.conftest import WHATSAPP_FROM, base_config
from tests.relay_helpers import ANA, DRIVER_PHONE, code_of, sms

ES_TEMPLATE = "HX" + "e" * 32
DEFAULT_TEMPLATE = "HX" + "d" * 32


@pytest.fixture
def app_config(database_url, providers):
    return base_config(database_url, providers.url, notifications={"whatsapp_templates": {
        "driver_message": {"es": ES_TEMPLATE, "default": DEFAULT_TEMPLATE}}})


def to_driver_on_whatsapp(providers) -> list:
    return [r for r in providers.twilio_messages() if r.value("To") == "whatsapp:" + DRIVER_PHONE]


def driver_on_whatsapp(client, auth, locale: str) -> None:
    response = client.put("/api/v1/drivers/D-7", json={"whatsapp": True, "locale": locale}, headers=auth)
    assert response.status_code in (200, 201), response.get_json()


def test_a_driver_outside_the_window_gets_the_template_once_and_the_messages_when_they_answer(
        client, srv, providers, seeded, auth):
    driver_on_whatsapp(client, auth, "es")
    sms(client, ANA, "dejar en la puerta trasera, por favor", whatsapp=True)
    sms(client, ANA, "el código de la puerta es 4512", whatsapp=True)
    srv.dispatcher.drain()
    [knock] = to_driver_on_whatsapp(providers)  # one template for both messages, in the driver's language
    assert knock.value("ContentSid") == ES_TEMPLATE and not knock.value("Body")
    assert json.loads(knock.value("ContentVariables")) == {"1": f"#{code_of(srv, 'LM-10002')}"}
    assert not [r for r in providers.twilio_messages() if r.value("To") == DRIVER_PHONE]  # not by SMS either
    with srv.db.session() as session:
        waiting = session.scalars(select(Message).where(Message.status == "held")).all()
        assert [m.data["held"] for m in waiting] == ["awaiting_reply", "awaiting_reply"]
    # The driver answers the template: the window is open, what waited goes first, in order.
    sms(client, DRIVER_PHONE, "vale", whatsapp=True)
    srv.dispatcher.drain()
    bodies = [r.value("Body") for r in to_driver_on_whatsapp(providers)[1:]]
    assert "dejar en la puerta trasera" in bodies[0] and "4512" in bodies[1] and len(bodies) >= 3
    assert all(r.value("From") == WHATSAPP_FROM for r in to_driver_on_whatsapp(providers))
    with srv.db.session() as session:
        assert session.scalars(select(Message).where(Message.status == "held")).all() == []


def test_the_template_falls_back_to_the_default_language(client, srv, providers, seeded, auth):
    driver_on_whatsapp(client, auth, "de")
    sms(client, ANA, "dejar en la puerta trasera, por favor", whatsapp=True)
    srv.dispatcher.drain()
    [knock] = to_driver_on_whatsapp(providers)
    assert knock.value("ContentSid") == DEFAULT_TEMPLATE


def test_without_a_driver_template_the_message_goes_by_sms(database_url, providers, seeded_app):
    client, srv, auth = seeded_app
    driver_on_whatsapp(client, auth, "es")
    sms(client, ANA, "dejar en la puerta trasera, por favor", whatsapp=True)
    srv.dispatcher.drain()
    assert to_driver_on_whatsapp(providers) == []
    [by_sms] = [r for r in providers.twilio_messages() if r.value("To") == DRIVER_PHONE]
    assert "dejar en la puerta trasera" in by_sms.value("Body")


@pytest.fixture
def seeded_app(database_url, providers):
    from app import create_app
    from bot.domain.demo_orders import seed
    from bot.web.api_keys import create_api_key

    app = create_app(base_config(database_url, providers.url))
    srv = app.extensions["lastmile"]
    with srv.db.session() as session:
        seed(session)
        key = create_api_key(session, "test carrier")
    yield app.test_client(), srv, {"Authorization": f"Bearer {key}"}
    srv.dispatcher.stop()
    srv.db.dispose()
