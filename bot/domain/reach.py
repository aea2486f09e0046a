"""Reaching a person on WhatsApp within its rules, for every outgoing message (replies, agent replies, relayed
driver messages, reroute questions, rating prompts, notifications).

WhatsApp accepts free text only within 24 hours (`notifications.whatsapp_window_hours`) of the person's last
message; outside it a free-text send fails for good (Twilio error 63016). One function decides:
  1. within the window, or an approved template: WhatsApp as asked;
  2. outside it, the same message by SMS to the same number when we can send SMS and they have not opted out
     there (recorded on the message as `fallback: sms_outside_whatsapp_window`);
  3. else the message is stored `held` with the reason, no send attempted: the console shows it to the agent.
Templates are chosen by the caller (notifications know their kind; `template_for` picks by kind and locale).

Drivers, who rarely write in, are knocked on first: with a `driver_message` template configured for their
language, they get that approved "you have a message" template (once, however many messages wait) and the
messages themselves wait (`held`, `awaiting_reply`) until the driver answers, which opens the window: the
engine then sends them, in order, before the answer to what the driver wrote (`release_waiting`)."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.config import config_of
from bot.core.messages import Reply
from bot.delivery.outbox import enqueue_reply, queue_message
from bot.domain import brands, conversations
from db.models import Brand, Conversation, Message, Order, utcnow

logger = logging.getLogger(__name__)
SMS_FALLBACK = "sms_outside_whatsapp_window"
HELD = "whatsapp_window_closed"
AWAITING_REPLY = "awaiting_reply"  # held until the person writes (a driver who got the "you have a message" template)
DRIVER_TEMPLATE = "driver_message"


def window_open(conversation: Conversation, now: datetime, hours: float) -> bool:
    """WhatsApp allows free text only within `hours` of the person's last message."""
    last = conversation.last_inbound_at
    return last is not None and now - last < timedelta(hours=hours)


def template_for(config: dict[str, Any], kind: str, locale: str) -> str:
    """The approved template (Content SID) for a kind of message in a language: `kind: {es: HX…, default:
    HX…}` or `kind: HX…` for every language; '' when none is configured."""
    entry = (config["notifications"].get("whatsapp_templates") or {}).get(kind)
    if isinstance(entry, dict):
        return str(entry.get(locale) or entry.get("default") or "")
    return str(entry or "")


def with_quick_replies(session: Session, conversation: Conversation, reply: Reply, config: dict[str, Any]) -> Reply:
    """A question with options as WhatsApp's native quick-reply buttons, when a Twilio Content API quick-reply
    template (`twilio/quick-reply`) is configured for it in the person's language
    (`notifications.whatsapp_quick_replies.<prompt>`). Its variables carry our own words: {"1": the text,
    then for each option n (1-based) "2n": its title and "2n+1": its payload (the button's id, which Twilio
    returns as ButtonPayload)}. Otherwise the reply is unchanged: a numbered list."""
    if not reply.buttons or not reply.prompt:
        return reply
    from bot.domain.recipients import recipient_locale

    entry = (config["notifications"].get("whatsapp_quick_replies") or {}).get(reply.prompt)
    locale = recipient_locale(session, conversation)[0]
    content_sid = str((entry.get(locale) or entry.get("default") or "") if isinstance(entry, dict) else (entry or ""))
    if not content_sid:
        return reply
    variables = {"1": reply.text}
    for n, button in enumerate(reply.buttons, 1):
        variables[str(2 * n)], variables[str(2 * n + 1)] = button.title, button.payload
    return replace(reply, template={"content_sid": content_sid, "variables": variables})


def can_send_sms(config: dict[str, Any]) -> bool:
    twilio = config["channels"]["twilio"]
    return bool(twilio.get("sms_from") or twilio.get("messaging_service_sid"))


def send(session: Session, conversation: Conversation, reply: Reply, config: dict[str, Any] | None = None, *,
         now: datetime | None = None, data: dict[str, Any] | None = None, **enqueue: Any) -> Message:
    """Queue `reply` for `conversation`, or its SMS twin, or hold it (see the module's rules)."""
    if config is None:
        config = config_of(session)
    now = now or utcnow()
    hours = float(config["notifications"]["whatsapp_window_hours"])
    brand = _brand_of(session, conversation, enqueue.get("order_id"))
    reply = _from_brand(brand, conversation.channel, reply)
    if conversation.channel != "whatsapp" or reply.template:
        return enqueue_reply(session, conversation, reply, data=data, **enqueue)
    if window_open(conversation, now, hours):
        return enqueue_reply(session, conversation, with_quick_replies(session, conversation, reply, config),
                             data=data, **enqueue)
    if conversation.role == "driver":
        knocked = _knock(session, conversation, reply, config, data, enqueue)
        if knocked is not None:
            return knocked
    twin = None
    if can_send_sms(config):
        twin = conversations.get_or_create(session, "sms", conversation.address, role=conversation.role)
        twin.customer_id = twin.customer_id or conversation.customer_id
        twin.driver_id = twin.driver_id or conversation.driver_id
        twin.locale = twin.locale or conversation.locale
    if twin is not None and not twin.opted_out:
        logger.info("whatsapp window closed for conversation %s: sent by SMS instead", conversation.id)
        reply = _from_brand(brand, "sms", replace(reply, sender=None))
        return enqueue_reply(session, twin, reply, data={**(data or {}), "fallback": SMS_FALLBACK}, **enqueue)
    message = _hold(session, conversation, reply, data, enqueue, HELD,
                    "The WhatsApp 24-hour window is closed and there is no SMS route: "
                    "use an approved template or another channel.")
    logger.warning("whatsapp window closed for conversation %s and no SMS route: message %s held",
                   conversation.id, message.id)
    return message


def _brand_of(session: Session, conversation: Conversation, order_id: int | None) -> Brand | None:
    """The brand a customer's message about an order speaks for (drivers hear from the carrier's own senders)."""
    if order_id is None or conversation.role != "customer":
        return None
    order = session.get(Order, order_id)
    return order.brand if order is not None else None


def _from_brand(brand: Brand | None, channel: str, reply: Reply) -> Reply:
    """The reply sent from the brand's own number or Messaging Service on `channel`, when it has one."""
    sender = brands.sender_for(brand, channel)
    return replace(reply, sender=sender) if sender and not reply.sender else reply


def _hold(session: Session, conversation: Conversation, reply: Reply, data: dict[str, Any] | None,
          enqueue: dict[str, Any], reason: str, problem: str) -> Message:
    message = Message(conversation_id=conversation.id, direction="out", channel=conversation.channel,
                      sender=enqueue.get("sender", "bot"), kind="text", text=reply.text,
                      data={**reply.to_dict(), **(data or {}), "held": reason}, status="held",
                      error_message=problem, order_id=enqueue.get("order_id"), agent_id=enqueue.get("agent_id"))
    session.add(message)
    session.flush()
    return message


def _waiting(session: Session, conversation: Conversation) -> list[Message]:
    held = session.scalars(select(Message).where(Message.conversation_id == conversation.id,
                                                 Message.status == "held").order_by(Message.id))
    return [m for m in held if (m.data or {}).get("held") == AWAITING_REPLY]


def _knock(session: Session, conversation: Conversation, reply: Reply, config: dict[str, Any],
           data: dict[str, Any] | None, enqueue: dict[str, Any]) -> Message | None:
    """A driver outside the window: the "you have a message" template (unless one already waits for an
    answer) and the message held until they reply; None when no template is configured for their language."""
    from bot.core.i18n import gettext, use_locale
    from bot.domain.recipients import recipient_locale

    locale, timezone = recipient_locale(session, conversation)
    content_sid = template_for(config, DRIVER_TEMPLATE, locale)
    if not content_sid:
        return None
    knocked_already = bool(_waiting(session, conversation))
    message = _hold(session, conversation, reply, data, enqueue, AWAITING_REPLY,
                    "The driver's WhatsApp window is closed: sent when they answer the template.")
    if not knocked_already:
        order = session.get(Order, enqueue["order_id"]) if enqueue.get("order_id") else None
        with use_locale(locale, timezone):
            text = gettext("You have a new message. Reply to this message to read it.")
        enqueue_reply(session, conversation, Reply(text, template={
            "content_sid": content_sid, "variables": {"1": f"#{order.short_code}" if order and order.short_code else ""}}),
            data={"knock_for": message.id}, order_id=enqueue.get("order_id"))
        logger.info("whatsapp window closed for driver conversation %s: template sent, message %s waits",
                    conversation.id, message.id)
    return message


def release_waiting(session: Session, conversation: Conversation) -> int:
    """The person wrote (the window is open again): send what waited for their answer, oldest first."""
    if conversation.channel != "whatsapp" or conversation.role != "driver":
        return 0
    waiting = _waiting(session, conversation)
    for message in waiting:
        message.error_message = None
        message.data = {k: v for k, v in (message.data or {}).items() if k != "held"}
        queue_message(session, conversation, message, Reply.from_dict(message.data))
    return len(waiting)
