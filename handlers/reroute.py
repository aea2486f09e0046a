"""Reroutes and reschedules: another address, a neighbour, a pickup point, another day or time.

Before the order is out for delivery a change is accepted at once; once it is out, the driver is
asked (YES/NO) and, without an answer in `reroute.driver_approval_timeout_minutes`, support takes
over. Every accepted change is an order event, pushed to the carrier's callback.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot import orders as order_rules
from bot import relay
from bot.context import Turn
from bot.i18n import format_duration, format_window
from bot.i18n import gettext as _
from bot.messages import Button
from bot.scheduler import cancel, job, schedule
from db.models import CustomerRequest, Order, utcnow
from handlers.instructions import (
    DETAILS_HANDLERS,
    ORDER_ACTIONS,
    not_an_answer,
    request_from,
    with_order,
)
from nlu.entities import addresses

logger = logging.getLogger(__name__)

TIMEOUT_JOB = "reroute_timeout"
MAX_TRIES = 3
NEIGHBOUR = re.compile(r"\b(?:neighbou?rs?|vecin[oa]s?|voisin[es]*|nachbar\w*|vizinh[oa]s?)\b", re.I)
PICKUP = re.compile(r"\b(?:pick[ -]?up(?: point)?|lockers?|parcel ?shop|punto de recogida|taquilla|point relais|"
                    r"relais|casier|consigne|packstation|paketshop|abholstation|ponto de recolha|cacifo)\b", re.I)


# --- the customer asks ---------------------------------------------------------------------------
def change_address(turn: Turn) -> None:
    """Intent `change_address`: a new address, a neighbour or a pickup point."""
    option, address = destination(turn, asked=False)
    if option is None:
        return ask_again(turn, {"intent": "change_address", "tries": 0})
    with_order(turn, request_from(turn, option=option, address=address))


def reschedule(turn: Turn) -> None:
    """Intent `reschedule`: another day and/or time slot, in the customer's time zone."""
    window = requested_window(turn)
    if window is None:
        return ask_again(turn, {"intent": "reschedule", "tries": 0})
    with_order(turn, request_from(turn, start=window[0].isoformat(), end=window[1].isoformat()))


def on_details(turn: Turn, pending: dict[str, Any]) -> bool:
    """The answer to 'which address?' / 'which day?'; unparseable again: ask again, change nothing."""
    if pending["intent"] == "change_address":
        option, address = destination(turn, asked=True)
        entities = {"option": option, "address": address} if option else None
    else:
        window = requested_window(turn)
        entities = {"start": window[0].isoformat(), "end": window[1].isoformat()} if window else None
    if entities is None:
        if not_an_answer(turn):
            return False
        ask_again(turn, pending)
        return True
    request = request_from(turn, **entities)
    request["intent"] = pending["intent"]
    turn.expect(None, relay_pending=None)
    with_order(turn, request)
    return True


def ask_again(turn: Turn, pending: dict[str, Any]) -> None:
    tries = int(pending.get("tries", 0)) + 1
    if tries > MAX_TRIES:
        turn.expect(None, relay_pending=None)
        turn.reply(_("Sorry, I still couldn't understand. To reach our support team, write 'talk to a person'."))
        return
    turn.expect("relay_details", relay_pending={**pending, "tries": tries})
    if pending["intent"] == "change_address":
        turn.reply(_("Where should we deliver instead? Send the new address with the street and number "
                     "(for example: 12 Main Street), or say 'a neighbour' or 'a pickup point'."))
    else:
        turn.reply(_("Which day and time would suit you? For example: tomorrow after 3pm, or Friday morning."))


def destination(turn: Turn, *, asked: bool) -> tuple[str | None, str | None]:
    text = turn.inbound.text or ""
    chosen = turn.intent.entity("option")  # a button: '/change_address{"option": "neighbour"}'
    if chosen in ("neighbour", "pickup_point"):
        return str(chosen), None
    if PICKUP.search(text):
        return "pickup_point", None
    if NEIGHBOUR.search(text):
        return "neighbour", None
    address = turn.intent.entity("address")
    if not address and asked:  # a bare answer to "which address?" has no "to ..." before it
        found = addresses("to " + text.strip())
        address = found[0].value if found else None
    return ("address", str(address)[:300]) if address else (None, None)


def requested_window(turn: Turn) -> tuple[datetime, datetime] | None:
    """The delivery window the customer asked for, or None if missing, past or too far ahead."""
    settings = turn.config["reroute"]
    tz = ZoneInfo(turn.timezone)
    day, when = turn.intent.entity("date"), turn.intent.entity("time")
    try:
        on = date.fromisoformat(str(day)) if day else None
        start, end = _bounds(when, on, tz, settings)
    except (TypeError, ValueError):
        return None
    if start is None or end is None or end <= start:
        return None
    if end <= turn.now or start > turn.now + timedelta(days=int(settings["max_days_ahead"])):
        return None
    return start, end


def _bounds(when: Any, on: date | None, tz: ZoneInfo, settings: dict[str, Any]) -> tuple[datetime | None, ...]:
    day_start, day_end = time.fromisoformat(settings["day_start"]), time.fromisoformat(settings["day_end"])
    if isinstance(when, str):
        start = datetime.fromisoformat(when)
        return start, start + timedelta(minutes=int(settings["slot_minutes"]))
    if isinstance(when, dict):
        start = datetime.fromisoformat(when["from"]) if when.get("from") else None
        end = datetime.fromisoformat(when["to"]) if when.get("to") else None
        anchor = (start or end).astimezone(tz).date() if (start or end) else on
        if anchor is None:
            return None, None
        return start or datetime.combine(anchor, day_start, tz), end or datetime.combine(anchor, day_end, tz)
    if on is not None:
        return datetime.combine(on, day_start, tz), datetime.combine(on, day_end, tz)
    return None, None


# --- on the order -------------------------------------------------------------------------------
def request_change(turn: Turn, order: Order, request: dict[str, Any]) -> None:
    """Accept now, or ask the driver when the order is already out; tell the customer which."""
    if order.status == "delivered":
        turn.reply(_("Your order %(ref)s was already delivered, so it can't be changed.", ref=order.ref), order=order)
        return
    entry = CustomerRequest(order_id=order.id, conversation_id=turn.conversation.id, kind=request["intent"],
                            text=(request["text"] or "")[:2000], language=request.get("language"),
                            details=dict(request["entities"]), status="pending")
    turn.session.add(entry)
    turn.session.flush()
    driver = relay.driver_party(turn.session, order) if order.status in relay.LIVE_STATUSES else None
    if driver is None:
        accept(turn.session, order, entry, "customer", turn.now)
        turn.reply(_("Done: order %(ref)s will be delivered %(change)s.", ref=order.ref, change=describe(entry)),
                   order=order)
        return
    timeout = timedelta(minutes=int(turn.config["reroute"]["driver_approval_timeout_minutes"]))
    ask_driver(turn.session, order, entry, driver)
    schedule(turn.session, TIMEOUT_JOB, turn.now + timeout, {"request_id": entry.id},
             dedupe_key=f"{TIMEOUT_JOB}-{entry.id}")
    turn.reply(_("Your order %(ref)s is already on its way, so I've asked the driver. I'll let you know "
                 "within %(wait)s.", ref=order.ref, wait=format_duration(timeout)), order=order)


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
    pending = [*((driver.conversation.state or {}).get("pending_approvals") or []), entry.id]
    relay.remember(driver.conversation, pending_approvals=pending, relay_order_id=order.id)
    entry.status = "awaiting_driver"


def accept(session: Session, order: Order, entry: CustomerRequest, source: str, now: datetime) -> None:
    """Change the order and record it as an order event (which the carrier callback pushes)."""
    details = entry.details or {}
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
    order = session.get(Order, entry.order_id)
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


@job(TIMEOUT_JOB)
def approval_timed_out(session: Session, payload: dict[str, Any]) -> None:
    """No answer from the driver in time: the request goes to support; both sides are told."""
    from bot.handoffs import open_handoff

    entry = session.get(CustomerRequest, int(payload["request_id"]))
    if entry is None or entry.status != "awaiting_driver":
        return
    order = session.get(Order, entry.order_id)
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


def _forget_approval(session: Session, order: Order, entry: CustomerRequest) -> None:
    driver = relay.driver_party(session, order)
    if driver is not None:
        pending = [i for i in (driver.conversation.state or {}).get("pending_approvals") or [] if i != entry.id]
        relay.remember(driver.conversation, pending_approvals=pending or None)


ORDER_ACTIONS["change_address"] = request_change
ORDER_ACTIONS["reschedule"] = request_change
DETAILS_HANDLERS["change_address"] = on_details
DETAILS_HANDLERS["reschedule"] = on_details
