"""The SQLite driver: a writer's statements on the loop's thread, reads on the connection's own
thread, and never two calls on one sqlite3 handle at once."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bus.store import sqlite_driver
from bus.store.database import create_engine, writer


@pytest.fixture
async def connection(tmp_path: Path) -> AsyncIterator[sqlite_driver.SqliteConnection]:
    opened = await sqlite_driver.connect(str(tmp_path / "driver.db"), timeout=5)
    await opened.create_function("thread_id", 0, threading.get_ident)
    await opened.create_function("nap", 1, lambda seconds: time.sleep(seconds) or 1)
    yield opened
    await opened.close()


async def _one(connection: sqlite_driver.SqliteConnection, sql: str) -> object:
    cursor = connection.cursor()
    await cursor.execute(sql)
    [(value,)] = await cursor.fetchall()
    await cursor.close()
    return value


async def test_inline_calls_run_on_the_loop_thread_and_others_off_it(
    connection: sqlite_driver.SqliteConnection,
) -> None:
    loop_thread = threading.get_ident()
    assert await _one(connection, "select thread_id()") != loop_thread
    connection.inline = True
    assert await _one(connection, "select thread_id()") == loop_thread
    await connection.commit()  # ends the inline stretch
    assert not connection.inline


async def test_a_call_after_a_cancelled_one_waits_for_it_to_finish(
    connection: sqlite_driver.SqliteConnection,
) -> None:
    """A cancelled task's statement goes on in the thread; the next call, even an inline one,
    runs after it on the thread rather than beside it on the same handle."""
    slow = asyncio.create_task(_one(connection, "select nap(0.4)"))
    await asyncio.sleep(0.1)
    slow.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await slow
    connection.inline = True
    started = time.monotonic()
    ran_on = await _one(connection, "select thread_id()")
    assert time.monotonic() - started >= 0.2, "the call did not wait for the cancelled one"
    assert ran_on != threading.get_ident(), "ran inline while the thread was busy"


async def test_a_writer_holds_the_lock_only_for_its_work_and_reads_stay_off_the_loop(
    tmp_path: Path,
) -> None:
    """Through the engine: a write transaction runs on the loop's thread once it has the lock; a
    read transaction runs on the connection's thread."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'engine.db'}")

    @sa.event.listens_for(engine.sync_engine, "connect")
    def _thread_id(dbapi_connection: object, _: object) -> None:
        dbapi_connection.create_function("thread_id", 0, threading.get_ident)  # type: ignore[attr-defined]

    try:
        async with writer(engine).begin() as connection:
            written_on = (await connection.execute(sa.text("select thread_id()"))).scalar()
        async with engine.connect() as connection:
            read_on = (await connection.execute(sa.text("select thread_id()"))).scalar()
    finally:
        await engine.dispose()
    assert written_on == threading.get_ident()
    assert read_on != threading.get_ident()


async def test_a_read_transaction_goes_to_the_thread_once_and_a_write_only_to_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read's pragma, BEGIN, cursor reset and rollback run here, its rows come with its
    execution; a write's statements run here too and only its commit (the fsync) goes there,
    the pool's rollback after it staying here."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'trips.db'}")
    trips: list[str] = []
    on_thread = sqlite_driver.SqliteConnection._on_thread

    async def counted(self: sqlite_driver.SqliteConnection, call: Any, *args: Any) -> Any:
        trips.append(getattr(call, "__name__", repr(call)))
        return await on_thread(self, call, *args)

    try:
        async with writer(engine).begin() as connection:
            await connection.execute(sa.text("create table t (x integer)"))
        monkeypatch.setattr(sqlite_driver.SqliteConnection, "_on_thread", counted)
        for _ in range(2):  # the connection changes role each time: its busy timeout too
            trips.clear()
            async with writer(engine).begin() as connection:
                await connection.execute(sa.text("insert into t values (1)"))
            assert trips == ["commit"]
            trips.clear()
            async with engine.connect() as connection:
                assert (await connection.execute(sa.text("select count(*) from t"))).scalar()
            assert trips == ["execute_and_fetch_ahead"]
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "rows", [0, 1, sqlite_driver.PREFETCH_ROWS, 2 * sqlite_driver.PREFETCH_ROWS + 7]
)
async def test_rows_past_those_fetched_ahead_come_when_asked_for(
    connection: sqlite_driver.SqliteConnection, rows: int
) -> None:
    """Whole (fetchall), in pieces (fetchmany) or one by one (fetchone): every row, in order."""
    query = f"with recursive n(i) as (select 1 union all select i + 1 from n where i < {rows}) "
    query += "select i from n where i <= ?"
    cursor = connection.cursor()
    await cursor.execute(query, (rows,))
    assert [i for (i,) in await cursor.fetchall()] == list(range(1, rows + 1))
    await cursor.execute(query, (rows,))
    pieces: list[int] = []
    while piece := await cursor.fetchmany(333):
        pieces += [i for (i,) in piece]
    assert pieces == list(range(1, rows + 1))
    await cursor.execute(query, (rows,))
    singles: list[int] = []
    while (row := await cursor.fetchone()) is not None:
        singles.append(row[0])
    assert singles == list(range(1, rows + 1))
    await cursor.close()


async def test_the_wal_is_checkpointed_off_the_loop_after_commits(tmp_path: Path) -> None:
    """A commit never copies the WAL back itself (SQLite's threshold is raised far above what
    the bus writes between two checkpoints); the file's checkpointer does it on its thread,
    at most every CHECKPOINT_EVERY_SECONDS."""
    path = tmp_path / "wal.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    checkpointer = sqlite_driver._checkpointer_for(str(path))
    assert checkpointer is not None
    try:
        async with engine.connect() as connection:
            pragma = await connection.exec_driver_sql("PRAGMA wal_autocheckpoint")
            assert pragma.scalar() == sqlite_driver.AUTOCHECKPOINT_PAGES
        async with writer(engine).begin() as connection:
            await connection.exec_driver_sql("CREATE TABLE blobs (data BLOB)")
        await asyncio.to_thread(checkpointer.wait)
        await asyncio.sleep(sqlite_driver.CHECKPOINT_EVERY_SECONDS)
        runs, copied_before = checkpointer.runs, checkpointer.pages_copied
        # 1,500 pages in one commit: past SQLite's default threshold of 1,000.
        async with writer(engine).begin() as connection:
            for _ in range(1500):
                await connection.exec_driver_sql("INSERT INTO blobs VALUES (zeroblob(4000))")
        await asyncio.to_thread(checkpointer.wait)
        assert checkpointer.runs == runs + 1
        assert checkpointer.pages_copied - copied_before >= 1500
        assert path.stat().st_size >= 1500 * 4096  # the pages are in the database file
        # Commits closer together than the interval start no checkpoint of their own.
        before = checkpointer.runs
        for _ in range(5):
            async with writer(engine).begin() as connection:
                await connection.exec_driver_sql("INSERT INTO blobs VALUES (x'00')")
        await asyncio.to_thread(checkpointer.wait)
        assert checkpointer.runs - before <= 1
    finally:
        await engine.dispose()


def test_an_in_memory_database_has_no_checkpointer() -> None:
    assert sqlite_driver._checkpointer_for(":memory:") is None
