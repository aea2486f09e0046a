"""Prometheus metrics at `/metrics`: counters and histograms updated where things happen, gauges read from the
database at scrape time (so every node reports the same queue, and nothing drifts).

Under gunicorn, `lastmile serve` points PROMETHEUS_MULTIPROC_DIR at a fresh folder before anything imports
prometheus_client, so the workers' counters add up in one scrape. Labels are bounded: channel, intent, route
templates (never a token or a phone number), provider error codes."""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from db.models import Handoff, OutboxItem, utcnow

INBOUND = Counter("lastmile_inbound_messages_total", "Inbound messages handled, by channel and intent",
                  ["channel", "intent"])
NLU_SECONDS = Histogram("lastmile_nlu_parse_seconds", "Time to understand one message",
                        buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
NLU_FALLBACKS = Counter("lastmile_nlu_fallbacks_total", "Messages below the confidence threshold")
SENDS = Counter("lastmile_sends_total", "Outbox send attempts, by channel, outcome and provider error code",
                ["channel", "outcome", "code"])
NOTIFICATIONS = Counter("lastmile_notifications_total", "Notification decisions, by kind, status and reason",
                        ["kind", "status", "reason"])
HTTP_SECONDS = Histogram("lastmile_http_request_seconds", "HTTP requests, by method, route template and status",
                         ["method", "route", "status"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))


class DatabaseCollector:
    """Queue sizes read at scrape time: outbox rows by status, the oldest pending row's age, the support queue."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def describe(self) -> list:
        return []

    def collect(self):
        rows = GaugeMetricFamily("lastmile_outbox_rows", "Outbox rows by status", labels=["status"])
        oldest = GaugeMetricFamily("lastmile_outbox_oldest_pending_seconds", "Age of the oldest row not yet sent")
        queue = GaugeMetricFamily("lastmile_handoff_queue", "Conversations waiting for or with an agent",
                                  labels=["status"])
        up = GaugeMetricFamily("lastmile_database_up", "1 when the database answered this scrape")
        try:
            now = utcnow()
            with self.db.session() as session:
                for status, count in session.execute(
                        select(OutboxItem.status, func.count()).group_by(OutboxItem.status)):
                    rows.add_metric([status], count)
                first = session.scalar(select(func.min(OutboxItem.created_at)).where(
                    OutboxItem.status.in_(("pending", "sending", "unknown"))))
                oldest.add_metric([], (now - first).total_seconds() if first else 0.0)
                for status, count in session.execute(
                        select(Handoff.status, func.count()).where(Handoff.closed_at.is_(None))
                        .group_by(Handoff.status)):
                    queue.add_metric([status], count)
            up.add_metric([], 1)
        except Exception:  # noqa: BLE001 - a scrape during an outage still answers, and says so
            up.add_metric([], 0)
            yield up
            return
        yield from (rows, oldest, queue, up)


def init_app(app: Flask, db: Any) -> None:
    """Time every request, and serve `/metrics` (this process's or all gunicorn workers' counters)."""
    collector = DatabaseCollector(db)

    @app.before_request
    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        if started is not None:
            route = request.url_rule.rule if request.url_rule is not None else "unmatched"
            HTTP_SECONDS.labels(request.method, route, str(response.status_code)).observe(
                time.perf_counter() - started)
        return response

    @app.get("/metrics")
    def metrics() -> Response:
        registry = CollectorRegistry()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(registry)
        else:
            registry = REGISTRY  # one process (tests, `make run` without gunicorn workers)
        output = generate_latest(registry) + generate_latest(_Single(collector))
        return Response(output, mimetype=CONTENT_TYPE_LATEST)


class _Single(CollectorRegistry):
    """A registry with one collector, built per scrape (the database gauges are not process metrics)."""

    def __init__(self, collector: DatabaseCollector) -> None:
        super().__init__(auto_describe=False)
        self.register(collector)
