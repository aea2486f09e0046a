"""The `lastmile` console command, run as a real subprocess against a real database and the fakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import TELEGRAM_SECRET, TELEGRAM_TOKEN


@pytest.fixture
def env(tmp_path, providers):
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": f"sqlite:///{tmp_path}/cli.db",
        "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
        "TELEGRAM_API_BASE_URL": providers.url,
        "LASTMILE_PUBLIC_BASE_URL": "https://bot.example.test",
    }


def lastmile(env, *args, input=None):
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, env=env,
                          input=input, timeout=120)


@pytest.mark.slow
def test_db_upgrade_then_apikey_create_prints_the_key_last(env):
    result = lastmile(env, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    from db.migrate import head_revision

    assert f"database at revision {head_revision()}" in result.stdout
    result = lastmile(env, "apikey", "create", "acme")
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("lm_") and len(key) > 40
    assert key not in result.stderr


@pytest.mark.slow
def test_demo_seed_is_idempotent_and_chat_answers_in_the_terminal(env):
    first = lastmile(env, "demo", "seed")
    assert first.returncode == 0 and "demo data: 4 new customers, 1 new driver, 5 new orders" in first.stdout
    again = lastmile(env, "demo", "seed")
    assert "0 new orders" in again.stdout
    chat = lastmile(env, "chat", "--phone", "+15551230001", "-m", "where is my order?", "-m", "thanks")
    assert chat.returncode == 0, chat.stderr
    assert "bot> Your order LM-10001 is out for delivery." in chat.stdout
    assert "welcome" in chat.stdout


@pytest.mark.slow
def test_interactive_chat_reads_stdin(env):
    lastmile(env, "demo", "seed")
    chat = lastmile(env, "chat", "--phone", "+15551230002", input="¿dónde está mi pedido?\n")
    assert "Tu pedido LM-10002" in chat.stdout


def test_telegram_set_webhook_sends_the_secret(env, providers):
    result = lastmile(env, "telegram", "set-webhook")
    assert result.returncode == 0, result.stderr
    [call] = providers.telegram_calls("setWebhook")
    assert call.value("url") == "https://bot.example.test/webhooks/telegram"
    assert call.value("secret_token") == TELEGRAM_SECRET


def test_telegram_set_webhook_without_a_secret_is_refused(env, providers):
    env = {**env, "TELEGRAM_WEBHOOK_SECRET": ""}
    result = lastmile(env, "telegram", "set-webhook")
    assert result.returncode != 0 and "TELEGRAM_WEBHOOK_SECRET" in result.stderr
    assert providers.telegram_calls("setWebhook") == []


@pytest.mark.slow
def test_telegram_poll_handles_updates_and_replies(env, providers):
    lastmile(env, "demo", "seed")
    providers.updates = [{"update_id": 41, "message": {
        "message_id": 1, "date": 1764244800, "chat": {"id": 100001, "type": "private"},
        "from": {"id": 100001, "is_bot": False, "first_name": "Alice", "language_code": "en"},
        "text": "where is my order?"}}]
    result = lastmile(env, "telegram", "poll", "--once")
    assert result.returncode == 0, result.stderr
    assert "1 update(s) handled" in result.stdout
    [reply] = providers.telegram_calls("sendMessage")
    assert "LM-10001" in reply.value("text")


@pytest.mark.slow
def test_outbox_status_draws_a_chart(env):
    lastmile(env, "demo", "seed")
    lastmile(env, "chat", "--phone", "+15551230001", "-m", "hello")
    result = lastmile(env, "outbox", "status")
    assert result.returncode == 0 and "sent" in result.stdout and "█" in result.stdout


@pytest.mark.slow
def test_outbox_failed_lists_masked_rows_and_retry_requeues_them(env):
    from sqlalchemy import create_engine, insert, select

    from db.models import OutboxItem

    assert lastmile(env, "db", "upgrade").returncode == 0
    engine = create_engine(env["DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(insert(OutboxItem).values(
            kind="webhook", lane="hook:carrier", to_address="https://carrier.example.test/hooks/lastmile",
            payload={"body": "{}", "headers": {}}, status="failed", attempts=8, last_error="503 callback answered 503"))
        conn.execute(insert(OutboxItem).values(
            kind="message", lane="conv:1", channel="sms", to_address="+15551239876", payload={"text": "hi"},
            status="sent", attempts=1))
        conn.execute(insert(OutboxItem).values(
            kind="message", lane="conv:2", channel="sms", to_address="+15551234321", payload={"text": "hello"},
            status="failed", attempts=1, last_error="21211 invalid number"))
    listed = lastmile(env, "outbox", "failed")
    assert listed.returncode == 0, listed.stderr
    assert "carrier.example.test" in listed.stdout and "503 callback answered 503" in listed.stdout
    assert "/hooks/lastmile" not in listed.stdout
    assert "+1555•••4321" in listed.stdout and "5551234321" not in listed.stdout and "hello" not in listed.stdout

    assert lastmile(env, "outbox", "retry").returncode == 2  # neither ids nor --all
    wrong = lastmile(env, "outbox", "retry", "2")  # a sent row is not retried
    assert wrong.returncode == 1 and "not failed rows, ignored: 2" in wrong.stderr
    result = lastmile(env, "outbox", "retry", "--all")
    assert result.returncode == 0 and "2 row(s) requeued" in result.stdout
    with engine.connect() as conn:
        assert conn.execute(select(OutboxItem.status, OutboxItem.attempts).order_by(OutboxItem.id)).all() == [
            ("pending", 0), ("sent", 1), ("pending", 0)]
    assert "no failed rows" in lastmile(env, "outbox", "failed").stdout


def test_the_simulator_exists_only_in_demo_mode(client):
    # The `app` fixture is not in demo mode: the simulator would let anyone speak as any phone.
    assert client.get("/simulator").status_code == 404
    assert client.post("/simulator/api/messages", json={"address": "+15551230001", "text": "hi"}).status_code == 404


@pytest.mark.slow
def test_apikey_create_with_a_brand_makes_a_key_for_that_brand_only(env):
    assert lastmile(env, "db", "upgrade").returncode == 0
    missing = lastmile(env, "apikey", "create", "acme-shop", "--brand", "acme")
    assert missing.returncode != 0 and "no brand 'acme'" in missing.stderr
    default = lastmile(env, "apikey", "create", "shop", "--brand", "default")
    assert default.returncode == 0, default.stderr
    listed = json.loads(lastmile(env, "apikey", "list", "--json").stdout)
    assert [(k["scope"], k["brand"]) for k in listed] == [("brand", "default")]
