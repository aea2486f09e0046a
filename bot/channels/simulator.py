"""The local chat simulator (web page and `lastmile chat`): same engine, no provider."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from flask import Request

from bot.channels.base import BadPayload, Channel
from bot.core.messages import Inbound, Reply


class SimulatorChannel(Channel):
    """Messages typed in the simulator; replies are stored and read back by the page or CLI."""

    name: ClassVar[str] = "simulator"
    supports_buttons = True
    supports_media = True

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)

    def verify(self, request: Request) -> bool:
        return True  # the simulator endpoints are only registered in demo mode

    def parse(self, request: Request) -> list[Inbound]:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise BadPayload("JSON body required")
        return [self.inbound(data.get("address"), data.get("text"), data.get("payload"), data.get("locale"))]

    @staticmethod
    def inbound(address: Any, text: Any, payload: Any = None, locale: Any = None) -> Inbound:
        if not isinstance(address, str) or not address.strip():
            raise BadPayload("'address' (a phone number such as +15551230001) is required")
        if payload is not None and not isinstance(payload, str):
            raise BadPayload("'payload' must be a string")
        if not isinstance(text, str) or (not text.strip() and not payload):
            raise BadPayload("'text' must be a non-empty string")
        if len(text) > 4096:
            raise BadPayload("'text' is longer than 4096 characters")
        return Inbound(
            channel="simulator",
            address=address.strip(),
            provider_id=f"sim-{uuid.uuid4().hex}",
            text=text.strip() if not payload else (text or payload),
            kind="button" if payload else "text",
            button_payload=payload,
            language_code=locale if isinstance(locale, str) else None,
        )

    def send(self, reply: Reply, to: str, *, ref: str | None = None) -> str:
        return f"sim-out-{uuid.uuid4().hex}"  # stored as sent; the page reads it from the database
