"""Logs an operator can use: JSON lines with a request id that follows a message from the webhook to the
provider call, an access line per request with the route template (no tokens, no phone numbers)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import select

from db.models import OutboxItem
from tests.conftest import (
    PUBLIC_URL,
    SMS_FROM,
    TWILIO_SID,
    TWILIO_TOKEN,
    twilio_params,
    twilio_signature,
)
from tests.servers import lastmile_serve, server_env


def test_the_request_id_is_echoed_and_kept_with_the_outbox_row(client, srv, seeded):
    params = twilio_params("+15551230001", "where is my order?")
    response = client.post("/webhooks/twilio", data=urlencode(params),
                           headers={"X-Twilio-Signature": twilio_signature("/webhooks/twilio", params),
                                    "X-Request-ID": "carrier-req-42"},
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and response.headers["X-Request-ID"] == "carrier-req-42"
    with srv.db.session() as session:
        [row] = session.scalars(select(OutboxItem)).all()
        assert row.payload["request_id"] == "carrier-req-42"


def test_an_unusable_request_id_is_replaced(client):
    for bad in ("has spaces in it", "x" * 65, "semi;colon<script>"):
        given = client.get("/healthz", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert given != bad and len(given) == 32


@pytest.mark.slow
def test_json_logs_follow_a_message_from_webhook_to_provider_without_tokens_or_numbers(providers, tmp_path):
    env = server_env(tmp_path, LASTMILE_LOG_FORMAT="json", LASTMILE_PUBLIC_BASE_URL=PUBLIC_URL,
                     TWILIO_API_BASE_URL=providers.url, TWILIO_ACCOUNT_SID=TWILIO_SID,
                     TWILIO_AUTH_TOKEN=TWILIO_TOKEN, TWILIO_SMS_FROM=SMS_FROM)
    subprocess.run([sys.executable, "-m", "bot.cli", "demo", "seed"], env=env, cwd=tmp_path, check=True,
                   capture_output=True, timeout=120)
    with (tmp_path / "server.log").open("wb") as log, lastmile_serve(tmp_path, env, output=log) as base:
        params = twilio_params("+15551230001", "where is my order?")
        response = requests.post(base + "/webhooks/twilio", data=urlencode(params), timeout=10, headers={
            "X-Twilio-Signature": twilio_signature("/webhooks/twilio", params), "X-Request-ID": "trace-me-1",
            "Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 200
        [reply] = providers.wait_for(lambda r: r.value("To") == "+15551230001", timeout=30)
        token = reply.value("Body").split("/t/")[1].split()[0]
        requests.get(f"{base}/t/{token}", timeout=10)
        time.sleep(0.5)
    text = (tmp_path / "server.log").read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "request_id", "message"} <= set(line) for line in lines)
    traced = [line for line in lines if line["request_id"] == "trace-me-1"]
    assert any(line["logger"] == "lastmile.access" and "/webhooks/twilio 200" in line["message"] for line in traced)
    assert any(line["logger"] == "bot.delivery.outbox" and " sent " in line["message"] for line in traced)  # the send
    assert any(line["logger"] == "lastmile.access" and "/t/<token> 200" in line["message"] for line in lines)
    assert token not in text and "5551230001" not in text
