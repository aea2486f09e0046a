"""`POST /nlu/parse`: parse a text, answering in the shape of Rasa's `/model/parse`."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from bot.web.api_keys import require_api_key
from bot.web.problems import problem
from nlu.types import Intent, NLUBackend

logger = logging.getLogger(__name__)

bp = Blueprint("nlu", __name__)


def _backend() -> NLUBackend:
    services = current_app.extensions.get("lastmile")
    backend = getattr(services, "nlu", None)
    if backend is not None:
        return backend
    import nlu

    return nlu._default_backend()


def _error(message: str, details: Any = None, status: int = 400):
    return problem(status, message, details)


def rasa_shape(text: str, intent: Intent) -> dict[str, Any]:
    """An Intent as Rasa's /model/parse answers it."""
    return {
        "text": text,
        "intent": {"name": intent.name, "confidence": round(intent.confidence, 4)},
        "entities": [{"entity": e.entity, "value": e.value, "start": e.start, "end": e.end,
                      "confidence_entity": 1.0, "extractor": "lastmile"} for e in intent.entities],
        "intent_ranking": [{"name": name, "confidence": conf} for name, conf in intent.ranking],
        "language": intent.language,
    }


@bp.post("/nlu/parse")
@require_api_key
def parse_endpoint():
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return _error("body must be a JSON object", {"content_type": request.content_type})
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        return _error("'text' is required and must be a non-empty string", {"field": "text"})
    locale, timezone = payload.get("locale"), payload.get("timezone")
    for name, value in (("locale", locale), ("timezone", timezone)):
        if value is not None and not isinstance(value, str):
            return _error(f"'{name}' must be a string", {"field": name})
    intent = _backend().parse(text, locale=locale, timezone=timezone)
    return jsonify(rasa_shape(text, intent))


def init_app(app) -> None:
    """Register the blueprint (called by app.create_app)."""
    app.register_blueprint(bp)
