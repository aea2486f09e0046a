"""Finding orders and bulk import: `GET /api/v1/orders` (filters, opaque cursor pages) and
`POST /api/v1/orders:batch` (an upsert per row, each row answered on its own)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from datetime import datetime
from typing import Any

from flask import Blueprint, g, jsonify, request
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.core.phones import is_acceptable
from bot.core.services import services
from bot.domain import orders as order_rules
from bot.domain.order_json import order_json
from bot.web.api import (
    ORDER,
    ORDER_SCOPES,
    PREFIX,
    check_fields,
    error,
    invalid_ref,
    json_body,
    order_brand,
    upsert_order,
)
from bot.web.api_keys import require_api_key
from bot.web.apispec import EARLIEST, LATEST, F, operation
from bot.web.idempotency import idempotent
from bot.web.problems import problem_body
from db.models import Brand, Customer, Driver, Order
from db.session import bad_input

logger = logging.getLogger(__name__)
bp = Blueprint("orders_api", __name__, url_prefix=PREFIX)

STATUSES = tuple(dict.fromkeys(("created", *order_rules.RANK)))
FILTERS = ("status", "updated_since", "customer_phone", "driver", "team", "brand")
QUERY = (*FILTERS, "limit", "cursor")
DEFAULT_LIMIT = 50
BATCH = F("object", required=True, fields={
    "orders": F("array", required=True, description="Orders to create or update, each with its `ref`",
                items=F("object", fields={"ref": F("string", required=True, max_length=64), **(ORDER.fields or {})})),
})


def init_app(app) -> None:
    app.register_blueprint(bp)


@operation(bp, "GET", "/orders", "Orders by filters, oldest change first, a page at a time", prefix=PREFIX,
           responses={200: "A page of orders and the cursor of the next", 400: "Bad filter, limit or cursor",
                      401: "Missing or bad API key"})
@require_api_key(scopes=ORDER_SCOPES)
def list_orders():
    query, problem = _query()
    if problem is not None:
        return problem
    limit = query.pop("limit")
    after = query.pop("cursor")
    with services().db.read_session() as session:
        statement = _filtered(session, query).order_by(Order.updated_at, Order.id).limit(limit + 1)
        if after is not None:
            at, last_id = after
            statement = statement.where(or_(Order.updated_at > at, and_(Order.updated_at == at, Order.id > last_id)))
        rows = list(session.scalars(statement))
        page = rows[:limit]
        body = [order_json(order, services().config, events=False) for order in page]
        more = len(rows) > limit
        next_cursor = _cursor(page[-1], query) if more else None
    return jsonify({"orders": body, "next_cursor": next_cursor})


def _query() -> tuple[dict[str, Any], Any]:
    """The validated query: filters, `limit` and the decoded `cursor` (or None); else a 400."""
    args = request.args
    unknown = [name for name in args if name not in QUERY]
    if unknown:
        return {}, _bad(f"unknown query parameters: {', '.join(unknown[:10])}", unknown[0], "is not a known parameter")
    query: dict[str, Any] = {name: args.get(name) for name in FILTERS if args.get(name) not in (None, "")}
    statuses = query.get("status", "").split(",") if "status" in query else []
    if any(s not in STATUSES for s in statuses):
        return {}, _bad("status must be one or more (comma-separated) of: " + ", ".join(STATUSES), "status", "invalid")
    if "updated_since" in query:
        since = _instant(query["updated_since"])
        if since is None:
            return {}, _bad("updated_since must be an ISO 8601 date-time with an offset", "updated_since", "invalid")
    if "customer_phone" in query and not is_acceptable(query["customer_phone"]):
        return {}, _bad("customer_phone must be an E.164 phone number", "customer_phone", "invalid")
    for name in ("driver", "team", "brand"):
        if name in query and (len(query[name]) > 64 or not query[name].isprintable()):
            return {}, _bad(f"{name} must be at most 64 printable characters", name, "invalid")
    page_max = int(services().config["api"]["page_max"])
    limit = args.get("limit", str(DEFAULT_LIMIT))
    if not limit.isdigit() or not 1 <= int(limit) <= page_max:
        return {}, _bad(f"limit must be a number from 1 to {page_max}", "limit", "invalid")
    query["limit"] = int(limit)
    query["cursor"] = None
    if args.get("cursor"):
        decoded = _decode_cursor(args["cursor"], query)
        if decoded is None:
            return {}, _bad("cursor is not one this API gave for these filters; start again without it", "cursor",
                            "invalid")
        query["cursor"] = decoded
    return query, None


def _bad(detail: str, field: str, message: str):
    return error(400, detail, [{"field": field, "message": message}], code="invalid_query")


def _filtered(session: Session, query: dict[str, Any]):
    statement = select(Order)
    if "status" in query:
        statement = statement.where(Order.status.in_(query["status"].split(",")))
    if "updated_since" in query:
        statement = statement.where(Order.updated_at >= _instant(query["updated_since"]))
    if "customer_phone" in query:
        statement = statement.where(Order.customer_id.in_(
            select(Customer.id).where(Customer.phone == query["customer_phone"])))
    if "driver" in query:
        statement = statement.where(Order.driver_id.in_(select(Driver.id).where(Driver.ref == query["driver"])))
    if "team" in query:
        statement = statement.where(Order.team == query["team"])
    if "brand" in query:
        statement = statement.where(Order.brand_id.in_(select(Brand.id).where(Brand.ref == query["brand"])))
    if g.get("api_key_brand_id") is not None:  # a brand key lists its own brand's orders only
        statement = statement.where(Order.brand_id == g.api_key_brand_id)
    return statement


def _instant(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None or not EARLIEST <= parsed < LATEST:
        return None
    return parsed


def _filters_hash(query: dict[str, Any]) -> str:
    filters = {name: query[name] for name in FILTERS if name in query}
    return hashlib.sha256(json.dumps(filters, sort_keys=True).encode()).hexdigest()[:16]


def _cursor(last: Order, query: dict[str, Any]) -> str:
    """Opaque to clients: where the page ended, tied to the filters it was made for."""
    raw = json.dumps({"u": last.updated_at.isoformat(), "i": last.id, "f": _filters_hash(query)})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(value: str, query: dict[str, Any]) -> tuple[datetime, int] | None:
    try:
        data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        at, last_id = datetime.fromisoformat(data["u"]), data["i"]
        if data["f"] != _filters_hash(query) or not isinstance(last_id, int) or at.tzinfo is None:
            return None
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        return None
    return at, last_id


@operation(bp, "POST", "/orders:batch", "Create or update many orders; each row succeeds or fails on its own",
           body=BATCH, prefix=PREFIX,
           responses={200: "One result per row, in order", 400: "Malformed JSON", 401: "Missing or bad API key",
                      413: "Body over 1 MiB", 422: "Not a list of orders, or more than api.batch_max"})
@require_api_key(scopes=ORDER_SCOPES)
@idempotent
def batch_orders():
    data, problem = json_body(F("object", required=True, fields={"orders": F("array", required=True)}))
    if data is None:  # json_body gives no data only with its problem answer
        return problem
    rows, batch_max = data["orders"], int(services().config["api"]["batch_max"])
    if not 1 <= len(rows) <= batch_max:
        return error(422, f"a batch holds 1 to {batch_max} orders", [{"field": "orders", "message": "size"}])
    results = []
    with services().db.session() as session:
        for index, row in enumerate(rows):
            results.append({"index": index, **_batch_row(session, row)})
    counts = {kind: sum(1 for r in results if r["result"] == kind) for kind in ("created", "updated", "failed")}
    logger.info("order batch: %(created)s created, %(updated)s updated, %(failed)s failed", counts)
    return jsonify({"results": results, **counts})


def _batch_row(session: Session, row: Any) -> dict[str, Any]:
    """One row in its own savepoint: stored whole, or not at all with a problem saying why."""
    if not isinstance(row, dict):
        return _failed(None, 422, "each row must be an object", [{"field": "body", "message": "must be an object"}])
    ref = row.get("ref")
    if not isinstance(ref, str) or invalid_ref(ref, "order") is not None:
        return _failed(None, 422, "each row needs a ref of 1 to 64 characters, none of them control characters",
                       [{"field": "ref", "message": "invalid"}])
    fields = {key: value for key, value in row.items() if key != "ref"}
    invalid = check_fields(fields, ORDER)
    if invalid:
        return _failed(ref, *invalid)
    brand, problem = order_brand(session, fields)
    if brand is None:
        return _failed(ref, 422, "the row has invalid fields", [{"field": "brand", "message": "is not a known brand"}])
    try:
        with session.begin_nested():
            order, created = upsert_order(session, ref, fields, brand)
            body = order_json(order, services().config, events=False)
    except SQLAlchemyError as exc:
        found = bad_input(exc)
        if found is None:
            raise
        return _failed(ref, found["status"], "a value cannot be stored",
                       [{"field": found["field"], "message": found["message"]}])
    return {"ref": ref, "result": "created" if created else "updated", "status": 201 if created else 200,
            "order": body}


def _failed(ref: str | None, status: int, detail: str, details: Any, code: str | None = None) -> dict[str, Any]:
    return {"ref": ref, "result": "failed", "status": status, "error": problem_body(status, detail, details, code=code)}
