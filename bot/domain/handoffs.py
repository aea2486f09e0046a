"""Support handoffs: open, take, reply, release to the bot, close, and the idle auto-return.

Everything here works on a SQLAlchemy session inside the caller's transaction, so a handoff,
the conversation's pause flag, the customer's notice (an outbox row) and the helpdesk webhook
commit together. Handlers, the console, the JSON API, scheduled jobs and other capabilities
(reroute timeouts, low ratings, driver flags) all go through these functions.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.core import i18n
from bot.core.config import config_of
from bot.core.i18n import gettext as _
from bot.core.messages import Reply
from bot.delivery.scheduler import schedule
from bot.domain import helpdesk, reach
from bot.domain.conversation_state import forget
from bot.domain.recipients import recipient_locale
from db.models import Agent, Conversation, Handoff, Message, utcnow

logger = logging.getLogger(__name__)

# Why a handoff opened -> its priority (1 urgent .. 3 low).
PRIORITY_BY_REASON = {
    "report_problem": 1, "low_rating": 1, "driver_flag": 1, "reroute_timeout": 1,
    "human_handoff": 2, "fallback": 2,
    "agent": 3,
}
PRIORITY_NAMES = {1: "urgent", 2: "normal", 3: "low"}
ACTIVE_STATUSES = ("open", "assigned")
IDLE_JOB = "handoff_idle_return"


class HandoffConflict(Exception):
    """The action does not fit the handoff's state (held by another agent, not in handoff)."""


# --- settings and locale -----------------------------------------------------------------------
def support_settings(session: Session) -> dict[str, Any]:
    """The `support:` config section of the app whose database made `session`."""
    return config_of(session)["support"]


def sla_minutes(session: Session, priority: int) -> int:
    return int(support_settings(session)["sla_minutes"][PRIORITY_NAMES.get(priority, "normal")])


def notify(session: Session, conversation: Conversation, text_factory, *, agent_id: int | None = None) -> Message:
    """Write a notice to the conversation in its person's language (`text_factory()` is called there)."""
    locale, timezone = recipient_locale(session, conversation)
    with i18n.use_locale(locale, timezone):
        text = text_factory()
    return reach.send(session, conversation, Reply(text=text), sender="bot", agent_id=agent_id,
                      data={"handoff_notice": True})


# --- queries -----------------------------------------------------------------------------------
def active_handoff(session: Session, conversation_id: int) -> Handoff | None:
    return session.scalar(select(Handoff).where(Handoff.conversation_id == conversation_id,
                                                Handoff.status.in_(ACTIVE_STATUSES))
                          .order_by(Handoff.id.desc()).limit(1))


def last_agent_activity(session: Session, handoff: Handoff) -> datetime:
    """When an agent last did something in this handoff (or when it opened)."""
    last_message = session.scalar(select(func.max(Message.created_at)).where(
        Message.conversation_id == handoff.conversation_id, Message.sender == "agent",
        Message.created_at >= handoff.opened_at))
    moments = [handoff.opened_at, last_message]
    moments += [datetime.fromisoformat(e["at"]) for e in (handoff.details or {}).get("history", [])]
    return max(m for m in moments if m is not None)


def _record(handoff: Handoff, event: str, now: datetime, **values: Any) -> None:
    details = dict(handoff.details or {})
    details["history"] = [*details.get("history", []), {"event": event, "at": now.isoformat(), **values}]
    handoff.details = details  # a new dict, so the JSON column is marked dirty


# --- opening -----------------------------------------------------------------------------------
def open_handoff(
    session: Session,
    conversation: Conversation,
    reason: str,
    *,
    order_id: int | None = None,
    details: dict[str, Any] | None = None,
    notify_customer: bool = True,
    now: datetime | None = None,
) -> Handoff:
    """Pause the bot in `conversation` and queue it for an agent; the customer is told once.

    If the conversation is already in handoff, that handoff is returned (its priority raised
    if the new reason is more urgent) and the customer is not told again.
    """
    now = now or utcnow()
    priority = PRIORITY_BY_REASON.get(reason, 2)
    existing = active_handoff(session, conversation.id)
    if existing is not None:
        if priority < existing.priority:
            existing.priority = priority
            existing.sla_due_at = min(existing.sla_due_at or now, now + timedelta(minutes=sla_minutes(session, priority)))
        _record(existing, "reason", now, reason=reason)
        return existing
    order_id = order_id or conversation.active_order_id or _likely_order_id(session, conversation)
    handoff = Handoff(conversation_id=conversation.id, order_id=order_id, reason=reason, priority=priority,
                      status="open", details=dict(details or {}), opened_at=now,
                      sla_due_at=now + timedelta(minutes=sla_minutes(session, priority)))
    session.add(handoff)
    session.flush()
    conversation.handoff_active = True
    forget(conversation, "awaiting", "buttons", "misses", "proof_ref")
    if notify_customer:
        wait = timedelta(minutes=sla_minutes(session, priority))
        notify(session, conversation, lambda: _(
            "I'm passing you to a person from our support team. They usually answer within %(wait)s; "
            "your messages will reach them here.", wait=i18n.format_duration(wait)))
    schedule_idle_return(session, handoff, now)
    helpdesk.handoff_event(session, "handoff.opened", handoff, conversation)
    logger.info("handoff %s opened (reason=%s, priority=%s)", handoff.id, reason, priority)
    return handoff


def _likely_order_id(session: Session, conversation: Conversation) -> int | None:
    """The order the conversation is most likely about: its only, or most recent, active visible order."""
    from bot.domain import orders as order_rules

    visible = order_rules.accessible_orders(session, conversation)
    active = [o for o in visible if o.status in order_rules.ACTIVE_STATUSES] or visible
    return max(active, key=lambda o: o.id).id if active else None


def take_over(session: Session, conversation: Conversation, agent: Agent, *, now: datetime | None = None) -> Handoff:
    """An agent steps into a conversation on their own: a handoff with reason `agent`, theirs."""
    handoff = active_handoff(session, conversation.id)
    if handoff is None:
        handoff = open_handoff(session, conversation, "agent", notify_customer=False, now=now)
    return take(session, handoff, agent, now=now)


# --- agents acting -----------------------------------------------------------------------------
def take(session: Session, handoff: Handoff, agent: Agent, *, now: datetime | None = None,
         reassign: bool = False) -> Handoff:
    """Assign the handoff to `agent`; another agent's handoff only with `reassign` (supervisors)."""
    now = now or utcnow()
    if handoff.status not in ACTIVE_STATUSES:
        raise HandoffConflict("this conversation is not in handoff any more")
    if handoff.agent_id not in (None, agent.id) and not reassign:
        raise HandoffConflict("another agent holds this conversation")
    if handoff.agent_id != agent.id:
        handoff.agent_id, handoff.status = agent.id, "assigned"
        _record(handoff, "taken", now, agent_id=agent.id)
    return handoff


def assign(session: Session, handoff: Handoff, target: Agent, by: Agent, *, now: datetime | None = None) -> Handoff:
    """A supervisor gives the handoff to `target`."""
    if by.role != "supervisor":
        raise HandoffConflict("only a supervisor can reassign a conversation")
    return take(session, handoff, target, now=now, reassign=True)


def agent_reply(session: Session, conversation: Conversation, agent: Agent, text: str,
                *, now: datetime | None = None) -> Message:
    """The agent's answer, sent on the customer's channel through the outbox.

    An unassigned or missing handoff is taken by the agent first; one held by another agent
    raises HandoffConflict.
    """
    now = now or utcnow()
    handoff = active_handoff(session, conversation.id)
    if handoff is not None and handoff.agent_id not in (None, agent.id):
        raise HandoffConflict("another agent holds this conversation; ask them or a supervisor to reassign it")
    handoff = take_over(session, conversation, agent, now=now) if handoff is None else take(session, handoff, agent, now=now)
    message = reach.send(session, conversation, Reply(text=text), sender="agent", agent_id=agent.id,
                         order_id=handoff.order_id)
    message.created_at = now
    if handoff.first_response_at is None:
        handoff.first_response_at = now
    return message


def release(session: Session, handoff: Handoff, *, by: str = "agent", agent_id: int | None = None,
            notify_customer: bool = True, now: datetime | None = None) -> Handoff:
    """Give the conversation back to the bot, telling the customer."""
    return _finish(session, handoff, "released", by=by, agent_id=agent_id, notify_customer=notify_customer, now=now)


def close(session: Session, handoff: Handoff, *, by: str = "agent", agent_id: int | None = None,
          notify_customer: bool = False, now: datetime | None = None) -> Handoff:
    """The matter is resolved; the bot answers again from the next message."""
    return _finish(session, handoff, "closed", by=by, agent_id=agent_id, notify_customer=notify_customer, now=now)


def _finish(session: Session, handoff: Handoff, status: str, *, by: str, agent_id: int | None,
            notify_customer: bool, now: datetime | None) -> Handoff:
    now = now or utcnow()
    if handoff.status not in ACTIVE_STATUSES:
        raise HandoffConflict("this conversation is not in handoff")
    if agent_id is not None and handoff.agent_id not in (None, agent_id):
        agent = session.get(Agent, agent_id)
        if agent is None or agent.role != "supervisor":
            raise HandoffConflict("another agent holds this conversation")
    conversation = session.get(Conversation, handoff.conversation_id)
    if conversation is None:  # a non-null foreign key whose conversation deletes its handoffs with it
        raise LookupError(f"handoff {handoff.id} names conversation {handoff.conversation_id}, which does not exist")
    handoff.status, handoff.closed_at, handoff.closed_by = status, now, by
    _record(handoff, status, now, by=by, agent_id=agent_id)
    conversation.handoff_active = False
    if notify_customer:
        if by == "idle":
            notify(session, conversation, lambda: _(
                "Our support team hasn't written for a while, so I'm back to help. Ask me anything about "
                "your delivery, or write 'agent' to reach a person again."))
        elif status == "released":
            notify(session, conversation, lambda: _(
                "You're back with the delivery assistant. Write 'agent' any time to reach a person again."),
                agent_id=agent_id)
        else:
            notify(session, conversation, lambda: _(
                "Our support team has closed this conversation. Write any time if you need anything else."),
                agent_id=agent_id)
    helpdesk.handoff_event(session, f"handoff.{status}", handoff, conversation)
    logger.info("handoff %s %s by %s", handoff.id, status, by)
    return handoff


# --- idle auto-return --------------------------------------------------------------------------
def schedule_idle_return(session: Session, handoff: Handoff, after: datetime) -> None:
    minutes = float(support_settings(session)["idle_return_minutes"])
    if minutes <= 0:
        return
    run_at = after + timedelta(minutes=minutes)
    schedule(session, IDLE_JOB, run_at, {"handoff_id": handoff.id},
             dedupe_key=f"{IDLE_JOB}:{handoff.id}:{int(run_at.timestamp())}")


def idle_return(session: Session, payload: dict[str, Any], now: datetime | None = None) -> None:
    """Release a handoff with no agent activity for `support.idle_return_minutes`; else look again later."""
    now = now or utcnow()
    handoff = session.get(Handoff, payload.get("handoff_id"))
    if handoff is None or handoff.status not in ACTIVE_STATUSES:
        return
    minutes = float(support_settings(session)["idle_return_minutes"])
    last = last_agent_activity(session, handoff)
    if minutes > 0 and now - last >= timedelta(minutes=minutes):
        release(session, handoff, by="idle", now=now)
    else:
        schedule_idle_return(session, handoff, last)
