"""SQLite under asyncio: a write transaction's statements run on the event loop's thread, the rest
in a worker thread.

Written by hand because the async SQLite driver SQLAlchemy offers (aiosqlite) sends every call
(cursor, execute, fetch, close) to a thread of its own and back: three or four hand-offs per
statement, each one waiting for the GIL while the loop runs other work. A write transaction of
ten statements then held SQLite's single write lock across some thirty hand-offs, and the API's
and the workers' commits queued behind it. Once the write lock is held, the bus's statements take
microseconds (an index lookup, a few rows inserted), so a write transaction runs them inline;
taking the lock is awaited in short steps (:mod:`bus.store.database`). The commit is the one
exception: its fsync of the WAL took 0.4 ms at the median on the benchmark's machine under load,
5 ms at p99 and up to 94 ms, all of it time the event loop stood still (no request parsed, no
confirm read), so it goes to the connection's thread, which sqlite3 lets run without the GIL.
Reads can be long (statistics, an audit check, a stream replay) and also go to the connection's
own thread, so the loop keeps serving while they run.

Copying the WAL's pages back into the database file (a checkpoint) is not left to the commit
that happens to fill the WAL past SQLite's threshold: that commit holds the write lock while it
copies, up to 60 ms in which every other writer of the file (the API's and the workers' group
commits) waits; when commits ran on the loop it stopped the whole process as long. A
:class:`WalCheckpointer` per database file runs a passive checkpoint on a thread of its own
instead, at most every :data:`CHECKPOINT_EVERY_SECONDS` while commits come; SQLite's own
threshold is raised to :data:`AUTOCHECKPOINT_PAGES`, a bound that only a checkpointer unable to
keep up would reach.

The classes speak the part of aiosqlite's interface that SQLAlchemy's aiosqlite dialect uses;
:func:`bus.store.database.create_engine` hands them to it through ``async_creator``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final, TypeVar, cast

__all__ = [
    "AUTOCHECKPOINT_PAGES",
    "CHECKPOINT_EVERY_SECONDS",
    "SqliteConnection",
    "SqliteCursor",
    "WalCheckpointer",
    "connect",
]

T = TypeVar("T")

_log = logging.getLogger(__name__)

#: Shortest time between two background checkpoints of a database file (per process).
CHECKPOINT_EVERY_SECONDS: Final = 0.5
#: SQLite's own checkpoint threshold in WAL pages (its default is 1,000): a safety net only.
AUTOCHECKPOINT_PAGES: Final = 20_000


class SqliteConnection:
    """A sqlite3 connection whose calls run inline while :attr:`inline` is set, else on its own
    thread, in the order they were made.

    One thread per connection, as aiosqlite has: when a task is cancelled while its statement
    runs there, the statement goes on, and whatever SQLAlchemy does next with the connection (a
    rollback, a close) must wait for it rather than run beside it on the same sqlite3 handle.
    For the same reason a call is made inline only when nothing is pending on the thread.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        thread: ThreadPoolExecutor,
        checkpointer: WalCheckpointer | None = None,
    ) -> None:
        self._conn = connection
        self._thread = thread
        self._checkpointer = checkpointer
        self._last: Future[Any] | None = None
        #: What the dialect checks before a commit or rollback: None once closed.
        self._connection: sqlite3.Connection | None = connection
        #: Set by the writer's begin hook before it takes the write lock; cleared at commit or
        #: rollback.
        self.inline = False
        # The dialect's isolation-level setter queues a function for aiosqlite's thread.
        self._tx = _RunNow()

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._conn.isolation_level = cast(Any, value)  # sqlite3 checks the value itself

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)``: here when inline and nothing waits on the thread, else there."""
        if self.inline and self._idle:
            return call(*args)
        return await self._on_thread(call, *args)

    async def run_light(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)``, which reads and writes no page (a cursor's reset, a rollback, a
        pragma): here whenever nothing waits on the thread, so that a read transaction goes
        there only for its statements."""
        if self._idle:
            return call(*args)
        return await self._on_thread(call, *args)

    @property
    def _idle(self) -> bool:
        return self._last is None or self._last.done()

    async def _on_thread(self, call: Callable[..., T], *args: Any) -> T:
        # The thread's own future, not the awaiting task's: it is done only once the call
        # returned, even when that task was cancelled. One thread runs them in order, so the
        # last one done means all are.
        self._last = self._thread.submit(call, *args)
        return await asyncio.wrap_future(self._last)

    def cursor(self) -> SqliteCursor:
        return SqliteCursor(self)

    async def begin_immediate(self) -> bool:
        """Try once to take the write lock (``BEGIN IMMEDIATE``): whether it was taken. Any
        error but the lock being held by another connection is raised."""
        try:
            await self.run(self._conn.execute, "BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # its extended codes too
                raise
            return False
        return True

    async def commit(self) -> None:
        try:
            # On the thread even for a writer: the fsync (see the module's docstring).
            await self._on_thread(self._conn.commit)
        finally:
            self.inline = False
        if self._checkpointer is not None:
            self._checkpointer.committed()

    async def rollback(self) -> None:
        try:
            # The pool rolls back every connection it takes back, after a commit too: with no
            # transaction open there is nothing to do. A rollback only drops what the
            # transaction held (pages in memory, its lock), so it needs no trip to the thread.
            if not self._idle or self._conn.in_transaction:
                await self.run_light(self._conn.rollback)
        finally:
            self.inline = False

    async def close(self) -> None:
        if self._connection is None:
            return
        self._connection = None
        self.inline = False
        # Closing the last connection checkpoints the WAL: not on the loop.
        try:
            await self._on_thread(self._conn.close)
        finally:
            self._thread.shutdown(wait=False)

    def stop(self) -> None:
        """Close without waiting (SQLAlchemy's terminate, outside any task): after whatever is
        still running on the connection's thread."""
        if self._connection is None:
            return
        self._connection = None
        self._thread.submit(self._conn.close)
        self._thread.shutdown(wait=False)

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        await self._on_thread(functools.partial(self._conn.create_function, *args, **kwargs))


#: Rows a query's execution fetches in the same trip to the thread (see SqliteCursor.execute).
PREFETCH_ROWS = 1000


class SqliteCursor:
    """A sqlite3 cursor whose database work runs where its connection says.

    A query's first rows are fetched with its execution, in one trip to the thread: SQLAlchemy
    fetches every row of a result as soon as the statement has run, so two trips became one.
    At most :data:`PREFETCH_ROWS` come ahead; the rest, for a caller reading a large result
    bit by bit, are fetched when asked for.
    """

    def __init__(self, connection: SqliteConnection) -> None:
        self._connection = connection
        self._cursor = connection._conn.cursor()  # a Python object: no database work
        self._ahead: deque[Any] = deque()
        self._more = False  # whether rows beyond those fetched ahead may remain

    async def __aenter__(self) -> SqliteCursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> SqliteCursor:
        cursor = self._cursor

        def execute_and_fetch_ahead() -> list[Any]:
            cursor.execute(sql, parameters)
            return cursor.fetchmany(PREFETCH_ROWS) if cursor.description is not None else []

        ahead = await self._connection.run(execute_and_fetch_ahead)
        self._ahead = deque(ahead)
        self._more = len(ahead) == PREFETCH_ROWS
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> SqliteCursor:
        self._ahead.clear()
        self._more = False
        await self._connection.run(self._cursor.executemany, sql, parameters)
        return self

    async def fetchone(self) -> Any:
        if self._ahead:
            return self._ahead.popleft()
        return await self._connection.run(self._cursor.fetchone) if self._more else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self._cursor.arraysize if size is None else size
        rows = [self._ahead.popleft() for _ in range(min(count, len(self._ahead)))]
        if len(rows) < count and self._more:
            rows += await self._connection.run(self._cursor.fetchmany, count - len(rows))
        return rows

    async def fetchall(self) -> list[Any]:
        rows = list(self._ahead)
        self._ahead.clear()
        if self._more:
            rows += await self._connection.run(self._cursor.fetchall)
            self._more = False
        return rows

    async def close(self) -> None:
        await self._connection.run_light(self._cursor.close)  # resets the statement: no page


class _RunNow:
    """Stands in for aiosqlite's request queue: runs the function and settles its future."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as error:  # handed to the caller awaiting the future
            future.set_exception(error)


class WalCheckpointer:
    """Passive checkpoints of one database file, on a thread and a connection of their own.

    :meth:`committed` is called after each commit; it starts a checkpoint when none is running
    and the last began at least ``every_seconds`` ago. A passive checkpoint copies what it can
    without waiting for anyone: writers go on appending to the WAL, readers keep their
    snapshots, and what it could not copy is copied by a later one. sqlite3 releases the GIL
    while SQLite works, so the copy and its fsync do not hold the event loop.
    """

    def __init__(self, path: str, *, every_seconds: float = CHECKPOINT_EVERY_SECONDS) -> None:
        self.path = path
        self._every = every_seconds
        self._running: Future[None] | None = None
        self._started_at = -float("inf")
        #: Checkpoints run so far, and WAL pages they copied (for tests and curious operators).
        self.runs = 0
        self.pages_copied = 0

    def committed(self) -> None:
        """A commit landed: start a checkpoint if one is due."""
        now = time.monotonic()
        if now - self._started_at < self._every:
            return
        if self._running is not None and not self._running.done():
            return
        self._started_at = now
        self._running = _CHECKPOINT_THREAD.submit(self._checkpoint)
        self._running.add_done_callback(self._report)

    def wait(self) -> None:
        """Block until the checkpoint in progress, if any, has finished (for tests)."""
        if self._running is not None:
            self._running.result()

    def _checkpoint(self) -> None:
        # A connection per checkpoint (opening one reads no page), so that a process that
        # opened many databases (a test run) keeps no file open for each; read-write, never
        # creating the file again if it was removed.
        connection = sqlite3.connect(
            f"file:{urllib.parse.quote(self.path)}?mode=rw", timeout=0, isolation_level=None,
            uri=True,
        )  # fmt: skip
        try:
            busy, _, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            connection.close()
        self.runs += 1
        self.pages_copied += max(copied, 0)
        if busy:
            _log.debug("checkpoint of %s found the file busy; the next one goes on", self.path)

    def _report(self, done: Future[None]) -> None:
        error = done.exception()
        if error is not None:
            _log.warning("checkpoint of %s failed: %s", self.path, error)


# One thread runs every checkpoint of the process; one checkpointer per database file, shared
# by every engine and connection on it.
_CHECKPOINT_THREAD: Final = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-wal")
_checkpointers: dict[str, WalCheckpointer] = {}


def _checkpointer_for(path: str) -> WalCheckpointer | None:
    if path == ":memory:" or path.startswith("file::memory:"):
        return None  # no file, no WAL
    if path not in _checkpointers:
        _checkpointers[path] = WalCheckpointer(path)
    return _checkpointers[path]


async def connect(path: str, *, timeout: float) -> SqliteConnection:
    """Open ``path`` (autocommit: the bus's begin hook starts each transaction itself)."""
    thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")

    def open_file() -> sqlite3.Connection:
        return sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)

    try:
        connection = await asyncio.get_running_loop().run_in_executor(thread, open_file)
    except BaseException:
        thread.shutdown(wait=False)
        raise
    return SqliteConnection(connection, thread, _checkpointer_for(path))
