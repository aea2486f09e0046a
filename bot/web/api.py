"""The carrier API: orders and their events in, behind bearer API keys. OpenAPI at /api/v1/openapi.json."""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Any

from flask import Blueprint, g, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError, StatementError
from sqlalchemy.orm import Session

from bot.core import audit, emails
from bot.core.services import services
from bot.domain import brands as brand_rules
from bot.domain import orders as order_rules
from bot.domain.order_json import event_json, order_json
from bot.web import problems
from bot.web.api_keys import require_api_key
from bot.web.apispec import UNKNOWN_FIELD, F, operation, validate
from bot.web.idempotency import idempotent
from db.models import Brand, Customer, Order, utcnow
from db.session import INT64, bad_input

logger = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api/v1")
PREFIX = "/api/v1"
ORDER_SCOPES = ("carrier", "brand")  # brand keys work on their brand's orders only

WINDOW = F("object", description="A time window", fields={
    "start": F("datetime", required=True), "end": F("datetime", required=True)})
CUSTOMER = F("object", description="The person receiving the order", fields={
    "name": F("string", max_length=200, example="Ana"),
    "phone": F("phone", description="E.164; SMS, or WhatsApp when `whatsapp` is true", example="+15550001111"),
    "telegram_chat_id": F("integer", description="Telegram chat id, if known", example=4242),
    "email": F("email", description="Email address for the notifications `notifications.channels` sends by "
                                   "email (stored lower-case)", example="ana@example.com"),
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
    "brand": F("string", max_length=64, example="acme",
               description="The brand (shop) the order belongs to: the key's brand for brand keys, else the default "
                           "brand; with `ref` it names the order (docs/api.md#brands)"),
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
        "photo_url": F("string", max_length=2000), "note": F("string", max_length=1000),
        "signature_url": F("string", max_length=2000, description="An image of the recipient's signature"),
        "barcode": F("string", max_length=128, pattern=order_rules.BARCODE_PATTERN,
                     description="The parcel's label as scanned at the door (letters, digits, - . / _ +)")}),
    "idempotency_key": F("string", max_length=128, description="Makes a retried POST a no-op"),
})


def error(status: int, message: str, details: Any = None, *, code: str | None = None):
    """An RFC 9457 problem response (bot/problems.py); `code` defaults by status."""
    return problems.problem(status, message, details, code=code)


@bp.app_errorhandler(DataError)
@bp.app_errorhandler(IntegrityError)
@bp.app_errorhandler(StatementError)
def unstorable_input(exc: StatementError):
    """A value the database refuses (too long, NUL, out of range, a constraint): the client's fault,
    answered 409/422 naming the field; 503 stays for real outages (app.py)."""
    problem = bad_input(exc)
    if problem is None:
        logger.error("database statement failed: %s", exc.__class__.__name__)
        return error(500, "internal error")
    statement = " ".join(str(exc.statement or "").split()[:4])  # the statement's start: no values, no PII
    logger.warning("refused input the database cannot store: %s (field %s) in %s %s", exc.__class__.__name__,
                   problem["field"], request.endpoint, statement)
    return error(problem["status"], "a value cannot be stored" if problem["status"] == 422
                 else "conflicts with an existing or concurrent record",
                 [{"field": problem["field"], "message": problem["message"]}])


def invalid_ref(ref: str, what: str):
    """A 422 response when a reference in the path is blank, longer than the 64 characters stored, or
    holds control characters."""
    if ref.strip() and len(ref) <= 64 and ref.isprintable():
        return None
    return error(422, f"the {what} reference must be 1 to 64 characters, none of them control characters",
                 [{"field": "ref", "message": "invalid"}])


def addressed_brand(session: Session, named: str | None) -> Brand | None:
    """The brand a request speaks for: a brand key's own (None when `named` is another: the caller answers as
    for something that does not exist, so nothing leaks), else the brand `named` (None if unknown), else the
    default brand (docs/api.md#brands)."""
    own = g.get("api_key_brand_id")
    if own is not None:
        brand = session.get(Brand, own)
        return brand if brand is not None and named in (None, brand.ref) else None
    return brand_rules.brand_by_ref(session, named)


def query_brand() -> str | None:
    """`?brand=REF`: which brand's order `{ref}` is, for carrier keys."""
    value = request.args.get("brand")
    return value if value else None


def find_addressed_order(session: Session, ref: str) -> Order | None:
    """Order `ref` of the brand the request speaks for (`addressed_brand`), in one statement."""
    own, named = g.get("api_key_brand_id"), query_brand()
    if own is None:
        return brand_rules.find_brand_order(session, ref, brand_ref=named)
    brand = session.get(Brand, own)
    if brand is None or named not in (None, brand.ref):
        return None
    return brand_rules.find_brand_order(session, ref, brand_ref=brand.ref, brand_id=own)


MAX_DEPTH = 16  # the deepest schema is 3 levels; anything far deeper is hostile


def json_body(spec: F) -> tuple[dict[str, Any] | None, Any]:
    """The request's JSON object validated against `spec`, or an error response."""
    if not request.is_json:
        return None, error(400, "expected a JSON body with Content-Type: application/json")
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nested thousands deep: the parser gives up before we can
        return None, error(400, "the body is nested too deeply")
    if data is None:
        return None, error(400, "the body is not valid JSON")
    if not isinstance(data, dict):
        return None, error(400, "the body must be a JSON object")
    invalid = check_fields(data, spec)
    return (None, error(*invalid[:3], code=invalid[3])) if invalid else (data, None)


def check_fields(data: dict[str, Any], spec: F) -> tuple[int, str, Any, str] | None:
    """(status, detail, details, code) when `data` does not fit `spec` (unknown fields first), else None."""
    problems = unsafe_values(data) or validate(data, spec)
    unknown = [p["field"] for p in problems if p["message"] == UNKNOWN_FIELD]
    if unknown:
        return 422, f"unknown fields: {', '.join(unknown[:20])}", problems, "unknown_fields"
    if problems:
        return 422, "the body has invalid fields", problems, "validation_failed"
    return None


def unsafe_values(value: Any, path: str = "", depth: int = 0) -> list[dict[str, str]]:
    """Values no column can hold, anywhere in a JSON body (unknown fields too, as they are kept in
    events' data): NaN and infinities, integers beyond 64 bits, NUL characters and lone surrogates,
    nesting deeper than MAX_DEPTH."""
    where = path or "body"
    if depth > MAX_DEPTH:
        return [{"field": where, "message": f"is nested deeper than {MAX_DEPTH} levels"}]
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, float) and not math.isfinite(value):
        return [{"field": where, "message": "must be a finite number"}]
    if isinstance(value, int) and not -INT64 <= value < INT64:
        return [{"field": where, "message": "is out of range (64-bit integers)"}]
    if isinstance(value, str):
        return [] if _storable(value) else [{"field": where, "message": "contains NUL or invalid characters"}]
    problems: list[dict[str, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if not _storable(key):
                return [{"field": where, "message": "has a key with NUL or invalid characters"}]
            problems += unsafe_values(item, sub, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            problems += unsafe_values(item, f"{where}[{i}]", depth + 1)
    return problems[:20]


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in JSON)
        return False
    return True


@operation(bp, "PUT", "/orders/<ref>", "Create or update an order and its customer", body=ORDER, prefix=PREFIX,
           responses={200: "Updated", 201: "Created", 400: "Malformed JSON", 401: "Missing or bad API key",
                      413: "Body over 1 MiB", 422: "Invalid fields"})
@require_api_key(scopes=ORDER_SCOPES)
def put_order(ref: str):
    data, problem = json_body(ORDER)
    ref_problem = invalid_ref(ref, "order")  # a bad ref is answered before a bad body
    if ref_problem is not None:
        return ref_problem
    if data is None:  # json_body gives no data only with its problem answer
        return problem
    with services().db.session() as session:
        brand, problem = order_brand(session, data)
        if brand is None:  # order_brand gives no brand only with its problem answer
            return problem
        order, created = upsert_order(session, ref, data, brand)
        body = order_json(order, services().config, events=False)
    return jsonify({"order": body, "created": created}), 201 if created else 200


def order_brand(session: Session, data: dict[str, Any]) -> tuple[Brand | None, Any]:
    """The brand an order body is for (its `brand`, else `?brand=`, else the key's or the default); a 422
    naming `brand` when it is unknown, or another brand than a brand key's own."""
    named = data.get("brand") or query_brand()
    brand = addressed_brand(session, named)
    if brand is None:
        return None, error(422, "the body has invalid fields", [{"field": "brand", "message": "is not a known brand"}])
    return brand, None


def upsert_order(session: Session, ref: str, data: dict[str, Any], brand: Brand) -> tuple[Order, bool]:
    """Create or update order `ref` of `brand` from a validated body; (the order, whether it was created)."""
    found = brand_rules.order_in_brand(session, brand, ref)
    created = found is None
    order = found if found is not None else Order(ref=ref, brand=brand, tracking_token=order_rules.new_token(), extra={})
    if created:
        session.add(order)
    _apply_order_fields(session, order, data)
    session.flush()
    return order, created


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
    """The customer this order goes to. A phone (else a Telegram chat) names the person: a contact that
    differs from the current customer's moves the order to the customer holding it (a new one if nobody
    does) and never rewrites the customer that other orders share (docs/api.md#customers)."""
    customer = current
    if data.get("email") is not None:
        data = {**data, "email": emails.normalize(data["email"])}
    # the phone decides when several are given, then the Telegram chat, then the email address
    key = next((k for k in ("phone", "telegram_chat_id", "email") if data.get(k) is not None), "phone")
    wanted = data.get(key)
    if wanted is not None and (customer is None or getattr(customer, key) != wanted):
        holder = session.scalar(select(Customer).where(getattr(Customer, key) == wanted).order_by(Customer.id).limit(1))
        if holder is not None:
            customer = holder
        elif customer is not None and getattr(customer, key) is not None:
            customer = None  # a new person: the former customer keeps its contact for its other orders
    if customer is None:
        customer = Customer()
        session.add(customer)
    for key in ("name", "phone", "telegram_chat_id", "email", "whatsapp", "locale", "timezone"):
        if key in data:
            setattr(customer, key, data[key])
    return customer


@operation(bp, "POST", "/orders/<ref>/events", "Record an order event (status, ETA, location, proof)",
           body=EVENT, prefix=PREFIX,
           responses={200: "Already recorded (same idempotency_key)", 201: "Recorded", 400: "Malformed JSON",
                      401: "Missing or bad API key", 404: "Unknown order",
                      409: "idempotency_key reused for a different event", 413: "Body over 1 MiB",
                      422: "Invalid fields"})
@require_api_key(scopes=ORDER_SCOPES)
@idempotent
def post_event(ref: str):
    data, problem = json_body(EVENT)
    ref_problem = invalid_ref(ref, "order")  # a bad ref is answered before a bad body
    if ref_problem is not None:
        return ref_problem
    if data is None:  # json_body gives no data only with its problem answer
        return problem
    problems = _event_rules(data)
    if problems:
        return error(422, "the event is missing fields its type needs", problems)
    occurred_at = _dt(data["occurred_at"]) if data.get("occurred_at") else utcnow()
    payload = {k: v for k, v in data.items() if k not in ("type", "occurred_at", "idempotency_key")}
    srv = services()
    with srv.db.session() as session:
        order = find_addressed_order(session, ref)
        if order is None:
            return error(404, f"no order with reference {ref!r}")
        result = order_rules.apply_event(session, order, data["type"], occurred_at, payload,
                                         idempotency_key=data.get("idempotency_key"))
        if not result.created and result.event.type != data["type"]:
            session.rollback()
            return error(409, "this idempotency_key was already used for another event",
                         {"idempotency_key": data.get("idempotency_key"), "type": result.event.type},
                         code="idempotency_key_reused")
        session.flush()
        body = {"event": event_json(result.event), "applied": result.applied, "duplicate": not result.created,
                "order": order_json(order, services().config, events=False)}
        status = 201 if result.created else 200
        audit.record_api_write(session, status)
    g.audited = True
    srv.after_commit()
    return jsonify(body), status


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
           responses={200: "The order", 401: "Missing or bad API key", 404: "Unknown order",
                      422: "The reference is blank, over 64 characters or holds control characters"})
@require_api_key(scopes=ORDER_SCOPES)
def get_order(ref: str):
    problem = invalid_ref(ref, "order")
    if problem is not None:
        return problem
    with services().db.session() as session:
        order = find_addressed_order(session, ref)
        if order is None:
            return error(404, f"no order with reference {ref!r}")
        return jsonify({"order": order_json(order, services().config, events=True)})


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
