"""WhatsApp's 24-hour window on every path: outside it, an approved template for the kind and language, else
the same message by SMS to the same number, else held with the reason shown to the agent, never a free-text
send that WhatsApp refuses for good (63016)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from db.models import Conversation, Message, utcnow
from tests.conftest import base_config, post_twilio, twilio_params
from tests.console_helpers import agents, post_action, sign_in  # noqa: F401  (agents is a fixture)
from tests.notify_helpers import eta, notifications, post_event, put_order

ANA = "+15557770001"
pytestmark = pytest.mark.usefixtures("agents")


def whatsapp_customer_waiting_for_an_agent(client, srv) -> int:
    """Ana asked for a person on WhatsApp 25 hours ago: the window has closed since."""
    assert post_twilio(client, twilio_params(ANA, "I want to talk to a person", whatsapp=True)).status_code == 200
    srv.dispatcher.drain()
    with srv.db.session() as session:
        conversation = session.scalar(select(Conversation).where(Conversation.channel == "whatsapp"))
        session.execute(update(Conversation).where(Conversation.id == conversation.id)
                        .values(last_inbound_at=utcnow() - timedelta(hours=25)))
        return conversation.id


def test_an_agent_reply_outside_the_window_goes_by_sms(client, srv, providers, app):
    conversation_id = whatsapp_customer_waiting_for_an_agent(client, srv)
    providers.clear()
    agent = app.test_client()
    sign_in(agent, "sam")
    response = post_action(agent, f"/console/conversations/{conversation_id}/reply", text="Hi Ana, Sam here.")
    assert response.status_code in (200, 302)
    srv.dispatcher.drain()
    [sent] = providers.twilio_messages()
    assert (sent.value("To"), sent.value("Body")) == (ANA, "Hi Ana, Sam here.")  # SMS, not free-text WhatsApp
    page = agent.get(f"/console/conversations/{conversation_id}").get_data(as_text=True)
    assert "sent by SMS: WhatsApp window closed" in page


@pytest.fixture
def no_sms_config(database_url, providers):
    """A carrier with WhatsApp only: no SMS number, no Messaging Service."""
    return base_config(database_url, providers.url, channels={"twilio": {"sms_from": ""}},
                       notifications={"whatsapp_templates": {"out_for_delivery": {"es": "HX" + "e" * 32,
                                                                                 "default": "HX" + "d" * 32}}})


def test_without_an_sms_route_the_agent_reply_is_held_and_the_agent_sees_why(no_sms_config, providers):
    from app import create_app

    app = create_app(no_sms_config)
    srv, client = app.extensions["lastmile"], app.test_client()
    try:  # (the `agents` fixture made Sam in the same database)
        conversation_id = whatsapp_customer_waiting_for_an_agent(client, srv)
        providers.clear()
        agent = app.test_client()
        sign_in(agent, "sam")
        post_action(agent, f"/console/conversations/{conversation_id}/reply", text="Hi Ana, Sam here.")
        srv.dispatcher.drain()
        assert providers.twilio_messages() == []  # nothing WhatsApp would refuse
        with srv.db.session() as session:
            held = session.scalar(select(Message).where(Message.text == "Hi Ana, Sam here."))
            assert held.status == "held"
        page = agent.get(f"/console/conversations/{conversation_id}").get_data(as_text=True)
        assert 'role="alert">Not sent: The WhatsApp 24-hour window is closed' in page
    finally:
        srv.dispatcher.stop()
        srv.db.dispose()


def test_templates_are_chosen_by_kind_and_language_and_otherwise_held(no_sms_config, providers):
    from app import create_app

    app = create_app(no_sms_config)
    srv, client = app.extensions["lastmile"], app.test_client()
    try:
        from bot.web.api_keys import create_api_key
        with srv.db.session() as session:
            auth = {"Authorization": f"Bearer {create_api_key(session, 'carrier')}"}
        put_order(client, auth, "ES-1", phone="+15557770002", whatsapp=True, locale="es")
        put_order(client, auth, "EN-1", phone="+15557770003", whatsapp=True, locale="en")
        for ref in ("ES-1", "EN-1"):
            post_event(client, auth, ref, "out_for_delivery", eta=eta(60))
        post_event(client, auth, "EN-1", "delayed", reason="Traffic")  # no template for delays, no SMS
        srv.dispatcher.drain()
        sids = {m.value("To"): m.value("ContentSid") for m in providers.twilio_messages()}
        assert sids == {"whatsapp:+15557770002": "HX" + "e" * 32, "whatsapp:+15557770003": "HX" + "d" * 32}
        assert notifications(srv, "EN-1")[-1] == ("delayed", "skipped", "no_whatsapp_route")
    finally:
        srv.dispatcher.stop()
        srv.db.dispose()
