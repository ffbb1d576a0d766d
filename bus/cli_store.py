"""How a ``bus`` command works on the store: an engine for the store's URL, closed after, and a
store that cannot be read ends the command with what is wrong and where, not a traceback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final, NoReturn, TypeVar

import typer
from rich.console import Console
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.errors import BrokerUnavailable
from bus.settings import get_settings, redact_url
from bus.store.database import create_engine, writer

__all__ = ["CANNOT_READ", "fail", "missing_sqlite_store", "on_store", "store_error"]

T = TypeVar("T")
#: The exit code of a command that could not read the store (or reach the broker).
CANNOT_READ: Final = 2
_console = Console(stderr=True)


def fail(message: str, code: int = CANNOT_READ, *, hint: str | None = None) -> NoReturn:
    """End the command with ``message`` (in red), an optional ``hint``, and exit ``code``."""
    _console.print(f"[red]{message}[/]", soft_wrap=True)
    if hint is not None:
        _console.print(f"  {hint}", soft_wrap=True)
    raise typer.Exit(code)


def store_error(exc: SQLAlchemyError | OSError) -> str:
    """What went wrong with the store, in one line (the driver's words, not SQLAlchemy's)."""
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    text = str(cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__


def missing_sqlite_store(url: str) -> str | None:
    """Why ``url`` cannot be opened when it names a SQLite file that does not exist (opening it
    would make an empty store there); None otherwise."""
    location = make_url(url)
    database = location.database or ""
    is_file = location.get_backend_name() == "sqlite" and database not in ("", ":memory:")
    if is_file and not Path(database).exists():
        return f"there is no SQLite store at {database}"
    return None


def on_store(
    work: Callable[[AsyncEngine], Awaitable[T]],
    *,
    tables: tuple[str, ...],
    url: str | None = None,
    write: bool = False,
) -> T:
    """Run ``work`` on the store at ``url`` (default ``BUS_DATABASE_URL``). With ``write`` its
    transactions take SQLite's write lock first, as the bus's writers do (a reader must not:
    a long read would hold the writers off). ``tables``: those whose absence means the store
    needs ``bus migrate``."""
    url = url or get_settings().database_url
    hint = (
        f"store: {redact_url(url)} — check that the database is running and reachable, and "
        "BUS_DATABASE_URL or --database-url"
    )
    missing = missing_sqlite_store(url)
    if missing is not None:
        fail(missing, hint=hint)

    async def run() -> T:
        engine = create_engine(url)
        if write:
            engine = writer(engine)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except (SQLAlchemyError, OSError) as exc:
        text = store_error(exc)
        missing = next((name for name in tables if name in text), None)
        if missing is not None:
            fail(f"the store has no {missing} table yet ({text}): run `bus migrate`", hint=hint)
        fail(f"cannot read the store: {text}", hint=hint)
    except BrokerUnavailable as exc:
        fail(f"{exc.message}: is RabbitMQ running (BUS_AMQP_URL)?")
