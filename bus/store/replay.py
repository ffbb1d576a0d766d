"""Reading committed events back from the outbox, in commit order, for a stream that resumes.

Every event the bus emits is an outbox row first, numbered by ``outbox.id``; sent rows are kept
for ``BUS_OUTBOX_RETENTION_SECONDS``, which bounds how far back a stream can resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.store.schema import outbox


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as committed: its place in the outbox, identity, routing key and body."""

    position: int
    event_id: str
    routing_key: str
    payload: bytes
    sent_at: datetime | None


async def position_of(engine: AsyncEngine, event_id: str) -> int | None:
    """The outbox position of an event, or ``None`` when it is unknown or already purged."""
    async with engine.connect() as connection:
        found = await connection.execute(
            sa.select(outbox.c.id).where(outbox.c.event_id == event_id)
        )
        return found.scalar_one_or_none()


async def events_after(
    engine: AsyncEngine,
    *,
    position: int,
    exchange: str,
    prefixes: Sequence[str],
    limit: int,
) -> list[StoredEvent]:
    """Up to ``limit`` events committed after ``position``, oldest first.

    ``prefixes`` narrows the scan to routing keys starting with one of them (an empty prefix
    selects all); the caller applies the exact pattern. Rows not yet published are included:
    they are committed, and the relay will publish them.
    """
    query = (
        sa.select(
            outbox.c.id, outbox.c.event_id, outbox.c.routing_key, outbox.c.payload, outbox.c.sent_at
        )
        .where(outbox.c.id > position, outbox.c.exchange == exchange)
        .order_by(outbox.c.id)
        .limit(limit)
    )
    if prefixes and all(prefixes):
        query = query.where(
            sa.or_(*(outbox.c.routing_key.startswith(p, autoescape=True) for p in set(prefixes)))
        )
    async with engine.connect() as connection:
        rows = await connection.execute(query)
        return [StoredEvent(*row) for row in rows]
