"""Celery mode: the web process commits and publishes; a real Celery worker on Redis sends."""

from __future__ import annotations

import os

import pytest

from tests.conftest import base_config, post_twilio, twilio_params

REDIS_URL = os.environ.get("TEST_REDIS_URL")
pytestmark = pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL is not set (CI sets it)")


def test_a_webhook_reply_is_sent_by_a_celery_worker(database_url, providers):
    from celery.contrib.testing.worker import start_worker

    from app import create_app
    from bot import tasks
    from bot.demo import seed

    config = base_config(database_url, providers.url, outbox={"mode": "celery", "celery_broker_url": REDIS_URL})
    app = create_app(config)
    srv = app.extensions["lastmile"]
    assert srv.dispatcher is None  # the web process does not send in celery mode
    with srv.db.session() as session:
        seed(session)
    celery = tasks.make_celery(srv.config)
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
