"""Handing a conversation to a support agent, and staying quiet while a person handles it."""

from __future__ import annotations

from datetime import timedelta

from bot.context import Turn
from bot.i18n import gettext as _
from db.models import Handoff

PRIORITY = {"report_problem": 1, "low_rating": 1, "driver_flag": 1, "human_handoff": 2, "fallback": 2, "agent": 3}
SLA_MINUTES = {1: 15, 2: 60, 3: 240}


def request_person(turn: Turn) -> None:
    open_handoff(turn, "human_handoff")


def report_problem(turn: Turn) -> None:
    open_handoff(turn, "report_problem")


def open_handoff(turn: Turn, reason: str, details: dict | None = None) -> Handoff:
    """Pause the bot in this conversation and queue it for an agent, telling the customer once."""
    conversation = turn.conversation
    priority = PRIORITY.get(reason, 2)
    handoff = Handoff(
        conversation_id=conversation.id,
        order_id=conversation.active_order_id,
        reason=reason,
        priority=priority,
        details={"message_id": turn.message.id, **(details or {})},
        opened_at=turn.now,
        sla_due_at=turn.now + timedelta(minutes=SLA_MINUTES[priority]),
    )
    turn.session.add(handoff)
    conversation.handoff_active = True
    turn.expect(None)
    turn.reply(_("I'm passing you to a person from our support team. They usually answer within "
                 "%(minutes)d minutes; your messages will reach them here.", minutes=SLA_MINUTES[priority]))
    return handoff


def while_in_handoff(turn: Turn) -> None:
    """The customer's message waits for the agent; the bot says nothing."""
    turn.message.data = {**(turn.message.data or {}), "queued_for_agent": True}
