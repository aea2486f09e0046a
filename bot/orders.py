"""Order domain rules shared by the carrier API, the engine and the driver commands."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

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

logger = logging.getLogger(__name__)

EVENT_TYPES: tuple[str, ...] = (
    "created", "driver_assigned", "out_for_delivery", "eta_updated", "delayed",
    "arriving", "delivered", "failed_attempt", "location",
)
STATUS_EVENTS = {s.value for s in OrderStatus}
# Progress of an order; an event never moves it backwards, except that a failed attempt
# starts a new delivery cycle (assigned again, out again the next day).
RANK = {"created": 0, "driver_assigned": 1, "out_for_delivery": 2, "delayed": 2, "arriving": 3,
        "failed_attempt": 4, "delivered": 5}
RESTART_AFTER_FAILURE = {"driver_assigned", "out_for_delivery", "delayed", "arriving", "delivered"}
ACTIVE_STATUSES = ("created", "driver_assigned", "out_for_delivery", "delayed", "arriving", "failed_attempt")

EventListener = Callable[[Session, Order, OrderEvent], None]
EVENT_LISTENERS: list[EventListener] = []  # notifications, relays: called after a state change


def new_token() -> str:
    """An unguessable token (160 random bits) for tracking links and Telegram deep links."""
    return secrets.token_urlsafe(20)


def normalize_ref(value: str) -> str:
    return re.sub(r"[\s]", "", value or "").upper()


def normalize_postcode(value: str | None) -> str:
    return re.sub(r"[\s\-]", "", value or "").upper()


def find_order(session: Session, ref: str) -> Order | None:
    """By carrier reference or tracking number, ignoring case and spaces."""
    key = normalize_ref(ref)
    if not key:
        return None
    return session.scalar(
        select(Order).where(or_(func.upper(Order.ref) == key, func.upper(Order.tracking_number) == key)).limit(1)
    )


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
    try:
        with session.begin_nested():
            session.add(event)
    except IntegrityError:  # the same key committed concurrently
        seen = session.scalar(
            select(OrderEvent).where(OrderEvent.order_id == order.id, OrderEvent.idempotency_key == idempotency_key)
        )
        return EventResult(seen, created=False, applied=seen.applied)
    if applied:
        _apply(session, order, event)
        for listener in EVENT_LISTENERS if notify else ():
            listener(session, order, event)
    return EventResult(event, created=True, applied=applied)


def _is_current(order: Order, type_: str, occurred_at: datetime) -> bool:
    if order.last_event_at is not None and occurred_at < order.last_event_at:
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
        order.eta_start = _parse_dt(eta.get("start")) or order.eta_start
        order.eta_end = _parse_dt(eta.get("end")) or order.eta_end
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
        order.short_code = order.short_code or f"{secrets.randbelow(9000) + 1000}"
    if event.type == "delivered":
        order.delivered_at = event.occurred_at
        proof = data.get("proof_of_delivery") or {}
        order.proof_photo_url = proof.get("photo_url") or order.proof_photo_url
        order.proof_note = proof.get("note") or order.proof_note


def _parse_dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


# --- who may see which order ---------------------------------------------------------------
def accessible_orders(session: Session, conversation: Conversation, *, include_done_days: int = 14) -> list[Order]:
    """Orders tied to this conversation's phone or chat, or proven in it; recent ones first."""
    conditions = [Order.id.in_(select(ConversationOrder.order_id).where(
        ConversationOrder.conversation_id == conversation.id))]
    if conversation.channel in ("sms", "whatsapp", "simulator"):
        conditions.append(Order.customer_id.in_(select(Customer.id).where(Customer.phone == conversation.address)))
    elif conversation.channel == "telegram":
        try:
            chat_id = int(conversation.address)
        except ValueError:
            chat_id = None
        if chat_id is not None:
            conditions.append(
                Order.customer_id.in_(select(Customer.id).where(Customer.telegram_chat_id == chat_id))
            )
    since = utcnow() - timedelta(days=include_done_days)
    orders = session.scalars(
        select(Order)
        .where(or_(*conditions))
        .where(or_(Order.status != OrderStatus.DELIVERED, Order.delivered_at >= since))
        .order_by(Order.created_at.desc(), Order.id.desc())
    ).all()
    return list(orders)


def is_locked_out(session: Session, channel: str, address: str, config: dict[str, Any]) -> bool:
    security = config.get("security", {})
    window = timedelta(minutes=int(security.get("verification_window_minutes", 60)))
    lockout = timedelta(minutes=int(security.get("verification_lockout_minutes", 60)))
    limit = int(security.get("verification_max_failures", 5))
    now = utcnow()
    failures = session.scalars(
        select(VerificationAttempt.created_at)
        .where(VerificationAttempt.channel == channel, VerificationAttempt.address == address,
               VerificationAttempt.succeeded.is_(False),
               VerificationAttempt.created_at >= now - max(window, lockout) - window)
        .order_by(VerificationAttempt.created_at)
    ).all()
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
    order = find_order(session, ref)
    ok = order is not None and bool(order.postcode) and normalize_postcode(order.postcode) == normalize_postcode(postcode)
    session.add(VerificationAttempt(channel=conversation.channel, address=conversation.address, succeeded=ok))
    if not ok:
        return None
    link_order(session, conversation, order, "proof")
    return order


def link_order(session: Session, conversation: Conversation, order: Order, method: str) -> None:
    if session.get(ConversationOrder, (conversation.id, order.id)) is None:
        session.add(ConversationOrder(conversation_id=conversation.id, order_id=order.id, method=method))
        session.flush()
