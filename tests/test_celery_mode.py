"""Celery mode: the web process commits and publishes; a real Celery worker on Redis sends."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import base_config, post_twilio, twilio_params

REDIS_URL = os.environ.get("TEST_REDIS_URL")
# One xdist group for every test of the shared Redis database; besides, each test has its own queue and beat
# key (`celery_namespace`), so a worker or beat left running by anything else on this Redis cannot take its
# tasks or its leadership.
pytestmark = [pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL is not set (CI sets it)"),
              pytest.mark.xdist_group("redis")]


@pytest.fixture
def namespace():
    import uuid

    import redis

    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"*{name}*"):  # the queue and kombu's bindings for it
        client.delete(key)


def _celery(namespace: str) -> dict[str, str]:
    return {"mode": "celery", "celery_broker_url": REDIS_URL, "celery_namespace": namespace}


def test_a_webhook_reply_is_sent_by_a_celery_worker(database_url, providers, namespace):
    from celery.contrib.testing.worker import start_worker

    from app import create_app, worker_dispatcher
    from bot.delivery import tasks
    from bot.domain.demo_orders import seed

    config = base_config(database_url, providers.url, outbox=_celery(namespace))
    app = create_app(config)
    srv = app.extensions["lastmile"]
    assert srv.dispatcher is None  # the web process does not send in celery mode
    with srv.db.session() as session:
        seed(session)
    celery = tasks.make_celery(srv.config, build=worker_dispatcher)
    celery.control.purge()
    try:
        with start_worker(celery, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            response = post_twilio(app.test_client(), twilio_params("+15551230001", "where is my order?"))
            assert response.status_code == 200
            hits = providers.wait_for(lambda r: "LM-10001" in (r.value("Body") or ""), timeout=20)
    finally:
        tasks.shutdown()
        srv.db.dispose()
    assert len(hits) == 1


def test_two_celery_worker_processes_with_a_slow_provider_send_each_row_once(database_url, providers, tmp_path,
                                                                           namespace):
    """Two `lastmile worker` processes (each its own dispatcher) and a `lastmile beat` sweep the same rows
    while every send takes longer than the lease: leases are renewed, each row is sent once, in order per
    conversation; nothing is written to the working directory."""
    import subprocess
    import sys
    import time
    from collections import Counter
    from pathlib import Path

    from sqlalchemy import select

    from app import create_app
    from bot.delivery.tasks import make_celery
    from db.models import OutboxAttempt, OutboxItem
    from tests.conftest import SMS_FROM, TWILIO_SID, TWILIO_TOKEN
    from tests.outbox_helpers import queue

    providers.send_delay = 4.0  # longer than the lease below: only renewals keep the rows
    config = base_config(database_url, providers.url, outbox=_celery(namespace))
    srv = create_app(config).extensions["lastmile"]
    for n in range(5):
        queue(srv, [f"lane{n} first", f"lane{n} second"], address=f"+1555127{n:04d}")
    make_celery(srv.config).control.purge()
    (tmp_path / "worker.yml").write_text(
        # A 3 s lease renewed every 1 s: a renewal has 2 s to get through on a loaded machine (with 1.5 s, a load
        # of 20 once let a lease lapse; the row was still sent once, recorded as sent_after_lease).
        "outbox:\n  lease_seconds: 3\n  poll_interval: 0.25\n  concurrency: 4\nchannels:\n  twilio:\n    timeout: 8\n")
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url, "TWILIO_API_BASE_URL": providers.url,
           "TWILIO_ACCOUNT_SID": TWILIO_SID, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "TWILIO_SMS_FROM": SMS_FROM,
           "LASTMILE_OUTBOX_MODE": "celery", "LASTMILE_CELERY_BROKER_URL": REDIS_URL,
           "LASTMILE_CELERY_NAMESPACE": namespace, "LASTMILE_CONFIG": str(tmp_path / "worker.yml"), "LASTMILE_PUBLIC_BASE_URL": "https://bot.example.test",
           "LASTMILE_SECRET_KEY": "celery-test"}
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    commands = [["worker", "--concurrency", "2"], ["worker", "--concurrency", "2"], ["beat"]]
    workers = [subprocess.Popen([sys.executable, "-m", "bot.cli", *command], env=env, cwd=workdir,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for command in commands]
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with srv.db.session() as session:
                statuses = session.scalars(select(OutboxItem.status)).all()
            if statuses and all(s == "sent" for s in statuses):
                break
            time.sleep(0.5)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
    assert list(workdir.iterdir()) == []  # no celerybeat-schedule or anything else in the working directory
    per_row = Counter(m.outbox_id for m in providers.accepted)
    assert len(per_row) == 10 and max(per_row.values()) == 1
    bodies = [m.body for m in providers.accepted]
    assert all(bodies.index(f"lane{n} first") < bodies.index(f"lane{n} second") for n in range(5))
    with srv.db.session() as session:
        assert session.scalars(select(OutboxAttempt.outcome)).all() == ["sent"] * 10
    srv.db.dispose()


def _beat(env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bot.cli", "beat"], env=env, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _leader(client, namespace: str) -> str | None:
    from bot.delivery.tasks import beat_leader_key

    value = client.get(beat_leader_key({"outbox": {"celery_namespace": namespace}}))
    return value.decode() if value else None


def test_one_beat_leads_and_a_standby_takes_over_after_kill_9(database_url, tmp_path, namespace):
    """Two `lastmile beat` processes: one holds the Redis lease and publishes sweeps; killed with -9, the other
    leads within one lease (3 intervals of 1 s here)."""
    import signal

    import redis

    client = redis.Redis.from_url(REDIS_URL)
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url, "LASTMILE_OUTBOX_MODE": "celery",
           "LASTMILE_CELERY_BROKER_URL": REDIS_URL, "LASTMILE_CELERY_NAMESPACE": namespace,
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    beats = [_beat(env, workdir) for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        while _leader(client, namespace) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        first = _leader(client, namespace)
        assert first is not None
        pids = {str(b.pid): b for b in beats}
        leader = pids[first.rsplit(":", 1)[1]]
        standby = next(b for b in beats if b is not leader)
        leader.send_signal(signal.SIGKILL)
        leader.wait(10)
        deadline = time.monotonic() + 30
        while _leader(client, namespace) in (None, first) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _leader(client, namespace).rsplit(":", 1)[1] == str(standby.pid)
    finally:
        for process in beats:
            process.terminate()
        for process in beats:
            process.wait(30)
    assert _leader(client, namespace) is None  # the last leader gave the key back on SIGTERM
    assert list(workdir.iterdir()) == []


def test_beat_refuses_to_run_outside_celery_mode(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bot.cli", "beat"], cwd=tmp_path, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
                            timeout=60)
    assert result.returncode != 0 and "outbox.mode: celery" in result.stderr
