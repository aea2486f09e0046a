"""Brands: the shops a carrier delivers for. Which brand an order belongs to, the brand's name in what customers
read, its senders per channel and its tracking-page theme (docs/api.md#brands)."""

from __future__ import annotations

import base64
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, contains_eager, joinedload

from bot.core.i18n import gettext as _
from bot.delivery.webhook_signing import SECRET_PREFIX, new_secret
from db.models import DEFAULT_BRAND, Brand, Order, default_brand_id

COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
TWILIO_CHANNELS = ("sms", "whatsapp")


def default_brand(session: Session) -> Brand:
    """The brand of orders that name none (created when missing: an emptied database)."""
    brand = session.get(Brand, default_brand_id(session.connection()))
    assert brand is not None
    return brand


def brand_by_ref(session: Session, ref: str | None) -> Brand | None:
    """The brand `ref`, or the default brand when `ref` is None."""
    if ref is None or ref == DEFAULT_BRAND:
        return default_brand(session)
    return session.scalar(select(Brand).where(Brand.ref == ref))


def order_in_brand(session: Session, brand: Brand, ref: str) -> Order | None:
    return session.scalar(select(Order).where(Order.brand_id == brand.id, Order.ref == ref))


def find_brand_order(session: Session, ref: str, *, brand_ref: str | None, brand_id: int | None = None) -> Order | None:
    """Order `ref` of the brand `brand_ref` (the default brand when None), limited to brand `brand_id` when given
    (a brand key's): one statement, the brand and the customer loaded with it (an event notifies the customer)."""
    statement = (select(Order).join(Order.brand).options(contains_eager(Order.brand), joinedload(Order.customer))
                 .where(Order.ref == ref, Brand.ref == (brand_ref or DEFAULT_BRAND)))
    if brand_id is not None:
        statement = statement.where(Order.brand_id == brand_id)
    return session.scalar(statement)


def upsert_brand(session: Session, ref: str, data: dict[str, Any]) -> tuple[Brand, bool, str | None]:
    """Create or replace brand `ref` from a validated body (PUT: fields not given are cleared, except the seller's
    webhook secret, kept while there is a webhook URL). Also returns the seller's webhook secret when one was
    generated now (shown once)."""
    brand = brand_by_ref(session, ref)
    created = brand is None
    if brand is None:
        brand = Brand(ref=ref)
        session.add(brand)
    brand.name = data.get("name")
    brand.default_locale = data.get("default_locale")
    brand.support = _compact(data.get("support"))
    brand.senders = {channel: _compact(value) for channel, value in (data.get("senders") or {}).items() if value}
    brand.theme = _compact(data.get("theme"))
    seller, generated = _seller_settings(((brand.settings or {}).get("seller") or {}), data.get("seller"))
    brand.settings = {"seller": seller} if seller else {}
    session.flush()
    return brand, created, generated


def _seller_settings(previous: dict[str, Any], given: dict[str, Any] | None) -> tuple[dict[str, Any], str | None]:
    """The seller's settings to store, and the webhook secret made now: a webhook URL without a secret keeps the
    one stored before, else gets a new one; without a webhook URL no secret is kept."""
    seller = _compact(given)
    generated = None
    if not seller.get("webhook_url"):
        seller.pop("webhook_secret", None)
    elif not seller.get("webhook_secret"):
        seller["webhook_secret"] = previous.get("webhook_secret") or new_secret()
        generated = None if previous.get("webhook_secret") else seller["webhook_secret"]
    return seller, generated


def seller_problems(seller: dict[str, Any] | None) -> list[dict[str, str]]:
    """What the schema cannot say about a validated `seller` object: somewhere to send to, a secret only with
    a webhook URL, a secret whose key decodes (base64 after `whsec_`, 24 bytes at least)."""
    if not seller:
        return []
    problems = []
    if not seller.get("email") and not seller.get("webhook_url"):
        problems.append({"field": "seller", "message": "needs an email or a webhook_url to tell the seller"})
    url = seller.get("webhook_url")
    if url and not _hostname(url):
        problems.append({"field": "seller.webhook_url", "message": "must be an absolute http(s) URL with a host"})
    secret = seller.get("webhook_secret")
    if secret and not url:
        problems.append({"field": "seller.webhook_secret", "message": "is only used with a webhook_url"})
    if secret:
        try:
            key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
        except ValueError:
            key = b""
        if not secret.startswith(SECRET_PREFIX) or len(key) < 24:
            problems.append({"field": "seller.webhook_secret",
                             "message": "must be whsec_ and the base64 of at least 24 random bytes"})
    return problems


def _compact(value: dict[str, Any] | None) -> dict[str, Any]:
    return {key: item for key, item in (value or {}).items() if item is not None}


def brand_json(brand: Brand) -> dict[str, Any]:
    return {
        "ref": brand.ref,
        "default": brand.ref == DEFAULT_BRAND,
        "name": brand.name,
        "default_locale": brand.default_locale,
        "support": brand.support or {},
        "senders": brand.senders or {},
        "theme": brand.theme or {},
        "seller": _seller_json((brand.settings or {}).get("seller")),
        "created_at": brand.created_at.isoformat() if brand.created_at else None,
        "updated_at": brand.updated_at.isoformat() if brand.updated_at else None,
    }


def _hostname(url: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def _seller_json(seller: dict[str, Any] | None) -> dict[str, Any] | None:
    """The seller's settings as answered: the webhook secret masked (the answer that made it shows it once)."""
    if not seller:
        return None
    secret = seller.get("webhook_secret")
    return {**seller, "webhook_secret": f"{SECRET_PREFIX}…{secret[-4:]}"} if secret else dict(seller)


# --- what customers read -------------------------------------------------------------------------
def named(brand: Brand | None, text: str) -> str:
    """`text` introduced by the brand's name ("Acme Shoes: Your order 1001 is out for delivery."), when the
    brand has a name; unchanged otherwise (a single-brand install without a name reads what it always did)."""
    if brand is None or not brand.name:
        return text
    return _("%(brand)s: %(text)s", brand=brand.name, text=text)


def theme(brand: Brand | None) -> dict[str, str]:
    """The tracking page's theme: only values that are still valid (checked again here, as well as on input),
    so nothing but a colour ever reaches the page's CSS and nothing but an https URL its logo."""
    stored = (brand.theme if brand is not None else None) or {}
    out: dict[str, str] = {}
    for key in ("primary_color", "accent_color"):
        value = stored.get(key)
        if isinstance(value, str) and COLOR.match(value):
            out[key] = value
    logo = stored.get("logo_url")
    if isinstance(logo, str) and is_safe_url(logo):
        out["logo_url"] = logo
    return out


def is_safe_url(value: str) -> bool:
    """An absolute https URL with a host and no characters that could break out of an attribute or a CSS
    `url()`: quotes, angle brackets, parentheses, backslashes, spaces, controls."""
    from urllib.parse import urlsplit

    if not value.startswith("https://") or len(value) > 2000 or not value.isprintable():
        return False
    if any(c in value for c in "\"'<>()\\ `{}|^"):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return bool(parts.hostname)


# --- senders --------------------------------------------------------------------------------------
def sender_for(brand: Brand | None, channel: str) -> dict[str, str] | None:
    """The brand's own sender for `channel` (`{"from": "+1…"}` or `{"messaging_service_sid": "MG…"}`; for email
    `{"from": "Shop <orders@shop.example>"}`), or None: the channel's configured sender is used."""
    if brand is None or channel not in (*TWILIO_CHANNELS, "email"):
        return None
    settings = (brand.senders or {}).get(channel) or {}
    if settings.get("messaging_service_sid"):
        return {"messaging_service_sid": str(settings["messaging_service_sid"])}
    if settings.get("from"):
        return {"from": str(settings["from"])}
    return None


def whatsapp_template(brand: Brand | None, kind: str, locale: str) -> str:
    """The brand's approved WhatsApp template (Content SID) for a kind of message in a language; '' if none."""
    if brand is None:
        return ""
    templates = ((brand.senders or {}).get("whatsapp") or {}).get("templates") or {}
    entry = templates.get(kind) or {}
    return str(entry.get(locale) or entry.get("default") or "")


_SENDERS = select(Brand.senders)


def sender_written_to(session: Session, channel: str, to_address: str | None) -> dict[str, str] | None:
    """`{"from": to_address}` when a person wrote to the number a brand set as its own `from` on `channel`, so
    the answer comes back from that number; None otherwise (the channel's configured sender answers)."""
    if channel not in TWILIO_CHANNELS or not to_address:
        return None
    # On the session's connection: a turn's pending changes never touch brands, so they are not flushed for this
    # (they go out later, together), and plain rows need no unit of work.
    for senders in session.connection().scalars(_SENDERS):
        if ((senders or {}).get(channel) or {}).get("from") == to_address:
            return {"from": to_address}
    return None
