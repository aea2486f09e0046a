"""/metrics: Prometheus text that parses, counters that add up to what happened, queue gauges read from the
database, no tokens or numbers in labels; under gunicorn, every worker's counters in one scrape."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import post_twilio, twilio_params
from tests.metrics_helpers import scrape, total
from tests.servers import lastmile_serve, server_env


def test_metrics_count_requests_sends_and_queues(client, srv, providers, seeded):
    before = scrape(client.get("/metrics").get_data(as_text=True))
    for n in range(3):
        assert post_twilio(client, twilio_params("+15551230001", f"where is my order? {n}")).status_code == 200
    srv.dispatcher.drain()
    client.get("/t/not-a-real-token")
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    after = scrape(response.get_data(as_text=True))

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert grew("lastmile_http_request_seconds_count", route="/webhooks/twilio", status="200") == 3
    assert grew("lastmile_inbound_messages_total", channel="sms", intent="track_order") == 3
    assert grew("lastmile_nlu_parse_seconds_count") == 3
    assert grew("lastmile_sends_total", channel="sms", outcome="sent") == 3
    assert total(after, "lastmile_outbox_rows", status="sent") >= 3
    assert total(after, "lastmile_outbox_oldest_pending_seconds") == 0
    assert total(after, "lastmile_database_up") == 1
    text = response.get_data(as_text=True)
    assert "not-a-real-token" not in text and "+1555" not in text  # route templates, never values


@pytest.mark.slow
def test_gunicorn_workers_add_up_in_one_scrape(tmp_path):
    with lastmile_serve(tmp_path, server_env(tmp_path), workers=2) as base:
        for _ in range(40):  # keep-alive off: connections spread over both workers
            assert requests.get(base + "/healthz", timeout=5).status_code == 200
        seen = []
        for _ in range(20):
            samples = scrape(requests.get(base + "/metrics", timeout=5).text)
            seen.append(total(samples, "lastmile_http_request_seconds_count", route="/healthz"))
        assert min(seen) >= 41  # every worker's requests are in every scrape, whichever worker answers
        assert total(samples, "lastmile_database_up") == 1
    assert not (tmp_path / ".gunicorn").exists()  # no control socket in $HOME: two nodes on one host share it


def test_notification_decisions_are_counted(client, srv, auth):
    from tests.notify_helpers import eta, notifications, post_event, put_order

    before = scrape(client.get("/metrics").get_data(as_text=True))
    put_order(client, auth)
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
    [(kind, status, reason)] = notifications(srv)
    after = scrape(client.get("/metrics").get_data(as_text=True))
    labels = {"kind": kind, "status": status, "reason": reason or ""}
    assert total(after, "lastmile_notifications_total", **labels) - total(
        before, "lastmile_notifications_total", **labels) == 1


# --- the Grafana dashboard (deploy/grafana-dashboard.json) ------------------------------------------------
DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana-dashboard.json"
METRIC_NAME = re.compile(r"\blastmile_[a-z0-9_]+\b")
GROUPING = re.compile(r"\bby\s*\(([^)]*)\)")
MATCHER = re.compile(r"\{([^}]*)\}")


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_dashboard_queries_name_only_metrics_and_labels_that_metrics_exports(client, srv, auth, seeded):
    """Every metric a dashboard query names is in a real /metrics scrape, and every label it groups or
    filters by is on that metric's samples (a renamed metric or label breaks this test, not a panel)."""
    from tests.notify_helpers import eta, post_event, put_order

    assert post_twilio(client, twilio_params("+15551230001", "where is my order?")).status_code == 200
    assert post_twilio(client, twilio_params("+15551230002", "/human_handoff")).status_code == 200
    put_order(client, auth)
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
    srv.dispatcher.drain()
    labels_of: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True)):
        for sample in family.samples:
            labels_of.setdefault(sample.name, set()).update(sample.labels)
    queries = dashboard_queries()
    assert len(queries) >= 10
    for query in queries:
        names = METRIC_NAME.findall(query)
        assert names, f"query names no lastmile metric: {query}"
        for name in names:
            assert name in labels_of, f"{name} (in {query!r}) is not in /metrics"
        used = {label.strip() for group in GROUPING.findall(query) for label in group.split(",") if label.strip()}
        used |= {m.split("=")[0].rstrip("!~").strip() for group in MATCHER.findall(query)
                 for m in group.split(",") if m.strip()}
        available = set().union(*(labels_of[name] for name in names)) | {"le"}
        assert used <= available, f"{query!r} uses labels {used - available} that its metrics do not have"

