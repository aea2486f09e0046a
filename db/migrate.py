"""Run Alembic migrations programmatically (used by `lastmile db upgrade`, tests and start-up)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from db.session import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


# pg_advisory_xact_lock key: "lastmile" in ASCII, so two nodes running `lastmile db upgrade` at once queue up.
MIGRATION_LOCK = 0x6C6173746D696C65


def upgrade(database: Database, revision: str = "head") -> None:
    """Migrate to `revision` inside one connection (SQLite DDL is transactional too). On PostgreSQL a
    transaction-scoped advisory lock makes concurrent upgrades from several nodes run one after the other:
    the second finds the schema at head and does nothing."""
    cfg = alembic_config(database.url)
    with database.engine.begin() as connection:
        if not database.is_sqlite:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def current_revision(database: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def autogenerate(url: str, message: str, rev_id: str | None = None) -> None:
    """Write a new migration comparing the models with the database at `url` (migrated to head first)."""
    database = Database(url)
    try:
        upgrade(database)
    finally:
        database.dispose()
    command.revision(alembic_config(url), message=message, autogenerate=True, rev_id=rev_id)


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
