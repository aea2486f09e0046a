"""A brand's own wording of its customers' notifications: `GET /api/v1/brands/{ref}/messages`, and per message and
language `PUT` (checked: placeholders, braces), `DELETE` (back to the default), `GET …/versions`, `POST …/preview`.
Carrier keys, and brand keys for their own brand (docs/api.md#message-texts)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, g, jsonify
from sqlalchemy.orm import Session

from bot.core.i18n import SUPPORTED_LOCALES
from bot.core.services import services
from bot.domain import message_texts as texts
from bot.web.api import ORDER_SCOPES, PREFIX, addressed_brand, error, invalid_ref, json_body
from bot.web.api_keys import require_api_key
from bot.web.apispec import F, operation
from bot.web.idempotency import idempotent
from db.models import Brand

logger = logging.getLogger(__name__)
bp = Blueprint("message_texts_api", __name__, url_prefix=PREFIX)

EXAMPLE = "¡{order} va en camino! Llega {window}. Síguelo: {link}"
WORDING = F("object", required=True, fields={"text": F(
    "string", required=True, max_length=texts.MAX_LENGTH, example=EXAMPLE,
    description="The wording, with placeholders such as {order}, {window}, {link} (`{{` and `}}` for braces)")})
PREVIEW = F("object", required=True, fields={"text": F("string", max_length=texts.MAX_LENGTH, example=EXAMPLE,
                                                       description="The wording to preview; none: the current one")})
_NOT_FOUND = "Unknown brand (or another brand's, for a brand key), message key or language"
_ONE = "/brands/<ref>/messages/<key>/<locale>"


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def _brand(session: Session, ref: str) -> Brand | None:
    """Brand `ref` when the key may work on it (a brand key: its own only, else as if it did not exist)."""
    brand = addressed_brand(session, ref)
    return brand if brand is not None and brand.ref == ref else None


def _addressed(session: Session, ref: str, key: str | None = None, locale: str | None = None):
    """(brand, None) or (None, a problem answer): a bad reference 422, an unknown brand, key or language 404."""
    problem = invalid_ref(ref, "brand")
    if problem is not None:
        return None, problem
    brand = _brand(session, ref)
    if brand is None:
        return None, error(404, f"no brand with reference {ref!r}")
    if key is not None and key not in texts.MESSAGES:
        return None, error(404, f"no editable message {key!r}; the keys are {', '.join(texts.MESSAGES)}")
    if locale is not None and locale not in SUPPORTED_LOCALES:
        return None, error(404, f"no language {locale!r}; the languages are {', '.join(SUPPORTED_LOCALES)}")
    return brand, None


def _addressed_body(session: Session, spec: F, ref: str, key: str, locale: str):
    """(brand, body, None) or (…, a problem answer): what the path names first (404, 422), then the body."""
    data, body_problem = json_body(spec)
    brand, problem = _addressed(session, ref, key, locale)
    if brand is None:
        return None, None, problem
    return brand, data, body_problem


def _refused(key: str, text: str):
    """A 422 naming each problem of `text` as the wording of `key` (placeholders, braces, length), or None."""
    wrong = texts.check(key, text)
    return error(422, "; ".join(p["message"] for p in wrong), wrong) if wrong else None


def _author() -> str:
    return f"api key {g.get('api_key_name') or g.get('api_key_id')}"


def _saved(session: Session, brand: Brand, key: str, locale: str, changed: bool) -> dict[str, Any]:
    return {"message": texts.message_json(session, brand, key, locale), "changed": changed}


@operation(bp, "GET", "/brands/<ref>/messages", "Every editable message of a brand: defaults and overrides per "
           "language", prefix=PREFIX, tag="brands",
           responses={200: "The messages", 401: "Missing or bad API key", 404: _NOT_FOUND,
                      422: "The reference is blank, over 64 characters or holds control characters"})
@require_api_key(scopes=ORDER_SCOPES)
def list_brand_messages(ref: str):
    with services().db.session() as session:
        brand, problem = _addressed(session, ref)
        if brand is None:
            return problem
        return jsonify({"brand": brand.ref, "locales": list(SUPPORTED_LOCALES),
                        "messages": texts.brand_messages_json(session, brand)})


@operation(bp, "PUT", _ONE, "Word a message the brand's way in one language (a new version; the same text again "
           "changes nothing)", body=WORDING, prefix=PREFIX, tag="brands",
           responses={200: "Saved (`changed`: whether a new version was made)", 400: "Malformed JSON",
                      401: "Missing or bad API key", 404: _NOT_FOUND, 409: "Saved concurrently by someone else",
                      422: "Unknown or missing placeholders, bad braces, blank or too long"})
@require_api_key(scopes=ORDER_SCOPES)
def put_brand_message(ref: str, key: str, locale: str):
    with services().db.session() as session:
        brand, data, problem = _addressed_body(session, WORDING, ref, key, locale)
        if brand is None or data is None:
            return problem
        refused = _refused(key, data["text"])
        if refused is not None:
            return refused
        _row, changed = texts.save(session, brand, key, locale, data["text"], _author())
        return jsonify(_saved(session, brand, key, locale, changed))


@operation(bp, "DELETE", _ONE, "Back to the catalog's default (a new version; revertible)", prefix=PREFIX,
           tag="brands", responses={200: "The default again (`changed`: whether a new version was made)",
                                    401: "Missing or bad API key", 404: _NOT_FOUND,
                                    409: "Saved concurrently by someone else"})
@require_api_key(scopes=ORDER_SCOPES)
def delete_brand_message(ref: str, key: str, locale: str):
    with services().db.session() as session:
        brand, problem = _addressed(session, ref, key, locale)
        if brand is None:
            return problem
        _row, changed = texts.save(session, brand, key, locale, None, _author())
        return jsonify(_saved(session, brand, key, locale, changed))


@operation(bp, "GET", _ONE + "/versions", "Every version of a message in one language, newest first (who, when)",
           prefix=PREFIX, tag="brands", responses={200: "The versions", 401: "Missing or bad API key",
                                                   404: _NOT_FOUND})
@require_api_key(scopes=ORDER_SCOPES)
def list_brand_message_versions(ref: str, key: str, locale: str):
    with services().db.session() as session:
        brand, problem = _addressed(session, ref, key, locale)
        if brand is None:
            return problem
        rows = texts.versions(session, brand, key, locale)
        return jsonify({"key": key, "locale": locale, "default": texts.default_text(key, locale),
                        "versions": [texts.version_json(row) for row in rows]})


@operation(bp, "POST", _ONE + "/preview", "A wording as a customer would read it about a sample order, with its "
           "SMS encoding and segment count (nothing is saved)", body=PREVIEW, prefix=PREFIX, tag="brands",
           responses={200: "The preview", 400: "Malformed JSON", 401: "Missing or bad API key", 404: _NOT_FOUND,
                      422: "Unknown or missing placeholders, bad braces, blank or too long"})
@require_api_key(scopes=ORDER_SCOPES)
@idempotent
def preview_brand_message(ref: str, key: str, locale: str):
    with services().db.session() as session:
        brand, data, problem = _addressed_body(session, PREVIEW, ref, key, locale)
        if brand is None or data is None:
            return problem
        text = data.get("text")
        if text is None:
            text = texts.message_json(session, brand, key, locale)["text"]
        refused = _refused(key, text)
        if refused is not None:
            return refused
        return jsonify(texts.preview(brand, key, locale, text))
