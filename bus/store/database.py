"""Opening the store: one async engine per process, tuned for SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import await_

from bus.store import sqlite_driver

WRITER_OPTION = "bus_writer"
#: Seconds a SQLite writer waits for the write lock before "database is locked".
_WRITE_LOCK_TIMEOUT = 30.0
#: Wait between two tries for SQLite's write lock.
_WRITE_LOCK_STEP_MS = 4


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engine(database_url: str) -> AsyncEngine:
    """An async engine for ``database_url``; SQLite gets WAL, full fsync and a busy timeout."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        path = url.database or ":memory:"
        engine = create_async_engine(
            url,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            # One writer at a time is SQLite's rule; a small pool avoids lock convoys.
            pool_size=4,
            max_overflow=0,
            async_creator=lambda: sqlite_driver.connect(path, timeout=_WRITE_LOCK_TIMEOUT),
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_async_engine(
        url,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        pool_size=10,
        max_overflow=10,
        # No ping before each checkout: it was a round trip and about 0.4 ms of CPU per
        # transaction, several per dossier. When the server drops its connections (a restart, a
        # failover), the first statement on a dead one fails; SQLAlchemy then discards every
        # connection of the pool, so one batch answers 503 (or is redelivered) and the next
        # runs on fresh connections: tests/bus/test_store.py cuts them to show it.
        pool_pre_ping=False,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling is switched off so that the "begin" hook below
    # decides how transactions start.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer; synchronous=FULL makes a commit durable across a
    # power cut, which "nothing accepted is lost" needs. Group commit pays that fsync per batch.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={int(_WRITE_LOCK_TIMEOUT * 1000)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Checkpoints run on a thread and a connection of their own (sqlite_driver.WalCheckpointer),
    # not in the commit that fills the WAL, which would hold the write lock while it copies.
    cursor.execute(f"PRAGMA wal_autocheckpoint={sqlite_driver.AUTOCHECKPOINT_PAGES}")
    cursor.close()


def _sqlite_begin_immediate(connection: sa.Connection) -> None:
    # A writer takes the write lock when its transaction starts, not at its first write: two
    # processes that both read then write would otherwise fail with "database is locked"
    # instead of waiting. Readers begin deferred so that WAL lets them run beside the writer.
    driver = connection.connection.driver_connection
    assert isinstance(driver, sqlite_driver.SqliteConnection)  # the engine's async_creator
    if not connection.get_execution_options().get(WRITER_OPTION):
        # Neither the pragma nor a deferred BEGIN reads a page: both run here, and only the
        # reader's statements go to the connection's thread.
        driver.inline = True
        try:
            _set_busy_timeout(connection, int(_WRITE_LOCK_TIMEOUT * 1000))
            connection.exec_driver_sql("BEGIN")
        finally:
            driver.inline = False
        return
    # The writer's statements run on the loop's thread (bus.store.sqlite_driver), so SQLite
    # must never sleep in its busy handler here: each try for the lock fails at once, and the
    # wait between tries is awaited, at most _WRITE_LOCK_STEP_MS, until the usual timeout.
    # (SQLite's own handler also slept up to 100 ms between tries: while the API and a worker
    # took turns every few milliseconds, a waiter kept missing its turn.)
    driver.inline = True
    try:
        _set_busy_timeout(connection, 0)
        deadline = time.monotonic() + _WRITE_LOCK_TIMEOUT
        # The tries go to the driver directly: through SQLAlchemy each refusal was an error
        # wrapped with its statement and traceback, more CPU than the transaction it waited for.
        while not await_(driver.begin_immediate()):
            if time.monotonic() > deadline:
                # Once more through SQLAlchemy, so that the caller gets its usual error.
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                return
            await_(asyncio.sleep(_WRITE_LOCK_STEP_MS / 1000))
    except BaseException:
        driver.inline = False
        raise


def _set_busy_timeout(connection: sa.Connection, milliseconds: int) -> None:
    """Set the pooled connection's busy timeout, remembered with it: a statement only when a
    connection changes between reading and writing, never while it holds the write lock."""
    info = connection.connection.info
    if info.get("busy_timeout") != milliseconds:
        connection.exec_driver_sql(f"PRAGMA busy_timeout={milliseconds}")
        info["busy_timeout"] = milliseconds


def writer(engine: AsyncEngine) -> AsyncEngine:
    """The same engine, marked so that its transactions start by taking SQLite's write lock."""
    return engine.execution_options(**{WRITER_OPTION: True})


def reader(engine: AsyncEngine) -> AsyncEngine:
    """The same engine, its transactions starting as readers (undoes :func:`writer`)."""
    return engine.execution_options(**{WRITER_OPTION: False})


# Per event loop (an asyncio lock belongs to one loop), per database file.
_sqlite_write_locks: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[str, asyncio.Lock]
] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction; on SQLite, one at a time per process.

    SQLite admits one writer. When two connections of the same process race for the lock, the
    loser sleeps in SQLite's busy handler (1, 2, 5, 10… ms) while the event loop could have
    queued it behind the winner for free; an asyncio lock does that queueing instead.
    """
    if engine.dialect.name != "sqlite":
        async with engine.begin() as connection:
            yield connection
        return
    locks = _sqlite_write_locks.setdefault(asyncio.get_running_loop(), {})
    lock = locks.setdefault(str(engine.url), asyncio.Lock())
    async with lock, engine.begin() as connection:
        yield connection


def one_of_bound(
    column: sa.ColumnElement[Any], name: str, dialect_name: str
) -> sa.ColumnElement[bool]:
    """``column IN (the list given at execution as name)``, for a statement built once.

    The SQL text does not change with the list's length. On PostgreSQL it is ``column =
    ANY($1)`` with one array parameter: a plain ``IN ($1, $2, ...)`` is a new statement for every
    list length, and asyncpg keeps a prepared statement per text on every pooled connection, so a
    worker's memory grew with each new batch size it met, by tens of megabytes over a long run.
    SQLite keeps few statements; it gets an expanding ``IN``. Statements are built once because
    one built per call costs about as much CPU as its round trip (SQLAlchemy builds the construct
    and derives its cache key each time).
    """
    if dialect_name == "postgresql":
        return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(column.type)))
    return column.in_(sa.bindparam(name, expanding=True))


def insert_ignoring_duplicates(table: sa.Table, dialect_name: str) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the dialect in use (SQLite or PostgreSQL)."""
    if dialect_name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    raise ValueError(f"unsupported database dialect {dialect_name!r}: use SQLite or PostgreSQL")
