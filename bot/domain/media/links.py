"""Signed, expiring links to stored media: `{public_base_url}/media/<id>/<expires>/<signature>`.

The signature is an HMAC-SHA256 of the media id and the expiry (Unix seconds) under the app's secret key
(LASTMILE_SECRET_KEY, the same on every node), cut to 128 bits: a link cannot be made for another file or
made to last longer without the key. Links that leave us (messages, callbacks) last `media.link_ttl_seconds`;
the tracking page and the console make short ones (`media.page_link_ttl_seconds`) at each view."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

REF_PREFIX = "media:"  # how messages, outbox payloads and orders refer to a stored file: media:<id>


def ref(media_id: int) -> str:
    return f"{REF_PREFIX}{media_id}"


def ref_id(value: str | None) -> int | None:
    """The media id of a `media:<id>` reference, else None."""
    if not value or not value.startswith(REF_PREFIX):
        return None
    digits = value[len(REF_PREFIX):]
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) < 19 else None


def signature(key: bytes, media_id: int, expires: int) -> str:
    digest = hmac.new(key, f"media:{media_id}:{expires}".encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_path(key: bytes, media_id: int, ttl: int, now: float | None = None) -> str:
    expires = int(now if now is not None else time.time()) + int(ttl)
    return f"/media/{media_id}/{expires}/{signature(key, media_id, expires)}"


def check(key: bytes, media_id: int, expires: int, given: str, now: float | None = None) -> str | None:
    """None when the link is good; else why not: "signature" (forged or altered) or "expired"."""
    if not hmac.compare_digest(signature(key, media_id, expires).encode(), given.encode()):
        return "signature"
    if expires <= (now if now is not None else time.time()):
        return "expired"
    return None
