"""`Idempotency-Key` on every POST of the API: a retry with the same key and body gets the first response
again (status and body) without doing anything twice; the same key with another request is refused.

Keys are scoped to the API key that sent them and remembered `api.idempotency_hours` (then purged by the
retention job). While the first request runs, a concurrent retry gets 409 `idempotency_key_in_use`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from flask import Response, g, make_response, request
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.core.services import services
from bot.web.problems import problem
from db.models import IdempotencyKey, utcnow

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# A first request that never recorded its response (the process died mid-way) blocks its key this long.
ABANDONED_AFTER = timedelta(minutes=5)


def fingerprint() -> str:
    """Method, path (with its query string, when there is one: `?brand=` names which brand's order) and body;
    a JSON body by its content, so key order and spacing do not matter."""
    raw = request.get_data(cache=True)
    try:
        body = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode() if raw else b""
    except (ValueError, RecursionError):
        body = raw
    query = request.query_string.decode("latin-1")
    digest = hashlib.sha256(f"{request.method} {request.path}{'?' + query if query else ''}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def idempotent(view: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for POST views, inside `require_api_key` (keys are scoped to `g.api_key_id`)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not key.strip() or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            return problem(400, f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters",
                           [{"field": HEADER, "message": "invalid"}])
        early = _claim(g.api_key_id, key, fingerprint())
        if early is not None:
            return early
        try:
            response = make_response(view(*args, **kwargs))
        except BaseException:
            _forget(g.api_key_id, key)
            raise
        _record(g.api_key_id, key, response)
        return response

    return wrapper


def _claim(api_key_id: int, key: str, print_: str) -> Response | None:
    """Take the key for this request (None), or the answer for a retry, a mismatch or a concurrent use."""
    now = utcnow()
    hours = float(services().config["api"]["idempotency_hours"])
    for _ in range(2):
        with services().db.session() as session:
            row = _row(session, api_key_id, key)
            if row is not None and (row.expires_at <= now or (
                    row.status == "processing" and row.created_at <= now - ABANDONED_AFTER)):
                session.delete(row)
                session.flush()
                row = None
            if row is not None:
                return _answer(row, print_)
            try:
                with session.begin_nested():
                    session.add(IdempotencyKey(api_key_id=api_key_id, key=key, fingerprint=print_,
                                               created_at=now, expires_at=now + timedelta(hours=hours)))
            except IntegrityError:  # a concurrent first request took it: answer as to a retry
                continue
            return None
    return problem(409, f"a request with this {HEADER} is in progress; retry later", code="idempotency_key_in_use",
                   headers={"Retry-After": "1"})


def _answer(row: IdempotencyKey, print_: str) -> Response:
    if row.fingerprint != print_:
        return problem(422, f"this {HEADER} was used for another request (method, path or body)",
                       [{"field": HEADER, "message": "reused with a different request"}],
                       code="idempotency_key_mismatch")
    if row.status != "done":
        return problem(409, f"a request with this {HEADER} is in progress; retry later",
                       code="idempotency_key_in_use", headers={"Retry-After": "1"})
    response = Response(row.response_body or "", status=row.response_status or 200,
                        content_type=row.response_type or "application/json")
    response.headers[REPLAYED_HEADER] = "true"
    return response


def _record(api_key_id: int, key: str, response: Response) -> None:
    """Keep a success to replay it. An error is not kept (it stored nothing), so a retry runs the request again."""
    if not 200 <= response.status_code < 300 or response.is_streamed:
        _forget(api_key_id, key)
        return
    with services().db.session() as session:
        row = _row(session, api_key_id, key)
        if row is not None:
            row.status, row.response_status = "done", response.status_code
            row.response_type, row.response_body = response.content_type, response.get_data(as_text=True)


def _forget(api_key_id: int, key: str) -> None:
    with services().db.session() as session:
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.api_key_id == api_key_id,
                                                     IdempotencyKey.key == key))


def _row(session: Session, api_key_id: int, key: str) -> IdempotencyKey | None:
    return session.scalar(select(IdempotencyKey).where(IdempotencyKey.api_key_id == api_key_id,
                                                       IdempotencyKey.key == key))
