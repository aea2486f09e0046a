"""Signed callbacks to the carrier: order changes made through the bot (driver commands, reroutes,
instructions) are POSTed to `carrier.callback_url` through the outbox, retried until a 2xx.

The body is JSON, signed per Standard Webhooks at send time with `CARRIER_CALLBACK_SECRET`
(bot/webhook_endpoints.py), never sent unsigned outside demo mode; the former
`X-Lastmile-Signature: sha256=<hex>` (HMAC-SHA256 of the exact body bytes) is kept; `X-Lastmile-Timestamp` (Unix seconds, also `sent_at` in the signed
body) and `Idempotency-Key` (also `idempotency_key` in the body, one per order event) let the
carrier refuse replays and apply a retried callback once.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy.orm import Session, object_session

from bot.core.config import config_of
from bot.delivery import webhook_signing
from bot.delivery.outbox import enqueue_webhook
from bot.domain import webhook_endpoints
from bot.domain.helpdesk import sign
from bot.domain.order_json import event_json, order_json
from db.models import Order, OrderEvent, OutboxItem, utcnow

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Lastmile-Signature"
TIMESTAMP_HEADER = "X-Lastmile-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
PUSHED_SOURCES = ("driver", "customer", "bot")  # the carrier's own events are not echoed back


def idempotency_key(event: OrderEvent) -> str:
    return f"lastmile-event-{event.id}"


def callback_body(order: Order, event: OrderEvent, sent_at: int) -> dict[str, Any]:
    """What the carrier receives: the event as the events API would take it, and the order's new state."""
    order_body = order_json(order, config_of(object_session(order)), events=False)
    order_body.pop("customer", None)  # the carrier has it; keep phone numbers out of callbacks
    order_body.pop("tracking_url", None)
    return {"idempotency_key": idempotency_key(event), "sent_at": sent_at,
            "event": event_json(event), "order": order_body}


def push_event(session: Session, order: Order, event: OrderEvent, config: dict[str, Any]) -> OutboxItem | None:
    """Queue `order.event` for the webhook endpoints subscribed to it, and the signed callback to
    `carrier.callback_url` (returned; None when no URL is configured)."""
    sent_at = int(utcnow().timestamp())
    data = callback_body(order, event, sent_at)
    webhook_endpoints.emit(session, "order.event", data)
    url = str(config["carrier"]["callback_url"] or "")
    if not url:
        return None
    body = json.dumps(data, separators=(",", ":"), sort_keys=True)
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: str(sent_at),
               IDEMPOTENCY_HEADER: idempotency_key(event)}
    secret = str(config["secrets"].get("carrier_callback_secret") or "")
    if secret:  # the former signature, kept for receivers that check it; Standard Webhooks ones at send time
        headers[SIGNATURE_HEADER] = sign(body.encode(), secret)
    logger.info("carrier callback queued for event %s (%s)", event.id, event.type)
    item = enqueue_webhook(session, url, body, headers, lane=f"carrier:{order.id}")
    item.payload = {**item.payload, "sign": webhook_signing.config_signing("carrier")}
    return item


def on_order_event(session: Session, order: Order, event: OrderEvent) -> None:
    """EVENT_LISTENERS entry: push changes that did not come from the carrier."""
    if event.source in PUSHED_SOURCES:
        push_event(session, order, event, config_of(session))

