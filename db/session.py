"""Engine and sessions: a SQLite file in WAL mode by default, PostgreSQL through DATABASE_URL."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from functools import cache
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Insert, Result, Table, create_engine, event, insert
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import Session, make_transient_to_detached, sessionmaker

logger = logging.getLogger(__name__)
_Row = TypeVar("_Row")


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed. `Session.execute` is typed as returning a Result; for those
    statements it is a CursorResult, which has the count."""
    return cast(CursorResult[Any], result).rowcount


def add_row(session: Session, cls: type[_Row], **values: Any) -> _Row:
    """`insert_now(session, cls(**values))`."""
    return insert_now(session, cls(**values))


def insert_now(session: Session, obj: _Row) -> _Row:
    """`obj` inserted at once and persistent in the session (see `insert_unless_exists`)."""
    return cast(_Row, insert_unless_exists(session, obj, ()))


def insert_unless_exists(session: Session, obj: _Row, unless: tuple[str, ...]) -> _Row | None:
    """Insert a new object's row at once, with a Core INSERT (no unit of work), and make it a persistent object
    of the session, every column set, so that reading it costs no query and changing it is an UPDATE at the
    next flush. A third of `session.add` plus a flush on the hot paths (an inbound message, a reply and its
    outbox row, a carrier event and its notification); what is pending in the session is not flushed first (it
    goes at the next flush), so whatever the row refers to must be in the database already. Column defaults are
    the model's (`default=`), applied here so that the object holds them too; a column with neither a value nor
    a default is NULL (one with a server default is left to the database, and loaded when first read).
    Relationships set on the object are not followed: set its foreign keys by id. `unless`: the columns of a
    unique key; when a row with the same values exists (or a concurrent transaction commits one), nothing is
    inserted and None is returned (INSERT ... ON CONFLICT DO NOTHING: no savepoint needed)."""
    table = cast(Table, obj.__table__)  # type: ignore[attr-defined]
    state = obj.__dict__
    row: dict[str, Any] = {}
    for column in table.columns:
        key = column.key
        if key in state:
            row[key] = state[key]
        elif column.primary_key or column.server_default is not None:
            continue
        else:
            default: Any = column.default
            value = None if default is None else default.arg(None) if default.is_callable else default.arg
            setattr(obj, key, value)
            row[key] = value
    connection = session.connection()  # not Session.execute: that would autoflush
    primary_key = table.primary_key.columns[0]
    if unless:
        new_id = connection.execute(_insert_unless(table, unless, connection.dialect.name), row).scalar()
        if new_id is None:
            return None
    else:
        inserted = connection.execute(insert_statement(table), row).inserted_primary_key
        new_id = inserted[0] if inserted is not None else None
    setattr(obj, primary_key.key, new_id)
    make_transient_to_detached(obj)
    session.add(obj)
    return obj


@cache  # building a statement costs more than running it (SQLAlchemy caches only the compiled form)
def insert_statement(table: Table) -> Insert:
    return insert(table)


@cache
def _insert_unless(table: Table, unique: tuple[str, ...], dialect: str) -> Insert:
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing(index_elements=list(unique)).returning(
        table.primary_key.columns[0])


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` / `postgres://` URLs and use the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


# A pooled PostgreSQL connection is pinged before use only when it has sat idle this long: one that served a
# request a moment ago is alive (SQLAlchemy's pool_pre_ping costs a round trip on every checkout, two per inbound
# message). A connection that died meanwhile fails its first statement; SQLAlchemy then invalidates the whole pool,
# and the webhook handles the message again on a new connection (bot/web/webhooks.py `_handle_one`).
PING_AFTER_IDLE_SECONDS = 1.0  # the default of `Database(ping_after_idle=...)`


class Database:
    """One engine and session factory per process; sessions are short and explicit."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10, max_overflow: int = 10,
                 ping_after_idle: float = PING_AFTER_IDLE_SECONDS) -> None:
        self.url = normalize_url(url)
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        self._turns_path: str | None = None  # SQLite file: the processes' writers take turns on a lock file
        if self.is_sqlite:
            database = parsed.database
            if database and database != ":memory:" and not database.startswith("file:"):
                self._turns_path = database + "-writers"
                try:
                    Path(database).parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:  # the disk is away: an outage, reported by the first connection
                    logger.error("cannot create the database directory: %s", exc.strerror or exc)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=max_overflow)
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin_immediate)
        else:
            event.listen(self.engine, "checkin", _idle_from)
            event.listen(self.engine, "checkout", _pinger(self.engine.dialect, ping_after_idle))
        # Handed to every session as `session.info` (the app puts what its sessions need to find here).
        self.info: dict[str, Any] = {}
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False, info=self.info)
        self._writers = threading.RLock()  # SQLite: this process's writers, one at a time (see `session`)
        self._depth = 0  # sessions nested in the thread holding `_writers`
        self._turns: tuple[int, int] | None = None  # (pid, fd) of the lock file, opened once per process
        # Reads that must not take SQLite's write lock (the engine's look-up before the NLU runs); on PostgreSQL
        # a READ ONLY transaction, so that it can end with COMMIT (see `end_read`).
        read_options: dict[str, Any] = {"lastmile_read_only": True}
        if not self.is_sqlite:
            read_options["postgresql_readonly"] = True
        self.read_engine: Engine = self.engine.execution_options(**read_options)
        self.read_sessionmaker = sessionmaker(self.read_engine, expire_on_commit=False, info=self.info)

    def ping(self) -> None:
        """Raise if the database does not answer a trivial query."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error.

        On SQLite the writers of this process take turns on a lock before they ask for the database's write
        lock: SQLite's busy handler lets waiters poll (every 100 ms after a while) and the next free moment
        goes to whoever polls first, so under load one writer could lose over and over for seconds. Waiting
        here, the threads of a process queue up; the processes then queue on an advisory lock on a file beside
        the database (`<file>-writers`, flock), and the kernel wakes the next one the moment the lock is free,
        where SQLite's busy handler would have it sleep and poll."""
        with self._write_turn() if self.is_sqlite else nullcontext():
            session = self.sessionmaker()
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    @contextmanager
    def _write_turn(self) -> Iterator[None]:
        with self._writers:
            fd = self._turns_fd() if self._depth == 0 else None
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)  # releases the GIL while it waits
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def _turns_fd(self) -> int | None:
        """This process's descriptor of the lock file. A descriptor inherited through fork shares its lock
        with the parent, so each process opens its own."""
        if self._turns_path is None:
            return None
        if self._turns is None or self._turns[0] != os.getpid():
            try:
                fd = os.open(self._turns_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:  # a read-only or vanished folder: SQLite's busy handler alone, and not tried again
                fd = -1       # on every session of this process
            self._turns = (os.getpid(), fd)
        return self._turns[1] if self._turns[1] >= 0 else None

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for reads only, always rolled back: on SQLite a deferred BEGIN, so it holds no
        write lock and never blocks a writer (WAL)."""
        session = self.read_sessionmaker()
        try:
            yield session
        finally:
            self.end_read(session)
            session.close()

    def end_read(self, reader: Session | Connection) -> None:
        """End a read on `read_engine`. PostgreSQL: COMMIT, as the transaction is READ ONLY and nothing can
        have been written — psycopg forgets every prepared statement of a connection at each ROLLBACK, so a
        rollback per request would have every statement parsed and planned again. SQLite: ROLLBACK."""
        if self.is_sqlite:
            reader.rollback()
        else:
            reader.commit()

    def dispose(self) -> None:
        self.engine.dispose()
        if self._turns is not None and self._turns[0] == os.getpid() and self._turns[1] >= 0:
            os.close(self._turns[1])
        self._turns = None


def _idle_from(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _pinger(dialect: Any, after_idle: float) -> Callable[[Any, Any, Any], None]:
    def ping_after_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < after_idle:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool discards this connection and checks out (or opens) another
            raise sa_exc.DisconnectionError(f"a pooled connection failed its ping: {exc}") from exc

    return ping_after_idle


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling is disabled so that "begin" below controls it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    # BEGIN IMMEDIATE takes the write lock up front: concurrent webhook writers queue on the
    # busy timeout instead of failing with "database is locked" when upgrading a read lock.
    read_only = conn.get_execution_options().get("lastmile_read_only")
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


# --- error classification ---------------------------------------------------------------------------
INT64 = 2**63


def is_outage(exc: BaseException) -> bool:
    """True when `exc` means the database cannot be reached or cannot write right now (down, restarting,
    connection reset, pool exhausted, disk full, locked past the busy timeout), as opposed to bad input
    (DataError, IntegrityError) or a bug. Only outages are answered 503 or spooled."""
    if isinstance(exc, sa_exc.TimeoutError):  # no connection from the pool in time
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        return bool(exc.connection_invalidated) or isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError))
    return False


def bad_input(exc: BaseException) -> dict[str, Any] | None:
    """For a DataError or IntegrityError caused by the values sent: {"status", "field", "message"}
    (field as the column or parameter name when it can be told, else None); None for anything else."""
    if isinstance(exc, sa_exc.IntegrityError):
        return _integrity_problem(exc)
    if isinstance(exc, sa_exc.DataError) or (isinstance(exc, sa_exc.StatementError)
                                              and isinstance(exc.orig, (OverflowError, UnicodeError))):
        field, message = _bad_parameter(exc)
        return {"status": 422, "field": field, "message": message}
    return None


def _integrity_problem(exc: sa_exc.IntegrityError) -> dict[str, Any]:
    text = str(exc.orig)
    diag = getattr(exc.orig, "diag", None)
    column = getattr(diag, "column_name", None)
    constraint = getattr(diag, "constraint_name", None)
    if "UNIQUE" in text or "unique" in text or getattr(exc.orig, "sqlstate", "") == "23505":
        field = column or constraint or _sqlite_column(text)
        return {"status": 409, "field": field, "message": "conflicts with an existing or concurrent record"}
    field = column or _sqlite_column(text) or constraint
    return {"status": 422, "field": field, "message": "is missing or not allowed"}


def _sqlite_column(text: str) -> str | None:
    # "NOT NULL constraint failed: order_events.type", "UNIQUE constraint failed: orders.ref"
    if "constraint failed:" not in text:
        return None
    return text.rsplit(":", 1)[1].split(",")[0].strip().rsplit(".", 1)[-1] or None


def _bad_parameter(exc: sa_exc.StatementError) -> tuple[str | None, str]:
    """The statement parameter that cannot be stored: a NUL character, a number out of range, text
    longer than its column."""
    import math
    import re
    from datetime import datetime

    message = str(getattr(exc, "orig", "") or "")
    limit = re.search(r"character varying\((\d+)\)", message)
    params = exc.params
    rows = params if isinstance(params, (list, tuple)) and params and isinstance(params[0], dict) else [params]
    for row in rows:
        if not isinstance(row, dict):
            continue
        for key, value in row.items():
            field = re.sub(r"_(?:m)?\d+$", "", str(key))
            if isinstance(value, str):
                if "\x00" in value:
                    return field, "must not contain NUL characters"
                if limit and len(value) > int(limit.group(1)):
                    return field, f"must be at most {limit.group(1)} characters"
            elif isinstance(value, float) and not math.isfinite(value):
                return field, "must be a finite number"
            elif isinstance(value, int) and not isinstance(value, bool) and not -INT64 <= value < INT64:
                return field, "is out of range"
            elif isinstance(value, datetime) and value.utcoffset() and not 1 < value.year < 9999:
                return field, "is out of range"
    return None, "a value is out of range or cannot be stored"
