"""`/api/v1/webhook-endpoints`: where our events go, managed by the carrier (carrier keys)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from bot.core.services import services
from bot.domain import webhook_endpoints as endpoints
from bot.web.api import PREFIX, error, json_body
from bot.web.api_keys import require_api_key
from bot.web.apispec import F, operation
from bot.web.idempotency import idempotent
from db.models import WebhookEndpoint
from db.session import INT64

logger = logging.getLogger(__name__)
bp = Blueprint("webhook_endpoints_api", __name__, url_prefix=PREFIX)
TAG = "webhook-endpoints"

URL = F("string", max_length=2000, description="http(s) URL that receives the POSTs",
        example="https://carrier.example/hooks/lastmile")
TYPES = F("array", items=F("string", enum=endpoints.EVENT_TYPES),
          description="Event types to receive; empty or absent: all of them")
DESCRIPTION = F("string", max_length=200, example="Dispatch system")
ENABLED = F("boolean", description="false: nothing is sent; true again clears the failure count")
NEW_ENDPOINT = F("object", required=True, fields={"url": F("string", required=True, max_length=2000,
                                                           description=URL.description, example=URL.example),
                                                  "event_types": TYPES, "description": DESCRIPTION, "enabled": ENABLED})
CHANGE = F("object", required=True, fields={"url": URL, "event_types": TYPES, "description": DESCRIPTION,
                                            "enabled": ENABLED})
ROTATE = F("object", required=True, fields={"keep_previous_hours": F(
    "number", minimum=0, maximum=168, description="How long the old secret also signs (default webhooks.rotation_hours)")})
FOUND = {401: "Missing or bad API key", 404: "Unknown webhook endpoint"}


def init_app(app) -> None:
    app.register_blueprint(bp)


def _url_problem(data: dict[str, Any]):
    url = data.get("url")
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        return error(422, "url must be an absolute http:// or https:// URL", [{"field": "url", "message": "invalid"}])
    return None


def _found(session, endpoint_id: int) -> WebhookEndpoint | None:
    return session.get(WebhookEndpoint, endpoint_id) if endpoint_id < INT64 else None


def _missing(endpoint_id: int):
    return error(404, f"no webhook endpoint {endpoint_id}")


@operation(bp, "POST", "/webhook-endpoints", "Add a webhook endpoint; its secret is shown in this answer",
           body=NEW_ENDPOINT, prefix=PREFIX, tag=TAG,
           responses={201: "Created, with its secret", 400: "Malformed JSON", 401: "Missing or bad API key",
                      422: "Invalid fields"})
@require_api_key
@idempotent
def create_webhook_endpoint():
    data, problem = json_body(NEW_ENDPOINT)
    if data is None:  # json_body gives no data only with its problem answer
        return problem
    problem = _url_problem(data)
    if problem is not None:
        return problem
    with services().db.session() as session:
        endpoint = endpoints.create(session, data["url"], event_types=data.get("event_types"),
                                    description=data.get("description"), enabled=data.get("enabled", True))
        body = endpoints.endpoint_json(endpoint, with_secret=True)
    logger.info("webhook endpoint %s created", body["id"])
    return jsonify({"webhook_endpoint": body}), 201


@operation(bp, "GET", "/webhook-endpoints", "The webhook endpoints (secrets are not shown)", prefix=PREFIX, tag=TAG,
           responses={200: "The endpoints", 401: "Missing or bad API key"})
@require_api_key
def list_webhook_endpoints():
    with services().db.read_session() as session:
        rows = session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)).all()
        return jsonify({"webhook_endpoints": [endpoints.endpoint_json(e) for e in rows]})


@operation(bp, "GET", "/webhook-endpoints/<int:endpoint_id>", "A webhook endpoint, with why it was disabled",
           prefix=PREFIX, tag=TAG, responses={200: "The endpoint", **FOUND})
@require_api_key
def get_webhook_endpoint(endpoint_id: int):
    with services().db.read_session() as session:
        endpoint = _found(session, endpoint_id)
        if endpoint is None:
            return _missing(endpoint_id)
        return jsonify({"webhook_endpoint": endpoints.endpoint_json(endpoint)})


@operation(bp, "PATCH", "/webhook-endpoints/<int:endpoint_id>", "Change a webhook endpoint's URL, types or state",
           body=CHANGE, prefix=PREFIX, tag=TAG,
           responses={200: "Changed", 400: "Malformed JSON", **FOUND, 422: "Invalid fields"})
@require_api_key
def update_webhook_endpoint(endpoint_id: int):
    data, problem = json_body(CHANGE)
    if data is None:  # json_body gives no data only with its problem answer
        return problem
    problem = _url_problem(data)
    if problem is not None:
        return problem
    with services().db.session() as session:
        endpoint = _found(session, endpoint_id)
        if endpoint is None:
            return _missing(endpoint_id)
        for key in ("url", "description"):
            if data.get(key) is not None:
                setattr(endpoint, key, data[key])
        if data.get("event_types") is not None:
            endpoint.event_types = list(data["event_types"])
        if data.get("enabled") is not None:
            endpoints.set_enabled(endpoint, data["enabled"])
        session.flush()
        return jsonify({"webhook_endpoint": endpoints.endpoint_json(endpoint)})


@operation(bp, "DELETE", "/webhook-endpoints/<int:endpoint_id>", "Remove a webhook endpoint (queued sends stop)",
           prefix=PREFIX, tag=TAG, responses={204: "Removed", **FOUND})
@require_api_key
def delete_webhook_endpoint(endpoint_id: int):
    with services().db.session() as session:
        endpoint = _found(session, endpoint_id)
        if endpoint is None:
            return _missing(endpoint_id)
        session.delete(endpoint)
    return Response(status=204)


@operation(bp, "POST", "/webhook-endpoints/<int:endpoint_id>/rotate",
           "A new secret; the old one also signs for keep_previous_hours", body=ROTATE, prefix=PREFIX, tag=TAG,
           responses={200: "Rotated, with the new secret", 400: "Malformed JSON", **FOUND, 422: "Invalid fields"})
@require_api_key
@idempotent
def rotate_webhook_endpoint_secret(endpoint_id: int):
    data, problem = ({}, None) if not request.get_data() else json_body(ROTATE)
    if data is None:  # json_body gives no data only with its problem answer
        return problem
    hours = data.get("keep_previous_hours")
    if hours is None:
        hours = float(services().config["webhooks"]["rotation_hours"])
    with services().db.session() as session:
        endpoint = _found(session, endpoint_id)
        if endpoint is None:
            return _missing(endpoint_id)
        endpoints.rotate(session, endpoint, keep_previous_hours=hours)
        session.flush()
        return jsonify({"webhook_endpoint": endpoints.endpoint_json(endpoint, with_secret=True)})
