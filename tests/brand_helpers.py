"""Helpers (no tests) for the brand tests: brands acme and bolt over the API, and a brand key for each."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.web.api_keys import create_api_key
from db.models import Brand

ACME_FROM = "+15550001000"
BOLT_SERVICE = "MG" + "b" * 32
ACME = {"name": "Acme Shoes", "default_locale": "en",
        "support": {"email": "help@acme.example", "phone": "+15550009999", "url": "https://acme.example/help"},
        "senders": {"sms": {"from": ACME_FROM}, "email": {"from": "Acme Shoes <orders@acme.example>"}},
        "theme": {"logo_url": "https://cdn.acme.example/logo.png", "primary_color": "#0b5fff",
                  "accent_color": "#fb0"},
        "seller": {"email": "ops@acme.example", "webhook_url": "https://acme.example/hooks", "events": ["failed_attempt"]}}
BOLT = {"name": "Bolt Bikes", "senders": {"sms": {"messaging_service_sid": BOLT_SERVICE}}}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def brand_key(srv, ref: str) -> dict[str, str]:
    with srv.db.session() as session:
        brand = session.scalar(select(Brand).where(Brand.ref == ref))
        return bearer(create_api_key(session, f"{ref} shop", brand_id=brand.id))


@pytest.fixture
def shops(client, srv, auth):
    """Brands acme and bolt, and a brand key for each."""
    for ref, body in (("acme", ACME), ("bolt", BOLT)):
        response = client.put(f"/api/v1/brands/{ref}", json=body, headers=auth)
        assert response.status_code == 201, response.get_json()
    return {"acme": brand_key(srv, "acme"), "bolt": brand_key(srv, "bolt")}
