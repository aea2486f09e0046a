"""The agent console: sign-in, the handoff queue, conversations, replies, and delivery analytics."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Blueprint, Flask, g, redirect, render_template, request, url_for

from bot.console import auth
from bot.services import services

logger = logging.getLogger(__name__)

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static", static_url_path="/static")
LOGIN_FAILED = "Wrong username or password."
THROTTLED = "Too many failed sign-ins. Wait a few minutes and try again."


def init_app(app: Flask) -> None:
    settings = app.config["LASTMILE"]
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = str(settings["app"]["public_base_url"]).startswith("https://") \
        and not app.config.get("TESTING")
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=settings["support"]["session_hours"])
    from bot.console import analytics_views, views  # noqa: F401  (routes on bp)

    app.register_blueprint(bp)


@bp.before_request
def protect_posts():
    if request.method == "POST":
        auth.check_csrf()


@bp.after_request
def no_store(response):
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data: https:; style-src 'self'; "
                                "script-src 'self'; frame-ancestors 'none'")
    return response


@bp.app_context_processor
def console_globals():
    return {"csrf_token": auth.csrf_token, "current_agent_name": g.get("agent_name"),
            "current_agent_role": g.get("agent_role")}


@bp.get("/login")
def login():
    return render_template("console/login.html", error=None, username="")


@bp.post("/login")
def login_post():
    username = (request.form.get("username") or "").strip()
    password = request.form.get("password") or ""
    ip = request.remote_addr or "unknown"
    srv = services()
    with srv.db.session() as session:
        if auth.is_throttled(session, username, ip, srv.config["support"]):
            auth.record_attempt(session, username, ip, False)
            logger.warning("console sign-in throttled")
            return render_template("console/login.html", error=THROTTLED, username=username), 429
        agent = auth.authenticate(session, username, password) if username and password else None
        auth.record_attempt(session, username, ip, agent is not None)
        if agent is None:
            logger.info("console sign-in failed")
            failed = True
        else:
            failed = False
            auth.start_session(agent)
            logger.info("agent %s signed in", agent.id)
    if failed:
        return render_template("console/login.html", error=LOGIN_FAILED, username=username), 401
    target = request.args.get("next") or ""
    return redirect(target if target.startswith("/console/") else url_for("console.queue_page"))


@bp.post("/logout")
def logout():
    from flask import session

    session.clear()
    return redirect(url_for("console.login"))
