"""A person's data: export, erasure, the retention purge, and the carrier API for them."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypedDict, TypeVar

from sqlalchemy import ColumnElement, delete, or_, select, update
from sqlalchemy.orm import Session

from bot.core import emails
from bot.core.config import config_of
from bot.core.times import iso_z
from bot.domain.media import records as media_records
from bot.domain.media.service import forget
from db.models import (
    AuditEntry,
    ConsoleSession,
    Conversation,
    ConversationOrder,
    Customer,
    CustomerRequest,
    Handoff,
    IdempotencyKey,
    Message,
    Notification,
    Order,
    OrderEvent,
    OutboxItem,
    Rating,
    ScheduledJob,
    VerificationAttempt,
    utcnow,
)

logger = logging.getLogger(__name__)

PURGE_JOB = "privacy.retention_purge"
PHONE_CHANNELS = ("sms", "whatsapp", "simulator")


# --- whose data ----------------------------------------------------------------------------------
class UnknownPerson(LookupError):
    """No customer and no conversation for this phone number or id."""


@dataclass
class Person:
    """Everything that points at one person: their customer rows, orders and conversations."""

    customer_ids: list[int] = field(default_factory=list)
    order_ids: list[int] = field(default_factory=list)
    conversation_ids: list[int] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)  # phone numbers, Telegram chat ids, email addresses


def find_person(session: Session, ident: str) -> Person:
    """`ident`: an E.164 phone number (+15551230001), an email address or a customer id (42). Raises
    UnknownPerson."""
    ident = ident.strip()
    if re.fullmatch(r"\+\d{6,16}", ident):
        customers = list(session.scalars(select(Customer).where(Customer.phone == ident)))
        addresses = {ident}
    elif (email := emails.normalize(ident)) is not None:
        customers = list(session.scalars(select(Customer).where(Customer.email == email)))
        addresses = {email}
    elif re.fullmatch(r"\d{1,18}", ident):
        customer = session.get(Customer, int(ident))
        customers = [customer] if customer else []
        addresses = set()
    else:
        raise UnknownPerson(ident)
    for customer in customers:
        if customer.phone:
            addresses.add(customer.phone)
        if customer.email:
            addresses.add(customer.email)
    chats = {str(c.telegram_chat_id) for c in customers if c.telegram_chat_id is not None}
    customer_ids = [c.id for c in customers]
    conditions: list[ColumnElement[bool]] = [
        Conversation.channel.in_((*PHONE_CHANNELS, "email")) & Conversation.address.in_(addresses)] if addresses else []
    if chats:
        conditions.append((Conversation.channel == "telegram") & Conversation.address.in_(chats))
    if customer_ids:
        conditions.append(Conversation.customer_id.in_(customer_ids))
    conversations = list(session.scalars(select(Conversation).where(or_(*conditions), Conversation.role == "customer"))) \
        if conditions else []
    if not customers and not conversations:
        raise UnknownPerson(ident)
    # Their own orders only: an order they proved or opened by link may be someone else's.
    order_ids = list(session.scalars(select(Order.id).where(Order.customer_id.in_(customer_ids)))) if customer_ids else []
    conversation_ids = [c.id for c in conversations]
    return Person(customer_ids, sorted(order_ids), conversation_ids,
                  sorted(addresses | chats | {c.address for c in conversations}))


# --- export --------------------------------------------------------------------------------------
Row = TypeVar("Row", Customer, Order, Conversation)


def _rows(session: Session, model: type[Row], ids: list[int]) -> list[Row]:
    """The rows of `ids`, in that order; find_person found every one in this same transaction."""
    rows = []
    for row_id in ids:
        row = session.get(model, row_id)
        if row is None:
            raise LookupError(f"{model.__name__} {row_id} vanished during the export")
        rows.append(row)
    return rows


def export(session: Session, ident: str) -> dict[str, Any]:
    """Everything stored about the person, as JSON-ready data."""
    person = find_person(session, ident)
    customers = _rows(session, Customer, person.customer_ids)
    orders = _rows(session, Order, person.order_ids)
    conversations = _rows(session, Conversation, person.conversation_ids)
    messages = list(session.scalars(select(Message).where(Message.conversation_id.in_(person.conversation_ids))
                                    .order_by(Message.id))) if person.conversation_ids else []
    message_ids = [m.id for m in messages]
    return {
        "exported_at": iso_z(utcnow()),
        "customers": [{"id": c.id, "name": c.name, "phone": c.phone, "telegram_chat_id": c.telegram_chat_id,
                       "email": c.email,
                       "whatsapp": c.whatsapp, "locale": c.locale, "timezone": c.timezone,
                       "created_at": iso_z(c.created_at)} for c in customers],
        "orders": [_order_export(o) for o in orders],
        "conversations": [{"id": c.id, "channel": c.channel, "address": c.address, "locale": c.locale,
                           "timezone": c.timezone, "opted_out": c.opted_out, "display_name": c.display_name,
                           "created_at": iso_z(c.created_at)} for c in conversations],
        "messages": [{"id": m.id, "conversation_id": m.conversation_id, "direction": m.direction,
                      "sender": m.sender, "kind": m.kind, "text": m.text, "status": m.status,
                      "media": _media_urls(m), "created_at": iso_z(m.created_at)} for m in messages],
        "media": sorted({url for m in messages for url in _media_urls(m)}
                        | {o.proof_photo_url for o in orders if o.proof_photo_url}),
        # The files we keep (photos, documents) with their state; `lastmile customer export` lists them, the
        # files themselves are served by their signed links.
        "media_files": [media_records.export_row(row) for row in media_records.for_people(
            session, person.conversation_ids, person.order_ids)],
        "ratings": [{"order_id": r.order_id, "score": r.score, "comment": r.comment, "created_at": iso_z(r.created_at)}
                    for r in session.scalars(select(Rating).where(_rating_filter(person)))],
        "requests": [{"order_id": r.order_id, "kind": r.kind, "text": r.text, "status": r.status,
                      "details": r.details, "created_at": iso_z(r.created_at)}
                     for r in session.scalars(select(CustomerRequest).where(_request_filter(person)))],
        "handoffs": [{"conversation_id": h.conversation_id, "reason": h.reason, "status": h.status,
                      "opened_at": iso_z(h.opened_at), "closed_at": iso_z(h.closed_at)}
                     for h in session.scalars(select(Handoff).where(
                         Handoff.conversation_id.in_(person.conversation_ids or [-1])))],
        "outbox": [{"id": o.id, "channel": o.channel, "to": o.to_address, "status": o.status, "payload": o.payload,
                    "created_at": iso_z(o.created_at), "sent_at": iso_z(o.sent_at)}
                   for o in session.scalars(select(OutboxItem).where(_outbox_filter(person, message_ids)))],
        "verification_attempts": [{"channel": a.channel, "succeeded": a.succeeded, "created_at": iso_z(a.created_at)}
                                  for a in session.scalars(select(VerificationAttempt).where(
                                      VerificationAttempt.address.in_(_attempt_keys(person))))],
    }


def _order_export(order: Order) -> dict[str, Any]:
    return {"ref": order.ref, "tracking_number": order.tracking_number, "status": order.status,
            "address": {"line1": order.address_line1, "line2": order.address_line2, "city": order.city,
                        "postcode": order.postcode, "country": order.country},
            "window": {"start": iso_z(order.window_start), "end": iso_z(order.window_end)},
            "instructions": order.instructions, "delivered_at": iso_z(order.delivered_at),
            "proof_of_delivery": {"photo_url": order.proof_photo_url, "note": order.proof_note,
                                  "signature_url": order.proof_signature_url, "barcode": order.proof_barcode},
            "events": [{"type": e.type, "occurred_at": iso_z(e.occurred_at), "data": e.data} for e in order.events]}


def _media_urls(message: Message) -> list[str]:
    return [m["url"] for m in (message.data or {}).get("media", []) if isinstance(m, dict) and m.get("url")]


def _rating_filter(person: Person):
    return or_(Rating.order_id.in_(person.order_ids or [-1]), Rating.conversation_id.in_(person.conversation_ids or [-1]))


def _request_filter(person: Person):
    return or_(CustomerRequest.order_id.in_(person.order_ids or [-1]),
               CustomerRequest.conversation_id.in_(person.conversation_ids or [-1]))


def _outbox_filter(person: Person, message_ids: list[int]):
    return or_(OutboxItem.message_id.in_(message_ids or [-1]),
               (OutboxItem.kind == "message") & OutboxItem.to_address.in_(person.addresses or ["-"]))


def _attempt_keys(person: Person) -> list[str]:
    keys = set(person.addresses)
    keys |= {f"person:{a}" for a in person.addresses}
    keys |= {f"customer:{i}" for i in person.customer_ids}
    return sorted(keys)


# --- erasure -------------------------------------------------------------------------------------
def erase(session: Session, ident: str) -> dict[str, int]:
    """Delete the person's messages, conversations, ratings, requests, media links and outbox payloads;
    keep each order (the carrier's record) with its personal fields cleared and its tracking link dead.
    Returns counts by kind (no personal data, fit for the audit log)."""
    from bot.domain.orders import new_token

    person = find_person(session, ident)
    conversation_ids, order_ids = person.conversation_ids or [-1], person.order_ids or [-1]
    message_ids = list(session.scalars(select(Message.id).where(Message.conversation_id.in_(conversation_ids))))
    counts: dict[str, int] = {}
    counts["scheduled_jobs"] = _cancel_jobs(session, {
        "order_id": set(person.order_ids), "conversation_id": set(person.conversation_ids),
        "handoff_id": set(session.scalars(select(Handoff.id).where(Handoff.conversation_id.in_(conversation_ids)))),
        "request_id": set(session.scalars(select(CustomerRequest.id).where(_request_filter(person))))})
    counts["outbox"] = _count(session.execute(delete(OutboxItem).where(_outbox_filter(person, message_ids))))
    counts["outbox"] += _erase_webhook_rows(session, person)
    counts["idempotency_keys"] = _erase_replays(session, person)
    counts["ratings"] = _count(session.execute(delete(Rating).where(_rating_filter(person))))
    counts["requests"] = _count(session.execute(delete(CustomerRequest).where(_request_filter(person))))
    counts["media"] = sum(len(_media_urls(m)) for m in session.scalars(
        select(Message).where(Message.id.in_(message_ids or [-1]))))
    counts["media_files"] = forget(session, media_records.for_people(session, person.conversation_ids,
                                                                    person.order_ids))
    session.flush()
    counts["messages"] = _count(session.execute(delete(Message).where(Message.id.in_(message_ids or [-1]))))
    counts["notifications"] = _count(session.execute(delete(Notification).where(or_(
        Notification.conversation_id.in_(conversation_ids), Notification.order_id.in_(order_ids)))))
    counts["attempts"] = _count(session.execute(delete(VerificationAttempt).where(
        VerificationAttempt.address.in_(_attempt_keys(person)))))
    session.execute(update(Handoff).where(Handoff.order_id.in_(order_ids)).values(order_id=None))
    counts["handoffs"] = _count(session.execute(delete(Handoff).where(Handoff.conversation_id.in_(conversation_ids))))
    session.execute(delete(ConversationOrder).where(ConversationOrder.conversation_id.in_(conversation_ids)))
    # A STOP outlives erasure: an opted-out number keeps a bare row (address, opted_out) so that a later
    # order for it is still not messaged; everything else about it goes.
    counts["opt_outs_kept"] = _count(session.execute(
        update(Conversation).where(Conversation.id.in_(conversation_ids), Conversation.opted_out.is_(True))
        .values(customer_id=None, active_order_id=None, state={}, display_name=None, locale=None, timezone=None,
                handoff_active=False, last_inbound_at=None)))
    counts["conversations"] = _count(session.execute(delete(Conversation).where(
        Conversation.id.in_(conversation_ids), Conversation.opted_out.is_(False))))
    for order in list(session.scalars(select(Order).where(Order.id.in_(order_ids)))):
        counts["media"] += 1 if order.proof_photo_url else 0
        _clear_order(session, order, new_token())
    counts["orders_anonymized"] = len(person.order_ids)
    counts["customers"] = _count(session.execute(delete(Customer).where(Customer.id.in_(person.customer_ids or [-1]))))
    session.flush()
    return counts


def _erase_replays(session: Session, person: Person) -> int:
    """Stored API answers (Idempotency-Key replays, bot/idempotency.py) that show the person's phone or chat."""
    needles = [a for a in person.addresses if a.startswith("+") or "@" in a]
    needles += [f'"telegram_chat_id":{a}' for a in person.addresses if a.lstrip("-").isdigit()]
    needles += [f'"telegram_chat_id": {a}' for a in person.addresses if a.lstrip("-").isdigit()]
    if not needles:
        return 0
    return _count(session.execute(delete(IdempotencyKey).where(
        or_(*(IdempotencyKey.response_body.contains(n, autoescape=True) for n in needles)))))


def _clear_order(session: Session, order: Order, token: str) -> None:
    order.customer_id = None
    order.address_line1 = order.address_line2 = order.city = order.postcode = None
    order.instructions = order.proof_photo_url = order.proof_note = order.status_reason = None
    order.location_lat = order.location_lng = None
    order.tracking_token = token  # the old tracking link now answers 404
    session.execute(update(OrderEvent).where(OrderEvent.order_id == order.id).values(data={}))
    session.execute(update(Message).where(Message.order_id == order.id).values(order_id=None))


def _erase_webhook_rows(session: Session, person: Person) -> int:
    """Finished helpdesk/carrier callbacks about the person (their bodies name the conversation or order)."""
    refs = set(session.scalars(select(Order.ref).where(Order.id.in_(person.order_ids or [-1]))))
    doomed = []
    for item in session.scalars(select(OutboxItem).where(OutboxItem.kind == "webhook",
                                                          OutboxItem.status.in_(("sent", "failed")))):
        try:
            body = json.loads((item.payload or {}).get("body") or "{}")
        except (TypeError, ValueError):
            continue
        conversation = (body.get("conversation") or {}).get("id") if isinstance(body, dict) else None
        ref = ((body.get("order") or {}).get("ref")) if isinstance(body, dict) else None
        if conversation in person.conversation_ids or (ref is not None and ref in refs):
            doomed.append(item.id)
    if doomed:
        session.execute(delete(OutboxItem).where(OutboxItem.id.in_(doomed)))
    return len(doomed)


def _cancel_jobs(session: Session, ids: dict[str, set[int]]) -> int:
    """Pending jobs about the erased rows (rating prompts, held notifications, idle handoffs, reroutes)."""
    cancelled = 0
    for job in session.scalars(select(ScheduledJob).where(ScheduledJob.status == "pending")):
        payload = job.payload or {}
        if any(payload.get(key) in values for key, values in ids.items()):
            job.status, job.finished_at = "cancelled", utcnow()
            cancelled += 1
    return cancelled


# --- retention -----------------------------------------------------------------------------------
class PurgeCounts(TypedDict, total=False):
    """How many rows of each kind a purge deleted (a kind kept forever is absent)."""

    outbox: int
    media_files: int
    messages: int
    conversations: int
    orders: int
    attempts: int
    sessions: int
    audit: int
    idempotency_keys: int


def purge(session: Session, settings: dict[str, Any], now: datetime) -> PurgeCounts:
    """Delete what is older than the `retention:` limits (a limit of 0 keeps that kind forever)."""
    counts: PurgeCounts = {}

    def older(days: int) -> datetime | None:
        return now - timedelta(days=days) if days > 0 else None

    if (cutoff := older(settings["outbox_days"])) is not None:
        counts["outbox"] = _count(session.execute(delete(OutboxItem).where(
            OutboxItem.status.in_(("sent", "failed")), OutboxItem.created_at < cutoff)))
    if (cutoff := older(settings["messages_days"])) is not None:
        counts["media_files"] = forget(session, media_records.expired(session, cutoff))
        session.flush()
        counts["messages"] = _count(session.execute(delete(Message).where(Message.created_at < cutoff)))
        idle = select(Conversation.id).where(  # an opted-out number's row is its STOP: kept
            Conversation.updated_at < cutoff, Conversation.handoff_active.is_(False), Conversation.opted_out.is_(False),
            ~select(Message.id).where(Message.conversation_id == Conversation.id).exists())
        idle_ids = list(session.scalars(idle))
        if idle_ids:
            _detach_conversations(session, idle_ids)
        counts["conversations"] = _count(session.execute(delete(Conversation).where(Conversation.id.in_(idle_ids or [-1]))))
    if (cutoff := older(settings["orders_days"])) is not None:
        counts["orders"] = _purge_orders(session, cutoff)
    if (cutoff := older(settings["attempts_days"])) is not None:
        counts["attempts"] = _count(session.execute(delete(VerificationAttempt).where(
            VerificationAttempt.created_at < cutoff)))
        counts["sessions"] = _count(session.execute(delete(ConsoleSession).where(
            or_(ConsoleSession.expires_at < cutoff, ConsoleSession.revoked_at < cutoff))))
    if (cutoff := older(settings["audit_days"])) is not None:
        counts["audit"] = _count(session.execute(delete(AuditEntry).where(AuditEntry.created_at < cutoff)))
    counts["idempotency_keys"] = _count(session.execute(delete(IdempotencyKey).where(
        IdempotencyKey.expires_at < now)))  # replayable POST answers, kept only until they expire
    return counts


def _detach_conversations(session: Session, ids: list[int]) -> None:
    session.execute(update(CustomerRequest).where(CustomerRequest.conversation_id.in_(ids)).values(conversation_id=None))
    session.execute(update(Rating).where(Rating.conversation_id.in_(ids)).values(conversation_id=None))


def _purge_orders(session: Session, cutoff: datetime) -> int:
    """Orders delivered before `cutoff`, with their events, requests, ratings and notifications;
    then customers left with no order and no conversation."""
    ids = list(session.scalars(select(Order.id).where(Order.status == "delivered", Order.delivered_at < cutoff)))
    if ids:
        session.execute(update(Message).where(Message.order_id.in_(ids)).values(order_id=None))
        session.execute(update(Handoff).where(Handoff.order_id.in_(ids)).values(order_id=None))
        session.execute(update(Conversation).where(Conversation.active_order_id.in_(ids)).values(active_order_id=None))
        _cancel_jobs(session, {"order_id": set(ids)})
        forget(session, media_records.for_people(session, [], ids))
        session.flush()
        session.execute(delete(Order).where(Order.id.in_(ids)))
    orphans = select(Customer.id).where(
        Customer.updated_at < cutoff,
        ~select(Order.id).where(Order.customer_id == Customer.id).exists(),
        ~select(Conversation.id).where(Conversation.customer_id == Customer.id).exists())
    session.execute(delete(Customer).where(Customer.id.in_(list(session.scalars(orphans)) or [-1])))
    return len(ids)


def next_purge_at(settings: dict[str, Any], now: datetime) -> datetime:
    """The next `retention.run_at` (UTC) after `now`."""
    hour, minute = (int(part) for part in str(settings["run_at"]).split(":"))
    run = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return run if run > now else run + timedelta(days=1)


def schedule_purge(session: Session, settings: dict[str, Any], now: datetime) -> None:
    """The next daily purge, once across processes (one dedupe key per day)."""
    from bot.delivery.scheduler import schedule

    run_at = next_purge_at(settings, now)
    schedule(session, PURGE_JOB, run_at, {}, dedupe_key=f"{PURGE_JOB}:{run_at.date().isoformat()}")


def purge_job(session: Session, payload: dict[str, Any]) -> None:
    """The scheduled purge: delete, record it in the audit log, schedule tomorrow's."""
    from bot.core import audit
    from bot.delivery.scheduler import job_now

    settings = config_of(session)["retention"]
    now = job_now()
    counts = purge(session, settings, now)
    audit.record(session, "retention.purge", actor_type="system", actor_name="retention", **counts)
    logger.info("retention purge: %s", ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "nothing")
    schedule_purge(session, settings, now)


def _count(result: Any) -> int:
    return max(int(result.rowcount or 0), 0)
