"""Twilio Messaging: SMS and WhatsApp are one class, two registry entries differing by `whatsapp:`."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, ClassVar

from flask import Request
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.channels.base import BadPayload, Channel, SendError
from bot.config import get
from bot.messages import Inbound, Location, Media, Reply

logger = logging.getLogger(__name__)
# twilio's own client logs request bodies (message text, phone numbers) at INFO: keep PII out.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

WHATSAPP_PREFIX = "whatsapp:"
# Error codes after which retrying cannot help (Twilio error dictionary).
PERMANENT_ERRORS = {
    21211: "invalid 'To' number",
    21214: "'To' number cannot be reached",
    21408: "region not enabled",
    21610: "recipient unsubscribed (STOP)",
    21612: "cannot route to this number",
    21614: "'To' is not a mobile number",
    63016: "outside the WhatsApp 24-hour window; a template is required",
    63024: "invalid WhatsApp recipient",
}
# Twilio concatenates long SMS up to 1600 characters; beyond that we split ourselves.
MAX_BODY = 1600


class _RecordingHttpClient(TwilioHttpClient):
    """Keeps each thread's last response so a 429's Retry-After header can be honoured."""

    def __init__(self, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._local = threading.local()

    def request(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        response = super().request(*args, **kwargs)
        self._local.response = response
        return response

    @property
    def thread_last_response(self):
        return getattr(self._local, "response", None)


class TwilioChannel(Channel):
    name: ClassVar[str] = "sms"
    prefix: ClassVar[str] = ""
    supports_media = True  # MMS where the number supports it; Twilio rejects otherwise

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.settings = get(config, "channels.twilio", {})
        self.auth_token = get(config, "secrets.twilio_auth_token", "")
        self.public_base_url = str(get(config, "app.public_base_url", "")).rstrip("/")
        self._client: Client | None = None
        self._client_lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.settings.get("enabled", True))

    # --- inbound ---------------------------------------------------------------------------
    def verify(self, request: Request) -> bool:
        signature = request.headers.get("X-Twilio-Signature", "")
        if not self.auth_token:
            logger.error("Twilio webhook refused: TWILIO_AUTH_TOKEN is not set")
            return False
        if not signature:
            return False
        url = self.public_base_url + request.full_path.rstrip("?")
        return RequestValidator(self.auth_token).validate(url, request.form, signature)

    def parse(self, request: Request) -> list[Inbound]:
        form = request.form
        sid = form.get("MessageSid") or form.get("SmsMessageSid") or form.get("SmsSid")
        sender = form.get("From", "")
        if not sid or not sender:
            raise BadPayload("MessageSid and From are required")
        is_whatsapp = sender.startswith(WHATSAPP_PREFIX)
        address = sender.removeprefix(WHATSAPP_PREFIX)
        try:
            num_media = int(form.get("NumMedia") or 0)
        except ValueError:
            raise BadPayload("NumMedia must be a number") from None
        media = [
            Media(url=form[f"MediaUrl{i}"], content_type=form.get(f"MediaContentType{i}", ""))
            for i in range(min(num_media, 10))
            if form.get(f"MediaUrl{i}")
        ]
        location = None
        if form.get("Latitude") and form.get("Longitude"):
            try:
                location = Location(
                    float(form["Latitude"]), float(form["Longitude"]), form.get("Address") or form.get("Label")
                )
            except ValueError:
                raise BadPayload("Latitude and Longitude must be numbers") from None
        text = form.get("Body", "") or ""
        button = form.get("ButtonPayload") or None
        kind = "text"
        if button:
            kind, text = "button", form.get("ButtonText") or text
        elif location:
            kind = "location"
        elif media:
            kind = _media_kind(media[0].content_type)
        return [
            Inbound(
                channel="whatsapp" if is_whatsapp else "sms",
                address=address,
                provider_id=sid,
                text=text,
                kind=kind,
                media=media,
                location=location,
                button_payload=button,
                display_name=form.get("ProfileName") or None,
                country=form.get("FromCountry") or None,
                to_address=form.get("To", "").removeprefix(WHATSAPP_PREFIX) or None,
                raw=form.to_dict(flat=True),
            )
        ]

    # --- outbound --------------------------------------------------------------------------
    @property
    def client(self) -> Client:
        with self._client_lock:
            if self._client is None:
                sid = self.settings.get("account_sid") or ""
                if not sid or not self.auth_token:
                    raise SendError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set", permanent=True)
                http = _RecordingHttpClient(timeout=float(self.settings.get("timeout", 10)))
                client = Client(sid, self.auth_token, http_client=http)
                client.api.base_url = str(self.settings.get("api_base_url", "https://api.twilio.com")).rstrip("/")
                self._client = client
            return self._client

    def sender_address(self) -> str:
        key = "whatsapp_from" if self.prefix else "sms_from"
        value = str(self.settings.get(key) or "")
        if not value:
            raise SendError(f"channels.twilio.{key} is not set", permanent=True)
        return value if value.startswith(self.prefix) else self.prefix + value

    def send(self, reply: Reply, to: str) -> str:
        client = self.client
        params: dict[str, Any] = {
            "to": self.prefix + to,
            "from_": self.sender_address(),
            "status_callback": f"{self.public_base_url}/webhooks/twilio/status",
        }
        if reply.template:
            params["content_sid"] = reply.template["content_sid"]
            params["content_variables"] = json.dumps(reply.template.get("variables") or {})
        else:
            params["body"] = self.render_text(reply)[:MAX_BODY]
            if reply.media:
                params["media_url"] = [m.url for m in reply.media]
        try:
            message = client.messages.create(**params)
        except TwilioRestException as exc:
            raise self._send_error(exc) from None
        except Exception as exc:  # network errors from requests
            raise SendError(f"twilio unreachable: {exc.__class__.__name__}") from None
        return str(message.sid)

    def render_text(self, reply: Reply) -> str:
        parts = [reply.text] if reply.text else []
        if reply.buttons:
            parts.append("\n".join(f"{i}. {b.title}" for i, b in enumerate(reply.buttons, 1)))
        return "\n".join(parts)

    def _send_error(self, exc: TwilioRestException) -> SendError:
        code = exc.code
        if code in PERMANENT_ERRORS:
            return SendError(PERMANENT_ERRORS[code], permanent=True, code=str(code))
        if exc.status == 429:
            retry_after = None
            last = self.client.http_client.thread_last_response  # type: ignore[attr-defined]
            if last is not None and last.headers:
                try:
                    retry_after = float(last.headers.get("Retry-After"))
                except (TypeError, ValueError):
                    retry_after = None
            return SendError("twilio rate limit", code=str(code or 429), retry_after=retry_after)
        if exc.status and 400 <= exc.status < 500 and exc.status not in (408, 409):
            return SendError(f"twilio refused: {exc.status} {code}", permanent=True, code=str(code or exc.status))
        return SendError(f"twilio error {exc.status}", code=str(code or exc.status))


class TwilioWhatsAppChannel(TwilioChannel):
    name: ClassVar[str] = "whatsapp"
    prefix: ClassVar[str] = WHATSAPP_PREFIX


def _media_kind(content_type: str) -> str:
    major = (content_type or "").split("/")[0]
    if content_type in ("text/vcard", "text/x-vcard"):
        return "contact"
    return {"image": "photo", "audio": "voice", "video": "video"}.get(major, "document")
