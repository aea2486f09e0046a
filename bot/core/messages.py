"""Neutral message types shared by channels, the engine and handlers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Media:
    url: str
    content_type: str = "image/jpeg"
    size: int | None = None  # bytes, when the provider says so before any download (Telegram)


@dataclass(frozen=True, slots=True)
class Location:
    lat: float
    lng: float
    label: str | None = None


@dataclass(slots=True)
class Inbound:
    """One message or button press from a person, whatever the channel.

    `address` is who wrote (E.164 phone for SMS/WhatsApp, chat id for Telegram); `provider_id`
    is the channel's own id for this delivery (Twilio MessageSid, Telegram update_id) and makes
    a redelivered webhook a no-op.
    """

    channel: str
    address: str
    provider_id: str
    text: str = ""
    kind: str = "text"  # text|photo|location|contact|sticker|voice|audio|document|button|edited|unsupported
    media: list[Media] = field(default_factory=list)
    location: Location | None = None
    button_payload: str | None = None
    display_name: str | None = None
    language_code: str | None = None  # as the platform reports it (Telegram's language_code)
    country: str | None = None  # ISO country of the sender's number when the provider tells us
    to_address: str | None = None
    received_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """What is stored with the message besides its text (no raw payload with PII in logs)."""
        data: dict[str, Any] = {}
        if self.media:
            data["media"] = [asdict(m) for m in self.media]
        if self.location:
            data["location"] = asdict(self.location)
        if self.button_payload:
            data["button_payload"] = self.button_payload
        if self.language_code:
            data["language_code"] = self.language_code
        return data


@dataclass(frozen=True, slots=True)
class Button:
    title: str
    payload: str  # usually a Rasa-style "/intent{...}" shortcut


@dataclass(slots=True)
class Reply:
    """What the bot (or an agent, or a relayed driver) says. Channels render it natively or as text."""

    text: str
    buttons: list[Button] = field(default_factory=list)
    media: list[Media] = field(default_factory=list)
    template: dict[str, Any] | None = None  # WhatsApp approved template: {"content_sid", "variables"}
    # Time-critical ("arriving in 10 minutes"): not worth delivering after this many seconds in a provider's
    # queue (Twilio's ValidityPeriod); None keeps the provider's default.
    expires_after: int | None = None
    # The question this reply asks, when it offers options (`failed_attempt`, `rating_prompt`, `clarify`,
    # `handoff_offer`): WhatsApp sends it as a quick-reply template when one is configured (bot/reach.py).
    prompt: str | None = None
    # Email only (bot/channels/email.py): the subject line, and the one-click unsubscribe link of the address.
    subject: str | None = None
    unsubscribe_url: str | None = None
    # The brand's own sender for this message (`{"from": "+1…"}` or `{"messaging_service_sid": "MG…"}`);
    # None: the channel's configured one (bot/domain/brands.py `sender_for`).
    sender: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {
            "text": self.text,
            "buttons": [asdict(b) for b in self.buttons],
            "media": [asdict(m) for m in self.media],
            "template": self.template,
            "expires_after": self.expires_after,
            "prompt": self.prompt,
            **({"subject": self.subject} if self.subject else {}),
            **({"unsubscribe_url": self.unsubscribe_url} if self.unsubscribe_url else {}),
        }
        if self.sender:
            data["sender"] = self.sender
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        return cls(
            text=data.get("text", ""),
            buttons=[Button(**b) for b in data.get("buttons") or []],
            media=[Media(**m) for m in data.get("media") or []],
            template=data.get("template"),
            expires_after=data.get("expires_after"),
            prompt=data.get("prompt"),
            subject=data.get("subject"),
            unsubscribe_url=data.get("unsubscribe_url"),
            sender=data.get("sender"),
        )

    def as_plain_text(self) -> str:
        """Buttons as a numbered list and media as links: for channels without native support."""
        parts = [self.text] if self.text else []
        if self.buttons:
            parts.append("\n".join(f"{i}. {b.title}" for i, b in enumerate(self.buttons, 1)))
        parts.extend(m.url for m in self.media)
        return "\n".join(parts)
