"""A local fake HTTP server standing in for Twilio's and Telegram's APIs and a carrier's callback URL.

It records every request and answers like the real API; tests can script failures
(`server.fail_next(status, body, headers)`) to exercise retries, Retry-After and permanent errors.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    form: dict[str, list[str]] = field(default_factory=dict)
    json: Any = None

    def value(self, key: str) -> str | None:
        """A form field (Twilio) or JSON field (Telegram)."""
        if key in self.form:
            return self.form[key][0]
        if isinstance(self.json, dict) and key in self.json:
            return self.json[key]
        return None


class FakeProviders:
    """Twilio (`/2010-04-01/...`), Telegram (`/bot<token>/<method>`) and anything else (callbacks)."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.scripted: list[tuple[str, int, Any, dict[str, str]]] = []
        self.updates: list[dict[str, Any]] = []  # served by Telegram getUpdates
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        handler = self._handler_class()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeProviders:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, status: int, body: Any = None, headers: dict[str, str] | None = None, times: int = 1,
                  *, path: str = "") -> None:
        """Answer the next `times` requests (whose path starts with `path`) with this status."""
        with self._lock:
            self.scripted.extend([(path, status, body, headers or {})] * times)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self.scripted.clear()

    # --- queries ------------------------------------------------------------------------------
    def twilio_messages(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/Messages.json")]

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
                record = Recorded(self.command, urlparse(self.path).path, dict(self.headers.items()), body)
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
                    scripted = next((s for s in fake.scripted if record.path.startswith(s[0])), None)
                    if scripted is not None:
                        fake.scripted.remove(scripted)
                if scripted is not None:
                    _, status, payload, headers = scripted
                else:
                    status, payload, headers = fake._answer(record)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _answer(self, record: Recorded) -> tuple[int, Any, dict[str, str]]:
        n = next(self._ids)
        if record.path.endswith("/Messages.json"):
            return 201, {"sid": f"SM{n:032x}", "status": "queued", "to": record.value("To"),
                         "from": record.value("From"), "body": record.value("Body"), "num_segments": "1"}, {}
        match = re.match(r"^/bot[^/]+/(\w+)$", record.path)
        if match:
            method = match.group(1)
            if method in ("sendMessage", "sendPhoto"):
                chat_id = record.value("chat_id")
                return 200, {"ok": True, "result": {
                    "message_id": n, "date": int(time.time()),
                    "chat": {"id": int(chat_id) if chat_id else 0, "type": "private"},
                    "text": record.value("text") or record.value("caption") or ""}}, {}
            if method == "getUpdates":
                updates, self.updates = self.updates, []
                return 200, {"ok": True, "result": updates}, {}
            if method == "getMe":
                return 200, {"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "lastmile",
                                                    "username": "lastmile_bot"}}, {}
            return 200, {"ok": True, "result": True}, {}
        return 200, {"ok": True}, {}


def _multipart_fields(body: bytes, ctype: str) -> dict[str, str]:
    boundary = ctype.split("boundary=")[-1].strip('"').encode()
    fields = {}
    for part in body.split(b"--" + boundary):
        head, _, value = part.partition(b"\r\n\r\n")
        match = re.search(rb'name="([^"]+)"', head)
        if match and b"filename=" not in head:
            fields[match.group(1).decode()] = value.rstrip(b"\r\n").decode(errors="replace")
    return fields
