"""Handing a conversation to a support agent, and staying quiet while a person handles it."""

from __future__ import annotations

from bot.dialogue.turn import Turn
from bot.domain import handoffs
from db.models import Handoff


def request_person(turn: Turn) -> None:
    """'I want a person', or the 'Talk to a person' button offered after two misses in a row."""
    lost = turn.intent.entity("reason") == "fallback" or int(turn.state.get("misses") or 0) >= 2
    open_handoff(turn, "fallback" if lost else "human_handoff")


def report_problem(turn: Turn) -> None:
    open_handoff(turn, "report_problem", {"text": (turn.inbound.text or "")[:500]})


def open_handoff(turn: Turn, reason: str, details: dict | None = None) -> Handoff:
    """Pause the bot in this conversation and queue it for an agent, telling the customer once."""
    turn.expect(None)
    return handoffs.open_handoff(turn.session, turn.conversation, reason,
                                 details={"message_id": turn.message.id, **(details or {})}, now=turn.now)


def while_in_handoff(turn: Turn) -> None:
    """The customer's message waits for the agent; the bot says nothing."""
    turn.message.data = {**(turn.message.data or {}), "queued_for_agent": True}


def on_offer(turn: Turn) -> bool:
    """The answer to 'would you like to talk to a person?' after two misses in a row."""
    turn.expect(None)
    if turn.intent.name == "affirm":
        open_handoff(turn, "fallback")
        return True
    return False  # "no", or something else: the intents decide
