"""`GET /api/v1/customers/<phone-or-id>/export` and `DELETE /api/v1/customers/<phone-or-id>`: a person's export
and erasure over the carrier API (the rules are bot/domain/privacy.py)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify
from sqlalchemy.orm import Session

from bot.core import audit
from bot.core.services import services
from bot.domain.privacy import UnknownPerson, erase, export, find_person
from bot.web.api_keys import require_api_key
from bot.web.apispec import operation
from bot.web.problems import problem


def init_app(app: Any) -> None:
    """The carrier API's customer endpoints."""
    app.register_blueprint(_api())


def _api():
    """`GET /api/v1/customers/<phone-or-id>/export` and `DELETE /api/v1/customers/<phone-or-id>` (carrier keys),
    built once (the OpenAPI document lists each operation once)."""
    global _BLUEPRINT
    if _BLUEPRINT is not None:
        return _BLUEPRINT
    prefix = "/api/v1"
    bp = Blueprint("privacy_api", __name__, url_prefix=prefix)
    carrier = require_api_key(scopes=("carrier",))

    def unknown(session: Session, action: str):
        audit.record_api(session, action, target="nobody matched")  # never the number that was asked for
        return problem(404, "no customer or conversation for this phone number or id")

    @operation(bp, "GET", "/customers/<ident>/export", "Everything stored about a person (E.164 phone, email address or customer id)",
               prefix=prefix, tag="privacy",
               responses={200: "The person's data", 401: "Missing or bad API key (carrier scope)", 404: "Nobody matches"})
    @carrier
    def export_customer(ident: str):
        g.audited = True  # recorded here, without the phone number of the path
        with services().db.session() as session:
            try:
                data = export(session, ident)
            except UnknownPerson:
                return unknown(session, "customer.export")
            audit.record_api(session, "customer.export", target=_target(data["customers"]),
                             messages=len(data["messages"]), orders=len(data["orders"]))
        return jsonify(data)

    @operation(bp, "DELETE", "/customers/<ident>", "Erase a person's data; their orders stay without personal data",
               prefix=prefix, tag="privacy",
               responses={200: "Counts erased by kind", 401: "Missing or bad API key (carrier scope)",
                          404: "Nobody matches"})
    @carrier
    def erase_customer(ident: str):
        g.audited = True
        with services().db.session() as session:
            try:
                ids = find_person(session, ident).customer_ids
                counts = erase(session, ident)
            except UnknownPerson:
                return unknown(session, "customer.erase")
            audit.record_api(session, "customer.erase", target=_target([{"id": i} for i in ids]), **counts)
        return jsonify({"erased": counts})

    _BLUEPRINT = bp
    return bp


_BLUEPRINT = None


def _target(customers: list[dict[str, Any]]) -> str:
    """The audit target: customer ids only (the log must not become a copy of what was erased)."""
    ids = ",".join(str(c["id"]) for c in customers)
    return f"customer {ids}" if ids else "customer (conversations only)"
