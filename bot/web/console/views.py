"""Console pages: the queue, a conversation with its case file, and the agent's actions."""

from __future__ import annotations

import logging

from flask import abort, g, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from bot.core.numbers import is_whole_number
from bot.core.services import services
from bot.domain import handoffs
from bot.web.console.agents import login_required
from bot.web.console.blueprint import bp
from bot.web.console.transcript import (
    REASON_LABELS,
    agent_names,
    case_file,
    customer_label,
    handoff_json,
    mask_address,
    message_json,
    queue,
    recent_conversations,
    transcript,
)
from bot.web.problems import problem
from db.models import Agent, Conversation, Customer, Handoff

logger = logging.getLogger(__name__)
MAX_REPLY = 1600


@bp.get("/")
@login_required()
def queue_page():
    with services().db.session() as session:
        rows = [handoff_json(session, h) for h in queue(session)]
        recent = [(c, customer_label(c, session.get(Customer, c.customer_id) if c.customer_id else None))
                  for c in recent_conversations(session)]
        return render_template("console/queue.html", rows=rows, recent=recent, poll=_poll_seconds())


@bp.get("/queue.json")
@login_required()
def queue_json():
    with services().db.session() as session:
        rows = [handoff_json(session, h) for h in queue(session)]
    html = render_template("console/_queue_rows.html", rows=rows)
    return jsonify({"count": len(rows), "mine": sum(1 for r in rows if (r["agent"] or {}).get("id") == g.agent_id),
                    "handoffs": rows, "html": html})


@bp.get("/conversations/<int:conversation_id>")
@login_required()
def conversation_page(conversation_id: int):
    return _render_conversation(conversation_id)


def _render_conversation(conversation_id: int, *, error: str | None = None, status: int = 200,
                         draft: str = ""):
    with services().db.session() as session:
        conversation = session.get(Conversation, conversation_id)
        if conversation is None:
            abort(404, description="No such conversation.")
        case = case_file(session, conversation)
        names = agent_names(session)
        messages = [message_json(m, names) for m in transcript(session, conversation)]
        agents = list(session.scalars(select(Agent).where(Agent.active).order_by(Agent.username)))
        page = render_template(
            "console/conversation.html", case=case, messages=messages, error=error, draft=draft,
            handoff=handoff_json(session, case.handoff) if case.handoff else None,
            history=[handoff_json(session, h) for h in case.history], agents=agents,
            label=customer_label(conversation, case.customer),
            masked=mask_address(conversation.channel, conversation.address), reasons=REASON_LABELS,
            last_id=messages[-1]["id"] if messages else 0, poll=_poll_seconds(), max_reply=MAX_REPLY)
    return page, status


@bp.get("/conversations/<int:conversation_id>/poll.json")
@login_required()
def conversation_poll(conversation_id: int):
    after = request.args.get("after", "0")
    if not is_whole_number(after):
        return problem(400, "after must be a message id")
    with services().db.session() as session:
        conversation = session.get(Conversation, conversation_id)
        if conversation is None:
            return problem(404, "no such conversation")
        names = agent_names(session)
        messages = [message_json(m, names) for m in transcript(session, conversation, after_id=int(after))]
        active = handoffs.active_handoff(session, conversation.id)
        state = {"id": active.id, "status": active.status, "agent_id": active.agent_id} if active else None
    html = render_template("console/_messages.html", messages=messages)
    return jsonify({"messages": messages, "html": html, "handoff": state,
                    "last_id": messages[-1]["id"] if messages else int(after)})


# --- actions -------------------------------------------------------------------------------------
def _act(conversation_id: int, action):
    """Run `action(session, conversation, agent)`; a HandoffConflict re-renders the page with 409."""
    srv = services()
    try:
        with srv.db.session() as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                abort(404, description="No such conversation.")
            action(session, conversation, session.get(Agent, g.agent_id))
    except handoffs.HandoffConflict as exc:
        return _render_conversation(conversation_id, error=str(exc), status=409,
                                    draft=request.form.get("text", ""))
    srv.after_commit()
    return redirect(url_for("console.conversation_page", conversation_id=conversation_id))


def _active_or_conflict(session, conversation: Conversation) -> Handoff:
    handoff = handoffs.active_handoff(session, conversation.id)
    if handoff is None:
        raise handoffs.HandoffConflict("this conversation is not in handoff")
    return handoff


@bp.post("/conversations/<int:conversation_id>/take")
@login_required()
def take(conversation_id: int):
    return _act(conversation_id, lambda session, conversation, agent: handoffs.take_over(session, conversation, agent))


@bp.post("/conversations/<int:conversation_id>/reply")
@login_required()
def reply(conversation_id: int):
    text = (request.form.get("text") or "").strip()
    if not text or len(text) > MAX_REPLY:
        message = "Write a reply first." if not text else f"A reply has at most {MAX_REPLY} characters."
        return _render_conversation(conversation_id, error=message, status=400, draft=text)
    return _act(conversation_id, lambda session, conversation, agent: handoffs.agent_reply(
        session, conversation, agent, text))


@bp.post("/conversations/<int:conversation_id>/release")
@login_required()
def release(conversation_id: int):
    return _act(conversation_id, lambda session, conversation, agent: handoffs.release(
        session, _active_or_conflict(session, conversation), agent_id=agent.id))


@bp.post("/conversations/<int:conversation_id>/close")
@login_required()
def close(conversation_id: int):
    return _act(conversation_id, lambda session, conversation, agent: handoffs.close(
        session, _active_or_conflict(session, conversation), agent_id=agent.id,
        notify_customer=request.form.get("notify") == "1"))


@bp.post("/conversations/<int:conversation_id>/assign")
@login_required(role="supervisor")
def assign(conversation_id: int):
    target_id = request.form.get("agent_id", "")
    if not is_whole_number(target_id):
        return _render_conversation(conversation_id, error="Choose an agent.", status=400)

    def reassign(session, conversation, supervisor):
        target = session.get(Agent, int(target_id))
        if target is None or not target.active:
            raise handoffs.HandoffConflict("no such agent")
        handoffs.assign(session, _active_or_conflict(session, conversation), target, supervisor)

    return _act(conversation_id, reassign)


def _poll_seconds() -> float:
    return float(services().config["support"]["poll_seconds"])
