"""Fixtures: an app on a real database (SQLite always, PostgreSQL when TEST_DATABASE_URL is set),
a test client, a local fake of the providers' APIs, and helpers that sign webhooks for real."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import create_engine, text
from twilio.request_validator import RequestValidator

from bot.testing.config import (  # noqa: F401 (the tests import these from here)
    PUBLIC_URL,
    SMS_FROM,
    TELEGRAM_SECRET,
    TELEGRAM_TOKEN,
    TWILIO_SID,
    TWILIO_TOKEN,
    WHATSAPP_FROM,
    base_config,
    deep_merge,
)
from bot.testing.fakes import FakeProviders


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `slow` (a cluster of processes, a minute of waiting) first, in pytest-randomly's order
    otherwise: `make test`'s two workers then share them from the start, instead of one of them running a
    long test alone at the end. And `xdist_group` marks kept (see _keep_xdist_groups)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    if getattr(config.option, "loadgroup", False):  # a pytest-xdist worker under --dist loadgroup
        _keep_xdist_groups(items)


def _keep_xdist_groups(items: list[pytest.Item]) -> None:
    """pytest-xdist (3.8) sends the tests of one `xdist_group` to one worker by adding `@group` to their node
    ids, through `item._nodeid`, which pytest 9.2 no longer reads (the id is `item._id`): each test went to any
    worker, the Redis tests at once on both and the generated client built twice. The same suffix, where
    pytest 9.2 reads it, for as long as xdist's own is missing."""
    from _pytest.nodeid import NodeId

    for item in items:
        names = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                        for mark in item.iter_markers("xdist_group")})
        suffix = "@" + "_".join(names)
        if names and not item.nodeid.endswith(suffix):
            item._id = NodeId.parse(item.nodeid + suffix)  # type: ignore[attr-defined]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" in metafunc.fixturenames:
        backends = ["sqlite"]
        if os.environ.get("TEST_DATABASE_URL"):
            backends.append("postgresql")
        metafunc.parametrize("backend", backends, scope="session")


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for each test (faster than migrating every time)."""
    from db.migrate import upgrade
    from db.session import Database

    path = tmp_path_factory.mktemp("template") / "template.db"
    database = Database(f"sqlite:///{path}")
    upgrade(database)
    database.dispose()
    return path


def postgres_schema() -> str:
    """`public`, or one schema per pytest-xdist worker (`make test` runs two): workers never share tables."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return f"test_{worker}" if worker else "public"


def in_schema(url: str, schema: str) -> str:
    """`url` with every connection's search_path set to `schema`."""
    if schema == "public":
        return url
    return url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def _postgres_migrated() -> Iterator[str]:
    from db.migrate import upgrade
    from db.session import Database, normalize_url

    base = normalize_url(os.environ["TEST_DATABASE_URL"])
    schema = postgres_schema()
    engine = create_engine(base)
    with engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    url = in_schema(base, schema)
    database = Database(url)
    upgrade(database)
    database.dispose()
    yield url


@pytest.fixture(scope="session")
def _postgres_cleaner(_postgres_migrated: str) -> Iterator[Callable[[], None]]:
    """Empties the worker's schema after a test: DELETE, children before parents, and every sequence restarted.
    (TRUNCATE ... RESTART IDENTITY CASCADE took ~100 ms a test: it gives each table new files; this ~35 ms.)"""
    from db.models import Base

    engine = create_engine(_postgres_migrated)
    with engine.connect() as connection:
        present = {row[0] for row in connection.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename != 'alembic_version'"))}
        sequences = [row[0] for row in connection.execute(text(
            "SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = current_schema()"))]
    ordered = [table.name for table in reversed(Base.metadata.sorted_tables) if table.name in present]
    statements = [f'DELETE FROM "{name}"' for name in ordered]
    statements += [f'ALTER SEQUENCE "{name}" RESTART' for name in sequences]
    unknown = sorted(present - set(ordered))  # a table no model maps: the old way
    if unknown:
        statements.insert(0, f"TRUNCATE {', '.join(unknown)} RESTART IDENTITY CASCADE")

    def clean() -> None:
        with engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)

    yield clean
    engine.dispose()


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        path = tmp_path / "lastmile.db"
        shutil.copy(request.getfixturevalue("_sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("_postgres_migrated")
    clean = request.getfixturevalue("_postgres_cleaner")
    yield url
    clean()


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeProviders]:
    server = FakeProviders().start()
    yield server
    server.stop()


@pytest.fixture
def providers(fake: FakeProviders) -> FakeProviders:
    fake.clear()
    return fake


@pytest.fixture
def app_config(database_url: str, providers: FakeProviders) -> dict[str, Any]:
    return base_config(database_url, providers.url)


@pytest.fixture
def app(app_config: dict[str, Any]):
    from app import create_app

    application = create_app(app_config)
    application.config["TESTING"] = True
    yield application
    srv = application.extensions["lastmile"]
    if srv.dispatcher is not None:
        srv.dispatcher.stop()
    srv.db.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def srv(app):
    return app.extensions["lastmile"]


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def api_key(srv) -> str:
    from bot.web.api_keys import create_api_key

    with srv.db.session() as session:
        return create_api_key(session, "test carrier")


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@pytest.fixture
def seeded(srv) -> None:
    from bot.domain.demo_orders import seed

    with srv.db.session() as session:
        seed(session)


# --- signed webhooks -----------------------------------------------------------------------------
def twilio_signature(path: str, params: dict[str, str], token: str = TWILIO_TOKEN) -> str:
    return RequestValidator(token).compute_signature(PUBLIC_URL + path, params)


def twilio_params(sender: str, body: str, *, whatsapp: bool = False, sid: str | None = None,
                  **extra: str) -> dict[str, str]:
    prefix = "whatsapp:" if whatsapp else ""
    params = {
        "MessageSid": sid or "SM" + uuid.uuid4().hex, "AccountSid": TWILIO_SID,
        "From": prefix + sender, "To": WHATSAPP_FROM if whatsapp else SMS_FROM, "Body": body,
        "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received", "ApiVersion": "2010-04-01",
    }
    params.update(extra)
    return params


def post_twilio(client, params: dict[str, str], *, path: str = "/webhooks/twilio", signature: str | None = None):
    headers = {"X-Twilio-Signature": signature if signature is not None else twilio_signature(path, params)}
    return client.post(path, data=urlencode(params), headers=headers,
                       content_type="application/x-www-form-urlencoded")


def telegram_update(chat_id: int, text: str, *, update_id: int | None = None, language_code: str = "en",
                    first_name: str = "Ana") -> dict[str, Any]:
    update_id = update_id if update_id is not None else uuid.uuid4().int % 10**9
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id % 100000, "date": 1764244800,
            "chat": {"id": chat_id, "type": "private", "first_name": first_name},
            "from": {"id": chat_id, "is_bot": False, "first_name": first_name, "language_code": language_code},
            "text": text,
        },
    }


def post_telegram(client, update: dict[str, Any], secret: str | None = TELEGRAM_SECRET):
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    return client.post("/webhooks/telegram", json=update, headers=headers)


def terminate_backends(url: str, pids: list[int]) -> None:
    """End these server connections, and wait until they are gone (pg_terminate_backend only signals)."""
    from db.session import Database

    killer = Database(url, pool_size=1, max_overflow=0)
    listed = ", ".join(map(str, pids))
    try:
        with killer.engine.connect() as connection:
            connection.exec_driver_sql(f"SELECT pg_terminate_backend(pid) FROM unnest(ARRAY[{listed}]) AS pid")
            connection.commit()
            while connection.exec_driver_sql(f"SELECT count(*) FROM pg_stat_activity WHERE pid IN ({listed})").scalar_one():
                connection.commit()  # pg_stat_activity is read once per transaction
                time.sleep(0.01)
    finally:
        killer.dispose()
