"""A bus API served for a whole test module: its own namespace and store, cleaned up after.

The per-test ``api`` fixture (tests/integration/conftest.py) starts a bus for every test; a
module that sends hundreds of requests to one bus (the fuzzer, the hostile corpus) starts one
and reuses it, on SQLite or on a throw-away PostgreSQL database.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aio_pika
import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.api.app import create_app
from bus.registry import ConnectorRegistry
from bus.settings import Settings
from bus.store.database import create_engine
from bus.store.schema import metadata
from bus.testing import serve_app
from bus.topology import Names, delete_topology
from tests.conftest import AMQP_URL, CLEANED_RETRY_DELAYS, POSTGRES_ADMIN_DSN, make_settings

Database = Literal["sqlite", "postgresql"]

#: Bookkeeping the bus writes by itself (relay batches, cursors, the audit chain's head): not
#: what a request leaves behind.
_BOOKKEEPING = frozenset({"outbox_batches", "consumer_positions", "poll_cursors", "audit_head"})


@dataclass
class ServedBus:
    """The served API: its base URL, its settings and a connection to its store."""

    url: str
    settings: Settings
    engine: AsyncEngine

    async def rows(self) -> dict[str, int]:
        """Rows per table of the store, bookkeeping aside: what a refused request must not
        change."""
        counts: dict[str, int] = {}
        async with self.engine.connect() as connection:
            for table in metadata.sorted_tables:
                if table.name not in _BOOKKEEPING:
                    found = await connection.scalar(sa.select(sa.func.count()).select_from(table))
                    counts[table.name] = int(found or 0)
        return counts

    async def unsent_events(self) -> int:
        """Events committed and not yet confirmed by the broker."""
        outbox = metadata.tables["outbox"]
        async with self.engine.connect() as connection:
            found = await connection.scalar(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
            )
        return int(found or 0)


async def _postgres_admin(sql: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def served_bus(
    database: Database, directory: Path, **overrides: object
) -> AsyncIterator[ServedBus]:
    """Serve a bus API on ``database`` (a file in ``directory`` for SQLite), with ``overrides``
    of the test settings; delete its broker namespace (and PostgreSQL database) afterwards."""
    namespace = f"t{uuid.uuid4().hex[:12]}"
    if database == "sqlite":
        database_url = f"sqlite+aiosqlite:///{directory / 'bus.sqlite3'}"
    else:
        await _postgres_admin(f'CREATE DATABASE "{namespace}"')
        base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace(
            "postgresql://", "postgresql+asyncpg://"
        )
        database_url = f"{base}/{namespace}"
    settings = make_settings(namespace, database_url, **overrides)
    engine = create_engine(settings.database_url)
    try:
        # Started and stopped blocking this loop: nothing else runs on it at those moments.
        with serve_app(create_app(settings), lifespan="on") as url:
            yield ServedBus(url, settings, engine)
    finally:
        await engine.dispose()
        connection = await aio_pika.connect(AMQP_URL)
        try:
            await delete_topology(
                await connection.channel(),
                Names(namespace),
                connector_ids=sorted(ConnectorRegistry.discover().ids),
                retry_delays=CLEANED_RETRY_DELAYS,
            )
        finally:
            await connection.close()
        if database == "postgresql":
            await _postgres_admin(f'DROP DATABASE IF EXISTS "{namespace}" WITH (FORCE)')
