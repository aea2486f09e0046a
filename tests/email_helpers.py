"""Helpers for the email tests (no tests here): local SMTP servers (aiosmtpd keeping what it receives, with
scripted refusals (421, 550) and a dropped connection during DATA; raw sockets that close at once or never
speak), the email settings that point at them, and an order whose customer has an email address."""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

import pytest
from aiosmtpd.controller import Controller

from deploy.cluster import free_port

DROP = "drop"  # a scripted DATA answer: close the connection instead of answering


class Mailbox:
    """An aiosmtpd handler. `rcpt_replies` and `data_replies` are consumed one per transaction ("550 ...",
    "421 ...", DROP); once empty, everything is accepted and kept in `messages`."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.rcpt_replies: list[str] = []
        self.data_replies: list[str] = []
        self.transactions = 0
        self.logins: list[object] = []  # who had logged in (AUTH) for each message kept

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's name
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.transactions += 1
        if self.data_replies:
            reply = self.data_replies.pop(0)
            if reply != DROP:
                return reply
            server.transport.close()
            return "421 closing"  # never reaches the client: the connection is gone
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.logins.append(session.auth_data)
        self.messages.append(message_from_bytes(envelope.content, policy=default))
        return "250 2.0.0 Ok: queued"


class SmtpServer:
    """aiosmtpd on a free local port; `smtp_parameters` go to aiosmtpd's SMTP (auth_required, ...)."""

    def __init__(self, **smtp_parameters) -> None:
        self.mailbox = Mailbox()
        self.port = free_port()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port, **smtp_parameters)

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def smtp():
    """A local SMTP server keeping what it receives (a fixture: import it where a test names it)."""
    server = SmtpServer().start()
    yield server
    server.stop()


class SilentServer:
    """A TCP server that accepts and then closes at once (`close=True`) or never says a word (a hung relay)."""

    def __init__(self, *, close: bool) -> None:
        self.close = close
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> SilentServer:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            if self.close:
                connection.close()
            else:
                self._held.append(connection)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for connection in self._held:
            connection.close()
        self.sock.close()


def password_checker(login: bytes, password: bytes):
    """An aiosmtpd authenticator accepting one login (AUTH PLAIN or LOGIN)."""
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (login, password)
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)

    return authenticate


def email_settings(port: int, **extra) -> dict:
    return {"host": "127.0.0.1", "port": port, "security": "none", "timeout": 5,
            "from_address": "Carrier deliveries <deliveries@carrier.example.test>", **extra}


ADDRESS = "ana@example.com"


def put_email_order(client, auth, ref="LM-1", *, email=ADDRESS, locale="en", phone="+15557770001", **extra):
    """PUT an order whose customer has `email` (and `phone`, unless None); the order as answered."""
    body = {"customer": {"name": "Ana", "locale": locale, **({"phone": phone} if phone else {}),
                         **({"email": email} if email else {})},
            "address": {"line1": "1 Main St", "postcode": "10001", "country": "US"}, **extra}
    response = client.put(f"/api/v1/orders/{ref}", json=body, headers=auth)
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()["order"]


@contextmanager
def own_app(config):
    """An app of its own config (the policy is read at start-up), its client and a carrier API key."""
    from app import create_app
    from bot.web.api_keys import create_api_key

    app = create_app(config)
    srv = app.extensions["lastmile"]
    try:
        with srv.db.session() as session:
            auth = {"Authorization": f"Bearer {create_api_key(session, 'carrier')}"}
        yield app.test_client(), srv, auth
    finally:
        if srv.dispatcher is not None:
            srv.dispatcher.stop()
        srv.db.dispose()
