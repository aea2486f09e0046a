"""What is recorded: the audit log (who did what, when), and log lines kept free of tokens and keys."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask, Response, g, has_request_context, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import AuditEntry
from db.session import insert_now

logger = logging.getLogger(__name__)

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def record(session: Session, action: str, *, actor_type: str, actor_id: int | None = None,
           actor_name: str | None = None, target: str | None = None, **details: Any) -> AuditEntry:
    """Add one entry in the caller's transaction (so an action and its record commit together)."""
    entry = AuditEntry(actor_type=actor_type, actor_id=actor_id,
                       actor_name=_escaped_controls(actor_name or "")[:120] or None,
                       action=_escaped_controls(action)[:60], target=_escaped_controls(target or "")[:200] or None,
                       ip=(request.remote_addr or "")[:64] or None if has_request_context() else None,
                       details=details)
    return insert_now(session, entry)


def _escaped_controls(text: str) -> str:
    """Control characters (a NUL in a hostile URL, which PostgreSQL refuses in text) written as \\xNN."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}"
                   for ch in text)


def record_agent(session: Session, action: str, *, target: str | None = None, **details: Any) -> AuditEntry:
    """An entry for the agent signed in to the console (`g.agent_id`, `g.agent_username`)."""
    return record(session, action, actor_type="agent", actor_id=g.get("agent_id"), actor_name=g.get("agent_username"),
                  target=target, **details)


def record_api(session: Session, action: str, *, target: str | None = None, **details: Any) -> AuditEntry:
    """An entry for the API key of this request (`g.api_key_id`, `g.api_key_name`)."""
    return record(session, action, actor_type="api_key", actor_id=g.get("api_key_id"),
                  actor_name=g.get("api_key_name"), target=target, **details)


def recent(session: Session, *, actor: str | None = None, action: str | None = None,
           limit: int = 200) -> list[AuditEntry]:
    query = select(AuditEntry)
    if actor:
        query = query.where(AuditEntry.actor_name == actor)
    if action:
        query = query.where(AuditEntry.action.startswith(action))
    return list(session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit)))


def init_app(app: Flask) -> None:
    """Record every API write (carrier, helpdesk, drivers) made with a key, with its outcome.

    Console actions are recorded by the console itself; reads of personal data (exports) by their view."""

    @app.after_request
    def audit_api_writes(response: Response) -> Response:
        if request.method not in WRITE_METHODS or g.get("api_key_id") is None or g.get("audited"):
            return response
        from bot.core.services import services

        try:
            with services().db.session() as session:
                record_api_write(session, response.status_code)
        except Exception:  # the answer is already decided; a failed audit write is logged, not raised
            logger.exception("audit: could not record an API write")
        return response


def record_api_write(session: Session, status: int) -> AuditEntry:
    """The entry of this API write. A hot view (an order event) records it in its own transaction, one write
    instead of two, and sets `g.audited` once that has committed; otherwise `audit_api_writes` records it after."""
    rule = request.url_rule.rule if request.url_rule else request.path
    return record_api(session, f"api {request.method} {rule}"[:60], target=request.path[:200], status=status)


# --- tracking tokens out of every log line ------------------------------------------------------
_SECRETS_IN_TEXT = [
    (re.compile(r"(/t/)[^\s/?#\"'<>]+"), r"\1[token]"),                      # tracking page paths and links
    (re.compile(r"(/u/)[^\s/?#\"'<>]+"), r"\1[token]"),                      # email unsubscribe links
    (re.compile(r"(start[= ]+)[A-Za-z0-9_-]{16,64}\b"), r"\1[token]"),       # Telegram deep links
    (re.compile(r"(tracking_token['\"]?\s*[:=]\s*['\"]?)[A-Za-z0-9_-]+"), r"\1[token]"),  # SQL parameters, reprs
    (re.compile(r"\blm_[A-Za-z0-9_-]{20,}"), "lm_[key]"),                    # API keys
    # A bare 160-bit token: 27 URL-safe characters with a digit and a letter, or both cases (about 1 token in 100
    # has no digit at all; a snake_case name of 27 characters has neither).
    (re.compile(r"(?<![A-Za-z0-9_-])(?:(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])|(?=[A-Za-z0-9_-]*[a-z])"
                r"(?=[A-Za-z0-9_-]*[A-Z]))[A-Za-z0-9_-]{27}(?![A-Za-z0-9_-])"), "[token]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS_IN_TEXT:
        text = pattern.sub(replacement, text)
    return text


class TokenRedactor(logging.Filter):
    """Rewrites a record's message (and traceback) with tracking tokens and API keys replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_REDACTOR = TokenRedactor()


def install_log_redaction() -> None:
    """Every record of every logger (ours, werkzeug's, gunicorn's, SQLAlchemy's) passes the redactor
    when it is created, before any handler or formatter sees it. Idempotent."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "redacts_tokens", False):
        return

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        _REDACTOR.filter(record)
        return record

    redacting_factory.redacts_tokens = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacting_factory)
