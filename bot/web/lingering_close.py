"""Closing "Connection: close" sockets without stalling gunicorn's event loop.

gunicorn's gthread worker (27.0) closes such a connection gracefully (RFC 9112 section 9.6): it sends FIN,
then reads until the client closes its side, for up to 2 s, on the worker's main thread. While it waits, no
kept-alive connection of that worker is served: a client that keeps its socket open after a `Connection:
close` answer (many do until they collect it; a hostile one on purpose) held every other client of the worker
for 2 s. Measured with bench/fuzz.py: 45 of 6,000 responses took 1.9-2.2 s, all of them waiting before the
app saw them, none between 0.5 and 1.9 s.

`LingeringCloser.close` does the same close, but only the FIN is sent on the caller's thread; the wait for
the client happens on one background thread (per process) for all lingering sockets at once.
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
import time


class LingeringCloser:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._selector: selectors.BaseSelector | None = None
        self._waker: tuple[socket.socket, socket.socket] | None = None
        self._lingering: dict[socket.socket, list[float]] = {}  # socket -> [deadline, bytes left to drain]

    def close(self, sock: socket.socket, timeout: float = 2.0, max_drain: int = 65536) -> None:
        """gunicorn.util.close_graceful's contract, without blocking the caller."""
        try:
            sock.shutdown(socket.SHUT_WR)  # the answer is complete: the client sees the end now
            sock.setblocking(False)
        except OSError:
            _close(sock)
            return
        with self._lock:
            self._ensure_thread()
            assert self._selector is not None and self._waker is not None
            self._lingering[sock] = [time.monotonic() + timeout, float(max_drain)]
            try:
                self._selector.register(sock, selectors.EVENT_READ)
            except (ValueError, KeyError, OSError):
                self._lingering.pop(sock, None)
                _close(sock)
                return
            self._waker[1].send(b"\0")

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        # first use in this process (gunicorn forks workers; a thread does not survive the fork)
        self._pid, self._lingering = os.getpid(), {}
        self._selector = selectors.DefaultSelector()
        self._waker = socket.socketpair()
        self._waker[0].setblocking(False)
        self._selector.register(self._waker[0], selectors.EVENT_READ)
        threading.Thread(target=self._run, args=(self._selector, self._waker[0]), name="lingering-close",
                         daemon=True).start()

    def _run(self, selector: selectors.BaseSelector, waker: socket.socket) -> None:
        while True:
            with self._lock:
                deadlines = [entry[0] for entry in self._lingering.values()]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            for key, _ in selector.select(timeout):
                if key.fileobj is waker:
                    try:
                        waker.recv(4096)
                    except OSError:
                        pass
                    continue
                self._drain(key.fileobj)  # type: ignore[arg-type]
            now = time.monotonic()
            with self._lock:
                expired = [sock for sock, (deadline, _) in self._lingering.items() if deadline <= now]
            for sock in expired:
                self._finish(sock)

    def _drain(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        with self._lock:
            entry = self._lingering.get(sock)
            if entry is None:
                return
            entry[1] -= len(data)
            done = not data or entry[1] <= 0
        if done:
            self._finish(sock)

    def _finish(self, sock: socket.socket) -> None:
        with self._lock:
            if self._lingering.pop(sock, None) is None:
                return
            assert self._selector is not None
            try:
                self._selector.unregister(sock)
            except (KeyError, ValueError, OSError):
                pass
        _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


def install() -> None:
    """Make gunicorn's graceful close use a `LingeringCloser` (call before the workers fork)."""
    from gunicorn import util

    if hasattr(util, "close_graceful") and not isinstance(getattr(util.close_graceful, "__self__", None),
                                                           LingeringCloser):
        util.close_graceful = LingeringCloser().close
