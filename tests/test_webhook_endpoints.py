"""Webhook endpoints managed through the API and the CLI; deliveries signed per Standard Webhooks at send
time, checked with the `standardwebhooks` library's own verifier (rotation, tampering); never unsigned
outside demo mode; an endpoint that keeps failing is disabled with the reason visible."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from db.models import OutboxItem
from tests.conftest import base_config, post_twilio, twilio_params
from tests.relay_helpers import drain_until

ALICE = "+15551230001"


def create(client, auth, providers, path="/hooks/a", **fields):
    response = client.post("/api/v1/webhook-endpoints", json={"url": providers.url + path, **fields}, headers=auth)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["webhook_endpoint"]


def received(providers, path="/hooks/a"):
    return [r for r in providers.callbacks() if r.path == path]


def headers_of(record) -> dict[str, str]:
    return {k.lower(): v for k, v in record.headers.items()}


def open_handoff(client, srv):
    assert post_twilio(client, twilio_params(ALICE, "I want to talk to a person")).status_code == 200
    srv.dispatcher.drain()


def test_manage_endpoints_through_the_api(client, auth, providers):
    made = create(client, auth, providers, event_types=["handoff.opened"], description="helpdesk")
    assert made["secret"].startswith("whsec_") and made["enabled"] is True and made["event_types"] == ["handoff.opened"]
    listed = client.get("/api/v1/webhook-endpoints", headers=auth).get_json()["webhook_endpoints"]
    assert [e["id"] for e in listed] == [made["id"]] and "secret" not in listed[0]
    path = f"/api/v1/webhook-endpoints/{made['id']}"
    off = client.patch(path, json={"enabled": False, "event_types": []}, headers=auth).get_json()["webhook_endpoint"]
    assert off["enabled"] is False and off["disabled_reason"] == "disabled by an operator" and off["event_types"] == []
    on = client.patch(path, json={"enabled": True}, headers=auth).get_json()["webhook_endpoint"]
    assert on["enabled"] is True and on["disabled_reason"] is None
    rotated = client.post(path + "/rotate", headers=auth).get_json()["webhook_endpoint"]
    assert rotated["secret"] != made["secret"] and rotated["secret_rotating_until"]
    assert client.delete(path, headers=auth).status_code == 204
    assert client.get(path, headers=auth).get_json()["code"] == "not_found"


@pytest.mark.parametrize("body, field", [
    ({"url": "ftp://x.example/h"}, "url"), ({"url": "not a url"}, "url"), ({}, "url"),
    ({"url": "https://x.example/h", "event_types": ["order.exploded"]}, "event_types[0]"),
    ({"url": "https://x.example/h", "secret": "mine"}, "secret"),
    ({"url": "https://x.example/h", "event_types": [None]}, "event_types[0]"),  # found by schemathesis
])
def test_bad_endpoints_are_refused(client, auth, body, field):
    response = client.post("/api/v1/webhook-endpoints", json=body, headers=auth)
    assert response.status_code == 422 and field in [d["field"] for d in response.get_json()["details"]]
    assert client.get("/api/v1/webhook-endpoints", headers=auth).get_json()["webhook_endpoints"] == []
    assert client.patch("/api/v1/webhook-endpoints/99", json={}, headers=auth).status_code == 404
    assert client.post("/api/v1/webhook-endpoints/99/rotate", headers=auth).status_code == 404


def test_a_change_with_null_event_types_is_refused_and_changes_nothing(client, auth, providers):
    """schemathesis (an outside fuzzer, run against the served spec) stored `event_types: [null, null]`."""
    made = create(client, auth, providers, event_types=["handoff.opened"])
    path = f"/api/v1/webhook-endpoints/{made['id']}"
    response = client.patch(path, json={"event_types": [None, None]}, headers=auth)
    assert response.status_code == 422 and "event_types[0]" in [d["field"] for d in response.get_json()["details"]]
    [endpoint] = client.get("/api/v1/webhook-endpoints", headers=auth).get_json()["webhook_endpoints"]
    assert endpoint["event_types"] == ["handoff.opened"]


def test_deliveries_verify_with_the_standard_webhooks_library_and_a_tampered_one_does_not(
        client, srv, auth, providers, seeded):
    endpoint = create(client, auth, providers)
    open_handoff(client, srv)
    [call] = received(providers)
    headers = headers_of(call)
    payload = Webhook(endpoint["secret"]).verify(call.body, headers)
    assert payload["type"] == "handoff.opened" and payload["data"]["handoff"]["reason"] == "human_handoff"
    assert headers["webhook-id"].startswith("msg_")
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(call.body.replace(b"human_handoff", b"human_handofF"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(create(client, auth, providers, "/hooks/b")["secret"]).verify(call.body, headers)
    with srv.db.session() as session:  # signed when sent: nothing signed is stored with the row
        row = session.scalar(select(OutboxItem).where(OutboxItem.to_address == providers.url + "/hooks/a"))
        assert "webhook-signature" not in row.payload["headers"]


def test_during_a_rotation_both_secrets_verify(client, srv, auth, providers, seeded):
    endpoint = create(client, auth, providers)
    path = f"/api/v1/webhook-endpoints/{endpoint['id']}/rotate"
    new = client.post(path, json={"keep_previous_hours": 1}, headers=auth).get_json()["webhook_endpoint"]["secret"]
    open_handoff(client, srv)
    [call] = received(providers)
    assert len(headers_of(call)["webhook-signature"].split(" ")) == 2
    for secret in (endpoint["secret"], new):
        assert Webhook(secret).verify(call.body, headers_of(call))["type"] == "handoff.opened"
    newer = client.post(path, json={"keep_previous_hours": 0}, headers=auth).get_json()["webhook_endpoint"]["secret"]
    post_twilio(client, twilio_params("+15551230003", "I want to talk to a person"))
    srv.dispatcher.drain()
    last = received(providers)[-1]
    assert Webhook(newer).verify(last.body, headers_of(last))
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(last.body, headers_of(last))


def test_event_types_filter_what_an_endpoint_gets(client, srv, auth, providers, seeded):
    create(client, auth, providers, "/hooks/closed", event_types=["handoff.closed"])
    create(client, auth, providers, "/hooks/opened", event_types=["handoff.opened"])
    open_handoff(client, srv)
    assert received(providers, "/hooks/closed") == [] and len(received(providers, "/hooks/opened")) == 1


def test_a_message_twilio_reports_undelivered_and_an_opt_out_code_are_events(client, srv, auth, providers, seeded):
    """Twilio's status callbacks: a message accepted and then not delivered is `message.failed`, as a send
    refused at once is; error 21610 (the number replied STOP to Twilio) is `conversation.opted_out`, once."""
    from tests.conftest import twilio_signature

    endpoint = create(client, auth, providers, event_types=["message.failed", "conversation.opted_out"])
    assert post_twilio(client, twilio_params("+15551230001", "where is my order?")).status_code == 200
    srv.dispatcher.drain()
    [reply] = [m for m in providers.accepted if m.to == "+15551230001"]
    with srv.db.session() as session:
        row_id = session.scalar(select(OutboxItem.id).where(OutboxItem.provider_id == reply.sid))
    path = f"/webhooks/twilio/status?outbox={row_id}"
    for status, code in (("undelivered", "30003"), ("failed", "21610"), ("failed", "21610")):
        params = {"MessageSid": reply.sid, "MessageStatus": status, "ErrorCode": code}
        assert post_twilio(client, params, path=path, signature=twilio_signature(path, params)).status_code == 204
    srv.dispatcher.drain()
    events = [Webhook(endpoint["secret"]).verify(call.body, headers_of(call)) for call in received(providers)]
    assert [e["type"] for e in events] == ["message.failed", "conversation.opted_out"]  # a repeat changes nothing
    assert events[0]["data"]["message"]["error_code"] == "30003"
    assert "+1555" not in json.dumps(events)  # never the phone number


@pytest.fixture
def helpdesk_config(app_config, providers):
    app_config["support"]["webhook_url"] = providers.url + "/helpdesk"
    app_config["secrets"]["support_webhook_secret"] = "hd-secret"
    return app_config


def test_the_configured_helpdesk_url_is_signed_both_ways(helpdesk_config, client, srv, providers, seeded):
    open_handoff(client, srv)
    [call] = received(providers, "/helpdesk")
    secret = "whsec_" + base64.b64encode(b"hd-secret").decode()  # a plain secret is its UTF-8 bytes
    assert Webhook(secret).verify(call.body, headers_of(call))["event"] == "handoff.opened"
    assert headers_of(call)["x-lastmile-signature"].startswith("sha256=")  # the former header, kept


def test_nothing_is_sent_unsigned_outside_demo_mode(database_url, providers):
    from app import create_app
    from bot.domain.demo_orders import seed

    config = base_config(database_url, providers.url, support={"webhook_url": providers.url + "/helpdesk"})
    app = create_app(config)
    srv = app.extensions["lastmile"]
    try:
        with srv.db.session() as session:
            seed(session)
        open_handoff(app.test_client(), srv)
        assert received(providers, "/helpdesk") == []
        with srv.db.session() as session:
            row = session.scalar(select(OutboxItem).where(OutboxItem.to_address == providers.url + "/helpdesk"))
            assert row.status == "failed" and "SUPPORT_WEBHOOK_SECRET" in row.last_error
    finally:
        srv.dispatcher.stop()
        srv.db.dispose()


def test_an_endpoint_failing_again_and_again_is_disabled_with_the_reason(app_config, client, srv, auth, providers,
                                                                          seeded):
    srv.config["webhooks"]["max_consecutive_failures"] = 3
    endpoint = create(client, auth, providers)
    providers.fail_next(500, times=5, path="/hooks/a")
    open_handoff(client, srv)
    path = f"/api/v1/webhook-endpoints/{endpoint['id']}"
    drain_until(srv, providers, lambda: not client.get(path, headers=auth).get_json()["webhook_endpoint"]["enabled"])
    shown = client.get(path, headers=auth).get_json()["webhook_endpoint"]
    assert shown["consecutive_failures"] == 3
    assert shown["disabled_reason"] == "disabled after 3 consecutive failed deliveries; last: answered 500"
    drain_until(srv, providers, lambda: _row_status(srv, providers) == "failed")
    assert len(received(providers)) == 3  # nothing more once disabled


def _row_status(srv, providers) -> str:
    with srv.db.session() as session:
        return session.scalar(select(OutboxItem.status).where(OutboxItem.to_address == providers.url + "/hooks/a"))


@pytest.mark.slow
def test_the_cli_adds_lists_rotates_and_removes(tmp_path, providers):
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/cli.db",
           "LASTMILE_PUBLIC_BASE_URL": "https://bot.example.test"}

    def lastmile(*args):
        return subprocess.run([sys.executable, "-m", "bot.cli", "webhook", *args], capture_output=True, text=True,
                              env=env, timeout=120)

    added = lastmile("add", "https://carrier.example/hooks", "--event", "order.event")
    assert added.returncode == 0, added.stderr
    secret = added.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_") and secret not in added.stderr
    [row] = json.loads(lastmile("list", "--json").stdout)
    assert row["url"] == "https://carrier.example/hooks" and row["event_types"] == ["order.event"]
    rotated = lastmile("rotate", str(row["id"]))
    assert rotated.returncode == 0 and rotated.stdout.strip().splitlines()[-1] not in (secret, "")
    assert "DISABLED (disabled by an operator)" in (lastmile("disable", str(row["id"])).returncode == 0
                                                     and lastmile("list").stdout)
    bad = lastmile("add", "https://x.example", "--event", "nope")
    assert bad.returncode != 0 and "unknown event types" in bad.stderr
    assert lastmile("remove", str(row["id"])).returncode == 0
    assert lastmile("list").stdout.strip() == "no webhook endpoints"
    assert lastmile("remove", "12345").returncode != 0


def test_ratings_opt_outs_and_failed_messages_are_subscribable(client, srv, auth, providers):
    from tests.notify_helpers import post_event, put_order

    endpoint = create(client, auth, providers, event_types=["rating.recorded", "conversation.opted_out",
                                                            "conversation.opted_in", "message.failed"])
    phone = "+15557770001"  # the customer of notify_helpers' LM-1
    put_order(client, auth)
    post_event(client, auth, "LM-1", "driver_assigned", driver_ref="D-9")
    post_event(client, auth, "LM-1", "delivered")
    srv.dispatcher.drain()
    for text in ('/rate_delivery{"rating": 5}', "STOP", "START"):
        assert post_twilio(client, twilio_params(phone, text)).status_code == 200
        srv.dispatcher.drain()
    providers.fail_next(400, {"code": 21211, "message": "Invalid 'To' Phone Number"}, path="/2010-04-01")
    post_twilio(client, twilio_params(phone, "where is my order?"))
    drain_until(srv, providers, lambda: len(received(providers)) == 4)
    events = [Webhook(endpoint["secret"]).verify(c.body, headers_of(c)) for c in received(providers)]
    assert [e["type"] for e in events] == ["rating.recorded", "conversation.opted_out", "conversation.opted_in",
                                           "message.failed"]
    assert events[0]["data"] == {"order_ref": "LM-1", "score": 5, "comment": None, "driver_ref": "D-9"}
    assert events[1]["data"]["conversation"]["channel"] == "sms"
    assert events[3]["data"]["message"]["error_code"] == "21211"
    assert phone not in b"".join(c.body for c in received(providers)).decode()  # no phone number leaves
