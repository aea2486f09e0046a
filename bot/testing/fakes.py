"""A local fake HTTP server standing in for Twilio's and Telegram's APIs and a carrier's callback URL.

It records every request and answers like the real API. Tests script failures
(`fail_next(status, body, headers)`), network faults (`fault_next("accept_then_reset")`), a slow provider
(`send_delay`) or random faults (`chaos({...}, seed)`). Every message the fake Twilio accepts is kept
(`accepted`) and listed by `GET .../Messages.json` with Twilio's filters (To, From, DateSent, DateSent>,
DateSent<, PageSize), so a client can ask whether a send of unknown outcome was accepted. With
`send_status_callbacks(token)` it also posts signed status callbacks to each message's StatusCallback URL.
Files people send are served as the providers serve them: Twilio media (`add_twilio_media`) only with the
account's HTTP basic auth (401 otherwise, as with media authentication on), Telegram files (`add_telegram_file`)
through getFile and `/file/bot<token>/<file_path>` for the bot's own token.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

# Network faults, as seen by the client: a reset with nothing accepted, a reset after the message was
# accepted, and an accepted message whose answer never comes (the connection is reset after `silent_seconds`).
FAULTS = ("reset", "accept_then_reset", "accept_then_silent")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    form: dict[str, list[str]] = field(default_factory=dict)
    json: Any = None
    query: dict[str, list[str]] = field(default_factory=dict)

    def value(self, key: str) -> str | None:
        """A form field (Twilio) or JSON field (Telegram)."""
        if key in self.form:
            return self.form[key][0]
        if isinstance(self.json, dict) and key in self.json:
            return self.json[key]
        return None


POOL_NUMBER = "+15550109999"  # the number a fake Messaging Service picks from its pool


@dataclass
class Accepted:
    """A message the fake Twilio accepted (answered or not)."""

    sid: str
    to: str
    from_: str
    body: str
    status_callback: str
    created: datetime
    messaging_service_sid: str | None = None

    @property
    def outbox_id(self) -> int | None:
        """The outbox row named by the status-callback URL (`?outbox=<id>`)."""
        match = re.search(r"[?&]outbox=(\d+)", self.status_callback)
        return int(match.group(1)) if match else None

    def resource(self, account: str, *, queued: bool = False) -> dict[str, Any]:
        stamp = format_datetime(self.created, usegmt=True)
        return {"sid": self.sid, "account_sid": account, "to": self.to, "from": self.from_, "body": self.body,
                "status": "queued" if queued else "sent", "direction": "outbound-api", "num_segments": "1",
                "date_created": stamp, "date_sent": None if queued else stamp, "date_updated": stamp,
                "error_code": None, "error_message": None, "messaging_service_sid": self.messaging_service_sid,
                "uri": f"/2010-04-01/Accounts/{account}/Messages/{self.sid}.json"}


LOOPBACK = "127.0.0.1"  # the fakes listen on loopback only


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # injected resets end this way
        pass


class FakeProviders:
    """Twilio (`/2010-04-01/...`), Telegram (`/bot<token>/<method>`) and anything else (callbacks)."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.scripted: list[tuple[str, str | None, int | str, Any, dict[str, str]]] = []
        self.updates: list[dict[str, Any]] = []  # served by Telegram getUpdates
        self.accepted: list[Accepted] = []
        self.send_delay = 0.0  # seconds before answering each send (Twilio Messages, Telegram send*)
        self.silent_seconds = 30.0  # how long an `accept_then_silent` answer is held back
        # Messages stay queued (no DateSent, so DateSent filters leave them out), as Twilio's do for a while.
        self.keep_queued = False
        # A per-sender rate (messages/s) enforced as a token bucket holding one second of sends: a sender that
        # keeps above it gets 429 (code 20429), as Telegram does and as Twilio's queue overflows. The bucket
        # absorbs the jitter of a paced sender (and of this in-process server's threads).
        self.sender_rate: float | None = None
        self._buckets: dict[str, tuple[float, float]] = {}  # sender -> (tokens, when)
        self.sends_by_sender: dict[str, list[float]] = {}  # send times (monotonic), accepted or refused
        self.rate_refusals = 0
        self.faults_injected: dict[str, int] = {}
        # Files people sent: Twilio media (path -> bytes, type; served only with the account's basic auth) and
        # Telegram files (file_id -> bytes, file_path; getFile, then /file/bot<token>/<file_path>).
        self.twilio_media: dict[str, tuple[bytes, str]] = {}
        self.twilio_auth: tuple[str, str] | None = None
        self.telegram_files: dict[str, tuple[bytes, str]] = {}
        self.telegram_token: str | None = None
        self._chaos: tuple[dict[str, float], random.Random] | None = None
        self._callback_token: str | None = None
        self._ids = itertools.count(1)
        self._chat_message_ids: dict[str, itertools.count] = {}  # Telegram counts message ids per chat
        self._lock = threading.Lock()
        self.server = _Server((LOOPBACK, 0), self._handler_class())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server.server_port}"  # the port the system picked for port 0

    def start(self) -> FakeProviders:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, status: int, body: Any = None, headers: dict[str, str] | None = None, times: int = 1,
                  *, path: str = "", method: str | None = "POST") -> None:
        """Answer the next `times` requests (whose path starts with `path`) with this status."""
        with self._lock:
            self.scripted.extend([(path, method, status, body, headers or {})] * times)

    def fault_next(self, fault: str, times: int = 1, *, path: str = "") -> None:
        """The next `times` POSTs (whose path starts with `path`) meet a network fault (see FAULTS)."""
        assert fault in FAULTS, fault
        with self._lock:
            self.scripted.extend([(path, "POST", fault, None, {})] * times)

    def chaos(self, rates: dict[str, float] | None, seed: int = 0) -> None:
        """Random faults on Twilio sends: `{"500": 0.1, "429": 0.05, "accept_then_reset": 0.03, ...}`,
        keys HTTP statuses or FAULTS; `None` stops them."""
        with self._lock:
            self._chaos = (rates, random.Random(seed)) if rates else None

    def send_status_callbacks(self, token: str | None) -> None:
        """Post a signed `sent` status callback to each accepted message's StatusCallback URL (as Twilio does)."""
        self._callback_token = token

    def add_twilio_media(self, data: bytes, content_type: str, auth: tuple[str, str]) -> str:
        """A file as Twilio keeps an inbound MMS/WhatsApp attachment, behind HTTP basic auth; its MediaUrl."""
        account = auth[0]
        path = f"/2010-04-01/Accounts/{account}/Messages/MM{next(self._ids):032x}/Media/ME{next(self._ids):032x}"
        with self._lock:
            self.twilio_media[path] = (data, content_type)
            self.twilio_auth = auth
        return self.url + path

    def add_telegram_file(self, file_id: str, data: bytes, token: str, *, too_big: bool = False) -> None:
        """A file a Telegram user sent, for getFile (`too_big`: over the Bot API's 20 MB for bots)."""
        with self._lock:
            self.telegram_files[file_id] = (data, "" if too_big else f"photos/file_{next(self._ids)}.jpg")
            self.telegram_token = token

    def media_downloads(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "GET" and ("/Media/" in r.path or r.path.startswith("/file/"))]

    def clear(self) -> None:
        with self._lock:
            self.twilio_media.clear()
            self.telegram_files.clear()
            self.twilio_auth = self.telegram_token = None
            self.requests.clear()
            self.scripted.clear()
            self.accepted.clear()
            self.faults_injected.clear()
            self._chaos = None
            self._callback_token = None
            self.send_delay = 0.0
            self.silent_seconds = 30.0
            self.keep_queued = False
            self.sender_rate = None
            self.sends_by_sender.clear()
            self._buckets.clear()
            self.rate_refusals = 0
            self._chat_message_ids.clear()

    # --- queries ------------------------------------------------------------------------------
    def twilio_messages(self) -> list[Recorded]:
        """Send requests (POSTs) to Twilio's Messages resource, answered or not."""
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/Messages.json")]

    def send_rate(self, sender: str, since: float = 0.0) -> float:
        """Messages per second from `sender` (a From number or a Messaging Service SID) from `since` (a
        time.monotonic() value): the slope of the send times by their rank (least squares), so that one send
        held up at either end does not skew it."""
        times = [t for t in self.sends_by_sender.get(sender, []) if t >= since]
        n = len(times)
        if n < 2:
            return 0.0
        mean_rank, mean_time = (n - 1) / 2, sum(times) / n
        covariance = sum((i - mean_rank) * (t - mean_time) for i, t in enumerate(times))
        seconds_per_send = covariance / sum((i - mean_rank) ** 2 for i in range(n))
        return 1 / seconds_per_send if seconds_per_send > 0 else float("inf")

    def twilio_lookups(self) -> list[Recorded]:
        """Reads of Twilio's Messages list."""
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/Messages.json")]

    def telegram_calls(self, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith("/bot")
                and (method is None or r.path.rsplit("/", 1)[-1] == method)]

    def callbacks(self) -> list[Recorded]:
        return [r for r in self.requests if not r.path.startswith(("/bot", "/2010-04-01"))]

    def wait_for(self, predicate, timeout: float = 10.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [r for r in list(self.requests) if predicate(r)]
            if hits:
                return hits
            time.sleep(0.02)
        return []

    # --- the server ---------------------------------------------------------------------------
    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                self._serve(b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._serve(self.rfile.read(length))

            def _serve(self, body: bytes) -> None:
                ctype = self.headers.get("Content-Type", "")
                parsed = urlparse(self.path)
                record = Recorded(self.command, parsed.path, dict(self.headers.items()), body,
                                  query=parse_qs(parsed.query, keep_blank_values=True))
                if "application/x-www-form-urlencoded" in ctype:
                    record.form = parse_qs(body.decode(), keep_blank_values=True)
                elif "json" in ctype and body:
                    try:
                        record.json = json.loads(body)
                    except json.JSONDecodeError:
                        record.json = None
                elif "multipart/form-data" in ctype:
                    record.json = _multipart_fields(body, ctype)
                with fake._lock:
                    fake.requests.append(record)
                    scripted = next((s for s in fake.scripted if record.path.startswith(s[0])
                                     and s[1] in (None, record.method)), None)
                    if scripted is not None:
                        fake.scripted.remove(scripted)
                    elif fake._chaos is not None and _is_twilio_send(record):
                        scripted = fake._draw_fault(fake._chaos)
                    if _is_twilio_send(record):
                        scripted = fake._count_sender(record) or scripted
                is_send = _is_twilio_send(record) or re.search(r"/send\w+$", record.path) is not None
                if is_send and fake.send_delay:
                    time.sleep(fake.send_delay)
                if scripted is not None and isinstance(scripted[2], str):
                    self._fault(scripted[2], record)
                    return
                if scripted is not None:
                    _, _, status, payload, headers = scripted
                else:
                    status, payload, headers = fake._answer(record)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                if "Content-Type" not in headers:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _fault(self, fault: str, record: Recorded) -> None:
                with fake._lock:
                    fake.faults_injected[fault] = fake.faults_injected.get(fault, 0) + 1
                if fault != "reset":
                    fake._answer(record)  # accepted and recorded, but the client never hears of it
                if fault == "accept_then_silent":
                    time.sleep(fake.silent_seconds)
                # An RST instead of an answer: SO_LINGER 0 then close.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

        return Handler

    def _count_sender(self, record: Recorded):
        """Record the send's time for its sender; a scripted 429 when over `sender_rate` (called under the lock)."""
        sender = record.value("MessagingServiceSid") or record.value("From") or ""
        now = time.monotonic()
        times = self.sends_by_sender.setdefault(sender, [])
        times.append(now)
        if self.sender_rate is None:
            return None
        tokens, when = self._buckets.get(sender, (self.sender_rate, now))
        tokens = min(self.sender_rate, tokens + (now - when) * self.sender_rate)
        self._buckets[sender] = (tokens - 1, now) if tokens >= 1 else (tokens, now)
        if tokens >= 1:
            return None
        self.rate_refusals += 1
        return ("", "POST", 429, {"code": 20429, "message": "Too Many Requests", "status": 429}, {"Retry-After": "1"})

    def _draw_fault(self, chaos: tuple[dict[str, float], random.Random]):
        rates, rng = chaos
        draw, edge = rng.random(), 0.0
        for kind, rate in rates.items():
            edge += rate
            if draw < edge:
                if kind in FAULTS:
                    return ("", "POST", kind, None, {})
                status = int(kind)
                headers = {"Retry-After": "1"} if status == 429 else {}
                return ("", "POST", status, {"code": 20000 + status, "message": "injected", "status": status},
                        headers)
        return None

    def _answer(self, record: Recorded) -> tuple[int, Any, dict[str, str]]:
        n = next(self._ids)
        if record.method == "GET" and (record.path in self.twilio_media or "/Media/" in record.path):
            return self._twilio_media(record)
        if record.method == "GET" and record.path.startswith("/file/bot"):
            return self._telegram_file(record)
        if record.path.endswith("/Messages.json"):
            account = record.path.split("/")[3]
            if record.method == "GET":
                return 200, self._list(account, record), {}
            service = record.value("MessagingServiceSid")
            if not service and not record.value("From"):
                return 400, {"code": 21603, "message": "A 'From' phone number is required.", "status": 400}, {}
            # A Messaging Service sends from a number of its pool, which the caller does not choose.
            sender = record.value("From") or (POOL_NUMBER if not (record.value("To") or "").startswith("whatsapp:")
                                              else "whatsapp:" + POOL_NUMBER)
            message = Accepted(f"SM{n:032x}", record.value("To") or "", sender, record.value("Body") or "",
                               record.value("StatusCallback") or "", datetime.now(UTC), service)
            with self._lock:
                self.accepted.append(message)
            if self._callback_token and message.status_callback:
                threading.Thread(target=self._post_status_callback, args=(message, account, self._callback_token),
                                 daemon=True).start()
            return 201, {**message.resource(account), "status": "queued"}, {}
        match = re.match(r"^/bot[^/]+/(\w+)$", record.path)
        if match:
            method = match.group(1)
            if method in ("sendMessage", "sendPhoto"):
                chat_id = record.value("chat_id")
                with self._lock:
                    message_id = next(self._chat_message_ids.setdefault(chat_id or "", itertools.count(1)))
                return 200, {"ok": True, "result": {
                    "message_id": message_id, "date": int(time.time()),
                    "chat": {"id": int(chat_id) if chat_id else 0, "type": "private"},
                    "text": record.value("text") or record.value("caption") or ""}}, {}
            if method == "getFile":
                return self._get_file(record)
            if method == "getUpdates":
                updates, self.updates = self.updates, []
                return 200, {"ok": True, "result": updates}, {}
            if method == "getMe":
                return 200, {"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "lastmile",
                                                    "username": "lastmile_bot"}}, {}
            return 200, {"ok": True, "result": True}, {}
        return 200, {"ok": True}, {}

    def _twilio_media(self, record: Recorded) -> tuple[int, Any, dict[str, str]]:
        """Twilio's media with HTTP basic auth enforced: 401 without the account's SID and auth token."""
        import base64

        found = self.twilio_media.get(record.path)
        expected = self.twilio_auth
        given = record.headers.get("Authorization", "")
        if expected is None or given != "Basic " + base64.b64encode(":".join(expected).encode()).decode():
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}, {"WWW-Authenticate": 'Basic realm="Twilio API"'}
        if found is None:
            return 404, {"code": 20404, "message": "The requested resource was not found", "status": 404}, {}
        data, content_type = found
        return 200, data, {"Content-Type": content_type}

    def _get_file(self, record: Recorded) -> tuple[int, Any, dict[str, str]]:
        file_id = record.value("file_id") or ""
        found = self.telegram_files.get(file_id)
        if found is None:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"}, {}
        data, path = found
        if not path:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: file is too big"}, {}
        return 200, {"ok": True, "result": {"file_id": file_id, "file_unique_id": file_id[:8], "file_size": len(data),
                                            "file_path": path}}, {}

    def _telegram_file(self, record: Recorded) -> tuple[int, Any, dict[str, str]]:
        """/file/bot<token>/<file_path>: the bytes, to the bot's own token only (Telegram answers 404 otherwise)."""
        token, _, path = record.path.removeprefix("/file/bot").partition("/")
        found = next((data for data, file_path in self.telegram_files.values() if file_path and file_path == path), None)
        if found is None or token != self.telegram_token:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}, {}
        return 200, found, {"Content-Type": "application/octet-stream"}

    def _list(self, account: str, record: Recorded) -> dict[str, Any]:
        """Twilio's Messages list: filters To, From, DateSent (a day), DateSent> / DateSent< (inclusive),
        newest first, one page of PageSize (50 by default)."""
        q = {key: values[0] for key, values in record.query.items()}
        with self._lock:
            rows = list(self.accepted)
        rows = [m for m in rows if (not q.get("To") or m.to == q["To"]) and (not q.get("From") or m.from_ == q["From"])]
        if self.keep_queued and any(key.startswith("DateSent") for key in q):
            rows = []  # a queued message has no DateSent yet
        if q.get("DateSent"):
            rows = [m for m in rows if m.created.strftime("%Y-%m-%d") == q["DateSent"][:10]]
        if q.get("DateSent>"):
            rows = [m for m in rows if _on_or_after(m.created, q["DateSent>"])]
        if q.get("DateSent<"):
            rows = [m for m in rows if _on_or_before(m.created, q["DateSent<"])]
        rows.sort(key=lambda m: m.created, reverse=True)
        size = int(q.get("PageSize") or 50)
        uri = record.path
        return {"messages": [m.resource(account, queued=self.keep_queued) for m in rows[:size]], "page": 0, "page_size": size,
                "start": 0, "end": max(0, min(size, len(rows)) - 1), "uri": uri, "first_page_uri": uri,
                "next_page_uri": None, "previous_page_uri": None}

    def _post_status_callback(self, message: Accepted, account: str, token: str) -> None:
        import requests
        from twilio.request_validator import RequestValidator

        time.sleep(0.2)
        params = {"MessageSid": message.sid, "MessageStatus": "sent", "AccountSid": account, "To": message.to,
                  "From": message.from_, "ApiVersion": "2010-04-01"}
        signature = RequestValidator(token).compute_signature(message.status_callback, params)
        for _ in range(3):
            try:
                requests.post(message.status_callback, data=params, headers={"X-Twilio-Signature": signature},
                              timeout=10)
                return
            except requests.RequestException:
                time.sleep(1)


def _is_twilio_send(record: Recorded) -> bool:
    return record.method == "POST" and record.path.endswith("/Messages.json")


def _on_or_after(when: datetime, bound: str) -> bool:
    if "T" not in bound:
        return when.strftime("%Y-%m-%d") >= bound[:10]
    return when >= datetime.strptime(bound, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _on_or_before(when: datetime, bound: str) -> bool:
    if "T" not in bound:
        return when.strftime("%Y-%m-%d") <= bound[:10]
    return when <= datetime.strptime(bound, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _multipart_fields(body: bytes, ctype: str) -> dict[str, str]:
    boundary = ctype.split("boundary=")[-1].strip('"').encode()
    fields = {}
    for part in body.split(b"--" + boundary):
        head, _, value = part.partition(b"\r\n\r\n")
        match = re.search(rb'name="([^"]+)"', head)
        if match and b"filename=" not in head:
            fields[match.group(1).decode()] = value.rstrip(b"\r\n").decode(errors="replace")
    return fields
