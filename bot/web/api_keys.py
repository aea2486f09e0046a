"""API keys: random secrets shown once, stored as SHA-256 hashes, checked on every API call."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import g, request
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.core.numbers import is_whole_number
from bot.core.services import services
from bot.web.problems import problem
from db.models import ApiKey, utcnow

KEY_PREFIX = "lm_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, name: str, scope: str = "carrier", agent_id: int | None = None,
                   brand_id: int | None = None) -> str:
    """Store a new key and return it in clear, the only time it is ever seen. A `brand_id` makes it a brand
    key (scope `brand`): it reads and writes only that brand's orders (docs/api.md#brands)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    if brand_id is not None:
        scope = "brand"
    session.add(ApiKey(name=name, prefix=key[:10], key_hash=hash_key(key), scope=scope, agent_id=agent_id,
                       brand_id=brand_id))
    return key


def list_api_keys(session: Session, *, include_revoked: bool = False) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(query))


def lookup_api_key(session: Session, ident: str) -> ApiKey | None:
    """A key by id (`12`) or by the prefix `lastmile apikey list` shows (`lm_AbCdEfG`)."""
    if is_whole_number(ident):
        return session.get(ApiKey, int(ident))
    rows = list(session.scalars(select(ApiKey).where(ApiKey.prefix == ident[:10])))
    return rows[0] if len(rows) == 1 else None


def revoke_api_key(session: Session, row: ApiKey) -> bool:
    """Revoke now (every later call with it gets 401); False if it was already revoked."""
    if row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    return True


def rotate_api_key(session: Session, row: ApiKey) -> str:
    """A new key with the same name, scope and agent; the old one is revoked in the same transaction."""
    revoke_api_key(session, row)
    return create_api_key(session, row.name, row.scope, agent_id=row.agent_id, brand_id=row.brand_id)


def find_api_key(session: Session, key: str, scopes: tuple[str, ...]) -> ApiKey | None:
    if not key.startswith(KEY_PREFIX):
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)))
    if row is None or row.scope not in scopes or not hmac.compare_digest(row.key_hash, hash_key(key)):
        return None
    return row


def require_api_key(view: Callable[..., Any] | None = None, *, scopes: tuple[str, ...] = ("carrier",)):
    """Decorator: `Authorization: Bearer <key>` with one of `scopes`, else 401 JSON. Brand keys (scope `brand`)
    pass only where `scopes` names them (the orders and brands endpoints); `g.api_key_brand_id` is their brand."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            scheme, _, key = header.partition(" ")
            if scheme.lower() != "bearer" or not key.strip():
                return _unauthorized("missing API key: send 'Authorization: Bearer <key>'")
            database = services().db
            with database.read_session() as session:  # no write lock (SQLite) for the check itself
                row = find_api_key(session, key.strip(), scopes)
                if row is None:
                    return _unauthorized("invalid or revoked API key")
                g.api_key_id, g.api_key_name, g.agent_id = row.id, row.name, row.agent_id
                g.api_key_brand_id = row.brand_id if row.scope == "brand" else None
                now = utcnow()
                stale = row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60
            if stale:  # last use is kept to the minute: one write a minute per key, not one per call
                with database.session() as session:
                    session.execute(update(ApiKey).where(ApiKey.id == g.api_key_id).values(last_used_at=now))
            return function(*args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


def _unauthorized(message: str):
    return problem(401, message, code="unauthorized", headers={"WWW-Authenticate": 'Bearer realm="lastmile"'})
