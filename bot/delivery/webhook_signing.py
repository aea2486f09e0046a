"""Standard Webhooks signatures (https://www.standardwebhooks.com), made when a delivery is SENT by the outbox
dispatcher, not when it is queued (with an endpoint's secret, a configured one, or a brand seller's), and the
endpoint's failure count after each attempt (bot/webhook_endpoints.py has the endpoints and the fan-out)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import uuid
from typing import Any

from sqlalchemy import update

from db.models import Brand, WebhookEndpoint, utcnow
from db.session import Database

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
CONFIG_SECRETS = {"carrier": "carrier_callback_secret", "helpdesk": "support_webhook_secret"}


class UnsignedDelivery(Exception):
    """A delivery with no secret to sign it, outside demo mode."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret: a `whsec_` secret is base64 after the prefix; any other text (a
    CARRIER_CALLBACK_SECRET set before) is used as its UTF-8 bytes (a receiver passes base64 of it)."""
    if secret.startswith(SECRET_PREFIX):
        return base64.b64decode(secret[len(SECRET_PREFIX):])
    return secret.encode()


def sign(key: bytes, msg_id: str, timestamp: int, body: str) -> str:
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex


def config_signing(kind: str) -> dict[str, str]:
    """What `enqueue_webhook`'s payload carries for a configured URL (`carrier` or `helpdesk`)."""
    return {"config": kind, "msg_id": new_message_id()}


# --- at send time (the outbox dispatcher) ----------------------------------------------------------
def signed_headers(db: Database, config: dict[str, Any], payload: dict[str, Any]) -> dict[str, str]:
    """The row's headers with the Standard Webhooks ones, signed now. Raises UnsignedDelivery when there
    is no secret outside demo mode, and for a disabled or deleted endpoint."""
    headers = dict(payload.get("headers") or {})
    signing = payload.get("sign")
    if not signing:
        return headers
    keys = _keys(db, config, signing)
    if not keys:
        if not (config.get("app") or {}).get("demo"):
            raise UnsignedDelivery(f"no signing secret for the {signing.get('config', 'endpoint')} webhook: "
                                   f"set {_secret_env(signing)}")
        logger.warning("webhook sent unsigned (demo mode): no secret")
        return headers
    timestamp = int(utcnow().timestamp())
    body = payload["body"]
    headers.update({"webhook-id": signing["msg_id"], "webhook-timestamp": str(timestamp),
                    "webhook-signature": " ".join(sign(key, signing["msg_id"], timestamp, body) for key in keys)})
    return headers


def _keys(db: Database, config: dict[str, Any], signing: dict[str, Any]) -> list[bytes]:
    if "config" in signing:
        secret = str((config.get("secrets") or {}).get(CONFIG_SECRETS[signing["config"]]) or "")
        return [secret_key(secret)] if secret else []
    if "brand_id" in signing:  # a brand's seller (bot/domain/sellers.py): the secret of its settings now
        return _seller_keys(db, int(signing["brand_id"]))
    with db.read_session() as session:
        endpoint = session.get(WebhookEndpoint, signing["endpoint_id"])
        if endpoint is None or not endpoint.enabled:
            raise UnsignedDelivery("the webhook endpoint was deleted or disabled")
        keys = [secret_key(endpoint.secret)]
        if endpoint.previous_secret and endpoint.previous_expires_at and endpoint.previous_expires_at > utcnow():
            keys.append(secret_key(endpoint.previous_secret))
        return keys


def _seller_keys(db: Database, brand_id: int) -> list[bytes]:
    with db.read_session() as session:
        brand = session.get(Brand, brand_id)
        seller = ((brand.settings or {}).get("seller") or {}) if brand is not None else {}
    secret = str(seller.get("webhook_secret") or "")
    if not secret or not seller.get("webhook_url"):
        raise UnsignedDelivery("the brand's seller webhook was removed")
    return [secret_key(secret)]


def _secret_env(signing: dict[str, Any]) -> str:
    return {"carrier": "CARRIER_CALLBACK_SECRET", "helpdesk": "SUPPORT_WEBHOOK_SECRET"}.get(
        signing.get("config", ""), "a secret")


def record_delivery(db: Database, config: dict[str, Any], payload: dict[str, Any], error: str | None) -> None:
    """After each attempt to an API endpoint: a success clears its failure count; a failure adds one, and
    `webhooks.max_consecutive_failures` of them in a row disable it, with the reason kept."""
    endpoint_id = (payload.get("sign") or {}).get("endpoint_id")
    if endpoint_id is None:
        return
    limit = int((config.get("webhooks") or {}).get("max_consecutive_failures", 20))
    with db.session() as session:
        if error is None:
            session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
                            .values(consecutive_failures=0))
            return
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        if endpoint is None:
            return
        endpoint.consecutive_failures += 1
        if endpoint.enabled and endpoint.consecutive_failures >= limit:
            endpoint.enabled = False
            endpoint.disabled_reason = (f"disabled after {endpoint.consecutive_failures} consecutive failed deliveries;"
                                        f" last: {error}")[:500]
            logger.warning("webhook endpoint %s disabled after %s consecutive failures", endpoint_id,
                           endpoint.consecutive_failures)
