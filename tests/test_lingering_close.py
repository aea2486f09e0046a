"""A client that keeps its socket open after a `Connection: close` answer does not hold up the others.

gunicorn's gthread worker waits (up to 2 s) for such a client to close, on the thread that serves every
kept-alive connection of the worker; bot/lingering_close.py moves the wait off that thread. Measured against a
real `lastmile serve` with one worker."""

from __future__ import annotations

import http.client
import socket
import time
from urllib.parse import urlsplit

import pytest

from tests.servers import lastmile_serve, server_env


def _answer_then_keep_open(host: str, port: int) -> tuple[socket.socket, float]:
    """Ask with `Connection: close`, read the whole answer, keep the socket open; the time the server's
    end of the connection (EOF) took to arrive after the request."""
    sock = socket.create_connection((host, port), timeout=10)
    started = time.monotonic()
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    assert received.startswith(b"HTTP/1.1 200")
    return sock, time.monotonic() - started


@pytest.mark.slow
def test_a_client_lingering_after_connection_close_does_not_stall_kept_alive_clients(tmp_path):
    with lastmile_serve(tmp_path, server_env(tmp_path), workers=1) as base:
        parts = urlsplit(base)
        kept_alive = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        kept_alive.request("GET", "/healthz")
        assert kept_alive.getresponse().read()
        lingering, waits, eofs = [], [], []
        for _ in range(5):
            sock, eof_after = _answer_then_keep_open(parts.hostname, parts.port)
            lingering.append(sock)  # open: gunicorn alone would now wait up to 2 s for us to close
            eofs.append(eof_after)
            started = time.monotonic()
            kept_alive.request("GET", "/healthz")
            response = kept_alive.getresponse()
            assert response.status == 200 and response.read()
            waits.append(time.monotonic() - started)
        for sock in lingering:
            sock.close()
        kept_alive.close()
    # Stalled, each of the five would wait about 2 s (10 s in all), or the kept-alive connection would be reset
    # when its own idle timeout ran out during the stall (seen without the fix); unstalled, milliseconds.
    assert sum(waits) < 8, waits
    assert max(eofs) < 5, eofs  # the server still ends each closed connection at once (its FIN)
