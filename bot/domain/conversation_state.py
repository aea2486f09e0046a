"""The dialogue state kept on a conversation (`Conversation.state`, a JSON column): every key it may hold,
what it means, and the one way to change it.

A turn writes it through `Turn.update_state`/`Turn.expect`; rules outside a turn (a notification that asks for a
rating, a handoff that clears a pending question, a relay that opens a chat window) through `remember`. Both
come here, so a key that is not declared below is refused at once (a typo would otherwise be stored, never read,
and the next message would be routed as if nothing were pending).
"""

from __future__ import annotations

from typing import Any, TypedDict, get_type_hints

from db.models import Conversation


class PendingIntent(TypedDict):
    """What the customer seemed to ask, waiting for their yes/no (handlers/confirm.py)."""

    name: str
    text: str
    entities: list[list[Any]]  # [entity, value, start, end, text]


class DriverChat(TypedDict):
    """A driver's question relayed to the customer: their answers go back to the driver until `until`."""

    order_id: int
    until: str  # ISO 8601, UTC


class EmailOptOut(TypedDict, total=False):
    """Why an email address gets no more email (bot/domain/email_optouts.py)."""

    reason: str  # unsubscribe | bounce | complaint
    at: str  # ISO 8601, UTC
    detail: str  # the provider's diagnostic, at most 200 characters


class ConversationState(TypedDict, total=False):
    # Routing: the state handler the next message goes to (handlers' `state_handlers`), None = by intent.
    awaiting: str
    # The buttons last offered, [[title, payload], ...]: "2" or the title typed on SMS means that button.
    buttons: list[list[str]]
    # Messages in a row the bot did not understand (two: offer a person).
    misses: int
    # The person chose their language themselves ("español"): never guessed from their text again.
    locale_explicit: bool
    # The last location the person shared, [lat, lng].
    last_location: list[float]
    # A tracking question waiting for proof of identity: the order number they gave.
    proof_ref: str
    # A yes/no question about what the customer meant.
    pending_intent: PendingIntent
    # An instruction or reroute being collected before it goes to the driver: {"intent": ..., "tries": n, ...}.
    relay_pending: dict[str, Any]
    # The order of the last relayed exchange (a driver's bare reply answers that order's customer).
    relay_order_id: int
    # A driver's answer waiting until they say which order it is for: {"text": ..., "media": [...]}.
    driver_pending: dict[str, Any]
    # The driver's open chat window with a customer.
    driver_chat: DriverChat
    # Reroute/reschedule requests waiting for this driver's approval (CustomerRequest ids).
    pending_approvals: list[int]
    # The delivered order a rating (and then a comment) is being asked for.
    rating_order_id: int
    # How many times the rating question was asked again after an answer that was not a rating.
    rating_retries: int
    # The rating given was low (the comment is then passed to support).
    rating_low: bool
    # Email conversations: why the address opted out (an unsubscribe, a bounce, a complaint).
    opt_out: EmailOptOut


KEYS: frozenset[str] = frozenset(get_type_hints(ConversationState))


def state_of(conversation: Conversation) -> ConversationState:
    """A copy of the conversation's state (changing it changes nothing: use `remember`)."""
    return ConversationState(**(conversation.state or {}))  # type: ignore[typeddict-item]


def remember(conversation: Conversation, **values: Any) -> None:
    """Set keys of the conversation's state; a value None removes its key. Undeclared keys raise KeyError."""
    unknown = set(values) - KEYS
    if unknown:
        raise KeyError(f"not a conversation state key: {', '.join(sorted(unknown))} (see ConversationState)")
    state = dict(conversation.state or {})
    for key, value in values.items():
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    conversation.state = state  # a new dict, so the JSON column is marked dirty


def forget(conversation: Conversation, *keys: str) -> None:
    """Remove keys from the conversation's state."""
    remember(conversation, **dict.fromkeys(keys))
