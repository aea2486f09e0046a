"""The carrier API: orders and their events in, behind bearer API keys. OpenAPI at /api/v1/openapi.json."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import orders as order_rules
from bot.apispec import F, openapi_document, operation, validate
from bot.auth import require_api_key
from bot.services import services
from db.models import Customer, Order, utcnow

logger = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api/v1")
PREFIX = "/api/v1"

WINDOW = F("object", description="A time window", fields={
    "start": F("datetime", required=True), "end": F("datetime", required=True)})
CUSTOMER = F("object", description="The person receiving the order", fields={
    "name": F("string", max_length=200, example="Ana"),
    "phone": F("phone", description="E.164; SMS, or WhatsApp when `whatsapp` is true", example="+15550001111"),
    "telegram_chat_id": F("integer", description="Telegram chat id, if known", example=4242),
    "whatsapp": F("boolean", description="Reach this phone on WhatsApp rather than SMS"),
    "locale": F("string", max_length=16, description="Language: en, es, fr, de, pt", example="es"),
    "timezone": F("timezone", example="America/New_York"),
})
ADDRESS = F("object", fields={
    "line1": F("string", max_length=300), "line2": F("string", max_length=300),
    "city": F("string", max_length=120), "postcode": F("string", max_length=20, example="10001"),
    "country": F("string", max_length=2, description="ISO 3166-1 alpha-2", example="US"),
})
ORDER = F("object", required=True, fields={
    "tracking_number": F("string", max_length=64, example="1Z999AA10123456784"),
    "customer": CUSTOMER,
    "address": ADDRESS,
    "delivery_window": WINDOW,
    "locale": F("string", max_length=16, description="Overrides the customer's language for this order"),
    "timezone": F("timezone", description="Overrides the customer's time zone for this order"),
    "team": F("string", max_length=64, description="Depot or team, for analytics"),
})
EVENT = F("object", required=True, fields={
    "type": F("string", required=True, enum=order_rules.EVENT_TYPES),
    "occurred_at": F("datetime", description="When it happened at the carrier; defaults to now"),
    "eta": WINDOW,
    "driver_ref": F("string", max_length=64, description="driver_assigned: the carrier's driver reference"),
    "reason": F("string", max_length=500, description="delayed, failed_attempt: shown to the customer"),
    "stops_away": F("integer", minimum=0, maximum=500, description="arriving: stops before this one"),
    "location": F("object", description="The driver's position", fields={
        "lat": F("number", required=True, minimum=-90, maximum=90),
        "lng": F("number", required=True, minimum=-180, maximum=180)}),
    "proof_of_delivery": F("object", fields={
        "photo_url": F("string", max_length=2000), "note": F("string", max_length=1000)}),
    "idempotency_key": F("string", max_length=128, description="Makes a retried POST a no-op"),
})


def error(status: int, message: str, details: Any = None):
    response = jsonify({"error": message, "details": details})
    response.status_code = status
    return response


def invalid_ref(ref: str, what: str):
    """A 422 response when a reference in the path is blank or longer than the 64 characters stored."""
    if ref.strip() and len(ref) <= 64:
        return None
    return error(422, f"the {what} reference must be 1 to 64 characters", [{"field": "ref", "message": "invalid"}])


def json_body(spec: F) -> tuple[dict[str, Any] | None, Any]:
    """The request's JSON object validated against `spec`, or an error response."""
    if not request.is_json:
        return None, error(400, "expected a JSON body with Content-Type: application/json")
    data = request.get_json(silent=True)
    if data is None:
        return None, error(400, "the body is not valid JSON")
    if not isinstance(data, dict):
        return None, error(400, "the body must be a JSON object")
    problems = validate(data, spec)
    if problems:
        return None, error(422, "the body has invalid fields", problems)
    return data, None


@operation(bp, "PUT", "/orders/<ref>", "Create or update an order and its customer", body=ORDER, prefix=PREFIX,
           responses={200: "Updated", 201: "Created", 400: "Malformed JSON", 401: "Missing or bad API key",
                      413: "Body over 1 MiB", 422: "Invalid fields"})
@require_api_key
def put_order(ref: str):
    data, problem = json_body(ORDER)
    problem = invalid_ref(ref, "order") or problem
    if problem is not None:
        return problem
    with services().db.session() as session:
        order = session.scalar(select(Order).where(Order.ref == ref))
        created = order is None
        if created:
            order = Order(ref=ref, tracking_token=order_rules.new_token(), extra={})
            session.add(order)
        _apply_order_fields(session, order, data)
        session.flush()
        body = order_json(order, events=False)
    return jsonify({"order": body, "created": created}), 201 if created else 200


def _apply_order_fields(session: Session, order: Order, data: dict[str, Any]) -> None:
    if "tracking_number" in data:
        order.tracking_number = data["tracking_number"]
    for key in ("locale", "timezone", "team"):
        if key in data:
            setattr(order, key, data[key])
    address = data.get("address") or {}
    for key in ("line1", "line2"):
        if key in address:
            setattr(order, f"address_{key}", address[key])
    for key in ("city", "postcode", "country"):
        if key in address:
            setattr(order, key, address[key])
    window = data.get("delivery_window")
    if window:
        order.window_start, order.window_end = _dt(window["start"]), _dt(window["end"])
    if data.get("customer"):
        order.customer = _upsert_customer(session, order.customer, data["customer"])


def _upsert_customer(session: Session, current: Customer | None, data: dict[str, Any]) -> Customer:
    customer = current
    if customer is None and data.get("phone"):
        customer = session.scalar(select(Customer).where(Customer.phone == data["phone"]).limit(1))
    if customer is None and data.get("telegram_chat_id") is not None:
        customer = session.scalar(
            select(Customer).where(Customer.telegram_chat_id == data["telegram_chat_id"]).limit(1))
    if customer is None:
        customer = Customer()
        session.add(customer)
    for key in ("name", "phone", "telegram_chat_id", "whatsapp", "locale", "timezone"):
        if key in data:
            setattr(customer, key, data[key])
    return customer


@operation(bp, "POST", "/orders/<ref>/events", "Record an order event (status, ETA, location, proof)",
           body=EVENT, prefix=PREFIX,
           responses={200: "Already recorded (same idempotency_key)", 201: "Recorded", 400: "Malformed JSON",
                      401: "Missing or bad API key", 404: "Unknown order",
                      409: "idempotency_key reused for a different event", 413: "Body over 1 MiB",
                      422: "Invalid fields"})
@require_api_key
def post_event(ref: str):
    data, problem = json_body(EVENT)
    if problem is not None:
        return problem
    problems = _event_rules(data)
    if problems:
        return error(422, "the event is missing fields its type needs", problems)
    occurred_at = _dt(data["occurred_at"]) if data.get("occurred_at") else utcnow()
    payload = {k: v for k, v in data.items() if k not in ("type", "occurred_at", "idempotency_key")}
    srv = services()
    with srv.db.session() as session:
        order = session.scalar(select(Order).where(Order.ref == ref))
        if order is None:
            return error(404, f"no order with reference {ref!r}")
        result = order_rules.apply_event(session, order, data["type"], occurred_at, payload,
                                         idempotency_key=data.get("idempotency_key"))
        if not result.created and result.event.type != data["type"]:
            session.rollback()
            return error(409, "this idempotency_key was already used for another event",
                         {"idempotency_key": data.get("idempotency_key"), "type": result.event.type})
        session.flush()
        body = {"event": event_json(result.event), "applied": result.applied, "duplicate": not result.created,
                "order": order_json(order, events=False)}
    srv.after_commit()
    return jsonify(body), 201 if result.created else 200


def _event_rules(data: dict[str, Any]) -> list[dict[str, str]]:
    kind = data["type"]
    problems = []
    if kind == "driver_assigned" and not data.get("driver_ref"):
        problems.append({"field": "driver_ref", "message": "is required for driver_assigned"})
    if kind == "location" and not data.get("location"):
        problems.append({"field": "location", "message": "is required for location"})
    if kind == "eta_updated" and not data.get("eta"):
        problems.append({"field": "eta", "message": "is required for eta_updated"})
    eta = data.get("eta")
    if eta and _dt(eta["end"]) < _dt(eta["start"]):
        problems.append({"field": "eta.end", "message": "must not be before eta.start"})
    return problems


@operation(bp, "GET", "/orders/<ref>", "An order with its events", prefix=PREFIX,
           responses={200: "The order", 401: "Missing or bad API key", 404: "Unknown order"})
@require_api_key
def get_order(ref: str):
    with services().db.session() as session:
        order = session.scalar(select(Order).where(Order.ref == ref))
        if order is None:
            return error(404, f"no order with reference {ref!r}")
        return jsonify({"order": order_json(order, events=True)})


@bp.get("/openapi.json")
def openapi():
    base = str(services().config["app"]["public_base_url"]).rstrip("/")
    return jsonify(openapi_document("lastmile carrier API", "1.0.0", base))


def order_json(order: Order, *, events: bool) -> dict[str, Any]:
    base = str(services().config["app"]["public_base_url"]).rstrip("/")
    customer = order.customer
    body: dict[str, Any] = {
        "ref": order.ref,
        "tracking_number": order.tracking_number,
        "status": order.status,
        "status_reason": order.status_reason,
        "address": {"line1": order.address_line1, "line2": order.address_line2, "city": order.city,
                    "postcode": order.postcode, "country": order.country},
        "delivery_window": _window(order.window_start, order.window_end),
        "eta": _window(order.eta_start, order.eta_end),
        "locale": order.locale,
        "timezone": order.timezone,
        "team": order.team,
        "driver_ref": order.driver.ref if order.driver else None,
        "location": ({"lat": order.location_lat, "lng": order.location_lng, "at": _iso(order.location_at)}
                     if order.location_lat is not None else None),
        "delivered_at": _iso(order.delivered_at),
        "proof_of_delivery": ({"photo_url": order.proof_photo_url, "note": order.proof_note}
                              if order.proof_photo_url or order.proof_note else None),
        "instructions": order.instructions,
        "tracking_url": f"{base}/t/{order.tracking_token}",
        "customer": None if customer is None else {
            "name": customer.name, "phone": customer.phone, "telegram_chat_id": customer.telegram_chat_id,
            "whatsapp": customer.whatsapp, "locale": customer.locale, "timezone": customer.timezone},
        "updated_at": _iso(order.updated_at),
    }
    if events:
        body["events"] = [event_json(e) for e in order.events]
    return body


def event_json(event) -> dict[str, Any]:
    return {"id": event.id, "type": event.type, "occurred_at": _iso(event.occurred_at),
            "received_at": _iso(event.received_at), "source": event.source, "applied": event.applied,
            "idempotency_key": event.idempotency_key, **(event.data or {})}


def _window(start: datetime | None, end: datetime | None) -> dict[str, str | None] | None:
    return None if start is None and end is None else {"start": _iso(start), "end": _iso(end)}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
