"""A person's data over the carrier API and the CLI: export, erasure, and the scheduled retention purge."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from bot.delivery.scheduler import run_due_jobs
from bot.domain.privacy import PURGE_JOB
from bot.web.api_keys import create_api_key
from db.models import (
    AuditEntry,
    Conversation,
    Customer,
    CustomerRequest,
    Message,
    Order,
    OutboxItem,
    Rating,
    ScheduledJob,
    VerificationAttempt,
    utcnow,
)
from tests.conftest import post_twilio, twilio_params
from tests.notify_helpers import post_event

ALICE, ANA = "+15551230001", "+15551230002"
PHOTO = "https://media.example.invalid/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"  # never downloaded


@pytest.fixture
def app_config(database_url, providers):
    from tests.conftest import base_config

    return base_config(database_url, providers.url, retention={"enabled": True})


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@pytest.fixture
def alice_history(client, srv, auth, seeded):
    """Alice texts (with a photo), gives the driver instructions on the page, gets her parcel, rates it."""
    post_twilio(client, twilio_params(ALICE, "where is my order?"))
    post_twilio(client, twilio_params(ALICE, "here is my door", NumMedia="1", MediaUrl0=PHOTO,
                                      MediaContentType0="image/jpeg"))
    post_twilio(client, twilio_params(ANA, "¿dónde está mi pedido?"))
    srv.dispatcher.drain()
    path = client.get("/api/v1/orders/LM-10001", headers=auth).get_json()["order"]["tracking_url"] \
        .removeprefix("https://bot.example.test")
    page = client.get(path).get_data(as_text=True)
    assert client.post(path + "/instructions", data={"csrf_token": csrf_of(page),
                                                     "instructions": "Blue door, ring twice"}).status_code == 303
    post_event(client, auth, "LM-10001", "delivered")
    page = client.get(path).get_data(as_text=True)
    assert client.post(path + "/rating", data={"csrf_token": csrf_of(page), "score": "4",
                                               "comment": "Quick, thanks"}).status_code == 303
    srv.dispatcher.drain()
    return path


def count(srv, model, *where) -> int:
    with srv.db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_the_api_exports_everything_stored_about_a_person(client, srv, auth, alice_history):
    response = client.get(f"/api/v1/customers/{ALICE}/export", headers=auth)
    assert response.status_code == 200
    data = response.get_json()
    assert [c["phone"] for c in data["customers"]] == [ALICE]
    assert {o["ref"] for o in data["orders"]} == {"LM-10001"}
    texts = [m["text"] for m in data["messages"]]
    assert "where is my order?" in texts and "here is my door" in texts
    assert any("LM-10001" in (t or "") for t in texts)  # the bot's replies too
    assert "¿dónde está mi pedido?" not in json.dumps(data, ensure_ascii=False)  # nobody else's
    assert [m["source"] for m in data["media_files"]] == [PHOTO]  # the provider's link, and our copy's state
    assert data["media"] == [data["media_files"][0]["ref"]]
    assert [(r["score"], r["comment"]) for r in data["ratings"]] == [(4, "Quick, thanks")]
    assert [r["text"] for r in data["requests"]] == ["Blue door, ring twice"]
    assert data["outbox"] and all(o["to"] == ALICE for o in data["outbox"])
    assert any("LM-10001" in json.dumps(o["payload"]) for o in data["outbox"])
    assert {c["channel"] for c in data["conversations"]} == {"sms"}
    by_id = client.get(f"/api/v1/customers/{data['customers'][0]['id']}/export", headers=auth).get_json()
    assert len(by_id["messages"]) == len(data["messages"])


def test_export_and_erase_need_a_carrier_key_and_an_unknown_person_is_a_404(client, srv, auth, seeded):
    with srv.db.session() as session:
        agent_key = create_api_key(session, "helpdesk", "agent")
    agent = {"Authorization": f"Bearer {agent_key}"}
    assert client.get(f"/api/v1/customers/{ALICE}/export", headers=agent).status_code == 401
    assert client.delete(f"/api/v1/customers/{ALICE}", headers=agent).status_code == 401
    assert client.get(f"/api/v1/customers/{ALICE}/export").status_code == 401
    assert client.get("/api/v1/customers/+15550009999/export", headers=auth).status_code == 404
    assert client.delete("/api/v1/customers/not-a-phone", headers=auth).get_json()["error"]
    assert client.delete("/api/v1/customers/+15550009999", headers=auth).status_code == 404
    assert count(srv, Customer, Customer.phone == ALICE) == 1
    with srv.db.session() as session:
        audited = [(e.action, e.target) for e in session.scalars(select(AuditEntry))]
    assert ("customer.erase", "nobody matched") in audited and "+15550009999" not in str(audited)


def test_erasure_deletes_the_persons_data_keeps_the_order_bare_and_kills_the_link(client, srv, auth, alice_history):
    with srv.db.session() as session:
        alice_conversations = list(session.scalars(select(Conversation.id).where(Conversation.address == ALICE)))
    response = client.delete(f"/api/v1/customers/{ALICE}", headers=auth)
    assert response.status_code == 200
    erased = response.get_json()["erased"]
    assert erased["messages"] >= 4 and erased["ratings"] == 1 and erased["requests"] == 1 and erased["media"] >= 1
    assert erased["outbox"] >= 2 and erased["conversations"] == 1 and erased["customers"] == 1
    assert count(srv, Message, Message.conversation_id.in_(alice_conversations)) == 0
    assert count(srv, Conversation, Conversation.address == ALICE) == 0
    assert count(srv, Rating) == 0 and count(srv, CustomerRequest) == 0
    assert count(srv, OutboxItem, OutboxItem.to_address == ALICE) == 0
    assert count(srv, VerificationAttempt, VerificationAttempt.address == ALICE) == 0
    assert count(srv, Customer, Customer.phone == ALICE) == 0
    with srv.db.session() as session:
        order = session.scalar(select(Order).where(Order.ref == "LM-10001"))
        assert order.status == "delivered" and order.customer_id is None
        assert order.postcode is None and order.address_line1 is None and order.instructions is None
        audit = session.scalar(select(AuditEntry).where(AuditEntry.action == "customer.erase"))
        assert audit.actor_name == "test carrier" and ALICE not in str((audit.target, audit.details))
    assert client.get(alice_history).status_code == 404
    assert client.get(f"/api/v1/customers/{ALICE}/export", headers=auth).status_code == 404
    assert count(srv, Message, Message.text == "¿dónde está mi pedido?") == 1  # Ana is untouched
    assert count(srv, Customer, Customer.phone == ANA) == 1


def test_a_stop_outlives_erasure(client, srv, auth, providers, seeded):
    from tests.notify_helpers import eta, put_order

    post_twilio(client, twilio_params(ANA, "hola"))
    post_twilio(client, twilio_params(ANA, "STOP"))
    srv.dispatcher.drain()
    erased = client.delete(f"/api/v1/customers/{ANA}", headers=auth).get_json()["erased"]
    assert erased["opt_outs_kept"] == 1 and erased["conversations"] == 0 and erased["messages"] >= 3
    with srv.db.session() as session:
        [kept] = session.scalars(select(Conversation).where(Conversation.address == ANA)).all()
        assert kept.opted_out and kept.customer_id is None and kept.display_name is None and kept.state == {}
        assert session.scalar(select(func.count()).select_from(Message).where(Message.conversation_id == kept.id)) == 0
    sent_before = len(providers.twilio_messages())
    put_order(client, auth, "LM-NEW", phone=ANA)  # the carrier sends a new order for the same number
    post_event(client, auth, "LM-NEW", "out_for_delivery", eta=eta(60))
    srv.dispatcher.drain()
    assert len(providers.twilio_messages()) == sent_before  # still nothing to an opted-out number


def test_the_openapi_document_lists_the_customer_endpoints_once(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert set(paths["/api/v1/customers/{ident}/export"]) == {"get"}
    assert set(paths["/api/v1/customers/{ident}"]) == {"delete"}
    from bot.web.apispec import OPERATIONS

    assert sum(op.path == "/api/v1/customers/{ident}" for op in OPERATIONS) == 1


# --- the retention purge ------------------------------------------------------------------------------
def test_the_daily_purge_is_scheduled_once_deletes_what_is_too_old_and_reschedules(app, client, srv, auth, seeded):
    post_twilio(client, twilio_params(ALICE, "where is my order?"))
    post_twilio(client, twilio_params(ANA, "¿dónde está mi pedido?"))
    srv.dispatcher.drain()  # sends the replies and, once, schedules the purge
    srv.dispatcher.run_once()
    post_event(client, auth, "LM-10002", "delivered")
    long_ago = utcnow() - timedelta(days=800)
    with srv.db.session() as session:
        alice = session.scalar(select(Conversation.id).where(Conversation.address == ALICE))
        session.execute(update(Message).where(Message.conversation_id == alice).values(created_at=long_ago))
        session.execute(update(Conversation).where(Conversation.id == alice).values(updated_at=long_ago))
        session.execute(update(OutboxItem).where(OutboxItem.to_address == ALICE).values(created_at=long_ago))
        session.execute(update(Order).where(Order.ref == "LM-10002").values(delivered_at=long_ago))
        session.add(VerificationAttempt(channel="sms", address="+15550001234", succeeded=False, created_at=long_ago))
        session.add(AuditEntry(actor_type="cli", actor_name="old", action="apikey.create", created_at=long_ago))
        session.add(Conversation(channel="sms", address="+15550004321", opted_out=True, updated_at=long_ago))
        session.add(AuditEntry(actor_type="cli", actor_name="recent", action="apikey.create"))
        [purge] = session.scalars(select(ScheduledJob).where(ScheduledJob.kind == PURGE_JOB)).all()
        run_at = purge.run_at
    with app.app_context():
        run_due_jobs(srv.db, now=run_at - timedelta(minutes=1))  # other due jobs (the rating prompt) run
        assert count(srv, Message, Message.conversation_id == alice) > 0
        assert count(srv, ScheduledJob, ScheduledJob.kind == PURGE_JOB, ScheduledJob.status == "pending") == 1
        assert run_due_jobs(srv.db, now=run_at + timedelta(minutes=1)) >= 1
    assert count(srv, Message, Message.conversation_id == alice) == 0
    assert count(srv, Conversation, Conversation.address == ALICE) == 0
    assert count(srv, OutboxItem, OutboxItem.to_address == ALICE) == 0
    assert count(srv, Order, Order.ref == "LM-10002") == 0
    assert count(srv, VerificationAttempt, VerificationAttempt.address == "+15550001234") == 0
    assert count(srv, AuditEntry, AuditEntry.actor_name == "old") == 0
    assert count(srv, Conversation, Conversation.address == "+15550004321") == 1  # a STOP is kept
    assert count(srv, AuditEntry, AuditEntry.actor_name == "recent") == 1
    assert count(srv, Message, Message.text == "¿dónde está mi pedido?") == 1  # recent: kept
    assert count(srv, Order, Order.ref == "LM-10001") == 1
    with srv.db.session() as session:
        jobs = list(session.scalars(select(ScheduledJob).where(ScheduledJob.kind == PURGE_JOB).order_by(ScheduledJob.id)))
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "retention.purge"))
    assert [j.status for j in jobs] == ["done", "pending"] and jobs[1].run_at == run_at + timedelta(days=1)
    assert (run_at.hour, run_at.minute) == (3, 0)  # retention.run_at, UTC
    assert entry.actor_type == "system" and entry.details["messages"] >= 2 and entry.details["orders"] == 1


def test_retention_zero_keeps_everything(database_url, providers):
    from app import create_app
    from tests.conftest import base_config

    days = {k: 0 for k in ("messages_days", "outbox_days", "orders_days", "attempts_days", "audit_days")}
    days["enabled"] = True
    app = create_app(base_config(database_url, providers.url, retention=days))
    srv = app.extensions["lastmile"]
    try:
        client = app.test_client()
        post_twilio(client, twilio_params(ALICE, "hello"))
        srv.dispatcher.drain()
        srv.dispatcher.run_once()
        with srv.db.session() as session:
            session.execute(update(Message).values(created_at=utcnow() - timedelta(days=5000)))
            run_at = session.scalar(select(ScheduledJob.run_at).where(ScheduledJob.kind == PURGE_JOB))
        with app.app_context():
            assert run_due_jobs(srv.db, now=run_at + timedelta(minutes=1)) == 1
        assert count(srv, Message) >= 2
    finally:
        srv.dispatcher.stop()
        srv.db.dispose()


def test_with_retention_disabled_no_purge_is_scheduled(client, srv, database_url, providers):
    from app import create_app
    from tests.conftest import base_config

    app = create_app(base_config(database_url, providers.url, retention={"enabled": False}))
    try:
        app.extensions["lastmile"].dispatcher.run_once()
    finally:
        app.extensions["lastmile"].db.dispose()
    assert count(srv, ScheduledJob, ScheduledJob.kind == PURGE_JOB) == 0
    srv.dispatcher.run_once()  # this module's app has it enabled: one job, however many sweeps
    srv.dispatcher.run_once()
    assert count(srv, ScheduledJob, ScheduledJob.kind == PURGE_JOB) == 1


def test_the_purge_runs_at_the_configured_time(database_url, providers):
    from app import create_app
    from tests.conftest import base_config

    app = create_app(base_config(database_url, providers.url, retention={"enabled": True, "run_at": "22:45"}))
    srv = app.extensions["lastmile"]
    try:
        srv.dispatcher.run_once()
        with srv.db.session() as session:
            run_at = session.scalar(select(ScheduledJob.run_at).where(ScheduledJob.kind == PURGE_JOB))
    finally:
        srv.db.dispose()
    assert (run_at.hour, run_at.minute) == (22, 45) and timedelta(0) < run_at - utcnow() <= timedelta(days=1)


# --- the command line -------------------------------------------------------------------------------------
@pytest.fixture
def env(tmp_path, providers):
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": f"sqlite:///{tmp_path}/cli.db",
            "TWILIO_API_BASE_URL": providers.url, "LASTMILE_PUBLIC_BASE_URL": "https://bot.example.test"}


def lastmile(env, *args):
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.slow
def test_customer_export_and_erase_on_the_command_line(env):
    assert lastmile(env, "demo", "seed").returncode == 0
    assert lastmile(env, "chat", "--phone", ALICE, "-m", "where is my order?").returncode == 0
    exported = lastmile(env, "customer", "export", ALICE)
    assert exported.returncode == 0, exported.stderr
    data = json.loads(exported.stdout)
    assert "where is my order?" in [m["text"] for m in data["messages"]]
    erased = lastmile(env, "customer", "erase", ALICE, "--yes")
    assert erased.returncode == 0 and re.search(r"erased: .*\b2 messages\b", erased.stdout), erased.stdout
    again = lastmile(env, "customer", "export", ALICE)
    assert again.returncode != 0 and "no customer" in again.stderr


@pytest.mark.slow
def test_apikey_list_revoke_and_rotate_on_the_command_line(env):
    created = lastmile(env, "apikey", "create", "acme")
    key = created.stdout.strip().splitlines()[-1]
    listed = lastmile(env, "apikey", "list", "--json")
    [row] = json.loads(listed.stdout)
    assert row["prefix"] == key[:10] and row["name"] == "acme" and key not in listed.stdout
    rotated = lastmile(env, "apikey", "rotate", key[:10])
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip().splitlines()[-1]
    assert new.startswith("lm_") and new != key
    [active] = json.loads(lastmile(env, "apikey", "list", "--json").stdout)
    assert active["prefix"] == new[:10]
    revoked = lastmile(env, "apikey", "revoke", str(active["id"]))
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert json.loads(lastmile(env, "apikey", "list", "--json").stdout) == []
    everything = json.loads(lastmile(env, "apikey", "list", "--all", "--json").stdout)
    assert len(everything) == 2 and all(r["revoked_at"] for r in everything)
    assert lastmile(env, "apikey", "revoke", "lm_nothing").returncode != 0
