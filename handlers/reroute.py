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

from bot.core.i18n import format_duration
from bot.core.i18n import gettext as _
from bot.dialogue.turn import Turn
from bot.domain import reroutes
from db.models import Order
from handlers.instructions import (
    not_an_answer,
    request_from,
    with_order,
)
from nlu.entities import addresses

logger = logging.getLogger(__name__)

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
        slot_start = datetime.fromisoformat(when)
        return slot_start, slot_start + timedelta(minutes=int(settings["slot_minutes"]))
    if isinstance(when, dict):
        start = datetime.fromisoformat(when["from"]) if when.get("from") else None
        end = datetime.fromisoformat(when["to"]) if when.get("to") else None
        edge = start or end
        anchor = edge.astimezone(tz).date() if edge else on
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
    entry, wait = reroutes.file_request(turn.session, order, turn.conversation, request, turn.now, turn.config)
    if wait is None:
        turn.reply(_("Done: order %(ref)s will be delivered %(change)s.", ref=order.ref,
                     change=reroutes.describe(entry)), order=order)
        return
    turn.reply(_("Your order %(ref)s is already on its way, so I've asked the driver. I'll let you know "
                 "within %(wait)s.", ref=order.ref, wait=format_duration(wait)), order=order)
