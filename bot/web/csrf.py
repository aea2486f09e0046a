"""The one CSRF mechanism of the HTML pages (the console and the tracking page): a random token per Flask session,
sent back by every POST as the form field `csrf_token` or the header `X-CSRF-Token`, compared in constant time."""

from __future__ import annotations

import hmac
import secrets

from flask import request, session

SESSION_KEY = "csrf"


def new_token() -> str:
    """A fresh token for this session (at sign-in: a token from before the sign-in is no longer good)."""
    token = session[SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def csrf_token() -> str:
    """This session's token, created on first use."""
    return session.get(SESSION_KEY) or new_token()


def csrf_valid() -> bool:
    """The POST carries this session's token."""
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = str(session.get(SESSION_KEY) or "")
    # bytes: compare_digest refuses str with non-ASCII characters (a TypeError, once a 500)
    return bool(expected) and hmac.compare_digest(expected.encode(), sent.encode("utf-8", "replace"))
