"""Finding the conversation to write to: a person's preferred channel and its conversation row."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import Conversation, Customer, Driver


def get_or_create(session: Session, channel: str, address: str, *, role: str | None = None) -> Conversation:
    """The conversation for (channel, address), created if new; safe under concurrent creation."""
    where = (Conversation.channel == channel, Conversation.address == address)
    conversation = session.scalar(select(Conversation).where(*where))
    if conversation is None:
        try:
            with session.begin_nested():
                conversation = Conversation(channel=channel, address=address, state={}, role=role or "customer")
                session.add(conversation)
        except IntegrityError:  # created by a concurrent delivery
            conversation = session.scalar(select(Conversation).where(*where))
    return conversation


def preferred_address(person: Customer | Driver) -> tuple[str, str] | None:
    """(channel, address) to reach a customer or driver: WhatsApp if they use it, else SMS, else Telegram."""
    if person.phone:
        return ("whatsapp" if person.whatsapp else "sms"), person.phone
    if person.telegram_chat_id is not None:
        return "telegram", str(person.telegram_chat_id)
    return None


def conversation_with(session: Session, person: Customer | Driver) -> Conversation | None:
    """The conversation to write to a person on their preferred channel, or None if unreachable.

    If they have written to us on another of their channels more recently, that one is used:
    people answer where they last spoke.
    """
    candidates: list[tuple[str, str]] = []
    if person.phone:
        candidates += [("whatsapp", person.phone), ("sms", person.phone)]
    if person.telegram_chat_id is not None:
        candidates.append(("telegram", str(person.telegram_chat_id)))
    existing = [
        c for c in (session.scalar(select(Conversation).where(Conversation.channel == ch, Conversation.address == a))
                    for ch, a in candidates) if c is not None and c.last_inbound_at is not None
    ]
    if existing:
        return max(existing, key=lambda c: c.last_inbound_at)
    target = preferred_address(person)
    if target is None:
        return None
    role = "driver" if isinstance(person, Driver) else "customer"
    conversation = get_or_create(session, *target, role=role)
    if isinstance(person, Customer) and conversation.customer_id is None:
        conversation.customer_id = person.id
    if isinstance(person, Driver):
        conversation.driver_id = person.id
    return conversation
