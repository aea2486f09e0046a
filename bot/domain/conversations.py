"""Finding the conversation to write to: a person's preferred channel and its conversation row."""

from __future__ import annotations

from sqlalchemy import bindparam, select, tuple_
from sqlalchemy.orm import Session

from bot.domain import webhook_endpoints
from db.models import Conversation, Customer, Driver, Message
from db.session import insert_unless_exists

OPT_OUT_CODES = {"21610"}  # Twilio: the recipient replied STOP to the sending number

# Built once: composing a statement costs more than running it (SQLAlchemy caches the compiled form).
BY_ADDRESS = select(Conversation).where(Conversation.channel == bindparam("channel"),
                                        Conversation.address == bindparam("address"))
# The turn's own conversation: on PostgreSQL its row is locked until the turn commits, so that a second message
# of the same person waits, then sees what the first one changed (SQLite has one writer at a time anyway). FOR NO
# KEY UPDATE, the lock an UPDATE of the row takes anyway: rows that refer to the conversation (a notification's
# message from another transaction) are not held up by it, as they would be by FOR UPDATE.
BY_ADDRESS_FOR_TURN = BY_ADDRESS.with_for_update(key_share=True)
OF_ADDRESSES = select(Conversation).where(
    tuple_(Conversation.channel, Conversation.address).in_(bindparam("addresses", expanding=True)))


def get_or_create(session: Session, channel: str, address: str, *, role: str | None = None,
                  looked: bool = False, lock: bool = False, **new_values: int | None) -> Conversation:
    """The conversation for (channel, address), created if new (with `new_values`); safe under concurrent
    creation. `looked`: the caller has just looked for it, in this transaction, and found none. `lock`: hold
    its row until the transaction ends (an inbound message's turn)."""
    where, query = {"channel": channel, "address": address}, BY_ADDRESS_FOR_TURN if lock else BY_ADDRESS
    conversation = None if looked else session.scalar(query, where)
    if conversation is None:
        conversation = insert_unless_exists(session, Conversation(
            channel=channel, address=address, state={}, role=role or "customer", **new_values), ("channel", "address"))
    if conversation is None:  # created by a concurrent delivery, committed since
        conversation = session.scalar(query, where)
        if conversation is None:
            raise LookupError(f"no {channel} conversation after a duplicate-address insert")
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
    found = {(c.channel, c.address): c for c in session.scalars(OF_ADDRESSES, {"addresses": candidates})} \
        if candidates else {}  # one query for all of the person's channels
    spoken = [(found[key], when) for key in candidates
              if key in found and (when := found[key].last_inbound_at) is not None]
    if spoken:
        return max(spoken, key=lambda pair: pair[1])[0]
    target = preferred_address(person)
    if target is None:
        return None
    conversation = found.get(target)
    if conversation is None and isinstance(person, Driver):
        conversation = get_or_create(session, *target, role="driver", looked=True, driver_id=person.id)
    elif conversation is None:
        conversation = get_or_create(session, *target, role="customer", looked=True, customer_id=person.id)
    if isinstance(person, Customer) and conversation.customer_id is None:
        conversation.customer_id = person.id
    if isinstance(person, Driver):
        conversation.driver_id = person.id
    return conversation


def opt_out(session: Session, conversation: Conversation) -> bool:
    """The person asked for no more messages (STOP, or Twilio's error 21610 for a number that replied STOP to
    Twilio): mark the conversation and tell the webhook endpoints, once. True when it changed."""
    if conversation.opted_out:
        return False
    conversation.opted_out = True
    webhook_endpoints.conversation_event(session, "conversation.opted_out", conversation)
    return True


def message_failed(session: Session, message: Message, code: str | None, reason: str | None, final: bool) -> None:
    """The outbox gave up on a message (`final`) or will retry it: a final failure is a `message.failed` event;
    Twilio's 21610 (the number replied STOP to Twilio) opts the conversation out, retried or not."""
    conversation = session.get(Conversation, message.conversation_id)
    if final:
        webhook_endpoints.conversation_event(session, "message.failed", conversation,
                                             message={"id": message.id, "error_code": code, "error": reason})
    if code in OPT_OUT_CODES and conversation is not None:
        opt_out(session, conversation)
