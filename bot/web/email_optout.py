"""Email opt-outs over HTTP: the one-click unsubscribe link of every notification email (`/u/<token>`, RFC 8058)
and the signed webhook where an email provider reports bounces and complaints (`POST /webhooks/email`)."""

from __future__ import annotations

import hashlib
import hmac
import logging

from flask import Blueprint, Flask, abort, make_response, render_template, request

from bot.core import emails, i18n
from bot.core.i18n import gettext as _
from bot.core.services import services
from bot.domain import email_optouts
from bot.domain.recipients import recipient_locale
from bot.web.api import check_fields, error
from bot.web.apispec import F
from db.models import Conversation

logger = logging.getLogger(__name__)
bp = Blueprint("email_optout", __name__)

ONE_CLICK = ("List-Unsubscribe", "One-Click")  # the form field RFC 8058 mail clients POST
SIGNATURE_HEADER = "X-Lastmile-Signature"  # sha256=<hex HMAC-SHA256 of the body>, as our own webhooks send
MAX_TOKEN = 64
REPORT = F("object", required=True, description="A bounce or complaint reported by the email provider", fields={
    "type": F("string", required=True, enum=("bounce", "complaint"),
              description="bounce: the address does not take mail; complaint: the person marked ours as spam"),
    "email": F("email", required=True, description="The address it is about", example="ana@example.com"),
    "permanent": F("boolean", description="bounce: false for a soft (temporary) bounce, which opts nothing out; "
                                          "default true"),
    "reason": F("string", max_length=500, description="The provider's diagnostic, kept with the opt-out"),
    "id": F("string", max_length=128, description="The provider's id of the report (for your logs)"),
})


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


# --- the unsubscribe link ------------------------------------------------------------------------------
def _conversation_or_404(session, token: str) -> Conversation:
    """The same 404 for a forged, mangled or unknown token."""
    conversation = None
    if len(token) <= MAX_TOKEN:
        conversation = email_optouts.by_token(session, token)
    if conversation is None:
        abort(404)
    return conversation


def _page(conversation: Conversation, session, *, done: bool, status: int = 200):
    locale, timezone = recipient_locale(session, conversation)
    address = emails.masked(conversation.address)
    with i18n.use_locale(locale, timezone):
        t = {"title": _("Unsubscribe"),
             "question": _("Stop delivery emails to %(address)s?", address=address),
             "button": _("Unsubscribe"),
             "done": _("Done: no more delivery emails to %(address)s.", address=address),
             "chat": _("Messages by SMS, WhatsApp or Telegram are not affected.")}
    response = make_response(render_template("unsubscribe.html", t=t, lang=locale, done=done), status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@bp.get("/u/<token>")
def unsubscribe_page(token: str):
    """A page that asks; nothing changes on GET (link scanners open every link in a mailbox)."""
    with services().db.read_session() as session:
        conversation = _conversation_or_404(session, token)
        return _page(conversation, session, done=conversation.opted_out)


@bp.post("/u/<token>")
def unsubscribe(token: str):
    """RFC 8058 one-click (a mail client POSTs `List-Unsubscribe=One-Click`), or the page's own button."""
    with services().db.session() as session:
        conversation = _conversation_or_404(session, token)
        if request.form.get(ONE_CLICK[0]) != ONE_CLICK[1]:
            return error(400, "expected the form field List-Unsubscribe=One-Click (RFC 8058)")
        email_optouts.opt_out(session, conversation, "unsubscribe")
        return _page(conversation, session, done=True)


# --- bounces and complaints ---------------------------------------------------------------------------
@bp.post("/webhooks/email")
def email_report():
    """200 recorded; 400 malformed JSON; 401 no signature; 403 a bad one, or no secret configured; 422 bad fields."""
    secret = services().config["secrets"].get("email_webhook_secret") or ""
    if not secret:
        logger.error("email webhook refused: LASTMILE_EMAIL_WEBHOOK_SECRET is not set")
        return error(403, "email reports are not accepted: no signing secret is configured", code="invalid_signature")
    given = request.headers.get(SIGNATURE_HEADER, "")
    if not given:
        return error(401, f"the {SIGNATURE_HEADER} header is required", code="missing_signature")
    expected = "sha256=" + hmac.new(secret.encode(), request.get_data(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
        return error(403, f"the {SIGNATURE_HEADER} header does not match the body", code="invalid_signature")
    data, problem = _report_body()
    if problem is not None:
        return problem
    address = emails.normalize(data["email"])
    opts_out = data["type"] == "complaint" or data.get("permanent") is not False
    changed = False
    if opts_out:
        with services().db.session() as session:
            conversation, changed = email_optouts.opt_out_address(session, address, data["type"], data.get("reason"))
            logger.info("email %s reported for conversation %s (opted out: %s)", data["type"], conversation.id, changed)
    return {"opted_out": opts_out, "changed": changed}


def _report_body():
    if not request.is_json:
        return None, error(400, "expected a JSON body with Content-Type: application/json")
    try:
        data = request.get_json(silent=True)
    except RecursionError:
        return None, error(400, "the body is nested too deeply")
    if not isinstance(data, dict):
        return None, error(400, "the body must be a JSON object")
    invalid = check_fields(data, REPORT)
    return (None, error(*invalid[:3], code=invalid[3])) if invalid else (data, None)
