"""The agent's own account (password change) and the audit log (supervisors); every console action audited."""

from __future__ import annotations

import logging

from flask import g, render_template, request

from bot.core import audit
from bot.core.numbers import is_whole_number
from bot.core.services import services
from bot.web.console import agents as auth
from bot.web.console.agents import login_required
from bot.web.console.blueprint import bp
from db.models import Agent

logger = logging.getLogger(__name__)

# Console POSTs recorded by endpoint (sign-in and sign-out record themselves, with more detail).
AUDITED_ACTIONS = {
    ("POST", "console.take"): "conversation.take", ("POST", "console.reply"): "conversation.reply",
    ("POST", "console.release"): "conversation.release", ("POST", "console.close"): "conversation.close",
    ("POST", "console.assign"): "conversation.assign",
    ("GET", "console.conversation_page"): "conversation.view", ("GET", "console.analytics_csv"): "analytics.export",
}


@bp.after_request
def audit_console_actions(response):
    action = AUDITED_ACTIONS.get((request.method, request.endpoint or ""))
    if action is None or g.get("agent_id") is None or response.status_code >= 400:
        return response
    conversation_id = (request.view_args or {}).get("conversation_id")
    details = {"agent_id": request.form.get("agent_id")} if action == "conversation.assign" else {}
    with services().db.session() as session:
        audit.record_agent(session, action, target=f"conversation {conversation_id}" if conversation_id else None,
                           **details)
    return response


@bp.get("/password")
@login_required()
def password_page():
    return render_template("console/password.html", error=None, done=False)


@bp.post("/password")
@login_required()
def password_post():
    current = request.form.get("current") or ""
    new = request.form.get("new") or ""
    if new != (request.form.get("confirm") or ""):
        return render_template("console/password.html", error="The two new passwords differ.", done=False), 400
    with services().db.session() as session:
        agent = session.get(Agent, g.agent_id)
        if auth.authenticate(session, agent.username, current) is None:
            return render_template("console/password.html", error="The current password is wrong.", done=False), 403
        try:
            ended = auth.change_password(session, agent, new, keep_id=g.get("console_session_id"))
        except ValueError as exc:
            return render_template("console/password.html", error=str(exc).capitalize() + ".", done=False), 400
        audit.record_agent(session, "agent.password_changed", target=f"agent {agent.id}", sessions_ended=ended)
    logger.info("agent %s changed their password; %s other session(s) ended", g.agent_id, ended)
    return render_template("console/password.html", error=None, done=True)


@bp.get("/audit")
@login_required(role="supervisor")
def audit_page():
    actor = (request.args.get("actor") or "").strip()[:120] or None
    action = (request.args.get("action") or "").strip()[:60] or None
    with services().db.session() as session:
        entries = audit.recent(session, actor=actor, action=action, limit=300)
        return render_template("console/audit.html", entries=entries, actor=actor or "", action=action or "")


@bp.get("/outbox")
@login_required(role="supervisor")
def outbox_page():
    """Messages that could not be sent (failed for good) and sends still being reconciled with the provider,
    masked and without their text, with the reason; failed ones can be sent again."""
    from bot.delivery.outbox import troubled_rows
    from bot.web.console.transcript import outbox_recipient

    with services().db.session() as session:
        rows = [{"id": r.id, "kind": r.kind, "channel": r.channel or "webhook", "status": r.status,
                 "to": outbox_recipient(r.kind, r.channel, r.to_address), "attempts": r.attempts,
                 "error": r.last_error or "", "created_at": r.created_at}
                for r in troubled_rows(session, 200, ("failed", "unknown"))]
    return render_template("console/outbox.html", rows=rows, notice=request.args.get("notice", ""))


@bp.post("/outbox/retry")
@login_required(role="supervisor")
def outbox_retry():
    from flask import redirect, url_for

    from bot.delivery.outbox import requeue_failed

    ids = [int(v) for v in request.form.getlist("id") if is_whole_number(v)][:1000]
    result = requeue_failed(services().db, None if request.form.get("all") else ids)
    with services().db.session() as session:
        audit.record_agent(session, "outbox.retry", target=f"{len(result.requeued)} row(s)",
                           skipped_opted_out=len(result.skipped_opted_out))
    notice = f"{len(result.requeued)} message(s) queued again"
    if result.skipped_opted_out:
        notice += f"; {len(result.skipped_opted_out)} left failed: the customer opted out"
    return redirect(url_for("console.outbox_page", notice=notice))
