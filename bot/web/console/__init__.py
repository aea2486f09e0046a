"""The agent console: sign-in, the handoff queue, conversations, replies, and delivery analytics."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Flask, g, redirect, render_template, request, url_for

from bot.core.services import services
from bot.web import csrf
from bot.web.console import agents as auth
from bot.web.console.blueprint import bp

logger = logging.getLogger(__name__)

LOGIN_FAILED = "Wrong username or password."
THROTTLED = "Too many failed sign-ins. Wait a few minutes and try again."


def init_app(app: Flask) -> None:
    settings = app.config["LASTMILE"]
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = str(settings["app"]["public_base_url"]).startswith("https://") \
        and not app.config.get("TESTING")
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=settings["support"]["session_hours"])
    from bot.web.console import account_views, analytics_views, message_views, views  # noqa: F401  (routes on bp)

    app.register_blueprint(bp)


@bp.before_request
def protect_posts():
    if request.method == "POST":
        auth.check_csrf()


@bp.after_request
def no_store(response):
    response.headers.setdefault("Cache-Control", "no-store")  # CSP and framing: app.py, for every page
    return response


@bp.app_context_processor
def console_globals():
    return {"csrf_token": csrf.csrf_token, "current_agent_name": g.get("agent_name"),
            "current_agent_role": g.get("agent_role")}


@bp.get("/login")
def login():
    return render_template("console/login.html", error=None, username="")


@bp.post("/login")
def login_post():
    from bot.core import audit

    username = (request.form.get("username") or "").strip()
    password = request.form.get("password") or ""
    ip = request.remote_addr or "unknown"  # the client's, behind app.trusted_proxies (ProxyFix)
    srv = services()
    keys = auth.throttle_keys(username, ip)
    with srv.db.session() as session:
        if auth.is_throttled(session, keys, srv.config["support"]):
            auth.record_attempt(session, keys, False)
            audit.record(session, "console.login_throttled", actor_type="anonymous",
                         actor_name=_known(session, username))
            logger.warning("console sign-in throttled")
            return render_template("console/login.html", error=THROTTLED, username=username), 429
        agent = auth.authenticate(session, username, password) if username and password else None
        auth.record_attempt(session, keys, agent is not None)
        if agent is None:
            audit.record(session, "console.login_failed", actor_type="anonymous", actor_name=_known(session, username))
            logger.info("console sign-in failed")
        else:
            auth.start_session(session, agent, srv.config["support"]["session_hours"])
            audit.record(session, "console.login", actor_type="agent", actor_id=agent.id, actor_name=agent.username)
            logger.info("agent %s signed in", agent.id)
    if agent is None:
        return render_template("console/login.html", error=LOGIN_FAILED, username=username), 401
    target = request.args.get("next") or ""
    response = redirect(target if target.startswith("/console/") and not target.startswith("/console//")
                        else url_for("console.queue_page"))
    auth.issue_device_cookie(response, username)
    return response


def _known(session, username: str) -> str:
    """The username tried, for the audit log, only if it is an agent's: a password typed in the wrong
    field must not be kept."""
    from sqlalchemy import select

    from db.models import Agent

    name = username.strip().lower()[:120]
    return name if session.scalar(select(Agent.id).where(Agent.username == name)) else "(unknown username)"


@bp.post("/logout")
def logout():
    from bot.core import audit

    with services().db.session() as session:
        agent = auth.current_agent(session)
        if agent is not None:
            audit.record(session, "console.logout", actor_type="agent", actor_id=agent.id, actor_name=agent.username)
        auth.end_session(session)
    return redirect(url_for("console.login"))
