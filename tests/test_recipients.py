"""The one recipient resolver (bot/domain/recipients.py) where it used to drift: handoff notices fall back to the
configured default language, and notifications honour the order's own locale and time zone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.domain import conversations, handoffs
from bot.domain.recipients import recipient_locale
from db.models import Message, utcnow
from tests.notify_helpers import post_event


@pytest.fixture
def spanish_by_default(app_config: dict[str, Any]):
    from app import create_app

    config = {**app_config, "app": {**app_config["app"], "default_locale": "es", "default_timezone": "Europe/Madrid"},
              "outbox": {**app_config["outbox"], "mode": "off"}}
    application = create_app(config)
    yield application.extensions["lastmile"]
    application.extensions["lastmile"].db.dispose()


def test_a_handoff_notice_to_a_person_we_know_nothing_about_is_in_the_configured_default(spanish_by_default):
    srv = spanish_by_default
    with srv.db.session() as session:
        conversation = conversations.get_or_create(session, "telegram", "5150")  # no language, no phone number
        assert recipient_locale(session, conversation) == ("es", "Europe/Madrid")
        handoffs.open_handoff(session, conversation, "human_handoff")
        notices = session.scalars(select(Message.text).where(Message.conversation_id == conversation.id)).all()
    assert len(notices) == 1
    assert notices[0].startswith("Te paso con una persona")  # the Spanish catalog's sentence, not the English one


def test_a_notification_honours_the_order_level_locale(client, srv, providers, auth):
    """An order placed in Portuguese for a US number whose customer record names no language: the order's
    `locale` beats the phone number's English."""
    start = utcnow().replace(microsecond=0) + timedelta(hours=2)
    body = {"customer": {"name": "Ana", "phone": "+15557770001"}, "locale": "pt", "timezone": "America/Sao_Paulo",
            "address": {"line1": "1 Main St", "postcode": "10001", "country": "US"},
            "delivery_window": {"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()}}
    assert client.put("/api/v1/orders/LM-1", json=body, headers=auth).status_code == 201
    post_event(client, auth, "LM-1", "out_for_delivery")
    srv.dispatcher.drain()
    text = "\n".join(sent.value("Body") for sent in providers.twilio_messages())  # one SMS, maybe split
    assert "A sua encomenda LM-1 saiu para entrega." in text and "Acompanhe aqui: https://bot.example.test/t/" in text
