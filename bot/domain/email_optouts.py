"""Email as a way to reach a customer: the conversation of an address, its one-click unsubscribe link, and the
opt-outs that unsubscribes, bounces and complaints record.

An email address is a conversation like a phone on SMS (`channel="email"`, the lower-case address): the
opt-out is that conversation's `opted_out`, per person and channel as for STOP, and every notification
checks it. The unsubscribe token is `<conversation id>.<HMAC-SHA256 of the id and the address>` under a key
derived from LASTMILE_SECRET_KEY (`install_key`): nothing to store, unguessable (128 bits), and bound to the address (a token
made for another address, or forged, matches no conversation)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core import emails
from bot.core.config import config_of
from bot.domain import conversations
from bot.domain.conversation_state import remember
from db.models import Conversation, Customer, utcnow

logger = logging.getLogger(__name__)

CHANNEL = "email"
OPT_OUT_REASONS = ("unsubscribe", "bounce", "complaint")


def email_ready(config: dict[str, Any]) -> bool:
    """Email can be sent: the channel is on and has a server and a sender."""
    settings = config["channels"].get("email") or {}
    return bool(settings.get("enabled") and settings.get("host") and settings.get("from_address"))


def conversation_for(session: Session, customer: Customer) -> Conversation | None:
    """The customer's email conversation (created on first use), or None without an email address."""
    address = emails.normalize(customer.email) if customer.email else None
    if address is None:
        return None
    conversation = conversations.get_or_create(session, CHANNEL, address, role="customer", customer_id=customer.id)
    if conversation.customer_id is None:
        conversation.customer_id = customer.id
    return conversation


# --- the unsubscribe link ----------------------------------------------------------------------------
SESSION_KEY = "email_unsubscribe_key"  # create_app puts the link key in every session's info (install_key)


def install_key(info: dict[str, Any], secret: str | bytes) -> None:
    """The key that signs unsubscribe links, derived from the app's secret key, for every session of `info`."""
    raw = secret.encode() if isinstance(secret, str) else secret
    info[SESSION_KEY] = hmac.new(raw, b"lastmile email unsubscribe", hashlib.sha256).digest()  # one key, one purpose


def _key(session: Session) -> bytes:
    key = session.info.get(SESSION_KEY)
    if key is None:  # a session made outside create_app (a script): the configured secret key
        info: dict[str, Any] = {}
        install_key(info, config_of(session)["secrets"].get("secret_key") or "")
        key = info[SESSION_KEY]
    return key


def _mac(key: bytes, conversation_id: int, address: str) -> str:
    digest = hmac.new(key, f"{conversation_id}:{address}".encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def unsubscribe_token(session: Session, conversation: Conversation) -> str:
    return f"{conversation.id}.{_mac(_key(session), conversation.id, conversation.address)}"


def unsubscribe_url(session: Session, conversation: Conversation) -> str:
    base = str(config_of(session)["app"]["public_base_url"]).rstrip("/")
    return f"{base}/u/{unsubscribe_token(session, conversation)}"


def by_token(session: Session, token: str) -> Conversation | None:
    """The email conversation a token was made for; None for a forged, mangled or foreign token."""
    ident, _, mac = token.partition(".")
    if not ident.isdigit() or len(ident) > 18 or not mac:
        return None
    conversation = session.get(Conversation, int(ident))
    if conversation is None or conversation.channel != CHANNEL:
        return None
    if not hmac.compare_digest(_mac(_key(session), conversation.id, conversation.address).encode(), mac.encode()):
        return None
    return conversation


# --- opt-outs ----------------------------------------------------------------------------------------
def opt_out(session: Session, conversation: Conversation, reason: str, detail: str | None = None) -> bool:
    """No more email to this address: the reason (unsubscribe, bounce, complaint) is kept in the conversation's
    state. True when it changed (the first opt-out is the one recorded; later ones change nothing)."""
    changed = conversations.opt_out(session, conversation)
    if changed:
        remember(conversation, opt_out={"reason": reason, "at": utcnow().isoformat(),
                                        **({"detail": detail[:200]} if detail else {})})
        logger.info("email conversation %s opted out (%s)", conversation.id, reason)
    return changed


def opt_out_address(session: Session, address: str, reason: str, detail: str | None = None) -> tuple[Conversation, bool]:
    """A provider's bounce or complaint for `address` (normalized): opted out even if we never wrote to it, so a
    later order with that address sends nothing there. Tied to the customer holding the address, if one does."""
    conversation = conversations.get_or_create(session, CHANNEL, address, role="customer")
    if conversation.customer_id is None:
        conversation.customer_id = session.scalar(
            select(Customer.id).where(Customer.email == address).order_by(Customer.id).limit(1))
    return conversation, opt_out(session, conversation, reason, detail)
