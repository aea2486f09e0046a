"""What the bot does: handlers registered by intent, dialogue state and role, in one place.

Every handler is a plain function `handler(turn: Turn) -> None` that answers with
`turn.reply(...)`. The order of the gates in `dispatch` is the product's promise: STOP is
honoured before anything else, a conversation in handoff gets no bot reply, drivers get the
driver's side, a pending question gets its answer, then the intent decides.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.context import Turn
from handlers import driver, handoff, instructions, proof, rating, reroute, smalltalk, tracking

Handler = Callable[[Turn], None]

INTENT_HANDLERS: dict[str, Handler] = {
    "track_order": tracking.where_is_my_order,
    "delivery_instructions": instructions.give_instructions,
    "change_address": reroute.change_address,
    "reschedule": reroute.reschedule,
    "greet": smalltalk.greet,
    "goodbye": smalltalk.goodbye,
    "thanks": smalltalk.thanks,
    "help": smalltalk.help_,
    "affirm": smalltalk.affirm,
    "deny": smalltalk.deny,
    "change_language": smalltalk.change_language,
    "human_handoff": handoff.request_person,
    "report_problem": handoff.report_problem,
    "out_of_scope": smalltalk.fallback,
    "rate_delivery": rating.rate_delivery,
    "proof_of_delivery": proof.proof_of_delivery,
}

# A question the bot asked ("which order?", "order number and postcode?") gets first go at the
# answer; returning False hands the message back to the intent handlers.
StateHandler = Callable[[Turn], bool]
STATE_HANDLERS: dict[str, StateHandler] = {
    "proof": tracking.on_proof,
    "choose_order": tracking.on_choose_order,
    "clarify": smalltalk.on_clarify,
    "relay_order": instructions.on_order_chosen,
    "relay_details": instructions.on_details,
    "driver_chat": instructions.on_driver_chat,
    "rating": rating.on_rating,
    "rating_comment": rating.on_comment,
    "handoff_offer": handoff.on_offer,
}

ROLE_HANDLERS: dict[str, Handler] = {"driver": driver.on_driver_message}

NON_TEXT_KINDS = {"photo", "location", "contact", "sticker", "voice", "audio", "document", "video", "unsupported"}
# Intents that always win over a pending question.
INTERRUPTS = {"opt_out", "opt_in", "human_handoff", "change_language", "help"}


def dispatch(turn: Turn) -> None:
    conversation = turn.conversation
    name = turn.intent.name
    if name == "opt_out":
        return smalltalk.opt_out(turn)
    if conversation.opted_out:
        if name == "opt_in":
            smalltalk.opt_in(turn)
        return  # an opted-out number gets nothing but the STOP confirmation
    if name == "opt_in":
        return smalltalk.opt_in(turn)
    if conversation.handoff_active:
        return handoff.while_in_handoff(turn)
    role_handler = ROLE_HANDLERS.get(conversation.role)
    if role_handler is not None:
        return role_handler(turn)
    turn.update_state(buttons=None)  # a numbered answer was already mapped by the engine
    awaiting = turn.state.get("awaiting")
    state_handler = STATE_HANDLERS.get(awaiting) if awaiting else None
    if state_handler is not None and name not in INTERRUPTS and state_handler(turn):
        return
    if turn.inbound.kind in NON_TEXT_KINDS and not turn.inbound.text.strip():
        smalltalk.non_text(turn)
    elif not awaiting and tracking.looks_like_proof(turn.inbound.text) and tracking.on_proof(turn):
        pass  # an order number and postcode sent without being asked
    else:
        if awaiting and name in INTERRUPTS:
            turn.expect(None)
        INTENT_HANDLERS.get(name, smalltalk.fallback)(turn)
    if name != "out_of_scope":
        turn.update_state(misses=None)


def register(intent: str, handler: Handler) -> None:
    """For modules that add a capability (driver relay, reroutes, ratings)."""
    INTENT_HANDLERS[intent] = handler
