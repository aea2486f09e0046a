"""Provider webhooks: verify, parse, hand to the engine, answer 2xx once everything is committed.

When the database cannot take the message (an outage, not bad input), the verified message goes to
the local spool (bot/spool.py) and is answered 200 all the same; it is replayed, in order and once,
when the database is back.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Blueprint, Flask, Response, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from bot.channels.base import BadPayload, Channel
from bot.core import i18n
from bot.core.i18n import gettext as _
from bot.core.messages import Inbound
from bot.core.services import services
from bot.delivery.outbox import record_status_callback
from bot.dialogue.engine import Engine, Outcome
from bot.domain import conversations, webhook_endpoints
from bot.domain.conversations import OPT_OUT_CODES
from bot.domain.recipients import recipient_locale
from bot.web.problems import problem
from bot.web.spool import Spool, SpoolError, SpoolReplayer
from db.models import Conversation, Message
from db.session import is_outage

logger = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
# Twilio's delivery states, in the order they can happen; a late callback never moves back.
STATUS_ORDER = {"queued": 0, "accepted": 0, "sending": 1, "sent": 2, "undelivered": 3, "failed": 3,
                "delivered": 4, "read": 5, "received": 0}


def _refused(message: str, status: int):
    return problem(status, message)


@bp.record_once
def _set_up_spool(state) -> None:
    """The spool and its replayer, one per app (the replayer's thread starts only when needed)."""
    app: Flask = state.app
    srv = app.extensions["lastmile"]
    settings = srv.config["spool"]
    spool = Spool(Path(settings["path"]), fsync=bool(settings["fsync"]))

    def replay_one(inbound: Inbound):
        with app.app_context():
            return srv.engine.handle(inbound)

    srv.extras["spool"] = spool
    srv.extras["spool_replayer"] = SpoolReplayer(spool, replay_one, is_outage,
                                                 interval=float(settings["replay_interval"]))


def _handle(channel: Channel):
    if not channel.verify(request):
        logger.warning("%s webhook refused: bad or missing signature", channel.name)
        return None, _refused("signature verification failed", 403)
    try:
        inbounds = channel.parse(request)
    except BadPayload as exc:
        return None, _refused(str(exc), 400)
    srv = services()
    engine = srv.engine
    if engine is None:  # create_app sets it before the app serves a request
        raise RuntimeError("the app has no engine: build it with create_app")
    if inbounds and srv.extras["spool"].pending():
        return None, _spool(inbounds, "earlier messages are waiting in the spool")  # keep arrival order
    outcomes = []
    for index, inbound in enumerate(inbounds):
        try:
            outcomes.append(_handle_one(engine, inbound))
        except Exception as exc:
            if not is_outage(exc):
                raise  # bad input (422 by bot/api.py) or a bug: never spooled
            return outcomes, _spool(inbounds[index:], f"the database is unavailable ({exc.__class__.__name__})")
    return outcomes, None


def _handle_one(engine: Engine, inbound: Inbound) -> Outcome:
    """`engine.handle(inbound)`, once more on a new connection when a pooled one turns out to be gone (the database
    restarted while it sat in the pool: db/session.py pings only connections idle for a while). A redelivery has no
    second effect, so a turn whose commit was cut off is found as a duplicate."""
    try:
        return engine.handle(inbound)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        logger.warning("a pooled database connection was gone (%s): handling the %s message on a new one",
                       exc.__class__.__name__, inbound.channel)
        return engine.handle(inbound)


def _spool(inbounds: list[Inbound], why: str):
    """Keep the messages on local disk for the replayer; None (answer 200) once they are fsync'd."""
    srv = services()
    try:
        for inbound in inbounds:
            srv.extras["spool"].append(inbound)
    except SpoolError as exc:
        logger.error("inbound %s message NOT stored: %s; and %s", inbounds[0].channel, why, exc)
        response = _refused("the message cannot be stored right now; retry later", 503)
        response.headers["Retry-After"] = "5"
        return response
    logger.warning("%d inbound %s message(s) spooled: %s", len(inbounds), inbounds[0].channel, why)
    srv.extras["spool_replayer"].ensure_running()
    return None


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
    # Our status-callback URL names the outbox row (`?outbox=<id>`): the callback settles that row even when
    # the answer to the send was lost. The signature covers the query string, so the id is Twilio's echo.
    outbox_ref = request.args.get("outbox", "")
    with services().db.session() as session:
        if outbox_ref.isascii() and outbox_ref.isdigit() and len(outbox_ref) < 19:
            record_status_callback(session, int(outbox_ref), sid, status)
        message = session.scalar(
            select(Message).where(Message.provider_id == sid, Message.direction == "out",
                                  Message.channel.in_(("sms", "whatsapp"))))
        if message is None:
            return Response(status=204)  # not ours (or not recorded yet): nothing to update
        failed_now = status in ("failed", "undelivered") and message.status not in ("failed", "undelivered")
        if STATUS_ORDER[status] >= STATUS_ORDER.get(message.status, 0) or status in ("failed", "undelivered"):
            message.status = status
        if code:
            message.error_code = code
        conversation = session.get(Conversation, message.conversation_id)
        if conversation is None:
            return Response(status=204)
        if failed_now:  # accepted by Twilio, then not delivered: integrators hear of it as of a refused send
            webhook_endpoints.conversation_event(session, "message.failed", conversation, message={
                "id": message.id, "error_code": code, "error": f"Twilio reported the message {status}"})
        if code in OPT_OUT_CODES:
            conversations.opt_out(session, conversation)
    return Response(status=204)


@bp.post("/telegram")
def telegram_inbound():
    channel = services().channels["telegram"]
    outcomes, problem = _handle(channel)
    if problem is not None:
        return problem
    # A button press is answered in the webhook's own reply (answerCallbackQuery): the spinner stops, with a
    # toast where useful, and no network call of ours. Also for a redelivered or a spooled press.
    inbounds = channel.parse(request)  # the JSON body is cached: the same Inbound _handle stored
    query_id = channel.callback_query_id(inbounds[0]) if inbounds else None
    if query_id is not None:
        outcome = outcomes[0] if outcomes else None
        return jsonify(channel.callback_answer(query_id, button_toast(inbounds[0], outcome)))
    return jsonify({"ok": True})


def button_toast(inbound: Inbound, outcome: Outcome | None) -> str | None:
    """The toast shown over the chat after a button press, in the person's language; None for none (the
    bot's reply says the rest). A rating is thanked at once: the reply may take a moment."""
    if outcome is None or outcome.duplicate or outcome.intent != "rate_delivery":
        return None
    locale, timezone = i18n.normalize_locale(inbound.language_code), None
    with services().db.read_session() as session:
        conversation = session.scalar(select(Conversation).where(
            Conversation.channel == inbound.channel, Conversation.address == inbound.address))
        if conversation is not None and (conversation.locale or conversation.customer_id or conversation.driver_id
                                         or not locale):
            locale, timezone = recipient_locale(session, conversation)
    with i18n.use_locale(locale or i18n.DEFAULT_LOCALE, timezone):
        return _("Thanks!")
