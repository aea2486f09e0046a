"""Liveness and readiness: /healthz answers whatever happens around the process; /readyz checks the database
(and the broker in Celery mode) and names what is missing with a 503."""

from __future__ import annotations

import os

import pytest

from app import create_app
from tests.conftest import base_config

UNREACHABLE_DB = "postgresql+psycopg://nobody@127.0.0.1:1/nothing"


def test_ready_when_the_database_answers(client):
    assert client.get("/healthz").get_json() == {"ok": True}
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"ok": True, "checks": {"database": "ok"}}


def test_not_ready_without_the_database_but_still_alive(providers):
    app = create_app(base_config(UNREACHABLE_DB, providers.url))
    try:
        client = app.test_client()
        assert client.get("/healthz").status_code == 200
        response = client.get("/readyz")
        assert response.status_code == 503
        body = response.get_json()
        assert body["ok"] is False and body["checks"]["database"].startswith("unavailable: ")
    finally:
        app.extensions["lastmile"].db.dispose()


def test_celery_mode_checks_the_broker_too(database_url, providers):
    app = create_app(base_config(database_url, providers.url,
                                 outbox={"mode": "celery", "celery_broker_url": "redis://127.0.0.1:1/0"}))
    try:
        response = app.test_client().get("/readyz")
        assert response.status_code == 503
        checks = response.get_json()["checks"]
        assert checks["database"] == "ok" and checks["broker"].startswith("unavailable: ")
    finally:
        app.extensions["lastmile"].db.dispose()


@pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="needs TEST_REDIS_URL (CI sets it)")
@pytest.mark.xdist_group("redis")
def test_celery_mode_is_ready_with_a_live_broker(database_url, providers):
    app = create_app(base_config(database_url, providers.url,
                                 outbox={"mode": "celery", "celery_broker_url": os.environ["TEST_REDIS_URL"]}))
    try:
        response = app.test_client().get("/readyz")
        assert response.status_code == 200 and response.get_json()["checks"]["broker"] == "ok"
    finally:
        app.extensions["lastmile"].db.dispose()
