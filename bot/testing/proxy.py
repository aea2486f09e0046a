"""A TCP proxy that can cut a database away: the outage tests (tests/test_spool.py, tests/test_cluster.py) and
bench/outage.py put it in front of PostgreSQL."""

from __future__ import annotations

import socket
import threading


class CuttableProxy:
    """A TCP proxy in front of PostgreSQL: `cut()` resets every connection and refuses new ones until
    `restore()`, as a server that went away does."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self.lock:
                self.pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def cut(self) -> None:
        self.up = False
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for client, upstream in pairs:
            _reset(client)
            _reset(upstream)

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def _reset(sock: socket.socket) -> None:
    """Abort the connection (RST). shutdown() first: a plain close() from another thread neither wakes the
    pump blocked in recv() on this socket nor ends the connection, and PostgreSQL would keep the backend —
    with its locks, if it was inside a transaction — for as long as the proxy lives."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    _close(sock)


def _close(sock: socket.socket) -> None:
    for end in (lambda: sock.shutdown(socket.SHUT_RDWR), sock.close):
        try:
            end()
        except OSError:
            pass


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy one direction; when it ends, end both, so the other direction's pump wakes and the peer on the
    far side sees the close (the database backend of a killed client ends and lets go of its locks)."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        _close(source)
        _close(sink)
