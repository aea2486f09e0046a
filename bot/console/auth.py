"""Console sign-in: argon2 passwords, throttling per username and per IP, sessions, CSRF, roles."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import abort, g, redirect, request, session, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Agent, VerificationAttempt, utcnow

logger = logging.getLogger(__name__)

HASHER = PasswordHasher()
# Verified when the username is unknown, so that a wrong name costs as long as a wrong password.
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))
ROLES = ("agent", "supervisor")
THROTTLE_CHANNEL = "console_login"  # rows in verification_attempts: address "user:<name>" / "ip:<addr>"


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def create_agent(session: Session, username: str, password: str, *, role: str = "agent",
                 name: str | None = None) -> Agent:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise ValueError("the password must have at least 8 characters")
    agent = Agent(username=username.strip().lower(), name=name or username, password_hash=hash_password(password),
                  role=role, active=True)
    session.add(agent)
    session.flush()
    return agent


# --- throttling --------------------------------------------------------------------------------
def _keys(username: str, ip: str) -> list[str]:
    return [f"user:{username.strip().lower()[:100]}", f"ip:{ip[:50]}"]


def is_throttled(session: Session, username: str, ip: str, settings: dict[str, Any]) -> bool:
    """Too many failures for this username, or from this IP, within the window (the lockout)."""
    since = utcnow() - timedelta(minutes=max(settings["login_window_minutes"], settings["login_lockout_minutes"]))
    for key in _keys(username, ip):
        failures = session.scalar(select(func.count()).select_from(VerificationAttempt).where(
            VerificationAttempt.channel == THROTTLE_CHANNEL, VerificationAttempt.address == key,
            VerificationAttempt.succeeded.is_(False), VerificationAttempt.created_at >= since))
        if failures >= settings["login_max_failures"]:
            return True
    return False


def record_attempt(session: Session, username: str, ip: str, succeeded: bool) -> None:
    for key in _keys(username, ip):
        session.add(VerificationAttempt(channel=THROTTLE_CHANNEL, address=key, succeeded=succeeded))


def authenticate(session: Session, username: str, password: str) -> Agent | None:
    """The agent if the password is right; the same work is done for an unknown username."""
    agent = session.scalar(select(Agent).where(Agent.username == username.strip().lower()))
    stored = agent.password_hash if agent is not None and agent.active else _DUMMY_HASH
    try:
        HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if agent is None or not agent.active:
        return None
    if HASHER.check_needs_rehash(agent.password_hash):
        agent.password_hash = hash_password(password)
    return agent


# --- sessions and CSRF -------------------------------------------------------------------------
def csrf_token() -> str:
    """This session's CSRF token, created on first use; every console POST must carry it."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Refuse a POST whose form field `csrf_token` or header `X-CSRF-Token` is not this session's token."""
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get("csrf") or ""
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        logger.info("console POST refused: missing or wrong CSRF token")
        abort(400, description="The form has expired or is not valid. Reload the page and try again.")


def start_session(agent: Agent) -> None:
    session.clear()  # a fresh session (and CSRF token) at every sign-in
    session.permanent = True
    session["agent_id"] = agent.id
    session["csrf"] = secrets.token_urlsafe(32)


def current_agent(db_session: Session) -> Agent | None:
    agent_id = session.get("agent_id")
    if not agent_id:
        return None
    agent = db_session.get(Agent, agent_id)
    return agent if agent is not None and agent.active else None


def login_required(role: str | None = None) -> Callable:
    """Views for signed-in agents (`g.agent_id`, `g.agent_role`); `role="supervisor"` for supervisors only."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from bot.services import services

            with services().db.session() as db_session:
                agent = current_agent(db_session)
                if agent is not None:
                    g.agent_id, g.agent_role, g.agent_name = agent.id, agent.role, agent.name or agent.username
            if agent is None:
                session.pop("agent_id", None)
                if request.accept_mimetypes.best == "application/json" or request.path.endswith(".json"):
                    abort(401, description="Sign in first.")
                return redirect(url_for("console.login", next=request.path))
            if role is not None and g.agent_role != role:
                abort(403, description="Only supervisors can see this page.")
            return view(*args, **kwargs)

        return wrapper

    return decorate
