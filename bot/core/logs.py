"""Logging: one line per event, as JSON (`LASTMILE_LOG_FORMAT=json`, for log pipelines) or as text, each line
carrying the request id of the HTTP request (or outbox row) it belongs to; an access line per request with
the route template, never the raw path (tracking tokens and phone numbers stay out); optional Sentry.

The request id comes from the caller's `X-Request-ID` when it is a sane token, else a new one; it is echoed
in the response, stored with every outbox row the request queued, and set again while that row is sent, so
one id follows a customer's message from the webhook to the provider call."""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, Response, g, request

REQUEST_ID = contextvars.ContextVar[str | None]("request_id", default=None)
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
access_logger = logging.getLogger("lastmile.access")


def current_request_id() -> str | None:
    return REQUEST_ID.get()


@contextmanager
def request_id(value: str | None) -> Iterator[None]:
    """Log lines inside carry `value` as their request id (the outbox sets its row's id while sending)."""
    token = REQUEST_ID.set(value)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get() or "-"
        return True


def configure(level: str = "INFO", fmt: str = "text", sentry_dsn: str = "") -> None:
    """The root handler on stderr, JSON or text; gunicorn's and werkzeug's records go through it too."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
                                           rename_fields={"asctime": "time", "levelname": "level",
                                                          "name": "logger"}))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("gunicorn.error", "gunicorn.access", "werkzeug"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    if sentry_dsn:
        _init_sentry(sentry_dsn)


def _init_sentry(dsn: str) -> None:
    try:
        import sentry_sdk
    except ImportError:
        logging.getLogger(__name__).warning("SENTRY_DSN is set but sentry-sdk is not installed "
                                            "(pip install 'lastmile[sentry]'): errors are only logged")
        return
    # No request bodies, no personal data: message texts and phone numbers stay in our database.
    sentry_sdk.init(dsn=dsn, send_default_pii=False, max_request_body_size="never", traces_sample_rate=0.0)


def init_app(app: Flask) -> None:
    """Request ids in, out and in every log line; one access line per request."""

    @app.before_request
    def _begin() -> None:
        supplied = request.headers.get("X-Request-ID", "")
        value = supplied if _SANE_ID.match(supplied) else uuid.uuid4().hex
        g.request_id_token = REQUEST_ID.set(value)
        g.request_started = time.perf_counter()

    @app.after_request
    def _end(response: Response) -> Response:
        value = REQUEST_ID.get()
        if value:
            response.headers["X-Request-ID"] = value
        started = g.get("request_started")
        if started is not None and app.config["LASTMILE"]["logging"]["access_log"]:
            route = request.url_rule.rule if request.url_rule is not None else "unmatched"
            access_logger.info("%s %s %s %.1fms", request.method, route, response.status_code,
                               (time.perf_counter() - started) * 1000)
        return response

    @app.teardown_request
    def _reset(_exc: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            REQUEST_ID.reset(token)
