"""The production topology as plain processes (deploy/cluster.py): migrate, two web nodes, two Celery workers,
one beat, on the local PostgreSQL and Redis. Signed webhooks go through both nodes while one is killed with
-9 and restarted: every accepted message is answered exactly once, and each node's /metrics parses and adds
up with the database."""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import create_engine, make_url, text

from bot.testing.proxy import CuttableProxy
from db.session import normalize_url
from deploy.cluster import Cluster
from tests.conftest import (
    PUBLIC_URL,
    SMS_FROM,
    TWILIO_SID,
    TWILIO_TOKEN,
    twilio_params,
    twilio_signature,
)
from tests.metrics_helpers import scrape, total

DATABASE = os.environ.get("TEST_DATABASE_URL")
REDIS = os.environ.get("TEST_REDIS_URL")
pytestmark = [pytest.mark.skipif(not (DATABASE and REDIS), reason="needs TEST_DATABASE_URL and TEST_REDIS_URL"),
              pytest.mark.xdist_group("redis")]  # shares Redis's queue and the beat's key with tests/test_celery_mode.py
SCHEMA = "cluster_test"


@pytest.fixture
def proxy():
    """The cluster reaches PostgreSQL through a TCP proxy the test can cut, as a database that went away."""
    url = make_url(normalize_url(DATABASE))
    cuttable = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    yield cuttable
    cuttable.close()


@pytest.fixture
def cluster_url(proxy):
    admin = create_engine(normalize_url(DATABASE))
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    through_proxy = make_url(normalize_url(DATABASE)).set(host="127.0.0.1", port=proxy.port)
    url = through_proxy.render_as_string(hide_password=False)
    yield url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{SCHEMA}"
    with admin.begin() as connection:
        connection.execute(text("SET LOCAL lock_timeout = '30s'"))  # a backend left holding locks fails here, loud
        connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
    admin.dispose()


def _ready_statuses(cluster: Cluster) -> set[int | None]:
    statuses: set[int | None] = set()
    for node in cluster.web_names():
        try:
            statuses.add(requests.get(cluster.url(node) + "/readyz", timeout=10).status_code)
        except requests.RequestException:
            statuses.add(None)
    return statuses


def _until(condition, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


def _post(base: str, sender: str, n: int) -> int | None:
    params = twilio_params(sender, f"hello, where is my parcel? ({n})")
    headers = {"X-Twilio-Signature": twilio_signature("/webhooks/twilio", params),
               "Content-Type": "application/x-www-form-urlencoded"}
    try:
        return requests.post(base + "/webhooks/twilio", data=urlencode(params), headers=headers, timeout=10).status_code
    except requests.RequestException:
        return None


@pytest.mark.timeout(600)  # five processes start, one twice, on a loaded 2-core machine
def test_two_nodes_one_killed_every_accepted_message_answered_once(cluster_url, proxy, providers, tmp_path):
    cluster = Cluster(cluster_url, REDIS, workdir=tmp_path, env={
        "LASTMILE_CELERY_NAMESPACE": f"test-cluster-{uuid.uuid4().hex[:12]}",  # its own queue and beat key
        "TWILIO_API_BASE_URL": providers.url, "TWILIO_ACCOUNT_SID": TWILIO_SID, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_SMS_FROM": SMS_FROM, "LASTMILE_PUBLIC_BASE_URL": PUBLIC_URL})
    accepted: dict[str, str] = {}
    after_restart: Counter = Counter()
    try:
        cluster.start()
        for n in range(120):
            if n == 40:
                cluster.kill("web1")
            if n == 70:
                cluster.start_web("web1")
                cluster.wait_ready("web1")
            node = "web1" if n % 2 else "web2"
            sender = f"+1555300{n:04d}"
            if _post(cluster.url(node), sender, n) == 200:
                accepted[sender] = node
                if n >= 70:
                    after_restart[node] += 1
        assert len(accepted) >= 100  # only web1's share while it was down is refused

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            replies = Counter(r.value("To") for r in providers.twilio_messages())
            if all(replies[s] >= 1 for s in accepted):
                break
            time.sleep(0.5)
        time.sleep(2)  # a duplicate, if any, would arrive now
        replies = Counter(r.value("To") for r in providers.twilio_messages())
        assert [s for s in accepted if replies[s] != 1] == []  # each accepted message answered exactly once
        assert max(replies.values()) == 1

        for node in ("web1", "web2"):
            samples = scrape(requests.get(cluster.url(node) + "/metrics", timeout=10).text)
            assert total(samples, "lastmile_outbox_rows", status="sent") == sum(replies.values())
            counted = total(samples, "lastmile_http_request_seconds_count", route="/webhooks/twilio", status="200")
            expected = after_restart["web1"] if node == "web1" else sum(1 for v in accepted.values() if v == "web2")
            assert counted == expected, node  # web1's counters started again with its new process

        proxy.cut()  # the database goes away: not ready (503), but alive; back: ready again
        assert _until(lambda: _ready_statuses(cluster) == {503})
        assert all(requests.get(cluster.url(n) + "/healthz", timeout=10).status_code == 200
                   for n in cluster.web_names())
        proxy.restore()
        assert _until(lambda: _ready_statuses(cluster) == {200})
    finally:
        cluster.stop()
