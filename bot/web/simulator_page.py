"""The chat simulator (demo mode only): chat as any phone number through the real engine."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request
from sqlalchemy import select

from bot.channels.base import BadPayload
from bot.channels.simulator import SimulatorChannel
from bot.core.services import services
from bot.web.problems import problem
from db.models import Conversation, Customer, Driver, Message, Order

bp = Blueprint("simulator", __name__, url_prefix="/simulator")


@bp.get("")
@bp.get("/")
def page():
    return render_template("simulator.html")


@bp.get("/api/people")
def people():
    """Seeded customers and drivers to chat as."""
    with services().db.session() as session:
        customers = session.scalars(select(Customer).where(Customer.phone.is_not(None)).order_by(Customer.id)).all()
        drivers = session.scalars(select(Driver).where(Driver.phone.is_not(None)).order_by(Driver.id)).all()
        result = []
        for c in customers:
            refs = session.scalars(select(Order.ref).where(Order.customer_id == c.id)).all()
            result.append({"role": "customer", "name": c.name, "phone": c.phone, "locale": c.locale,
                           "orders": list(refs)})
        result += [{"role": "driver", "name": d.name, "phone": d.phone, "locale": d.locale, "orders": []}
                   for d in drivers]
    return jsonify({"people": result})


@bp.post("/api/messages")
def post_message():
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return problem(400, "expected a JSON object")
    try:
        inbound = SimulatorChannel.inbound(data.get("address"), data.get("text"), data.get("payload"),
                                           data.get("locale"))
    except BadPayload as exc:
        return problem(400, str(exc))
    outcome = services().engine.handle(inbound)
    return jsonify({"message_id": outcome.message_id, "intent": outcome.intent, "replies": outcome.replies}), 201


@bp.get("/api/messages")
def list_messages():
    address = request.args.get("address", "").strip()
    try:
        after = int(request.args.get("after", "0"))
    except ValueError:
        return problem(400, "'after' must be a message id")
    if not address:
        return problem(400, "'address' is required")
    with services().db.session() as session:
        conversation = session.scalar(select(Conversation).where(
            Conversation.channel == "simulator", Conversation.address == address))
        if conversation is None:
            return jsonify({"messages": []})
        rows = session.scalars(select(Message).where(
            Message.conversation_id == conversation.id, Message.id > after,
            (Message.direction == "in") | (Message.status.in_(("sent", "delivered", "read"))))
            .order_by(Message.id)).all()
        return jsonify({"messages": [{
            "id": m.id, "direction": m.direction, "sender": m.sender, "text": m.text,
            "intent": m.intent, "confidence": m.confidence,
            "buttons": (m.data or {}).get("buttons") or [], "media": (m.data or {}).get("media") or [],
            "at": m.created_at.isoformat()} for m in rows]})
