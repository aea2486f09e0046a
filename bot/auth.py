"""API keys: random secrets shown once, stored as SHA-256 hashes, checked on every API call."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import g, jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.services import services
from db.models import ApiKey, utcnow

KEY_PREFIX = "lm_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, name: str, scope: str = "carrier", agent_id: int | None = None) -> str:
    """Store a new key and return it in clear, the only time it is ever seen."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(name=name, prefix=key[:10], key_hash=hash_key(key), scope=scope, agent_id=agent_id))
    return key


def find_api_key(session: Session, key: str, scopes: tuple[str, ...]) -> ApiKey | None:
    if not key.startswith(KEY_PREFIX):
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)))
    if row is None or row.scope not in scopes or not hmac.compare_digest(row.key_hash, hash_key(key)):
        return None
    return row


def require_api_key(view: Callable[..., Any] | None = None, *, scopes: tuple[str, ...] = ("carrier",)):
    """Decorator: `Authorization: Bearer <key>` with one of `scopes`, else 401 JSON."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            scheme, _, key = header.partition(" ")
            if scheme.lower() != "bearer" or not key.strip():
                return _unauthorized("missing API key: send 'Authorization: Bearer <key>'")
            with services().db.session() as session:
                row = find_api_key(session, key.strip(), scopes)
                if row is None:
                    return _unauthorized("invalid or revoked API key")
                g.api_key_id, g.api_key_name, g.agent_id = row.id, row.name, row.agent_id
                now = utcnow()
                if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
                    row.last_used_at = now
            return function(*args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


def _unauthorized(message: str):
    response = jsonify({"error": message, "details": None})
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="lastmile"'
    return response
