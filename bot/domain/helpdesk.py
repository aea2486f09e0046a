"""Signed outgoing webhooks to a helpdesk (Chatwoot, Zendesk, ...) when a handoff opens or ends.

The body is JSON, signed per Standard Webhooks at send time with `SUPPORT_WEBHOOK_SECRET`
(bot/webhook_endpoints.py), never unsigned outside demo mode; the former `X-Lastmile-Signature:
sha256=<hex>` (HMAC-SHA256 of the exact body bytes) is kept. Delivery goes through the outbox, so it is retried with
backoff until the receiver answers 2xx, in order per target URL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

from sqlalchemy.orm import Session

from bot.core.config import config_of
from bot.delivery.outbox import enqueue_webhook
from db.models import Conversation, Handoff, Order, utcnow

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Lastmile-Signature"
EVENT_HEADER = "X-Lastmile-Event"


def sign(body: bytes, secret: str) -> str:
    """The signature header value for `body`: 'sha256=' + hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str | None) -> bool:
    """What a receiver does: constant-time compare of the signature header."""
    return bool(header) and hmac.compare_digest(sign(body, secret), header or "")


def _settings(session: Session) -> tuple[str, str, str]:
    config = config_of(session)
    return (str(config["support"]["webhook_url"]), str(config["secrets"].get("support_webhook_secret") or ""),
            str(config["app"]["public_base_url"]).rstrip("/"))


def handoff_payload(session: Session, event: str, handoff: Handoff, conversation: Conversation,
                    base_url: str) -> dict[str, Any]:
    """What the helpdesk receives: the handoff, its conversation and order, and where to act."""
    order = session.get(Order, handoff.order_id) if handoff.order_id else None
    return {
        "event": event,
        "sent_at": utcnow().isoformat(),
        "handoff": {
            "id": handoff.id, "reason": handoff.reason, "priority": handoff.priority, "status": handoff.status,
            "agent_id": handoff.agent_id, "opened_at": handoff.opened_at.isoformat(),
            "sla_due_at": handoff.sla_due_at.isoformat() if handoff.sla_due_at else None,
            "closed_at": handoff.closed_at.isoformat() if handoff.closed_at else None,
            "closed_by": handoff.closed_by,
        },
        "conversation": {"id": conversation.id, "channel": conversation.channel, "locale": conversation.locale,
                         "display_name": conversation.display_name},
        "order": {"ref": order.ref, "status": order.status} if order else None,
        "links": {
            "console": f"{base_url}/console/conversations/{conversation.id}",
            "messages": f"{base_url}/api/v1/conversations/{conversation.id}/messages",
        },
    }


def handoff_event(session: Session, event: str, handoff: Handoff, conversation: Conversation) -> None:
    """Queue `event` for the webhook endpoints subscribed to it, and the signed webhook to
    `support.webhook_url` if it is set."""
    from bot.delivery import webhook_signing
    from bot.domain import webhook_endpoints

    url, secret, base_url = _settings(session)
    data = handoff_payload(session, event, handoff, conversation, base_url)
    webhook_endpoints.emit(session, event, data)
    if not url:
        return
    body = json.dumps(data, separators=(",", ":"), sort_keys=True)
    headers = {"Content-Type": "application/json", EVENT_HEADER: event}
    if secret:  # the former signature, kept; Standard Webhooks ones are added at send time
        headers[SIGNATURE_HEADER] = sign(body.encode(), secret)
    item = enqueue_webhook(session, url, body, headers, lane=f"helpdesk:{url}")
    item.payload = {**item.payload, "sign": webhook_signing.config_signing("helpdesk")}
