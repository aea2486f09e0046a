"""What an agent sees: the queue, a conversation across the customer's channels, its order and driver."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import case, select
from sqlalchemy.orm import Session, object_session

from bot.core.times import iso_z
from bot.domain.handoffs import ACTIVE_STATUSES, PRIORITY_NAMES
from bot.domain.media.service import web_links
from db.models import (
    Agent,
    Conversation,
    Customer,
    Driver,
    Handoff,
    Message,
    Order,
    OrderEvent,
    utcnow,
)

REASON_LABELS = {
    "human_handoff": "Asked for a person", "report_problem": "Reported a problem", "fallback": "Bot was lost",
    "low_rating": "Low rating", "driver_flag": "Driver flagged", "reroute_timeout": "Reroute not approved",
    "agent": "Agent stepped in",
}


def mask_address(channel: str, address: str) -> str:
    """'+1 555•••0001': enough to recognise a number, not to copy it."""
    if address.startswith("+") and len(address) > 8:
        return f"{address[:5]}•••{address[-4:]}"
    return f"chat •••{address[-4:]}" if channel == "telegram" else "•••"


def outbox_recipient(kind: str, channel: str | None, address: str | None) -> str:
    """Who an outbox row goes to, as an operator may see it: a callback's host, a masked number or chat."""
    if not address:
        return "-"
    if kind == "webhook":
        return urlsplit(address).netloc
    return mask_address(channel or "", address)


def is_web_url(url: object) -> bool:
    """Only http(s) links become links: an inbound `javascript:` or `data:` media URL is dropped."""
    if not isinstance(url, str) or any(c.isspace() or ord(c) < 32 for c in url):
        return False
    parts = urlsplit(url)
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def minutes_between(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds() // 60))


def customer_label(conversation: Conversation, customer: Customer | None) -> str:
    return (customer.name if customer and customer.name else None) or conversation.display_name or \
        mask_address(conversation.channel, conversation.address)


def handoff_json(session: Session, handoff: Handoff, now: datetime | None = None) -> dict[str, Any]:
    """One handoff as the console's poller and the helpdesk API show it (no phone numbers)."""
    now = now or utcnow()
    conversation = session.get(Conversation, handoff.conversation_id)
    if conversation is None:  # a handoff's conversation is erased with it (privacy); never half of the pair
        raise LookupError(f"handoff {handoff.id} has no conversation {handoff.conversation_id}")
    customer = session.get(Customer, conversation.customer_id) if conversation.customer_id else None
    order = session.get(Order, handoff.order_id) if handoff.order_id else None
    agent = session.get(Agent, handoff.agent_id) if handoff.agent_id else None
    waiting = session.scalars(select(Message).where(
        Message.conversation_id == conversation.id, Message.direction == "in").order_by(Message.id.desc()).limit(1)).first()
    sla_left = int((handoff.sla_due_at - now).total_seconds() // 60) if handoff.sla_due_at else None
    return {
        "id": handoff.id, "conversation_id": conversation.id, "channel": conversation.channel,
        "customer": customer_label(conversation, customer), "reason": handoff.reason,
        "reason_label": REASON_LABELS.get(handoff.reason, handoff.reason), "priority": handoff.priority,
        "priority_name": PRIORITY_NAMES.get(handoff.priority, "normal"), "status": handoff.status,
        "agent": ({"id": agent.id, "username": agent.username, "name": agent.name} if agent else None),
        "order_ref": order.ref if order else None, "order_status": order.status if order else None,
        "opened_at": iso_z(handoff.opened_at), "sla_due_at": iso_z(handoff.sla_due_at),
        "first_response_at": iso_z(handoff.first_response_at), "closed_at": iso_z(handoff.closed_at),
        "closed_by": handoff.closed_by,
        "waiting_minutes": minutes_between(handoff.opened_at, handoff.closed_at or now),
        "sla_minutes_left": sla_left, "overdue": sla_left is not None and sla_left < 0
        and handoff.first_response_at is None,
        "last_customer_message": (waiting.text or f"[{waiting.kind}]")[:140] if waiting else None,
    }


def queue(session: Session, *, statuses: tuple[str, ...] = ACTIVE_STATUSES, priority: int | None = None,
          reason: str | None = None, agent_id: int | None = None, limit: int = 200) -> list[Handoff]:
    """Handoffs by priority, then the longest waiting first."""
    query = select(Handoff).where(Handoff.status.in_(statuses))
    if priority is not None:
        query = query.where(Handoff.priority == priority)
    if reason:
        query = query.where(Handoff.reason == reason)
    if agent_id is not None:
        query = query.where(Handoff.agent_id == agent_id)
    unassigned_first = case((Handoff.status == "open", 0), else_=1)
    return list(session.scalars(query.order_by(Handoff.priority, unassigned_first, Handoff.opened_at, Handoff.id)
                                .limit(limit)))


def recent_conversations(session: Session, limit: int = 12) -> list[Conversation]:
    """Conversations the bot is handling, most recent first (an agent may step into any of them)."""
    return list(session.scalars(select(Conversation).where(Conversation.handoff_active.is_(False),
                                                           Conversation.last_inbound_at.is_not(None))
                                .order_by(Conversation.last_inbound_at.desc()).limit(limit)))


def message_json(message: Message, agents: dict[int, str] | None = None) -> dict[str, Any]:
    return {
        "id": message.id, "conversation_id": message.conversation_id, "direction": message.direction,
        "channel": message.channel, "sender": message.sender, "kind": message.kind, "text": message.text,
        "agent": (agents or {}).get(message.agent_id) if message.agent_id else None,
        "status": message.status, "created_at": iso_z(message.created_at),
        "queued_for_agent": bool((message.data or {}).get("queued_for_agent")),
        # Not sent (held outside WhatsApp's window, or failed for good): the agent must see why.
        "problem": message.error_message if message.status in ("held", "failed") else None,
        "fallback": (message.data or {}).get("fallback"),
        "media": [url for url in web_links(object_session(message), [m["url"] for m in (message.data or {}).get("media", [])
                                            if isinstance(m, dict) and isinstance(m.get("url"), str)])
                  if url.startswith("/media/") or is_web_url(url)],
    }


def linked_conversations(session: Session, conversation: Conversation) -> list[Conversation]:
    """The person's conversations on every channel: the customer's, and the same phone number on SMS and
    WhatsApp (one person, even before we know them as a customer)."""
    same_person = (Conversation.address == conversation.address) & Conversation.channel.in_(("sms", "whatsapp"))
    if conversation.customer_id is not None:
        same_person = same_person | (Conversation.customer_id == conversation.customer_id)
    elif conversation.channel not in ("sms", "whatsapp"):
        return [conversation]
    return list(session.scalars(select(Conversation).where(same_person).order_by(Conversation.id)))


def transcript(session: Session, conversation: Conversation, *, after_id: int = 0, limit: int = 300) -> list[Message]:
    ids = [c.id for c in linked_conversations(session, conversation)]
    rows = session.scalars(select(Message).where(Message.conversation_id.in_(ids), Message.id > after_id)
                           .order_by(Message.id.desc()).limit(limit)).all()
    return list(reversed(rows))


def agent_names(session: Session) -> dict[int, str]:
    return {a.id: a.name or a.username for a in session.scalars(select(Agent))}


@dataclass
class CaseFile:
    """Everything the conversation page shows besides the transcript."""

    conversation: Conversation
    customer: Customer | None
    handoff: Handoff | None
    order: Order | None
    driver: Driver | None
    events: list[OrderEvent] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    history: list[Handoff] = field(default_factory=list)


def case_file(session: Session, conversation: Conversation) -> CaseFile:
    customer = session.get(Customer, conversation.customer_id) if conversation.customer_id else None
    handoffs = list(session.scalars(select(Handoff).where(Handoff.conversation_id == conversation.id)
                                    .order_by(Handoff.id.desc()).limit(10)))
    active = next((h for h in handoffs if h.status in ACTIVE_STATUSES), None)
    order_id = (active.order_id if active else None) or conversation.active_order_id
    order = session.get(Order, order_id) if order_id else None
    if order is None and customer is not None:
        order = session.scalar(select(Order).where(Order.customer_id == customer.id).order_by(Order.id.desc()).limit(1))
    driver = session.get(Driver, order.driver_id) if order and order.driver_id else None
    events = list(session.scalars(select(OrderEvent).where(OrderEvent.order_id == order.id)
                                  .order_by(OrderEvent.occurred_at, OrderEvent.id))) if order else []
    channels = sorted({c.channel for c in linked_conversations(session, conversation)})
    return CaseFile(conversation, customer, active, order, driver, events, channels, handoffs)
