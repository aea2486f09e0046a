"""The masked relay between customers and drivers: masking, short codes, content filter, relay window.

Neither side ever sees the other's number: relayed text goes out from the bot's own number on
each person's own channel, framed in the recipient's language, with anything that looks like a
phone number or chat id masked. A driver names an order by its 4-digit short code ("#4821").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core import i18n
from bot.core.i18n import gettext as _
from bot.core.messages import Button, Media, Reply
from bot.domain import conversations, reach
from bot.domain.conversation_state import remember, state_of
from bot.domain.orders import CLOSED_STATUSES, LIVE_STATUSES
from db.models import (
    Conversation,
    ConversationOrder,
    CustomerRequest,
    Driver,
    Message,
    Order,
    utcnow,
)

logger = logging.getLogger(__name__)

# A run of digits with the separators people type in phone numbers; masked when it has 7+ digits.
PHONE_LIKE = re.compile(r"\+?\(?\d[\d \t().\-/]{5,}\d")
DATE_LIKE = re.compile(r"^(?:\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[/.]\d{1,2}[/.]\d{2,4})$")
SHORT_CODE = re.compile(r"^\s*#\s?(?P<code>\d{4})(?!\d)[\s:,.\-]*")


# --- masking and filtering ---------------------------------------------------------------------
def mask_phone_numbers(text: str) -> str:
    """Replace anything that looks like a phone number or chat id (7+ digits) with a marker."""

    def hide(match: re.Match[str]) -> str:
        raw = match.group(0)
        if sum(c.isdigit() for c in raw) < 7 or DATE_LIKE.match(raw.strip()):
            return raw
        return _("[number hidden]")

    return PHONE_LIKE.sub(hide, text or "")


@cache
def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)


def check_patterns(config: dict[str, Any]) -> None:
    """Fail at start-up, naming the key, if a blocked pattern is not a valid regex."""
    from bot.core.config import ConfigError

    for pattern in config["relay"]["blocked_patterns"]:
        try:
            re.compile(str(pattern))
        except re.error as exc:
            raise ConfigError(f"relay.blocked_patterns: not a valid regex {pattern!r} ({exc})") from None


def is_blocked(text: str, config: dict[str, Any]) -> bool:
    """True when the content filter refuses to relay `text`."""
    patterns = _compiled(tuple(str(p) for p in config["relay"]["blocked_patterns"]))
    return any(p.search(text or "") for p in patterns)


def split_short_code(text: str) -> tuple[str | None, str]:
    """'#4821 at the gate' -> ('4821', 'at the gate'); no leading code -> (None, text)."""
    match = SHORT_CODE.match(text or "")
    if not match:
        return None, (text or "").strip()
    return match.group("code"), text[match.end():].strip()


# --- the relay window and the driver's orders -------------------------------------------------
def relay_open(order: Order, config: dict[str, Any], now: datetime | None = None) -> bool:
    """Open from out_for_delivery until `relay.open_hours_after_delivery` after delivery (or a failed attempt)."""
    if order.status in LIVE_STATUSES:
        return True
    if order.status not in CLOSED_STATUSES:
        return False
    since = order.delivered_at if order.status == "delivered" else order.last_event_at
    hours = float(config["relay"]["open_hours_after_delivery"])
    return since is not None and (now or utcnow()) - since <= timedelta(hours=hours)


def driver_orders(session: Session, driver: Driver, config: dict[str, Any], now: datetime | None = None) -> list[Order]:
    """The driver's orders they may still talk or report about: assigned, live, or recently closed."""
    orders = session.scalars(
        select(Order).where(Order.driver_id == driver.id,
                            Order.status.in_(("driver_assigned", *LIVE_STATUSES, *CLOSED_STATUSES)))
        .order_by(Order.id)
    ).all()
    return [o for o in orders if o.status == "driver_assigned" or relay_open(o, config, now)]


def order_by_short_code(session: Session, driver: Driver, code: str, config: dict[str, Any]) -> Order | None:
    """The driver's own order with this short code; another driver's order is never found."""
    for order in driver_orders(session, driver, config):
        if order.short_code == code:
            return order
    return None


def label(order: Order) -> str:
    """How an order is named to its driver: '#4821 (LM-10001)'."""
    return f"#{order.short_code} ({order.ref})" if order.short_code else order.ref


# --- the two sides ------------------------------------------------------------------------------
@dataclass
class Party:
    """One side of the relay: the conversation to write to, in that person's language and time zone."""

    conversation: Conversation
    locale: str
    timezone: str | None

    @contextmanager
    def speaking(self) -> Iterator[None]:
        with i18n.use_locale(self.locale, self.timezone):
            yield

    def send(self, session: Session, text: str, order: Order, *, sender: str = "bot",
             buttons: list[Button] | None = None, media: list[Media] | None = None,
             data: dict[str, Any] | None = None) -> Message:
        reply = Reply(text=text, buttons=buttons or [], media=media or [])
        message = reach.send(session, self.conversation, reply, sender=sender, order_id=order.id,
                             data={"relay": True, **(data or {})})
        if buttons:
            remember(self.conversation, buttons=[[b.title, b.payload] for b in buttons])
        return message


def _party(session: Session, conversation: Conversation | None) -> Party | None:
    if conversation is None or conversation.opted_out:
        return None  # an opted-out number gets nothing but the STOP confirmation
    from bot.domain.recipients import recipient_locale

    locale, timezone = recipient_locale(session, conversation)
    return Party(conversation, locale, timezone)


def driver_party(session: Session, order: Order) -> Party | None:
    """The assigned driver's conversation, or None if the order has no reachable driver."""
    driver = session.get(Driver, order.driver_id) if order.driver_id else None
    if driver is None or not driver.active:
        return None
    return _party(session, conversations.conversation_with(session, driver))


def customer_party(session: Session, order: Order) -> Party | None:
    """Where the customer last spoke about this order: their own phone/chat or a conversation that proved it."""
    candidates: list[Conversation] = []
    if order.customer is not None:
        own = conversations.conversation_with(session, order.customer)
        if own is not None:
            candidates.append(own)
    candidates += session.scalars(select(Conversation).join(
        ConversationOrder, ConversationOrder.conversation_id == Conversation.id).where(
        ConversationOrder.order_id == order.id, Conversation.role == "customer")).all()
    spoken = [(c, when) for c in candidates if (when := c.last_inbound_at) is not None]
    chosen = max(spoken, key=lambda pair: pair[1])[0] if spoken else (candidates[0] if candidates else None)
    return _party(session, chosen)


# --- relaying -----------------------------------------------------------------------------------
def relay_to_driver(session: Session, order: Order, text: str, language: str | None,
                    *, kind: str = "message") -> Message | None:
    """The customer's own words, masked, framed in the driver's language; None if no driver to reach."""
    party = driver_party(session, order)
    if party is None:
        return None
    words = mask_phone_numbers(text)
    lang = (language or "?").lower()
    with party.speaking():
        if kind == "instruction":
            frame = _("%(order)s delivery instructions [%(lang)s]: «%(text)s»", order=label(order), lang=lang, text=words)
        else:
            frame = _("%(order)s customer says [%(lang)s]: «%(text)s»", order=label(order), lang=lang, text=words)
        frame += "\n" + _("Reply here; start with #%(code)s if you have several deliveries.", code=order.short_code)
    message = party.send(session, frame, order, sender="customer")
    remember(party.conversation, relay_order_id=order.id)
    return message


def relay_to_customer(session: Session, order: Order, text: str, config: dict[str, Any],
                      media: list[Media] | None = None, now: datetime | None = None) -> Message | None:
    """The driver's words, masked, to the customer; their next message within a while goes back."""
    party = customer_party(session, order)
    if party is None:
        return None
    with party.speaking():
        frame = _("Your driver (order %(ref)s): «%(text)s»", ref=order.ref, text=mask_phone_numbers(text))
    message = party.send(session, frame, order, sender="driver", media=media)
    minutes = int(config["relay"]["customer_reply_minutes"])
    if minutes > 0 and not state_of(party.conversation).get("awaiting"):
        until = (now or utcnow()) + timedelta(minutes=minutes)
        remember(party.conversation, awaiting="driver_chat", driver_chat={"order_id": order.id,
                                                                          "until": until.isoformat()})
    return message


def blocked_notice() -> str:
    """What the sender of a message the content filter stopped is told."""
    return _("Sorry, I can't pass that message on. Please rephrase it without offensive words or links.")


def closed_notice(config: dict[str, Any], *, driver: bool = False) -> str:
    """The polite answer outside the relay window (call inside the recipient's locale)."""
    contact = str(config["relay"]["support_contact"] or "").strip()
    text = _("Messages for this delivery can no longer be passed on.")
    if contact:
        return text + " " + _("To reach our support team: %(contact)s", contact=contact)
    if driver:
        return text + " " + _("Please contact your dispatcher.")
    return text + " " + _("To reach our support team, write 'talk to a person'.")


def store_instruction(session: Session, order: Order, text: str, language: str | None, *,
                      now: datetime, conversation_id: int | None = None,
                      details: dict[str, Any] | None = None) -> CustomerRequest:
    """Record a customer's instruction (its history, the order's current text, an order event the carrier
    is told about) and relay it to the driver at once when the order is out. Chat and tracking page alike."""
    from bot.domain import orders as order_rules

    entry = CustomerRequest(order_id=order.id, conversation_id=conversation_id, kind="instruction",
                            text=text[:2000], language=language, details=details or {}, status="pending")
    session.add(entry)
    order.instructions = text[:2000]
    session.flush()
    order_rules.apply_event(session, order, "instructions_updated", now,
                            {"instructions": order.instructions, "request_id": entry.id}, source="customer",
                            idempotency_key=f"request-{entry.id}")
    if order.status in LIVE_STATUSES and relay_to_driver(session, order, text, language, kind="instruction"):
        entry.status, entry.resolved_at = "relayed", now
    return entry
