"""Reroutes and reschedules over a Session: a customer's request accepted at once, or put to the driver when the
order is already out (YES/NO, with a timeout that hands it to support); accepted changes are order events."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.core.i18n import format_window
from bot.core.i18n import gettext as _
from bot.core.messages import Button
from bot.delivery.scheduler import cancel, schedule
from bot.domain import orders as order_rules
from bot.domain import relay
from bot.domain.conversation_state import remember, state_of
from bot.domain.handoffs import open_handoff
from db.models import Conversation, CustomerRequest, Order, utcnow

logger = logging.getLogger(__name__)

TIMEOUT_JOB = "reroute_timeout"


def file_request(session: Session, order: Order, conversation: Conversation, request: dict[str, Any], now: datetime,
                 config: dict[str, Any]) -> tuple[CustomerRequest, timedelta | None]:
    """Record the customer's request and accept it now; or, when the order is already out with a driver, ask the
    driver, who has `reroute.driver_approval_timeout_minutes` (returned) to answer before support takes it."""
    entry = CustomerRequest(order_id=order.id, conversation_id=conversation.id, kind=request["intent"],
                            text=(request["text"] or "")[:2000], language=request.get("language"),
                            details=dict(request["entities"]), status="pending")
    session.add(entry)
    session.flush()
    driver = relay.driver_party(session, order) if order.status in relay.LIVE_STATUSES else None
    if driver is None:
        accept(session, order, entry, "customer", now)
        return entry, None
    timeout = timedelta(minutes=int(config["reroute"]["driver_approval_timeout_minutes"]))
    ask_driver(session, order, entry, driver)
    schedule(session, TIMEOUT_JOB, now + timeout, {"request_id": entry.id}, dedupe_key=f"{TIMEOUT_JOB}-{entry.id}")
    return entry, timeout


def describe(entry: CustomerRequest) -> str:
    """'to 12 Main Street', 'to a neighbour', 'today, 3:00 – 4:00 PM' (in the current locale)."""
    details = entry.details or {}
    if entry.kind == "reschedule":
        return format_window(datetime.fromisoformat(details["start"]), datetime.fromisoformat(details["end"]))
    if details.get("option") == "neighbour":
        return _("to a neighbour")
    if details.get("option") == "pickup_point":
        return _("to a pickup point")
    return _("to %(address)s", address=relay.mask_phone_numbers(details.get("address") or ""))


def ask_driver(session: Session, order: Order, entry: CustomerRequest, driver: relay.Party) -> None:
    with driver.speaking():
        text = _("%(order)s: the customer asks to deliver %(change)s instead [%(lang)s]: «%(text)s». "
                 "Accept? Reply YES or NO.", order=relay.label(order), change=describe(entry),
                 lang=(entry.language or "?"), text=relay.mask_phone_numbers(entry.text))
        buttons = [Button(_("Yes"), f"#{order.short_code} yes"), Button(_("No"), f"#{order.short_code} no")]
    driver.send(session, text, order, buttons=buttons, data={"request_id": entry.id})
    pending = [*(state_of(driver.conversation).get("pending_approvals") or []), entry.id]
    remember(driver.conversation, pending_approvals=pending, relay_order_id=order.id)
    entry.status = "awaiting_driver"


def accept(session: Session, order: Order, entry: CustomerRequest, source: str, now: datetime) -> None:
    """Change the order and record it as an order event (which the carrier callback pushes)."""
    details = entry.details or {}
    data: dict[str, Any]  # the order event's data
    if entry.kind == "reschedule":
        previous = {"start": _iso(order.window_start), "end": _iso(order.window_end)}
        order.window_start = datetime.fromisoformat(details["start"])
        order.window_end = datetime.fromisoformat(details["end"])
        order.eta_start = order.eta_end = None
        data = {"delivery_window": {"start": _iso(order.window_start), "end": _iso(order.window_end)},
                "previous_window": previous}
        kind = "rescheduled"
    else:
        previous = {"line1": order.address_line1, "line2": order.address_line2}
        if details.get("option") == "address":
            order.address_line1, order.address_line2 = details["address"], None
        order.extra = {**(order.extra or {}), "delivery_option": {"option": details.get("option"),
                                                                  "customer_text": entry.text}}
        data = {"option": details.get("option"), "address": details.get("address"), "previous_address": previous}
        kind = "address_changed"
    data.update(request_id=entry.id, customer_text=entry.text)
    order_rules.apply_event(session, order, kind, now, data, source=source, idempotency_key=f"request-{entry.id}")
    entry.status, entry.resolved_at = "accepted", now
    logger.info("request %s accepted (%s, by %s)", entry.id, entry.kind, source)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# --- the driver answers, or does not ------------------------------------------------------------
def resolve_by_driver(session: Session, entry: CustomerRequest, accepted: bool, now: datetime) -> str:
    """Apply the driver's YES or NO, tell the customer, and return the driver's confirmation text."""
    order = _order_of(session, entry)
    cancel(session, f"{TIMEOUT_JOB}-{entry.id}")
    _forget_approval(session, order, entry)
    if accepted:
        accept(session, order, entry, "driver", now)
    else:
        entry.status, entry.resolved_at = "refused", now
    customer = relay.customer_party(session, order)
    if customer is not None:
        with customer.speaking():
            if accepted:
                text = _("Good news: the driver accepted. Order %(ref)s will be delivered %(change)s.",
                         ref=order.ref, change=describe(entry))
            else:
                text = _("Sorry, the driver can't make this change now that order %(ref)s is on its way; it will "
                         "be delivered as planned. To reach our support team, write 'talk to a person'.",
                         ref=order.ref)
        customer.send(session, text, order)
    if accepted:
        return _("Thanks. %(order)s: delivery changed %(change)s.", order=relay.label(order), change=describe(entry))
    return _("OK. %(order)s: the customer will be told the change isn't possible.", order=relay.label(order))


def approval_timed_out(session: Session, payload: dict[str, Any]) -> None:
    """No answer from the driver in time: the request goes to support; both sides are told."""
    entry = session.get(CustomerRequest, int(payload["request_id"]))
    if entry is None or entry.status != "awaiting_driver":
        return
    order = _order_of(session, entry)
    now = utcnow()
    entry.status, entry.resolved_at = "escalated", now
    _forget_approval(session, order, entry)
    driver = relay.driver_party(session, order)
    if driver is not None:
        with driver.speaking():
            text = _("%(order)s: no answer in time; our support team will handle the customer's request.",
                     order=relay.label(order))
        driver.send(session, text, order)
    customer = relay.customer_party(session, order)
    if customer is None:
        return
    with customer.speaking():
        text = _("The driver couldn't answer in time about your request for order %(ref)s.", ref=order.ref)
    customer.send(session, text, order)
    open_handoff(session, customer.conversation, "reroute_timeout", order_id=order.id, now=now,
                 details={"request_id": entry.id, "kind": entry.kind, "text": entry.text})
    logger.info("request %s escalated to support after the driver's timeout", entry.id)


def _order_of(session: Session, entry: CustomerRequest) -> Order:
    """The request's order: its order_id is a non-null foreign key whose order deletes the request with it."""
    order = session.get(Order, entry.order_id)
    if order is None:
        raise LookupError(f"request {entry.id} names order {entry.order_id}, which does not exist")
    return order


def _forget_approval(session: Session, order: Order, entry: CustomerRequest) -> None:
    driver = relay.driver_party(session, order)
    if driver is not None:
        pending = [i for i in state_of(driver.conversation).get("pending_approvals") or [] if i != entry.id]
        remember(driver.conversation, pending_approvals=pending or None)

