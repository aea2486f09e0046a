"""Order domain rules shared by the carrier API, the engine and the driver commands."""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.core.registry import registry_of
from bot.core.times import parse_iso
from db.models import (
    Conversation,
    ConversationOrder,
    Customer,
    Driver,
    Order,
    OrderEvent,
    OrderStatus,
    VerificationAttempt,
    utcnow,
)
from db.session import insert_now

logger = logging.getLogger(__name__)

EVENT_TYPES: tuple[str, ...] = (
    "created", "driver_assigned", "out_for_delivery", "eta_updated", "delayed",
    "arriving", "delivered", "failed_attempt", "location", "cancelled",
)
STATUS_EVENTS = {s.value for s in OrderStatus}
# Progress of an order; an event never moves it backwards, except that a failed attempt
# starts a new delivery cycle (assigned again, out again the next day).
RANK = {"created": 0, "driver_assigned": 1, "out_for_delivery": 2, "delayed": 2, "arriving": 3,
        "failed_attempt": 4, "delivered": 5, "cancelled": 6}
FINAL_STATUSES = ("delivered", "cancelled")  # nothing moves an order out of these
RESTART_AFTER_FAILURE = {"driver_assigned", "out_for_delivery", "delayed", "arriving", "delivered"}
LIVE_STATUSES = ("out_for_delivery", "delayed", "arriving")  # the driver is on the way: the relay is open
CLOSED_STATUSES = ("delivered", "failed_attempt")
BARCODE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9./_+-]{0,127}"  # a scanned label: GS1, Code 128 and QR values in practice
# Longer than any relay window after delivery (relay.open_hours_after_delivery, checked at start-up).
SHORT_CODE_HORIZON = timedelta(days=7)
ACTIVE_STATUSES = ("created", "driver_assigned", "out_for_delivery", "delayed", "arriving", "failed_attempt")



def new_token() -> str:
    """An unguessable token (160 random bits) for tracking links and Telegram deep links."""
    return secrets.token_urlsafe(20)


def normalize_ref(value: str) -> str:
    return re.sub(r"[\s]", "", value or "").upper()


def normalize_postcode(value: str | None) -> str:
    return re.sub(r"[\s\-]", "", value or "").upper()


def find_orders(session: Session, ref: str, limit: int = 20) -> list[Order]:
    """By carrier reference or tracking number, ignoring case and spaces: several when brands share a reference
    (two shops' order 1001)."""
    key = normalize_ref(ref)
    if not key:
        return []
    return list(session.scalars(
        select(Order).where(or_(func.upper(Order.ref) == key, func.upper(Order.tracking_number) == key))
        .order_by(Order.id).limit(limit)))


def find_order(session: Session, ref: str) -> Order | None:
    """The first order `find_orders` finds."""
    found = find_orders(session, ref, limit=1)
    return found[0] if found else None


@dataclass
class EventResult:
    event: OrderEvent
    created: bool  # False: the idempotency key was seen before
    applied: bool  # False: older than the order's state, stored only


def apply_event(
    session: Session,
    order: Order,
    type_: str,
    occurred_at: datetime,
    data: dict[str, Any],
    *,
    source: str = "carrier",
    idempotency_key: str | None = None,
    notify: bool = True,
) -> EventResult:
    """Record an event and move the order's state if the event is not stale. Idempotent by key."""
    if idempotency_key:
        seen = session.scalar(
            select(OrderEvent).where(OrderEvent.order_id == order.id, OrderEvent.idempotency_key == idempotency_key)
        )
        if seen is not None:
            return EventResult(seen, created=False, applied=seen.applied)
    applied = _is_current(order, type_, occurred_at)
    event = OrderEvent(order_id=order.id, type=type_, occurred_at=occurred_at, source=source,
                       idempotency_key=idempotency_key, applied=applied, data=data)
    if not idempotency_key:  # nothing to race on: no savepoint (two round trips fewer per event)
        insert_now(session, event)
    else:
        try:
            with session.begin_nested():
                session.add(event)
        except IntegrityError:  # the same key committed concurrently
            seen = session.scalar(
                select(OrderEvent).where(OrderEvent.order_id == order.id, OrderEvent.idempotency_key == idempotency_key)
            )
            if seen is None:  # the unique key that refused ours is not the idempotency key: not a retry
                raise
            return EventResult(seen, created=False, applied=seen.applied)
    if not applied and type_ == "delivered" and order.status == OrderStatus.DELIVERED:
        _add_proof(order, data or {}, replace=False)  # proof sent after the delivery (a signature) completes it
    if applied:
        _apply(session, order, event)
        for listener in registry_of(session).event_listeners if notify else ():  # in the registry's order
            listener(session, order, event)
    return EventResult(event, created=True, applied=applied)


def _is_current(order: Order, type_: str, occurred_at: datetime) -> bool:
    if order.last_event_at is not None and occurred_at < order.last_event_at:
        return False
    if order.status == OrderStatus.CANCELLED:  # cancelled: no more notifications, the relay is closed
        return False
    if type_ not in STATUS_EVENTS:
        return order.status != OrderStatus.DELIVERED or type_ == "location"
    if order.status == OrderStatus.DELIVERED:
        return False
    if order.status == OrderStatus.FAILED_ATTEMPT and type_ in RESTART_AFTER_FAILURE:
        return True
    return RANK[type_] >= RANK.get(order.status, 0)


def _apply(session: Session, order: Order, event: OrderEvent) -> None:
    data = event.data or {}
    order.last_event_at = max(order.last_event_at or event.occurred_at, event.occurred_at)
    if event.type in STATUS_EVENTS:
        order.status = event.type
        order.status_reason = data.get("reason") or None
    eta = data.get("eta") or {}
    if eta.get("start") or eta.get("end"):
        order.eta_start = parse_iso(eta.get("start")) or order.eta_start
        order.eta_end = parse_iso(eta.get("end")) or order.eta_end
    if data.get("stops_away") is not None:
        order.stops_away = int(data["stops_away"])
    location = data.get("location")
    if location:
        order.location_lat, order.location_lng = float(location["lat"]), float(location["lng"])
        order.location_at = event.occurred_at
    if event.type == "driver_assigned" and data.get("driver_ref"):
        driver = session.scalar(select(Driver).where(Driver.ref == data["driver_ref"]))
        if driver is None:
            driver = Driver(ref=data["driver_ref"])
            session.add(driver)
            session.flush()
        order.driver_id = driver.id
        assign_short_code(session, order)
    if event.type == "delivered":
        order.delivered_at = event.occurred_at
        _add_proof(order, data, replace=True)


PROOF_COLUMNS = {"photo_url": "proof_photo_url", "note": "proof_note", "signature_url": "proof_signature_url",
                 "barcode": "proof_barcode"}


def proof_of(order: Order) -> tuple[str | None, ...]:
    return tuple(getattr(order, column) for column in PROOF_COLUMNS.values())


def _add_proof(order: Order, data: dict[str, Any], *, replace: bool) -> None:
    """The event's proof of delivery onto the order: every part it carries (`replace`), or only the parts the
    order still lacks (proof that arrives after the delivery never overwrites what was recorded)."""
    proof = data.get("proof_of_delivery") or {}
    for field, column in PROOF_COLUMNS.items():
        if proof.get(field) and (replace or not getattr(order, column)):
            setattr(order, column, proof[field])


def assign_short_code(session: Session, order: Order) -> None:
    """Give the order a four-digit code that no other order its driver can still name uses: assigned, out, or
    closed within SHORT_CODE_HORIZON. A driver's "#4821 at the gate" must pick out exactly one order."""
    since = utcnow() - SHORT_CODE_HORIZON
    taken = set(session.scalars(select(Order.short_code).where(
        Order.driver_id == order.driver_id, Order.id != order.id, Order.short_code.is_not(None),
        or_(Order.status.in_(("driver_assigned", *LIVE_STATUSES)),
            Order.status.in_(CLOSED_STATUSES) & (Order.last_event_at >= since)))).all())
    while order.short_code is None or order.short_code in taken:
        order.short_code = f"{secrets.randbelow(9000) + 1000}"


# --- who may see which order ---------------------------------------------------------------
def _accessible_statement(by: str):
    """Orders proven in the conversation, or tied to its phone (`by="phone"`) or Telegram chat (`"chat"`)."""
    conditions = [Order.id.in_(select(ConversationOrder.order_id).where(
        ConversationOrder.conversation_id == bindparam("conversation_id")))]
    if by == "phone":
        conditions.append(Order.customer_id.in_(select(Customer.id).where(Customer.phone == bindparam("who"))))
    elif by == "chat":
        conditions.append(Order.customer_id.in_(select(Customer.id).where(Customer.telegram_chat_id == bindparam("who"))))
    return (select(Order).where(or_(*conditions))
            .where(or_(Order.status != OrderStatus.DELIVERED, Order.delivered_at >= bindparam("since")))
            .order_by(Order.created_at.desc(), Order.id.desc()))


# Built once (composing a statement costs more than running it; SQLAlchemy caches the compiled form).
_ACCESSIBLE = {by: _accessible_statement(by) for by in ("phone", "chat", "proven")}


def accessible_orders(session: Session, conversation: Conversation, *, include_done_days: int = 14) -> list[Order]:
    """Orders tied to this conversation's phone or chat, or proven in it; recent ones first."""
    by: str = "proven"
    who: str | int | None = None
    if conversation.channel in ("sms", "whatsapp", "simulator"):
        by, who = "phone", conversation.address
    elif conversation.channel == "telegram":
        try:
            by, who = "chat", int(conversation.address)
        except ValueError:
            pass
    since = utcnow() - timedelta(days=include_done_days)
    return list(session.scalars(_ACCESSIBLE[by], {"conversation_id": conversation.id, "who": who, "since": since}))


_FAILURES = select(VerificationAttempt.channel, VerificationAttempt.address, VerificationAttempt.created_at).where(
    tuple_(VerificationAttempt.channel, VerificationAttempt.address).in_(bindparam("who", expanding=True)),
    VerificationAttempt.succeeded.is_(False), VerificationAttempt.created_at >= bindparam("since"),
).order_by(VerificationAttempt.created_at)


def is_locked_out(session: Session, channel: str, address: str, config: dict[str, Any]) -> bool:
    return any_locked_out(session, [(channel, address)], config)


def any_locked_out(session: Session, keys: list[tuple[str, str]], config: dict[str, Any]) -> bool:
    """True when any of the (channel, address) keys is locked out by failed proofs (one query for all)."""
    security = config.get("security", {})
    window = timedelta(minutes=int(security.get("verification_window_minutes", 60)))
    lockout = timedelta(minutes=int(security.get("verification_lockout_minutes", 60)))
    limit = int(security.get("verification_max_failures", 5))
    now = utcnow()
    if any(isinstance(obj, VerificationAttempt) for obj in session.new):
        session.flush()  # attempts recorded in this transaction count
    # Nothing else pending can change the answer: the turn's other changes (its conversation's state) are not
    # flushed for it, so they go out in one UPDATE later instead of one now and another at commit. Plain rows, on
    # the session's connection: no unit of work involved.
    rows = session.connection().execute(_FAILURES, {"who": keys, "since": now - max(window, lockout) - window}).all()
    for key in keys:
        failures = [row.created_at for row in rows if (row.channel, row.address) == key]
        # Locked while `limit` failures fall within one window and the last of them is recent.
        for i in range(len(failures) - limit + 1):
            first, last = failures[i], failures[i + limit - 1]
            if last - first <= window and now - last < lockout:
                return True
    return False


def verify_order(session: Session, conversation: Conversation, ref: str, postcode: str) -> Order | None:
    """Check an order number + postcode proof, record the attempt, link the order on success.

    The caller answers the same way whether the order does not exist or the postcode is wrong.
    """
    wanted = normalize_postcode(postcode)
    order = next((o for o in find_orders(session, ref) if o.postcode and normalize_postcode(o.postcode) == wanted),
                 None)  # the order number and postcode together pick one brand's order
    ok = order is not None
    session.add(VerificationAttempt(channel=conversation.channel, address=conversation.address, succeeded=ok))
    if order is None:
        return None
    link_order(session, conversation, order, "proof")
    return order


def link_order(session: Session, conversation: Conversation, order: Order, method: str) -> None:
    if session.get(ConversationOrder, (conversation.id, order.id)) is None:
        session.add(ConversationOrder(conversation_id=conversation.id, order_id=order.id, method=method))
        session.flush()
        session.info[ORDERS_LINKED] = session.info.get(ORDERS_LINKED, 0) + 1  # a turn's orders() looks again


ORDERS_LINKED = "lastmile_orders_linked"
