"""The support JSON API for helpdesks (Chatwoot, Zendesk, ...): handoffs and conversations, agent keys."""

from __future__ import annotations

import logging

from flask import Blueprint, g, jsonify, request
from sqlalchemy import select

from bot.core.numbers import is_whole_number
from bot.core.services import services
from bot.domain import handoffs
from bot.web.api import error, json_body
from bot.web.api_keys import require_api_key
from bot.web.apispec import F, operation
from bot.web.console.transcript import agent_names, handoff_json, message_json, queue, transcript
from bot.web.idempotency import idempotent
from db.models import Agent, Conversation, Handoff
from db.session import INT64

logger = logging.getLogger(__name__)
bp = Blueprint("handoff_api", __name__, url_prefix="/api/v1")
PREFIX = "/api/v1"
AGENT_KEY = ("agent",)
STATUS_FILTERS = {"active": handoffs.ACTIVE_STATUSES, "open": ("open",), "assigned": ("assigned",),
                  "released": ("released",), "closed": ("closed",)}

ACTING_AGENT = F("string", max_length=120, description="Username of the acting agent; only needed when the API "
                 "key is not tied to an agent (one key for a whole helpdesk)", example="sam")
ACTION = F("object", required=True, fields={"agent": ACTING_AGENT})
CLOSE = F("object", required=True, fields={"agent": ACTING_AGENT, "notify_customer": F(
    "boolean", description="Tell the customer the conversation was closed (default false)")})
REPLY = F("object", required=True, fields={
    "text": F("string", required=True, max_length=1600, description="Sent on the customer's channel",
              example="Hi Alice, I'm looking at your order now."),
    "agent": ACTING_AGENT})
CONFLICTS = {401: "Missing or bad API key", 404: "Unknown handoff", 409: "Held by another agent, or not in handoff",
             422: "Invalid fields"}


def _optional_body(spec: F):
    """Action bodies are optional: no body is an empty object."""
    if not request.get_data():
        return {}, None
    return json_body(spec)


def _acting_agent(session, data: dict) -> tuple[Agent | None, object]:
    agent_id = g.get("agent_id")
    if agent_id is None and data.get("agent"):
        agent = session.scalar(select(Agent).where(Agent.username == str(data["agent"]).strip().lower()))
        agent_id = agent.id if agent else None
        if agent_id is None:
            return None, error(422, "no such agent", [{"field": "agent", "message": "unknown username"}])
    if agent_id is None:
        return None, error(422, "this API key is not tied to an agent: send the agent's username in 'agent'",
                           [{"field": "agent", "message": "is required for this key"}])
    agent = session.get(Agent, agent_id)
    if agent is None or not agent.active:
        return None, error(422, "the agent is not active", [{"field": "agent", "message": "inactive"}])
    return agent, None


@operation(bp, "GET", "/handoffs", "Handoffs waiting or in progress, by priority then waiting time", prefix=PREFIX,
           tag="support", responses={200: "Handoffs", 400: "Bad filter", 401: "Missing or bad API key"})
@require_api_key(scopes=AGENT_KEY)
def list_handoffs():
    status = request.args.get("status", "active")
    priority = request.args.get("priority", "")
    limit = request.args.get("limit", "100")
    if status not in STATUS_FILTERS:
        return error(400, f"status must be one of {', '.join(STATUS_FILTERS)}")
    if priority and priority not in ("1", "2", "3"):
        return error(400, "priority must be 1, 2 or 3")
    reason = request.args.get("reason") or None
    if reason is not None and (len(reason) > 40 or not reason.isprintable()):
        return error(400, "reason must be at most 40 printable characters")
    if not is_whole_number(limit) or not 1 <= int(limit) <= 500:
        return error(400, "limit must be a number from 1 to 500")
    mine = request.args.get("mine") in ("1", "true")
    with services().db.session() as session:
        rows = queue(session, statuses=STATUS_FILTERS[status], priority=int(priority) if priority else None,
                     reason=reason, agent_id=g.get("agent_id") if mine else None,
                     limit=int(limit))
        return jsonify({"handoffs": [handoff_json(session, h) for h in rows]})


def _as_agent(model, row_id: int, data: dict, act, status: int = 200):
    """Load `model` #row_id, find the acting agent, run `act(session, row, agent)` -> JSON body, commit.

    A missing row is 404, a HandoffConflict 409; nothing is stored on any refusal.
    """
    srv = services()
    if row_id >= INT64:  # the URL converter takes any length of digits; ids are 64-bit
        return error(404, f"no {model.__tablename__[:-1]} {row_id}")
    try:
        with srv.db.session() as session:
            row = session.get(model, row_id)
            if row is None:
                return error(404, f"no {model.__tablename__[:-1]} {row_id}")
            agent, problem = _acting_agent(session, data)
            if problem is not None:
                return problem
            body = act(session, row, agent)
    except handoffs.HandoffConflict as exc:
        return error(409, str(exc))
    srv.after_commit()
    return jsonify(body), status


def _handoff_action(handoff_id: int, spec: F, act):
    data, problem = _optional_body(spec)
    if problem is not None:
        return problem

    def run(session, handoff, agent):
        act(session, handoff, agent, data)
        session.flush()
        return {"handoff": handoff_json(session, handoff)}

    return _as_agent(Handoff, handoff_id, data, run)


@operation(bp, "POST", "/handoffs/<int:handoff_id>/take", "Take a handoff (assign it to the acting agent)",
           body=ACTION, prefix=PREFIX, tag="support", responses={200: "Taken", **CONFLICTS})
@require_api_key(scopes=AGENT_KEY)
@idempotent
def take_handoff(handoff_id: int):
    return _handoff_action(handoff_id, ACTION, lambda s, h, agent, d: handoffs.take(s, h, agent))


@operation(bp, "POST", "/handoffs/<int:handoff_id>/release", "Give the conversation back to the bot",
           body=ACTION, prefix=PREFIX, tag="support", responses={200: "Released", **CONFLICTS})
@require_api_key(scopes=AGENT_KEY)
@idempotent
def release_handoff(handoff_id: int):
    return _handoff_action(handoff_id, ACTION, lambda s, h, agent, d: handoffs.release(s, h, agent_id=agent.id))


@operation(bp, "POST", "/handoffs/<int:handoff_id>/close", "Close a resolved handoff", body=CLOSE, prefix=PREFIX,
           tag="support", responses={200: "Closed", **CONFLICTS})
@require_api_key(scopes=AGENT_KEY)
@idempotent
def close_handoff(handoff_id: int):
    return _handoff_action(handoff_id, CLOSE, lambda s, h, agent, d: handoffs.close(
        s, h, agent_id=agent.id, notify_customer=bool(d.get("notify_customer"))))


@operation(bp, "GET", "/conversations/<int:conversation_id>/messages",
           "A conversation's messages across the customer's channels (after_id for new ones)", prefix=PREFIX,
           tag="support", responses={200: "Messages", 400: "Bad after_id", 401: "Missing or bad API key",
                                     404: "Unknown conversation"})
@require_api_key(scopes=AGENT_KEY)
def list_messages(conversation_id: int):
    if conversation_id >= INT64:
        return error(404, f"no conversation {conversation_id}")
    after = request.args.get("after_id", "0")
    if not is_whole_number(after) or int(after) >= INT64:
        return error(400, "after_id must be a message id")
    with services().db.session() as session:
        conversation = session.get(Conversation, conversation_id)
        if conversation is None:
            return error(404, f"no conversation {conversation_id}")
        names = agent_names(session)
        messages = [message_json(m, names) for m in transcript(session, conversation, after_id=int(after))]
        active = handoffs.active_handoff(session, conversation_id)
        return jsonify({"conversation_id": conversation_id, "messages": messages,
                        "handoff": handoff_json(session, active) if active else None})


@operation(bp, "POST", "/conversations/<int:conversation_id>/messages",
           "Reply as the agent on the customer's channel (takes the handoff if nobody holds it)", body=REPLY,
           prefix=PREFIX, tag="support",
           responses={201: "Queued for sending", 400: "Malformed JSON", 401: "Missing or bad API key",
                      404: "Unknown conversation", 409: "Another agent holds the conversation",
                      422: "Invalid fields"})
@require_api_key(scopes=AGENT_KEY)
@idempotent
def post_message(conversation_id: int):
    data, problem = json_body(REPLY)
    if data is None:  # json_body gives no data only with its problem answer
        return problem
    if not data["text"].strip():
        return error(422, "the reply is empty", [{"field": "text", "message": "must not be blank"}])

    def run(session, conversation, agent):
        message = handoffs.agent_reply(session, conversation, agent, data["text"].strip())
        session.flush()
        return {"message": message_json(message, {agent.id: agent.name or agent.username})}

    return _as_agent(Conversation, conversation_id, data, run, 201)
