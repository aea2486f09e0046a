"""Brands, the shops a carrier delivers for: `PUT /api/v1/brands/{ref}` (carrier keys), `GET /api/v1/brands/{ref}`
and `GET /api/v1/brands` (a brand key sees its own brand only). docs/api.md#brands."""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, g, jsonify
from sqlalchemy import select

from bot.core.i18n import SUPPORTED_LOCALES
from bot.core.services import services
from bot.domain import brands as brand_rules
from bot.domain import sellers
from bot.web.api import ORDER_SCOPES, PREFIX, error, invalid_ref, json_body
from bot.web.api_keys import require_api_key
from bot.web.apispec import F, operation
from db.models import Brand

logger = logging.getLogger(__name__)
bp = Blueprint("brands_api", __name__, url_prefix=PREFIX)

MESSAGING_SERVICE = r"^MG[0-9a-fA-F]{32}$"
CONTENT_SID = r"^HX[0-9a-fA-F]{32}$"
TEMPLATE_KINDS = ("out_for_delivery", "eta_updated", "delayed", "arriving", "delivered", "failed_attempt",
                  "rating_prompt")
SECRET = r"^whsec_[A-Za-z0-9+/]+={0,2}$"
NAME = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"  # printable, not blank

_TEMPLATE = F("object", description="A Content SID for every language (`default`) or per language", fields={
    language: F("string", pattern=CONTENT_SID) for language in ("default", *SUPPORTED_LOCALES)})
BRAND = F("object", required=True, fields={
    "name": F("string", max_length=100, pattern=NAME, example="Acme Shoes",
              description="Introduces every message to this brand's customers; none: messages as without brands"),
    "default_locale": F("string", enum=SUPPORTED_LOCALES,
                        description="The language for its customers when neither they nor the order have one"),
    "support": F("object", description="How its customers reach the shop", fields={
        "email": F("email", max_length=254), "phone": F("phone"), "url": F("url", max_length=2000)}),
    "senders": F("object", description="The brand's own senders; each falls back to the channel's configured one",
                 fields={
        "sms": F("object", fields={
            "from": F("phone", description="An SMS number of the carrier's Twilio account"),
            "messaging_service_sid": F("string", pattern=MESSAGING_SERVICE,
                                       description="MG…: used instead of `from` when both are set")}),
        "whatsapp": F("object", fields={
            "from": F("phone", description="A WhatsApp sender of the carrier's Twilio account"),
            "messaging_service_sid": F("string", pattern=MESSAGING_SERVICE),
            "templates": F("object", description="Approved templates by kind of message (as "
                           "notifications.whatsapp_templates); checked before the configured ones",
                           fields={kind: _TEMPLATE for kind in TEMPLATE_KINDS})}),
        "email": F("object", fields={"from": F("mailbox", max_length=320, example="Acme Shoes <orders@acme.example>")}),
    }),
    "theme": F("object", description="The tracking page's look", fields={
        "logo_url": F("url", max_length=2000, example="https://cdn.acme.example/logo.png"),
        "primary_color": F("color", example="#0b5fff"), "accent_color": F("color", example="#ffb000")}),
    "seller": F("object", description="Who is told of this brand's failed attempts, delivery exceptions and low "
                "ratings, and of what the customer chose after a failed attempt (an email and/or a signed webhook; "
                "docs/notifications.md#sellers). At least one of `email` and `webhook_url`",
                fields={"email": F("email", max_length=320, description="Gets the emails, in the brand's language"),
                        "webhook_url": F("string", max_length=2000, pattern=r"^https?://\S+$",
                                         description="Gets the `seller.*` webhooks (http or https, as "
                                         "webhook endpoints)"),
                        "webhook_secret": F("string", max_length=200, pattern=SECRET,
                                            description="Write-only: signs the webhooks (Standard Webhooks). Left "
                                            "out: the stored one is kept, or one is made and shown once in this "
                                            "answer; answers show it masked"),
                        "events": F("array", items=F("string", enum=sellers.KINDS),
                                    description="Which kinds are sent; none given: all"),
                        "low_rating_at_most": F("integer", minimum=1, maximum=5,
                                                description=f"A rating at or below this is low (default "
                                                f"{sellers.DEFAULT_LOW_RATING})")}),
})


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@operation(bp, "PUT", "/brands/<ref>", "Create or replace a brand (fields left out are cleared)", body=BRAND,
           prefix=PREFIX, tag="brands",
           responses={200: "Replaced", 201: "Created", 400: "Malformed JSON", 401: "Missing or bad API key",
                      413: "Body over 1 MiB", 422: "Invalid or unknown fields"})
@require_api_key
def put_brand(ref: str):
    data, problem = json_body(BRAND)
    ref_problem = invalid_ref(ref, "brand")  # a bad ref is answered before a bad body
    if ref_problem is not None:
        return ref_problem
    if data is None:  # json_body gives no data only with its problem answer
        return problem
    seller_problems = brand_rules.seller_problems(data.get("seller"))
    if seller_problems:
        return error(422, "the seller settings are invalid", seller_problems, code="validation_failed")
    with services().db.session() as session:
        brand, created, secret = brand_rules.upsert_brand(session, ref, data)
        body = brand_rules.brand_json(brand)
    if secret:  # made now: shown this once
        body["seller"]["webhook_secret"] = secret
    logger.info("brand %s %s", ref, "created" if created else "replaced")
    return jsonify({"brand": body, "created": created}), 201 if created else 200


@operation(bp, "GET", "/brands/<ref>", "A brand", prefix=PREFIX, tag="brands",
           responses={200: "The brand", 401: "Missing or bad API key", 404: "Unknown brand (or another brand's, "
                      "for a brand key)", 422: "The reference is blank, over 64 characters or holds control characters"})
@require_api_key(scopes=ORDER_SCOPES)
def get_brand(ref: str):
    problem = invalid_ref(ref, "brand")
    if problem is not None:
        return problem
    with services().db.session() as session:  # the default brand is created if an emptied database lacks it
        brand = brand_rules.brand_by_ref(session, ref)
        own = g.get("api_key_brand_id")
        if brand is None or (own is not None and brand.id != own):
            return error(404, f"no brand with reference {ref!r}")
        return jsonify({"brand": brand_rules.brand_json(brand)})


@operation(bp, "GET", "/brands", "Every brand (a brand key: its own)", prefix=PREFIX, tag="brands",
           responses={200: "The brands by reference", 401: "Missing or bad API key"})
@require_api_key(scopes=ORDER_SCOPES)
def list_brands():
    with services().db.read_session() as session:
        statement = select(Brand).order_by(Brand.ref)
        own = g.get("api_key_brand_id")
        if own is not None:
            statement = statement.where(Brand.id == own)
        rows = list(session.scalars(statement))
        return jsonify({"brands": [brand_rules.brand_json(brand) for brand in rows]})

