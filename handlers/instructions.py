"""Delivery instructions: kept on the order with their history, relayed to the driver at once when the
order is out for delivery, or shown to the driver when it goes out; and which order a request is for."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.i18n import gettext as _
from bot.core.messages import Button
from bot.dialogue.engine import parse_shortcut
from bot.dialogue.turn import Turn
from bot.domain import orders as order_rules
from bot.domain import relay
from db.models import CustomerRequest, Order, OrderEvent, utcnow

logger = logging.getLogger(__name__)

# What to do once the order is known (intent -> action(turn, order, request)) and the answer to a follow-up
# question ("which address?": intent -> handler(turn, pending) -> handled) are the registry's `order_actions`
# and `details_handlers` (app.py build_registry).
NOT_AN_ANSWER = {"track_order", "human_handoff", "report_problem", "rate_delivery", "proof_of_delivery", "deny"}


def give_instructions(turn: Turn) -> None:
    """Intent `delivery_instructions`: the customer's words for the driver, verbatim."""
    request = request_from(turn)
    if not request["text"]:
        turn.expect("relay_details", relay_pending={"intent": "delivery_instructions"})
        turn.reply(_("What should I tell the driver? For example: the gate code is 4512, leave it at the back door."))
        return
    with_order(turn, request)


def request_from(turn: Turn, **entities: Any) -> dict[str, Any]:
    """What the customer asked, in a form that survives a 'which order?' question (JSON)."""
    text = (turn.inbound.text or "").strip()
    if parse_shortcut(text) is not None or (turn.inbound.button_payload and text == turn.inbound.button_payload):
        text = ""
    return {"intent": turn.intent.name, "text": text, "language": turn.intent.language or turn.locale,
            "entities": {k: v for k, v in entities.items() if v is not None}}


def with_order(turn: Turn, request: dict[str, Any]) -> None:
    """Run the request's action on its order: the one named, the conversation's, or the single active one."""
    order = pick_order(turn, request)
    if order is not None:
        turn.expect(None, relay_pending=None)
        turn.conversation.active_order_id = order.id
        turn.services.registry.order_actions[request["intent"]](turn, order, request)


def pick_order(turn: Turn, request: dict[str, Any]) -> Order | None:
    from handlers import tracking

    orders = turn.orders()
    ref = turn.intent.entity("order_id")
    if ref:
        named = [o for o in orders if order_rules.normalize_ref(str(ref)) in
                 (order_rules.normalize_ref(o.ref), order_rules.normalize_ref(o.tracking_number or ""))]
        if named:
            return named[0]
    if not orders:
        tracking.ask_proof(turn)
        return None
    active = [o for o in orders if o.status in order_rules.ACTIVE_STATUSES]
    current = [o for o in active if o.id == turn.conversation.active_order_id]
    if current or len(active) == 1:
        return (current or active)[0]
    if not active:
        turn.expect(None, relay_pending=None)
        turn.reply(_("Your order %(ref)s is no longer on its way, so it can't be changed. "
                     "To reach our support team, write 'talk to a person'.", ref=orders[0].ref))
        return None
    buttons = [Button(o.ref, f'/{request["intent"]}{{"order_id": "{o.ref}"}}') for o in active[:8]]
    turn.expect("relay_order", relay_pending=request)
    turn.reply(_("You have %(count)d orders on the way. Which one do you mean?", count=len(active)), buttons)
    return None


def on_order_chosen(turn: Turn) -> bool:
    """The answer to 'which order?': carry on with the request kept in the dialogue state."""
    pending = turn.state.get("relay_pending")
    if not pending or not turn.intent.entity("order_id"):
        turn.expect(None, relay_pending=None)
        return False
    with_order(turn, pending)
    return True


def on_details(turn: Turn) -> bool:
    """The answer to 'what should I tell the driver?' (or a reroute's missing address or day)."""
    pending = dict(turn.state.get("relay_pending") or {})
    if not pending:
        turn.expect(None, relay_pending=None)
        return False
    return turn.services.registry.details_handlers[pending["intent"]](turn, pending)


def not_an_answer(turn: Turn) -> bool:
    """The person moved on (asked something else): drop the pending question, let the intents decide."""
    if turn.intent.name in NOT_AN_ANSWER:
        turn.expect(None, relay_pending=None)
        return True
    return False


def on_instruction_details(turn: Turn, pending: dict[str, Any]) -> bool:
    if not_an_answer(turn):
        return False
    turn.expect(None, relay_pending=None)
    request = request_from(turn)
    request["intent"] = "delivery_instructions"
    with_order(turn, request)
    return True


# --- instructions on an order ---------------------------------------------------------------------
def record_instruction(turn: Turn, order: Order, request: dict[str, Any]) -> None:
    """Store the instruction (history + current text), relay it now if the order is out, confirm."""
    text = request["text"] or ""
    if relay.is_blocked(text, turn.config):
        turn.reply(relay.blocked_notice())
        return
    if order.status == "delivered":
        turn.reply(_("Your order %(ref)s was already delivered.", ref=order.ref) + " "
                   + relay.closed_notice(turn.config))
        return
    entry = relay.store_instruction(turn.session, order, text, request.get("language"), now=turn.now,
                                    conversation_id=turn.conversation.id)
    if entry.status == "relayed":
        turn.reply(_("Thanks, I've passed your instructions to the driver of order %(ref)s.", ref=order.ref), order=order)
        return
    turn.reply(_("Thanks, I've saved your instructions for order %(ref)s. The driver will see them when "
                 "the order goes out for delivery.", ref=order.ref), order=order)


def send_pending_instructions(session: Session, order: Order, event: OrderEvent) -> None:
    """EVENT_LISTENERS entry: when an order goes out, its driver gets the instructions not yet relayed."""
    if event.type != "out_for_delivery":
        return
    with session.no_autoflush:  # the order's pending changes do not change which requests wait
        pending = session.scalars(select(CustomerRequest).where(
            CustomerRequest.order_id == order.id, CustomerRequest.kind == "instruction",
            CustomerRequest.status == "pending").order_by(CustomerRequest.id)).all()
    if not pending:
        return
    now: datetime = utcnow()
    for entry in pending:
        if relay.relay_to_driver(session, order, entry.text, entry.language, kind="instruction") is None:
            return
        entry.status, entry.resolved_at = "relayed", now
    logger.info("%d pending instruction(s) relayed to the driver of order %s", len(pending), order.id)



# --- the customer answers the driver ------------------------------------------------------------------
NOT_FOR_THE_DRIVER = {"track_order", "change_address", "reschedule", "delivery_instructions", "human_handoff",
                      "report_problem", "rate_delivery", "proof_of_delivery", "change_language"}


def on_driver_chat(turn: Turn) -> bool:
    """After a driver's message, the customer's next text goes back to that driver (while the relay is open)."""
    chat = turn.state.get("driver_chat")
    text = (turn.inbound.text or "").strip()
    order = turn.session.get(Order, int(chat["order_id"])) if chat and chat.get("order_id") else None
    expired = not chat or datetime.fromisoformat(chat["until"]) < turn.now
    if expired or order is None or not text or turn.intent.name in NOT_FOR_THE_DRIVER \
            or order.id not in {o.id for o in turn.orders()}:
        turn.expect(None, driver_chat=None)
        return False
    if not relay.relay_open(order, turn.config, turn.now):
        turn.expect(None, driver_chat=None)
        turn.reply(relay.closed_notice(turn.config))
        return True
    if relay.is_blocked(text, turn.config):
        turn.reply(relay.blocked_notice())
        return True
    relay.relay_to_driver(turn.session, order, text, turn.intent.language or turn.locale)
    turn.reply(_("Passed on to your driver."), order=order)
    return True
