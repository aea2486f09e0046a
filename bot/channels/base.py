"""The channel interface: verify a webhook, parse it into `Inbound`s, send a `Reply`."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from flask import Request

from bot.messages import Inbound, Reply

logger = logging.getLogger(__name__)


class BadPayload(ValueError):
    """The webhook body is not what the channel sends; answered with 400."""


class SendError(Exception):
    """A send failed. `permanent` ones are not retried; `retry_after` (seconds) is honoured."""

    def __init__(
        self,
        reason: str,
        *,
        permanent: bool = False,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.code = code
        self.retry_after = retry_after


class Channel:
    """One messaging platform. Subclasses override what they support natively.

    The base renders buttons as a numbered list and media as links, so every channel can
    carry every `Reply`; the engine maps a numbered answer back to the button's payload.
    """

    name: ClassVar[str] = "base"
    supports_buttons: ClassVar[bool] = False
    supports_media: ClassVar[bool] = False

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    @property
    def enabled(self) -> bool:
        return True

    def verify(self, request: Request) -> bool:
        raise NotImplementedError

    def parse(self, request: Request) -> list[Inbound]:
        raise NotImplementedError

    def send(self, reply: Reply, to: str) -> str:
        """Deliver `reply` to `to`; return the provider's message id or raise `SendError`."""
        raise NotImplementedError

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
