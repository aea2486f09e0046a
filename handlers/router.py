"""The turn's router: the gates every message passes, then the registry's role, state and intent handlers.

The order of the gates in `dispatch` is the product's promise: STOP is honoured before anything else, a
conversation in handoff gets no bot reply, drivers get the driver's side, a pending question gets its answer
(a state handler returning False hands the message back to the intents), then the intent decides. The tables
themselves are the registry's (app.py `build_registry`).
"""

from __future__ import annotations

from bot.dialogue.turn import Turn
from handlers import confirm, handoff, smalltalk, tracking
from nlu import policy

NON_TEXT_KINDS = {"photo", "location", "contact", "sticker", "voice", "audio", "document", "video", "unsupported"}
# Intents that always win over a pending question.
INTERRUPTS = {"opt_out", "opt_in", "human_handoff", "change_language", "help"}


def dispatch(turn: Turn) -> None:
    conversation = turn.conversation
    name = turn.intent.name
    if name == "opt_out" and policy.decide(turn.intent).kind == "act":  # STOP, or a sure request
        return smalltalk.opt_out(turn)
    if conversation.opted_out:
        if name == "opt_in":
            smalltalk.opt_in(turn)
        return  # an opted-out number gets nothing but the STOP confirmation
    if name == "opt_in" and policy.decide(turn.intent).kind == "act":
        return smalltalk.opt_in(turn)
    if conversation.handoff_active:
        return handoff.while_in_handoff(turn)
    registry = turn.services.registry
    role_handler = registry.role_handlers.get(conversation.role)
    if role_handler is not None:
        return role_handler(turn)
    turn.update_state(buttons=None)  # a numbered answer was already mapped by the engine
    awaiting = turn.state.get("awaiting")
    state_handler = registry.state_handlers.get(awaiting) if awaiting else None
    if state_handler is not None and name not in INTERRUPTS and state_handler(turn):
        return
    if turn.inbound.kind in NON_TEXT_KINDS and not turn.inbound.text.strip():
        smalltalk.non_text(turn)
    elif not awaiting and tracking.looks_like_proof(turn.inbound.text) and tracking.on_proof(turn):
        pass  # an order number and postcode sent without being asked
    else:
        if awaiting and name in INTERRUPTS:
            turn.expect(None)
        name = act_or_ask(turn)
    if name != "out_of_scope":
        turn.update_state(misses=None)


def act_or_ask(turn: Turn) -> str:
    """Run the handler the decision policy (nlu/policy.py) chooses: act, ask a one-tap
    confirmation first, or ask which of our options was meant. Returns the intent acted on."""
    decision = policy.decide(turn.intent, has_active_orders=policy.needs_orders(turn.intent)
                             and bool(turn.active_orders()))
    if decision.kind == "confirm":
        confirm.ask(turn, decision.intent)
        return decision.intent.name
    turn.intent = decision.intent
    turn.services.registry.intent_handlers.get(decision.intent.name, smalltalk.fallback)(turn)
    return decision.intent.name

