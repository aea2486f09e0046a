"""The channel interface: verify a webhook, parse it into `Inbound`s, send a `Reply`."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

from flask import Request

from bot.core.messages import Inbound, Media, Reply

logger = logging.getLogger(__name__)


class BadPayload(ValueError):
    """The webhook body is not what the channel sends; answered with 400."""


# What the database stores for an inbound message (db/models.py): longer is not a real delivery.
MAX_ADDRESS = 64
MAX_PROVIDER_ID = 128
MAX_FIELD = 4096  # button payloads, media URLs, names: far beyond any provider's own limits
NUL = re.compile("\x00")


def clean_text(value: Any, field: str, *, limit: int | None = None) -> str:
    """Text a person sent, as the database can store it: NUL removed, lone surrogates replaced.
    Anything but a string is a malformed payload."""
    if not isinstance(value, str):
        raise BadPayload(f"{field} must be a string")
    if limit is not None and len(value) > limit:
        raise BadPayload(f"{field} is longer than {limit} characters")
    value = NUL.sub("", value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def checked(inbound: Inbound) -> Inbound:
    """An `Inbound` whose every field the engine and the database can take, or BadPayload naming the
    field: ids and addresses within their columns, text without NUL, coordinates finite and on Earth."""
    if not inbound.address or len(inbound.address) > MAX_ADDRESS or not inbound.address.isprintable():
        raise BadPayload(f"the sender address must be 1 to {MAX_ADDRESS} printable characters")
    if not inbound.provider_id or len(inbound.provider_id) > MAX_PROVIDER_ID or not inbound.provider_id.isprintable():
        raise BadPayload(f"the message id must be 1 to {MAX_PROVIDER_ID} printable characters")
    inbound.text = clean_text(inbound.text or "", "text")
    for name in ("button_payload", "display_name", "language_code", "country", "to_address"):
        value = getattr(inbound, name)
        if value is not None:
            setattr(inbound, name, clean_text(value, name, limit=MAX_FIELD) or None)
    if inbound.language_code and len(inbound.language_code) > 35:  # BCP 47 tags are short
        inbound.language_code = None
    for media in inbound.media:
        clean_text(media.url, "media url", limit=MAX_FIELD)
        clean_text(media.content_type, "media content type", limit=255)
        if "\x00" in media.url + media.content_type:
            raise BadPayload("media must not contain NUL characters")
    inbound.media = [m if m.size is None or (type(m.size) is int and 0 <= m.size < 2**63)
                     else Media(m.url, m.content_type) for m in inbound.media]  # a forged size is no size
    location = inbound.location
    if location is not None:
        if not (math.isfinite(location.lat) and math.isfinite(location.lng)
                and -90 <= location.lat <= 90 and -180 <= location.lng <= 180):
            raise BadPayload("the location must be a latitude and longitude on Earth")
        if location.label is not None and "\x00" in location.label:
            raise BadPayload("the location label must not contain NUL characters")
    return inbound


@dataclass(frozen=True, slots=True)
class MediaSource:
    """Where to download a file a person sent, and with which credentials (HTTP basic auth)."""

    url: str
    auth: tuple[str, str] | None = None
    size: int | None = None  # when the provider says so before the download


class SendError(Exception):
    """A send failed. `permanent` ones are not retried; `retry_after` (seconds) is honoured.

    `ambiguous`: the request may have reached the provider and been accepted (a read timeout, a reset
    after the request was written). The outbox does not send such a row again before asking the
    provider (`Channel.find_sent`) or hearing from it (a status callback).
    """

    def __init__(
        self,
        reason: str,
        *,
        permanent: bool = False,
        code: str | None = None,
        retry_after: float | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.code = code
        self.retry_after = retry_after
        self.ambiguous = ambiguous and not permanent


class Channel:
    """One messaging platform. Subclasses override what they support natively.

    The base renders buttons as a numbered list and media as links, so every channel can
    carry every `Reply`; the engine maps a numbered answer back to the button's payload.
    """

    name: ClassVar[str] = "base"
    supports_buttons: ClassVar[bool] = False
    supports_media: ClassVar[bool] = False
    supports_lookup: ClassVar[bool] = False  # can say whether a send of unknown outcome was accepted

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    @property
    def enabled(self) -> bool:
        return True

    def verify(self, request: Request) -> bool:
        raise NotImplementedError

    def parse(self, request: Request) -> list[Inbound]:
        raise NotImplementedError

    def send(self, reply: Reply, to: str, *, ref: str | None = None) -> str:
        """Deliver `reply` to `to`; return the provider's message id or raise `SendError`.

        `ref` is our id for this send (the outbox row), carried where the provider lets us (Twilio's
        status-callback URL), so that the provider's later reports can be matched to it."""
        raise NotImplementedError

    @property
    def send_timeout(self) -> float:
        """The longest a send call can take on our side (after it, a call of ours is over)."""
        return 0.0

    def find_sent(self, reply: Reply, to: str, since: datetime) -> list[str]:
        """Provider ids of messages the provider accepted for `reply` to `to` since `since`, oldest first.

        Only channels with `supports_lookup`; raises `SendError` when the provider cannot be asked."""
        raise NotImplementedError

    def media_source(self, reference: str) -> MediaSource:
        """How to download a file that arrived on this channel (`Media.url` as parsed). SendError when the
        provider cannot be asked now, permanent when never; code "413" when the provider says it is too big."""
        raise SendError(f"{self.name} cannot download media", permanent=True)

    def render_text(self, reply: Reply) -> str:
        """The text to send when a feature is not native to this channel."""
        if self.supports_buttons and self.supports_media:
            return reply.text
        parts = [reply.text] if reply.text else []
        if reply.buttons and not self.supports_buttons:
            parts.append("\n".join(f"{i}. {b.title}" for i, b in enumerate(reply.buttons, 1)))
        if reply.media and not self.supports_media:
            parts.extend(m.url for m in reply.media)
        return "\n".join(parts)

    def close(self) -> None:
        """Release network resources (called when the dispatcher stops)."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from an HTTP Retry-After header (delay-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(tz=UTC)).total_seconds())
        except (TypeError, ValueError):
            return None
