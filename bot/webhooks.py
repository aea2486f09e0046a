"""Provider webhooks: verify, parse, hand to the engine, answer 2xx once everything is committed."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from bot.channels.base import BadPayload, Channel
from bot.outbox import OPT_OUT_CODES
from bot.services import services
from db.models import Conversation, Message

logger = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
# Twilio's delivery states, in the order they can happen; a late callback never moves back.
STATUS_ORDER = {"queued": 0, "accepted": 0, "sending": 1, "sent": 2, "undelivered": 3, "failed": 3,
                "delivered": 4, "read": 5, "received": 0}


def _refused(message: str, status: int):
    response = jsonify({"error": message, "details": None})
    response.status_code = status
    return response


def _handle(channel: Channel):
    if not channel.verify(request):
        logger.warning("%s webhook refused: bad or missing signature", channel.name)
        return None, _refused("signature verification failed", 403)
    try:
        inbounds = channel.parse(request)
    except BadPayload as exc:
        return None, _refused(str(exc), 400)
    engine = services().engine
    outcomes = [engine.handle(inbound) for inbound in inbounds]
    return outcomes, None


@bp.post("/twilio")
def twilio_inbound():
    _, problem = _handle(services().channels["sms"])
    if problem is not None:
        return problem
    return Response(EMPTY_TWIML, mimetype="text/xml")


@bp.post("/twilio/status")
def twilio_status():
    channel = services().channels["sms"]
    if not channel.verify(request):
        return _refused("signature verification failed", 403)
    sid, status = request.form.get("MessageSid"), request.form.get("MessageStatus")
    if not sid or not status:
        return _refused("MessageSid and MessageStatus are required", 400)
    status = status.lower()
    if status not in STATUS_ORDER:
        return _refused(f"unknown MessageStatus {status!r}", 400)
    code = request.form.get("ErrorCode") or None
    with services().db.session() as session:
        message = session.scalar(
            select(Message).where(Message.provider_id == sid, Message.direction == "out",
                                  Message.channel.in_(("sms", "whatsapp"))))
        if message is None:
            return Response(status=204)  # not ours (or not recorded yet): nothing to update
        if STATUS_ORDER[status] >= STATUS_ORDER.get(message.status, 0) or status in ("failed", "undelivered"):
            message.status = status
        if code:
            message.error_code = code
            if code in OPT_OUT_CODES:
                conversation = session.get(Conversation, message.conversation_id)
                if conversation is not None:
                    conversation.opted_out = True
    return Response(status=204)


@bp.post("/telegram")
def telegram_inbound():
    _, problem = _handle(services().channels["telegram"])
    if problem is not None:
        return problem
    return jsonify({"ok": True})
