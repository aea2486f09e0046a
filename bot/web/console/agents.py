"""Console sign-in: argon2 passwords, throttling, server-side sessions, CSRF, roles."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import cache, wraps
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import abort, g, redirect, request, session, url_for
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.core.config import config_of
from bot.web import csrf
from db.models import Agent, ConsoleSession, VerificationAttempt, utcnow
from db.session import rows_changed

logger = logging.getLogger(__name__)

ROLES = ("agent", "supervisor")
THROTTLE_CHANNEL = "console_login"  # rows in verification_attempts: address "user:<name>" / "ip:<addr>"


@cache
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def hasher(session: Session) -> PasswordHasher:
    """argon2id with the cost in `support.password_hashing` of the app that made `session`."""
    cost = config_of(session)["support"]["password_hashing"]
    return _hasher(cost["time_cost"], cost["memory_kib"], cost["parallelism"])


@cache
def _dummy_hash(with_hasher: PasswordHasher) -> str:
    """Verified when the username is unknown, so that a wrong name costs as long as a wrong password. Made on
    first use: hashing takes ~0.3 s of CPU, which every process start (each CLI command) paid before."""
    return with_hasher.hash(secrets.token_urlsafe(16))


def hash_password(session: Session, password: str) -> str:
    return hasher(session).hash(password)


def create_agent(session: Session, username: str, password: str, *, role: str = "agent",
                 name: str | None = None) -> Agent:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise ValueError("the password must have at least 8 characters")
    agent = Agent(username=username.strip().lower(), name=name or username, password_hash=hash_password(session, password),
                  role=role, active=True)
    session.add(agent)
    session.flush()
    return agent


# --- throttling --------------------------------------------------------------------------------
# Failures are counted per username and per client IP (the real one, behind `app.trusted_proxies`).
# A browser where an agent has signed in before carries a signed device cookie for that username: its
# tries are counted on their own, so nobody else's failures (a guesser on the account, a colleague's
# typos behind the same office IP) ever block that agent's correct sign-in.
DEVICE_COOKIE = "lastmile_device"
DEVICE_DAYS = 180


def _serializer():
    from flask import current_app
    from itsdangerous import URLSafeTimedSerializer

    return URLSafeTimedSerializer(current_app.secret_key, salt="console-device")


def device_nonce(username: str) -> str | None:
    """The nonce of this browser's device cookie when it was issued for `username`, else None."""
    from itsdangerous import BadSignature

    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw:
        return None
    try:
        data = _serializer().loads(raw, max_age=DEVICE_DAYS * 86400)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("u") != username.strip().lower()[:100]:
        return None
    return str(data.get("n") or "")[:40] or None


def issue_device_cookie(response: Any, username: str) -> None:
    value = _serializer().dumps({"u": username.strip().lower()[:100], "n": secrets.token_urlsafe(16)})
    from flask import current_app

    response.set_cookie(DEVICE_COOKIE, value, max_age=DEVICE_DAYS * 86400, path="/console/", httponly=True,
                        samesite="Lax", secure=current_app.config.get("SESSION_COOKIE_SECURE", False))


def throttle_keys(username: str, ip: str) -> list[str]:
    nonce = device_nonce(username)
    if nonce:
        return [f"device:{nonce}"]
    return [f"user:{username.strip().lower()[:100]}", f"ip:{ip[:50]}"]


def is_throttled(session: Session, keys: list[str], settings: dict[str, Any]) -> bool:
    """Too many failures for any of `keys` within the window (then blocked for the lockout)."""
    since = utcnow() - timedelta(minutes=max(settings["login_window_minutes"], settings["login_lockout_minutes"]))
    for key in keys:
        failures = session.scalar(select(func.count()).select_from(VerificationAttempt).where(
            VerificationAttempt.channel == THROTTLE_CHANNEL, VerificationAttempt.address == key,
            VerificationAttempt.succeeded.is_(False), VerificationAttempt.created_at >= since))
        if failures >= settings["login_max_failures"]:
            return True
    return False


def record_attempt(session: Session, keys: list[str], succeeded: bool) -> None:
    for key in keys:
        session.add(VerificationAttempt(channel=THROTTLE_CHANNEL, address=key, succeeded=succeeded))


def authenticate(session: Session, username: str, password: str) -> Agent | None:
    """The agent if the password is right; the same work is done for an unknown username."""
    agent = session.scalar(select(Agent).where(Agent.username == username.strip().lower()))
    current = hasher(session)
    stored = agent.password_hash if agent is not None and agent.active else _dummy_hash(current)
    try:
        current.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if agent is None or not agent.active:
        return None
    if current.check_needs_rehash(agent.password_hash):  # support.password_hashing changed since it was set
        agent.password_hash = current.hash(password)
    return agent


# --- sessions and CSRF -------------------------------------------------------------------------
def check_csrf() -> None:
    """Refuse a POST that does not carry this session's CSRF token (bot/web/csrf.py)."""
    if not csrf.csrf_valid():
        logger.info("console POST refused: missing or wrong CSRF token")
        abort(400, description="The form has expired or is not valid. Reload the page and try again.")



def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(db_session: Session, agent: Agent, hours: float) -> ConsoleSession:
    """A fresh signed cookie (and CSRF token) holding a random session token; the server keeps its hash."""
    token = secrets.token_urlsafe(32)
    row = ConsoleSession(token_hash=_token_hash(token), agent_id=agent.id, expires_at=utcnow() + timedelta(hours=hours))
    db_session.add(row)
    session.clear()
    session.permanent = True
    session["sid"] = token
    csrf.new_token()
    return row


def _current_row(db_session: Session) -> ConsoleSession | None:
    token = session.get("sid")
    if not isinstance(token, str) or not token:
        return None
    row = db_session.scalar(select(ConsoleSession).where(ConsoleSession.token_hash == _token_hash(token)))
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    return row


def current_agent(db_session: Session, row: ConsoleSession | None = None) -> Agent | None:
    row = row or _current_row(db_session)
    if row is None:
        return None
    agent = db_session.get(Agent, row.agent_id)
    return agent if agent is not None and agent.active else None


def end_session(db_session: Session) -> None:
    """Sign-out: the server forgets the session, so a copy of the cookie no longer opens the console."""
    row = _current_row(db_session)
    if row is not None:
        row.revoked_at = utcnow()
    session.clear()


def revoke_sessions(db_session: Session, agent_id: int, *, keep_id: int | None = None) -> int:
    """End every session of an agent (password change, deactivation), except `keep_id`."""
    query = update(ConsoleSession).where(ConsoleSession.agent_id == agent_id, ConsoleSession.revoked_at.is_(None))
    if keep_id is not None:
        query = query.where(ConsoleSession.id != keep_id)
    return rows_changed(db_session.execute(query.values(revoked_at=utcnow())))


def change_password(db_session: Session, agent: Agent, new_password: str, *, keep_id: int | None = None) -> int:
    """Set a new password and end the agent's other sessions; returns how many were ended."""
    if len(new_password) < 8:
        raise ValueError("the password must have at least 8 characters")
    agent.password_hash = hash_password(db_session, new_password)
    return revoke_sessions(db_session, agent.id, keep_id=keep_id)


def login_required(role: str | None = None) -> Callable:
    """Views for signed-in agents (`g.agent_id`, `g.agent_role`); `role="supervisor"` for supervisors only."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from bot.core.services import services

            with services().db.session() as db_session:
                row = _current_row(db_session)
                agent = current_agent(db_session, row) if row is not None else None
                if agent is not None and row is not None:
                    g.agent_id, g.agent_role, g.agent_name = agent.id, agent.role, agent.name or agent.username
                    g.agent_username, g.console_session_id = agent.username, row.id
            if agent is None:
                session.pop("sid", None)
                if request.accept_mimetypes.best == "application/json" or request.path.endswith(".json"):
                    abort(401, description="Sign in first.")
                return redirect(url_for("console.login", next=request.path))
            if role is not None and g.agent_role != role:
                abort(403, description="Only supervisors can see this page.")
            return view(*args, **kwargs)

        return wrapper

    return decorate
