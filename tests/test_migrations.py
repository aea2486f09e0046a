"""Migrations: the chain from 0001 to head has one head, the models match it, and concurrent upgrades from
several nodes on PostgreSQL serialize on an advisory lock instead of failing."""

from __future__ import annotations

import os
import threading

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

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
