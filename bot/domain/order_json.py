"""Orders and events as JSON (carrier API answers, carrier callbacks), and the one tracking-URL builder."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.core.times import iso_z
from bot.domain.notify_policies import shared_event_data, shared_proof
from db.models import Order, OrderEvent


def tracking_url(config: dict[str, Any], order: Order) -> str:
    """The order's tracking page: `app.public_base_url` + `/t/<token>` (chat answers, notifications, the API)."""
    return f"{str(config['app']['public_base_url']).rstrip('/')}/t/{order.tracking_token}"


def order_json(order: Order, config: dict[str, Any], *, events: bool) -> dict[str, Any]:
    """The order as the carrier API answers it (and carrier callbacks carry it)."""
    customer = order.customer
    body: dict[str, Any] = {
        "ref": order.ref,
        "brand": order.brand.ref if order.brand is not None else None,
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
        "location": ({"lat": order.location_lat, "lng": order.location_lng, "at": iso_z(order.location_at)}
                     if order.location_lat is not None else None),
        "delivered_at": iso_z(order.delivered_at),
        "proof_of_delivery": shared_proof(order),
        "instructions": order.instructions,
        "tracking_url": tracking_url(config, order),
        "customer": None if customer is None else {
            "id": customer.id, "name": customer.name, "phone": customer.phone, "telegram_chat_id": customer.telegram_chat_id,
            "email": customer.email,
            "whatsapp": customer.whatsapp, "locale": customer.locale, "timezone": customer.timezone},
        "updated_at": iso_z(order.updated_at),
    }
    if events:
        body["events"] = [event_json(e) for e in order.events]
    return body


def event_json(event: OrderEvent) -> dict[str, Any]:
    return {"id": event.id, "type": event.type, "occurred_at": iso_z(event.occurred_at),
            "received_at": iso_z(event.received_at), "source": event.source, "applied": event.applied,
            "idempotency_key": event.idempotency_key, **shared_event_data(event)}


def _window(start: datetime | None, end: datetime | None) -> dict[str, str | None] | None:
    return None if start is None and end is None else {"start": iso_z(start), "end": iso_z(end)}
