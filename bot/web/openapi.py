"""The OpenAPI 3.1 document, generated from the routes (bot/apispec.py `operation`) and the typed models
(bot/api_models.py), served at /api/v1/openapi.json; a readable page of it at /api/docs (no CDN)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, jsonify, render_template

from bot.core.services import services
from bot.web.apispec import OPERATIONS, Operation
from bot.web.problems import CODES, MEDIA_TYPE

if TYPE_CHECKING:
    from pydantic import BaseModel

bp = Blueprint("openapi", __name__)
TITLE, VERSION = "lastmile carrier API", "1.1.0"
REF = "#/components/schemas/{model}"


@cache
def responses() -> dict[str, dict[int, type[BaseModel] | None]]:
    """What each operation answers on success, by operationId (the view's name) and status. The typed models
    (pydantic) are imported on the first request for the document, not by every process that imports the app:
    they cost ~0.4 s of CPU, which each `lastmile` command paid."""
    from bot.web import api_models as m

    return {
        "put_order": {200: m.OrderSaved, 201: m.OrderSaved},
        "post_event": {200: m.EventSaved, 201: m.EventSaved},
        "get_order": {200: m.OrderRead},
        "list_orders": {200: m.OrderPage},
        "batch_orders": {200: m.BatchResult},
        "put_driver": {200: m.DriverSaved, 201: m.DriverSaved},
        "put_brand": {200: m.BrandSaved, 201: m.BrandSaved},
        "get_brand": {200: m.BrandRead},
        "list_brands": {200: m.BrandList},
        "list_brand_messages": {200: m.BrandMessages},
        "put_brand_message": {200: m.MessageTextSaved},
        "delete_brand_message": {200: m.MessageTextSaved},
        "list_brand_message_versions": {200: m.MessageTextVersions},
        "preview_brand_message": {200: m.MessagePreview},
        "list_handoffs": {200: m.HandoffList},
        "take_handoff": {200: m.HandoffRead},
        "release_handoff": {200: m.HandoffRead},
        "close_handoff": {200: m.HandoffRead},
        "list_messages": {200: m.MessageList},
        "post_message": {201: m.MessageSent},
        "export_customer": {200: m.PersonExport},
        "erase_customer": {200: m.Erased},
        "create_webhook_endpoint": {201: m.WebhookEndpointRead},
        "list_webhook_endpoints": {200: m.WebhookEndpointList},
        "get_webhook_endpoint": {200: m.WebhookEndpointRead},
        "update_webhook_endpoint": {200: m.WebhookEndpointRead},
        "delete_webhook_endpoint": {204: None},
        "rotate_webhook_endpoint_secret": {200: m.WebhookEndpointRead},
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_STR64 = {"type": "string", "maxLength": 64}
_BRAND = _query("brand", _STR64, "Carrier keys: the brand whose order `ref` is (default: the default brand)")
QUERY: dict[str, list[dict[str, Any]]] = {
    "list_orders": [
        _query("status", {"type": "string", "examples": ["out_for_delivery,delayed"]},
               "One status or several, comma-separated"),
        _query("updated_since", {"type": "string", "format": "date-time"}, "Orders changed at or after this"),
        _query("customer_phone", {"type": "string", "examples": ["+15550001111"]}, "E.164 phone of the customer"),
        _query("driver", _STR64, "The carrier's driver reference"),
        _query("team", _STR64, "Team or depot"),
        _query("brand", _STR64, "A brand's reference (brand keys see their own brand's orders only)"),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "Orders per page"),
        _query("cursor", {"type": "string"}, "`next_cursor` of the previous page"),
    ],
    "list_handoffs": [
        _query("status", {"type": "string", "enum": ["active", "open", "assigned", "released", "closed"],
                          "default": "active"}, "Which handoffs"),
        _query("priority", {"type": "integer", "enum": [1, 2, 3]}, "1 urgent, 2 normal, 3 low"),
        _query("reason", {"type": "string", "maxLength": 40}, "A handoff reason"),
        _query("mine", {"type": "boolean"}, "Only the acting agent's"),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}, "At most this many"),
    ],
    "put_order": [_BRAND],
    "get_order": [_BRAND],
    "post_event": [_BRAND],
    "list_messages": [_query("after_id", {"type": "integer", "minimum": 0, "default": 0}, "Only newer messages")],
}
IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
               "schema": {"type": "string", "minLength": 1, "maxLength": 255},
               "description": "A retry with the same key and body replays the first answer (docs/api.md#idempotency)"}

@cache
def webhooks() -> dict[str, tuple[str, type[BaseModel]]]:
    """The webhooks we send: a description and the model of the body, by event type."""
    from bot.web import api_models as m

    return {
        "order.event": ("An order change made through the bot (driver command, reroute, instruction)",
                        m.OrderEventPayload),
        "handoff.opened": ("A conversation was handed to people", m.HandoffPayload),
        "handoff.released": ("An agent gave the conversation back to the bot", m.HandoffPayload),
        "handoff.closed": ("A handoff was closed", m.HandoffPayload),
        "rating.recorded": ("A customer rated a delivery", m.RatingPayload),
        "conversation.opted_out": ("A person replied STOP: they get nothing more", m.ConversationPayload),
        "conversation.opted_in": ("A person replied START again", m.ConversationPayload),
        "message.failed": ("A message to a person failed for good: refused, or reported undelivered by the provider",
                           m.MessageFailedPayload),
        # To a brand's seller.webhook_url (PUT /api/v1/brands/{ref}), signed with its seller.webhook_secret.
        "seller.failed_attempt": ("To a brand's seller: a delivery attempt failed, with the reason", m.SellerPayload),
        "seller.customer_choice": ("To a brand's seller: after a failed attempt the customer chose another day, "
                                   "address, a neighbour or a pickup point", m.SellerPayload),
        "seller.delivery_exception": ("To a brand's seller: the order was cancelled", m.SellerPayload),
        "seller.low_rating": ("To a brand's seller: a rating at or below seller.low_rating_at_most, or the comment "
                              "that followed it", m.SellerPayload),
    }


SIGNATURE_HEADERS = {
    "webhook-id": "msg_…, the same on every retry of one message",
    "webhook-timestamp": "Unix seconds when this attempt was sent",
    "webhook-signature": "v1,<base64 HMAC-SHA256 of id.timestamp.body>; two, space-separated, during a rotation",
}


def openapi_document(server: str) -> dict[str, Any]:
    from pydantic.json_schema import models_json_schema

    from bot.web import api_models as m

    bodies = {op.operation_id: m.request_model(_camel(op.operation_id) + "Body", op.body)
              for op in OPERATIONS if op.body is not None}
    models: set[type[BaseModel]] = {model for statuses in responses().values() for model in statuses.values() if model}
    models |= {model for _, model in webhooks().values()}
    models |= {m.Problem, m.WebhookMessage, *bodies.values()}
    _, schemas = models_json_schema([(model, "validation" if model in bodies.values() else "serialization")
                                     for model in sorted(models, key=lambda x: x.__name__)], ref_template=REF)
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, bodies.get(op.operation_id))
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION,
                 "description": "Orders and events in, webhooks out. Errors are RFC 9457 problems with a stable "
                                "`code`; every POST takes an Idempotency-Key. Reference: docs/api.md."},
        "servers": [{"url": server}],
        "tags": [{"name": t} for t in dict.fromkeys(op.tag for op in OPERATIONS)],
        "paths": paths,
        "webhooks": {name: _webhook(name, text, model) for name, (text, model) in webhooks().items()},
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "`lastmile apikey create NAME`"}},
            "schemas": schemas.get("$defs", {}),
        },
    }


def _operation(op: Operation, body: type[BaseModel] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "tags": [op.tag],
                             "parameters": [_path_parameter(name, kind) for name, kind in op.path_types.items()]
                             + QUERY.get(op.operation_id, []) + ([IDEMPOTENCY] if op.method == "POST" else []),
                             "responses": {}}
    success = responses().get(op.operation_id, {})
    for code, text in sorted(op.responses.items()):
        if code >= 400:
            content = {MEDIA_TYPE: {"schema": {"$ref": REF.format(model="Problem")}}}
            entry["responses"][str(code)] = {"description": text, "content": content}
        elif (model := success.get(code)) is None:
            entry["responses"][str(code)] = {"description": text}
        else:
            ref = {"$ref": REF.format(model=model.__name__)}
            entry["responses"][str(code)] = {"description": text, "content": {"application/json": {"schema": ref}}}
    if op.auth:
        entry["security"] = [{"bearerAuth": []}]
    if body is not None:
        entry["requestBody"] = {"required": not _optional_body(op), "content": {
            "application/json": {"schema": {"$ref": REF.format(model=body.__name__)}}}}
    return entry


def _optional_body(op: Operation) -> bool:
    """Handoff actions and rotation take no body at all, or an object."""
    return op.operation_id in ("take_handoff", "release_handoff", "close_handoff", "rotate_webhook_endpoint_secret")


def _path_parameter(name: str, converter: str) -> dict[str, Any]:
    schema = ({"type": "integer", "minimum": 0, "format": "int64"} if converter == "int"
              else {"type": "string", "minLength": 1, "maxLength": 64})
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _webhook(name: str, text: str, model: type[BaseModel]) -> dict[str, Any]:
    return {"post": {
        "operationId": "webhook_" + name.replace(".", "_"), "summary": f"{name}: {text}", "tags": ["webhooks"],
        "parameters": [{"name": header, "in": "header", "required": True, "schema": {"type": "string"},
                        "description": meaning} for header, meaning in SIGNATURE_HEADERS.items()],
        "requestBody": {"required": True, "description": "Endpoints get {type, timestamp, data}; the configured "
                        "carrier callback and helpdesk URLs get `data` itself", "content": {"application/json": {
                            "schema": {"$ref": REF.format(model=model.__name__)}}}},
        "responses": {"2XX": {"description": "Received; anything else is retried with backoff"}},
    }}


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def _server() -> str:
    return str(services().config["app"]["public_base_url"]).rstrip("/")


@bp.get("/api/v1/openapi.json")
def openapi_json():
    return jsonify(openapi_document(_server()))


@bp.get("/api/docs")
def api_docs():
    """The reference as a page: every operation, its parameters and answers; every error code."""
    document = openapi_document(_server())
    return render_template("api_docs.html", doc=document, codes=CODES)
