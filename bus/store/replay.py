"""Reading sent events back from the outbox in one stable order, for event streams.

Why not ``outbox.id``: on PostgreSQL ids come from a sequence when a row is inserted, and
transactions commit in another order. A reader that has passed id 11 never looks back at
id 10, committed a moment later, and a stream resumed after 11 would lose it for good.

So a stream reads ``(stream_batch, id)``: the relay numbers each batch it marks sent from a
one-row counter whose lock it holds until its commit (:func:`bus.store.outbox.mark_sent`), so
batch numbers become visible in increasing order and nothing can appear behind a position
once it is visible. Within a batch, rows keep their id order (a dossier's events come out in
sequence). A stream therefore carries exactly what the broker confirmed, in the order the
confirmations were recorded; rows not yet confirmed join when they are. Sent rows are kept for
``BUS_OUTBOX_RETENTION_SECONDS``, which bounds how far back a stream can resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.store.schema import outbox


@dataclass(frozen=True, slots=True, order=True)
class StreamPosition:
    """A place in the event stream: after every event of lower (batch, id)."""

    batch: int
    id: int


#: Before every event: rows sent before the stream positions existed are in batch 0.
STREAM_START: Final = StreamPosition(-1, 0)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as confirmed: its place in the stream, identity, routing key and body."""

    position: StreamPosition
    event_id: str
    routing_key: str
    payload: bytes
    sent_at: datetime | None


async def position_of(engine: AsyncEngine, event_id: str) -> StreamPosition | None:
    """The stream position of an event; ``None`` if unknown, purged or not yet confirmed."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(outbox.c.stream_batch, outbox.c.id).where(
                    outbox.c.event_id == event_id, outbox.c.stream_batch.is_not(None)
                )
            )
        ).first()
    return StreamPosition(int(row[0]), int(row[1])) if row is not None else None


async def stream_end(engine: AsyncEngine) -> StreamPosition:
    """The position of the latest confirmed event: where a stream without a past starts."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(outbox.c.stream_batch, outbox.c.id)
                .where(outbox.c.stream_batch.is_not(None))
                .order_by(outbox.c.stream_batch.desc(), outbox.c.id.desc())
                .limit(1)
            )
        ).first()
    return StreamPosition(int(row[0]), int(row[1])) if row is not None else STREAM_START


async def events_after(
    engine: AsyncEngine,
    *,
    position: StreamPosition,
    exchange: str,
    prefixes: Sequence[str],
    limit: int,
) -> list[StoredEvent]:
    """Up to ``limit`` confirmed events after ``position``, in stream order.

    ``prefixes`` narrows the scan to routing keys starting with one of them (an empty prefix
    selects all); the caller applies the exact pattern.
    """
    query = (
        sa.select(
            outbox.c.stream_batch,
            outbox.c.id,
            outbox.c.event_id,
            outbox.c.routing_key,
            outbox.c.payload,
            outbox.c.sent_at,
        )
        .where(
            sa.tuple_(outbox.c.stream_batch, outbox.c.id)
            > sa.tuple_(sa.literal(position.batch), sa.literal(position.id)),
            outbox.c.exchange == exchange,
        )
        .order_by(outbox.c.stream_batch, outbox.c.id)
        .limit(limit)
    )
    if prefixes and all(prefixes):
        query = query.where(
            sa.or_(*(outbox.c.routing_key.startswith(p, autoescape=True) for p in set(prefixes)))
        )
    async with engine.connect() as connection:
        rows = await connection.execute(query)
        return [
            StoredEvent(StreamPosition(batch, row_id), event_id, key, payload, sent_at)
            for batch, row_id, event_id, key, payload, sent_at in rows
        ]
