"""Migrations: the chain from 0001 to head has one head, the models match it, and concurrent upgrades from
several nodes on PostgreSQL serialize on an advisory lock instead of failing."""

from __future__ import annotations

import os
import threading

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from db.migrate import alembic_config, current_revision, head_revision, upgrade
from db.session import Database, normalize_url


def test_one_head_and_0001_at_the_root():
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1
    assert list(script.get_bases()) == ["0001"]


def test_the_migrated_schema_matches_the_models(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from db.models import Base

    database = Database(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(database)
    with database.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    database.dispose()
    assert diff == [], "models changed without a migration: run `make migration MSG=...`"


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="needs TEST_DATABASE_URL (CI sets it)")
def test_concurrent_upgrades_on_postgresql_take_turns():
    base = normalize_url(os.environ["TEST_DATABASE_URL"])
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS migrate_race CASCADE"))
        connection.execute(text("CREATE SCHEMA migrate_race"))
    url = base + ("&" if "?" in base else "?") + "options=-csearch_path%3Dmigrate_race"
    errors: list[BaseException] = []

    def node() -> None:
        database = Database(url)
        try:
            upgrade(database)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            database.dispose()

    threads = [threading.Thread(target=node) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    try:
        assert errors == []
        database = Database(url)
        assert current_revision(database) == head_revision()
        database.dispose()
    finally:
        with admin.begin() as connection:
            connection.execute(text("DROP SCHEMA migrate_race CASCADE"))
        admin.dispose()


def _upgrade_0006_orders_to_brands(url: str) -> None:
    """A 0006 database with a customer and two orders, upgraded to head: both orders on the default brand,
    references intact, and a second brand may then use the same reference."""
    database = Database(url)
    try:
        upgrade(database, "0006_media")
        with database.engine.begin() as connection:
            connection.execute(text("INSERT INTO customers (id, phone, whatsapp, created_at, updated_at) "
                                    "VALUES (1, '+15550001111', false, :now, :now)"), {"now": "2026-12-01 10:00:00"})
            for number, ref in ((1, "LM-1001"), (2, "1001")):
                connection.execute(text(
                    "INSERT INTO orders (id, ref, status, customer_id, tracking_token, extra, created_at, updated_at) "
                    "VALUES (:id, :ref, 'created', 1, :token, '{}', :now, :now)"),
                    {"id": number, "ref": ref, "token": f"token-{number}", "now": "2026-12-01 10:00:00"})
        upgrade(database)
        with database.engine.begin() as connection:
            default_id = connection.scalar(text("SELECT id FROM brands WHERE ref = 'default'"))
            rows = connection.execute(text("SELECT ref, brand_id, customer_id FROM orders ORDER BY id")).all()
            assert [tuple(row) for row in rows] == [("LM-1001", default_id, 1), ("1001", default_id, 1)]
            assert connection.scalar(text("SELECT count(*) FROM brands")) == 1
            connection.execute(text("INSERT INTO brands (ref, support, senders, theme, settings, created_at, updated_at)"
                                    " VALUES ('acme', '{}', '{}', '{}', '{}', :now, :now)"), {"now": "2026-12-07 10:00:00"})
            acme = connection.scalar(text("SELECT id FROM brands WHERE ref = 'acme'"))
            connection.execute(text("INSERT INTO orders (id, ref, brand_id, status, tracking_token, extra, created_at, "
                                    "updated_at) VALUES (3, '1001', :brand, 'created', 'token-3', '{}', :now, :now)"),
                               {"brand": acme, "now": "2026-12-07 10:00:00"})
        with pytest.raises(IntegrityError), database.engine.begin() as connection:  # unique per brand, still
            connection.execute(text("INSERT INTO orders (id, ref, brand_id, status, tracking_token, extra, created_at, "
                                    "updated_at) VALUES (4, '1001', :brand, 'created', 'token-4', '{}', :now, :now)"),
                               {"brand": acme, "now": "2026-12-07 10:00:00"})
    finally:
        database.dispose()


def test_0007_moves_existing_orders_to_the_default_brand_on_sqlite(tmp_path):
    _upgrade_0006_orders_to_brands(f"sqlite:///{tmp_path / 'brands.db'}")


def in_own_postgresql_schema(name: str, check) -> None:
    """Run `check(url)` on TEST_DATABASE_URL inside a fresh schema of this worker's, dropped afterwards."""
    base = normalize_url(os.environ["TEST_DATABASE_URL"])
    schema = f"{name}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        check(base + ("&" if "?" in base else "?") + f"options=-csearch_path%3D{schema}")
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="needs TEST_DATABASE_URL (CI sets it)")
def test_0007_moves_existing_orders_to_the_default_brand_on_postgresql():
    in_own_postgresql_schema("migrate_brands", _upgrade_0006_orders_to_brands)


def downgrade_to(database: Database, revision: str) -> None:
    from alembic import command

    cfg = alembic_config(database.url)
    with database.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


def _upgrade_0008_telegram_ids(url: str) -> None:
    """A 0008 database holding sent Telegram messages by bare message id: 0009 puts their chat in front (in
    messages and in the outbox), leaves inbound update ids and other channels alone, and downgrading undoes it."""
    database = Database(url)
    now = {"now": "2026-12-01 10:00:00"}
    try:
        upgrade(database, "0008_email")
        with database.engine.begin() as connection:
            for number, channel, address in ((1, "telegram", "4242"), (2, "telegram", "4343"), (3, "sms", "+15550001111")):
                connection.execute(text(
                    "INSERT INTO conversations (id, channel, address, role, state, opted_out, handoff_active, "
                    "created_at, updated_at) VALUES (:id, :channel, :address, 'customer', '{}', false, false, :now, :now)"),
                    {"id": number, "channel": channel, "address": address, **now})
            for number, conversation, direction, channel, provider_id in (
                    (1, 1, "in", "telegram", "900"), (2, 1, "out", "telegram", "7"), (3, 2, "out", "telegram", "8"),
                    (4, 3, "out", "sms", "SM0001")):
                connection.execute(text(
                    "INSERT INTO messages (id, conversation_id, direction, channel, provider_id, sender, kind, data, "
                    "status, created_at, updated_at) VALUES (:id, :conversation, :direction, :channel, :provider_id, "
                    "'bot', 'text', '{}', 'sent', :now, :now)"),
                    {"id": number, "conversation": conversation, "direction": direction, "channel": channel,
                     "provider_id": provider_id, **now})
            connection.execute(text(
                "INSERT INTO outbox (id, kind, lane, message_id, channel, to_address, payload, status, attempts, "
                "provider_id, next_attempt_at, created_at) VALUES (1, 'message', 'telegram:4242', 2, "
                "'telegram', '4242', '{}', 'sent', 1, '7', :now, :now)"), now)
        upgrade(database)
        with database.engine.begin() as connection:
            ids = connection.execute(text("SELECT provider_id FROM messages ORDER BY id")).scalars().all()
            assert ids == ["900", "4242:7", "4343:8", "SM0001"]
            assert connection.scalar(text("SELECT provider_id FROM outbox")) == "4242:7"
        downgrade_to(database, "0008_email")
        with database.engine.begin() as connection:
            ids = connection.execute(text("SELECT provider_id FROM messages ORDER BY id")).scalars().all()
            assert ids == ["900", "7", "8", "SM0001"]
            assert connection.scalar(text("SELECT provider_id FROM outbox")) == "7"
    finally:
        database.dispose()


def test_0009_puts_the_chat_in_front_of_sent_telegram_ids_on_sqlite(tmp_path):
    _upgrade_0008_telegram_ids(f"sqlite:///{tmp_path / 'telegram.db'}")


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="needs TEST_DATABASE_URL (CI sets it)")
def test_0009_puts_the_chat_in_front_of_sent_telegram_ids_on_postgresql():
    in_own_postgresql_schema("migrate_telegram", _upgrade_0008_telegram_ids)
