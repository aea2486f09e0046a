"""Signed callbacks to the carrier: order changes made through the bot (driver commands, reroutes,
instructions) are POSTed to `carrier.callback_url` through the outbox, retried until a 2xx.

The body is JSON; `X-Lastmile-Signature: sha256=<hex>` is the HMAC-SHA256 of the exact body bytes
with `CARRIER_CALLBACK_SECRET`; `X-Lastmile-Timestamp` (Unix seconds, also `sent_at` in the signed
body) and `Idempotency-Key` (also `idempotency_key` in the body, one per order event) let the
carrier refuse replays and apply a retried callback once.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy.orm import Session

from bot import orders as order_rules
from bot.helpdesk import sign
from bot.outbox import enqueue_webhook
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
    from bot.api import event_json, order_json

    order_body = order_json(order, events=False)
    order_body.pop("customer", None)  # the carrier has it; keep phone numbers out of callbacks
    order_body.pop("tracking_url", None)
    return {"idempotency_key": idempotency_key(event), "sent_at": sent_at,
            "event": event_json(event), "order": order_body}


def push_event(session: Session, order: Order, event: OrderEvent, config: dict[str, Any]) -> OutboxItem | None:
    """Queue the signed callback for `event`; None when no callback URL is configured."""
    url = str(config["carrier"]["callback_url"] or "")
    if not url:
        return None
    sent_at = int(utcnow().timestamp())
    body = json.dumps(callback_body(order, event, sent_at), separators=(",", ":"), sort_keys=True)
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: str(sent_at),
               IDEMPOTENCY_HEADER: idempotency_key(event)}
    secret = str(config["secrets"].get("carrier_callback_secret") or "")
    if secret:
        headers[SIGNATURE_HEADER] = sign(body.encode(), secret)
    else:
        logger.warning("carrier callback sent unsigned: CARRIER_CALLBACK_SECRET is not set")
    logger.info("carrier callback queued for event %s (%s)", event.id, event.type)
    return enqueue_webhook(session, url, body, headers, lane=f"carrier:{order.id}")


def on_order_event(session: Session, order: Order, event: OrderEvent) -> None:
    """EVENT_LISTENERS entry: push changes that did not come from the carrier."""
    from flask import current_app, has_app_context

    if event.source not in PUSHED_SOURCES or not has_app_context() or "lastmile" not in current_app.extensions:
        return
    push_event(session, order, event, current_app.extensions["lastmile"].config)


if on_order_event not in order_rules.EVENT_LISTENERS:
    order_rules.EVENT_LISTENERS.append(on_order_event)
