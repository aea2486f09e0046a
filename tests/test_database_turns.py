"""How sessions share the database (db/session.py).

SQLite: the writers of every process take turns on an advisory lock on a file beside the database, so a waiting
process is woken when the lock is free instead of polling in SQLite's busy handler. PostgreSQL: a read ends with
COMMIT in a READ ONLY transaction, because psycopg forgets a connection's prepared statements at every ROLLBACK."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import time

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from db.migrate import upgrade
from db.session import Database
from tests.conftest import terminate_backends


def lock_is_free(path: str) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


@pytest.fixture
def sqlite_db(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/turns.db")
    upgrade(database)
    yield database
    database.dispose()


def test_a_write_session_holds_the_lock_file_until_it_ends_nested_sessions_included(sqlite_db):
    path = sqlite_db.url.split("///", 1)[1] + "-writers"
    with sqlite_db.session() as outer:
        assert not lock_is_free(path)
        with sqlite_db.session() as inner:  # the same thread again: no deadlock, the lock stays
            inner.execute(text("SELECT 1"))
        assert not lock_is_free(path)
        outer.execute(text("SELECT 1"))
    assert lock_is_free(path)
    with sqlite_db.read_session() as reader:  # reads take no turn
        reader.execute(text("SELECT 1"))
        assert lock_is_free(path)


def test_a_failed_session_gives_its_turn_back(sqlite_db):
    path = sqlite_db.url.split("///", 1)[1] + "-writers"
    with pytest.raises(RuntimeError), sqlite_db.session():
        raise RuntimeError("boom")
    assert lock_is_free(path)


def _hold_the_turn(database: Database, holding, released) -> None:  # in a forked child
    with database._write_turn():
        holding.set()
        time.sleep(0.5)
        released.value = time.monotonic()


def _take_the_turn(database: Database, holding, entered) -> None:  # in another forked child
    holding.wait(30)
    with database._write_turn():
        entered.value = time.monotonic()


def test_processes_forked_from_one_that_used_the_database_take_turns(sqlite_db):
    """As under gunicorn: the parent used the database before forking its workers. A lock file descriptor inherited
    through fork would be one lock shared by all of them, so each process opens its own: the second worker waits for
    the first to give its turn back."""
    with sqlite_db.session() as session:
        session.execute(text("SELECT 1"))
    context = multiprocessing.get_context("fork")
    holding, released, entered = context.Event(), context.Value("d", 0.0), context.Value("d", 0.0)
    first = context.Process(target=_hold_the_turn, args=(sqlite_db, holding, released))
    second = context.Process(target=_take_the_turn, args=(sqlite_db, holding, entered))
    first.start()
    second.start()
    first.join(30)
    second.join(30)
    assert (first.exitcode, second.exitcode) == (0, 0)
    assert entered.value >= released.value > 0


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="needs TEST_DATABASE_URL (CI sets it)")
def test_reads_keep_the_prepared_statements_of_a_connection():
    """A read-only look-up per request used to end with ROLLBACK, and psycopg deallocates every prepared statement
    of the connection at each ROLLBACK: every statement was parsed and planned again on every request."""
    database = Database(os.environ["TEST_DATABASE_URL"], pool_size=1, max_overflow=0)
    try:
        for _ in range(8):
            with database.read_session() as reader:
                reader.execute(select(text("1")).where(text("current_schema() = :schema")),
                               {"schema": "nowhere"}).all()
        with database.engine.connect() as connection:
            prepared = connection.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars().all()
        assert any("current_schema()" in statement for statement in prepared)
        with pytest.raises(DBAPIError, match="read-only transaction"), database.read_session() as reader:
            reader.execute(text("CREATE TEMPORARY TABLE lastmile_read_only_check (x int)"))
    finally:
        database.dispose()


def _backend_pid(database: Database) -> int:
    with database.engine.connect() as connection:
        return int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="needs TEST_DATABASE_URL (CI sets it)")
def test_a_connection_in_steady_use_is_not_pinged_and_one_that_died_idle_is_replaced_unseen():
    """SQLAlchemy's pool_pre_ping cost a round trip on every checkout (two per inbound message); a pooled
    connection is now pinged only after sitting idle (`PING_AFTER_IDLE_SECONDS`)."""
    database = Database(os.environ["TEST_DATABASE_URL"], pool_size=1, max_overflow=0, ping_after_idle=0.3)
    watcher = Database(os.environ["TEST_DATABASE_URL"], pool_size=1, max_overflow=0)
    try:
        pid = _backend_pid(database)
        with watcher.engine.connect() as watching:
            for n in range(5):  # back to back: the same connection, and no ping (psycopg's ping is the query ";")
                with database.engine.connect() as connection:
                    last = watching.exec_driver_sql(f"SELECT query FROM pg_stat_activity WHERE pid = {pid}").scalar_one()
                    assert last.strip() != ";", f"checkout {n} was pinged"
                    assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() == pid
        terminate_backends(os.environ["TEST_DATABASE_URL"], [pid])  # ended while it sits idle in the pool
        time.sleep(0.4)
        with database.session() as session:  # pinged, found dead, replaced: no error reaches the caller
            assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        database.dispose()
        watcher.dispose()


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="needs TEST_DATABASE_URL (CI sets it)")
def test_a_connection_that_died_within_the_idle_window_fails_once_and_the_pool_recovers():
    database = Database(os.environ["TEST_DATABASE_URL"], pool_size=2, max_overflow=0, ping_after_idle=600)
    try:
        pid = _backend_pid(database)
        terminate_backends(os.environ["TEST_DATABASE_URL"], [pid])
        with pytest.raises(DBAPIError) as failure, database.session() as session:
            session.execute(text("SELECT 1"))
        assert failure.value.connection_invalidated
        with database.session() as session:
            assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        database.dispose()
