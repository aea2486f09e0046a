"""Twilio Messaging: SMS and WhatsApp are one class, two registry entries differing by `whatsapp:`."""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from flask import Request
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from bot.channels import sms_encoding
from bot.channels.base import (
    BadPayload,
    Channel,
    MediaSource,
    SendError,
    checked,
    clean_text,
    parse_retry_after,
)
from bot.core.config import get
from bot.core.messages import Inbound, Location, Media, Reply

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
    supports_lookup = True  # the Messages list says whether a send of unknown outcome was accepted

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
        raw_num_media = form.get("NumMedia") or "0"
        if not (raw_num_media.isascii() and raw_num_media.isdigit()):  # "²".isdigit() is true
            raise BadPayload("NumMedia must be a number")
        num_media = int(raw_num_media) if len(raw_num_media) <= 4 else 10
        media = [
            Media(url=form[f"MediaUrl{i}"], content_type=form.get(f"MediaContentType{i}", ""))
            for i in range(min(num_media, 10))
            if form.get(f"MediaUrl{i}")
        ]
        location = None
        if form.get("Latitude") and form.get("Longitude"):
            try:
                location = Location(
                    float(form["Latitude"]), float(form["Longitude"]),
                    clean_text(form.get("Address") or form.get("Label") or "", "Address", limit=1000) or None,
                )
            except ValueError:  # float() also takes "nan" and "inf": checked() refuses those
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
            checked(Inbound(
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
            ))
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

    @property
    def send_timeout(self) -> float:
        return float(self.settings.get("timeout", 10))

    def status_callback_url(self, ref: str | None) -> str:
        """Twilio posts delivery reports here; `?outbox=<row id>` matches them to the row even when the
        answer to the send itself was lost (the URL is signed by Twilio with its query string)."""
        url = f"{self.public_base_url}/webhooks/twilio/status"
        return f"{url}?outbox={ref}" if ref else url

    @property
    def messaging_service_sid(self) -> str:
        return str(self.settings.get("whatsapp_messaging_service_sid" if self.prefix else "messaging_service_sid")
                   or "")

    def _sender(self, reply: Reply) -> dict[str, str]:
        """The brand's own sender when the reply names one (bot/domain/brands.py), else a Messaging Service
        (Twilio picks the number from its pool) when configured, else our number."""
        own = reply.sender or {}
        if own.get("messaging_service_sid"):
            return {"messaging_service_sid": own["messaging_service_sid"]}
        if own.get("from"):
            return {"from_": own["from"] if own["from"].startswith(self.prefix) else self.prefix + own["from"]}
        service = self.messaging_service_sid
        return {"messaging_service_sid": service} if service else {"from_": self.sender_address()}

    def _message_params(self, reply: Reply, to: str) -> dict[str, Any]:
        params: dict[str, Any] = {"to": self.prefix + to, **self._sender(reply)}
        if reply.expires_after:  # dropped by Twilio if still queued after this (an "arriving" SMS hours late)
            params["validity_period"] = max(1, min(36000, int(reply.expires_after)))
        if reply.template:
            params["content_sid"] = reply.template["content_sid"]
            params["content_variables"] = json.dumps(reply.template.get("variables") or {})
        else:
            params["body"] = self.render_text(reply)[:MAX_BODY]
            if reply.media:
                params["media_url"] = [m.url for m in reply.media]
        return params

    def send(self, reply: Reply, to: str, *, ref: str | None = None) -> str:
        client = self.client
        params = {**self._message_params(reply, to), "status_callback": self.status_callback_url(ref)}
        try:
            message = client.messages.create(**params)
        except TwilioRestException as exc:
            raise self._send_error(exc) from None
        except requests.RequestException as exc:
            raise _network_error(exc) from None
        except Exception as exc:  # anything else from the client: we cannot tell whether it was accepted
            raise SendError(f"twilio send interrupted: {exc.__class__.__name__}", ambiguous=True) from None
        return str(message.sid)

    def find_sent(self, reply: Reply, to: str, since: datetime) -> list[str]:
        """Ask Twilio's Messages list (To and From, DateSent on or after `since`) for messages matching this
        reply: same recipient, same sender, created since `since`, and the same body (templates: any body).

        Twilio gives a message its DateSent only once it has left the queue, so when the DateSent-filtered
        list has no match, the newest page for the same To/From is read too and matched on DateCreated."""
        params = self._message_params(reply, to)
        body = params.get("body")
        # With a Messaging Service the sending number is Twilio's choice: list by recipient, match the service.
        sender = {"from_": params["from_"]} if "from_" in params else {}
        ours = params.get("from_") or params["messaging_service_sid"]
        try:
            client = self.client
            found = client.messages.list(to=params["to"], date_sent_after=since, limit=50, **sender)
            matches = [m for m in found if _matches(m, ours, body, since)]
            if not matches:
                found = client.messages.list(to=params["to"], limit=50, **sender)
                matches = [m for m in found if _matches(m, ours, body, since)]
        except TwilioRestException as exc:
            raise SendError(f"twilio lookup refused: {exc.status} {exc.code}", code=str(exc.code or exc.status)) from None
        except Exception as exc:
            raise SendError(f"twilio lookup failed: {exc.__class__.__name__}") from None
        matches.sort(key=lambda m: (m.date_created or m.date_sent or since, m.sid))
        return list(dict.fromkeys(str(m.sid) for m in matches))

    def media_source(self, reference: str) -> MediaSource:
        """A MediaUrl from the webhook. Twilio serves it with HTTP basic auth (account SID, auth token) when
        the account enforces media authentication; the credentials go only to Twilio's own API host (a
        redirect elsewhere, to Twilio's file store, drops them: requests does that for another host)."""
        if not reference.startswith(("https://", "http://")):
            raise SendError("not a Twilio media URL", permanent=True)
        api = urlsplit(str(self.settings.get("api_base_url", "https://api.twilio.com")))
        here = urlsplit(reference)
        sid = str(self.settings.get("account_sid") or "")
        ours = (here.scheme, here.netloc) in ((api.scheme, api.netloc), ("https", "api.twilio.com"))
        return MediaSource(reference, (sid, self.auth_token) if ours and sid and self.auth_token else None)

    def render_text(self, reply: Reply) -> str:
        text = sms_encoding.with_numbered_options(reply)
        # SMS quirk: one typographic space or dash from Babel turns the whole message into UCS-2 (70
        # characters a segment instead of 160). WhatsApp keeps the typography; it is not billed by segment.
        return text if self.prefix else sms_encoding.fold(text)

    def _send_error(self, exc: TwilioRestException) -> SendError:
        code = exc.code
        if code in PERMANENT_ERRORS:
            return SendError(PERMANENT_ERRORS[code], permanent=True, code=str(code))
        if exc.status == 429:
            retry_after = None
            last = self.client.http_client.thread_last_response  # type: ignore[attr-defined]
            if last is not None and last.headers:
                retry_after = parse_retry_after(last.headers.get("Retry-After"))
            return SendError("twilio rate limit", code=str(code or 429), retry_after=retry_after)
        if exc.status and 400 <= exc.status < 500 and exc.status not in (408, 409):
            return SendError(f"twilio refused: {exc.status} {code}", permanent=True, code=str(code or exc.status))
        return SendError(f"twilio error {exc.status}", code=str(code or exc.status))


class TwilioWhatsAppChannel(TwilioChannel):
    name: ClassVar[str] = "whatsapp"
    prefix: ClassVar[str] = WHATSAPP_PREFIX


def _matches(message: Any, sender: str, body: str | None, since: datetime) -> bool:
    """Ours: outbound, from our number or Messaging Service (`sender`), created since `since`, same body."""
    if str(message.direction or "").startswith("inbound"):
        return False
    if sender not in (message.from_, getattr(message, "messaging_service_sid", None)):
        return False
    when = message.date_created or message.date_sent
    if when is None or when < since:
        return False
    return body is None or (message.body or "") == body


def _network_error(exc: requests.RequestException) -> SendError:
    """A connection that was never made cannot have delivered the request: retrying is safe. Any other
    network failure (read timeout, reset or close after the request was written) is ambiguous."""
    name = exc.__class__.__name__
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return SendError(f"twilio unreachable: {name}")
    if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(exc, requests.exceptions.SSLError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        if isinstance(reason, NewConnectionError | ConnectTimeoutError):
            return SendError(f"twilio unreachable: {reason.__class__.__name__}")
    return SendError(f"twilio send outcome unknown: {name}", ambiguous=True)


def _media_kind(content_type: str) -> str:
    major = (content_type or "").split("/")[0]
    if content_type in ("text/vcard", "text/x-vcard"):
        return "contact"
    return {"image": "photo", "audio": "voice", "video": "video"}.get(major, "document")
