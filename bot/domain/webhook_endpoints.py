"""Outgoing webhooks as a product: endpoints (URL, event types, secret, enabled) managed through the API
and the CLI, events fanned out to them through the outbox, and every delivery signed per Standard Webhooks
(https://www.standardwebhooks.com) when it is SENT, not when it is queued.

Headers of every delivery: `webhook-id` (the same on every retry of one message), `webhook-timestamp`
(Unix seconds at send time) and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one
`v1,` signature per secret in force (two during a rotation). The configured carrier callback and helpdesk
URLs are endpoints too, signed with CARRIER_CALLBACK_SECRET / SUPPORT_WEBHOOK_SECRET, and keep their former
`X-Lastmile-Signature` header. Nothing is sent unsigned outside demo mode.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.times import iso_z
from bot.delivery.outbox import enqueue_webhook
from bot.delivery.webhook_signing import new_message_id, new_secret
from db.models import WebhookEndpoint, utcnow

logger = logging.getLogger(__name__)

# Every event an endpoint can subscribe to (an empty list subscribes to all of them).
EVENT_TYPES: tuple[str, ...] = ("order.event", "handoff.opened", "handoff.released", "handoff.closed",
                                 "rating.recorded", "conversation.opted_out", "conversation.opted_in",
                                 "message.failed")
# --- endpoints -------------------------------------------------------------------------------------
def create(session: Session, url: str, *, event_types: list[str] | None = None, description: str | None = None,
           enabled: bool = True) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(url=url, event_types=list(event_types or []), description=description,
                               enabled=enabled, secret=new_secret(), consecutive_failures=0)
    session.add(endpoint)
    session.flush()
    return endpoint


def rotate(session: Session, endpoint: WebhookEndpoint, *, keep_previous_hours: float = 24) -> str:
    """A new secret; the old one still signs (a second signature) for `keep_previous_hours`."""
    endpoint.previous_secret = endpoint.secret if keep_previous_hours > 0 else None
    endpoint.previous_expires_at = utcnow() + timedelta(hours=keep_previous_hours) if keep_previous_hours > 0 else None
    endpoint.secret = new_secret()
    return endpoint.secret


def set_enabled(endpoint: WebhookEndpoint, enabled: bool) -> None:
    """Enabling again clears the failure count and the reason it was disabled."""
    endpoint.enabled = enabled
    if enabled:
        endpoint.consecutive_failures, endpoint.disabled_reason = 0, None
    else:
        endpoint.disabled_reason = endpoint.disabled_reason or "disabled by an operator"


def endpoint_json(endpoint: WebhookEndpoint, *, with_secret: bool = False) -> dict[str, Any]:
    body = {"id": endpoint.id, "url": endpoint.url, "description": endpoint.description,
            "event_types": list(endpoint.event_types or []), "enabled": endpoint.enabled,
            "disabled_reason": endpoint.disabled_reason, "consecutive_failures": endpoint.consecutive_failures,
            "secret_rotating_until": iso_z(endpoint.previous_expires_at) if endpoint.previous_secret else None,
            "created_at": iso_z(endpoint.created_at), "updated_at": iso_z(endpoint.updated_at)}
    if with_secret:
        body["secret"] = endpoint.secret
    return body


# --- fan-out -----------------------------------------------------------------------------------------
def emit(session: Session, event_type: str, data: dict[str, Any]) -> int:
    """Queue `event_type` for every enabled endpoint subscribed to it; how many were queued."""
    endpoints = session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))
                                .order_by(WebhookEndpoint.id)).all()
    queued = 0
    for endpoint in endpoints:
        if endpoint.event_types and event_type not in endpoint.event_types:
            continue
        msg_id = new_message_id()
        body = json.dumps({"type": event_type, "timestamp": iso_z(utcnow()), "data": data},
                          separators=(",", ":"), sort_keys=True)
        item = enqueue_webhook(session, endpoint.url, body, {"Content-Type": "application/json"},
                               lane=f"endpoint:{endpoint.id}")
        item.payload = {**item.payload, "sign": {"endpoint_id": endpoint.id, "msg_id": msg_id}}
        queued += 1
    return queued


def conversation_event(session: Session, event_type: str, conversation: Any, **data: Any) -> int:
    """`conversation.*` and `message.failed`: the conversation by id and channel (never its phone or chat)."""
    return emit(session, event_type, {"conversation": {"id": conversation.id, "channel": conversation.channel,
                                                       "customer_id": conversation.customer_id}, **data})
