"""Outbox rows: claimed by one relay at a time with a lease, marked sent only after a confirm.

A lease (``claimed_until``) rather than a lock held across the publish keeps the statements
identical on SQLite and PostgreSQL; rows of a relay that died become claimable again when its
lease runs out, so they are published late rather than never.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.store.database import write_transaction
from bus.store.schema import outbox, outbox_batches


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An outbox row claimed for publishing."""

    id: int
    event_id: str
    dossier_code: str
    exchange: str
    routing_key: str
    mandatory: bool
    payload: bytes
    attempts: int


async def claim(
    engine: AsyncEngine, *, relay_id: str, limit: int, lease_seconds: float
) -> list[PendingEvent]:
    """Claim up to ``limit`` unsent rows, oldest first, for ``lease_seconds``."""
    now = datetime.now(UTC)
    claimable = (
        sa.select(outbox.c.id)
        .where(
            outbox.c.sent_at.is_(None),
            sa.or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < now),
        )
        .order_by(outbox.c.id)
        .limit(limit)
    )
    if engine.dialect.name == "postgresql":
        # Relays on other nodes skip rows this one is claiming instead of waiting for them.
        claimable = claimable.with_for_update(skip_locked=True)
    statement = (
        sa.update(outbox)
        .where(outbox.c.id.in_(claimable.scalar_subquery()))
        .values(
            claimed_by=relay_id,
            claimed_until=now + timedelta(seconds=lease_seconds),
            attempts=outbox.c.attempts + 1,
        )
        .returning(
            outbox.c.id,
            outbox.c.event_id,
            outbox.c.dossier_code,
            outbox.c.exchange,
            outbox.c.routing_key,
            outbox.c.mandatory,
            outbox.c.payload,
            outbox.c.attempts,
        )
    )
    async with write_transaction(engine) as connection:
        rows = (await connection.execute(statement)).all()
    events = [PendingEvent(*row) for row in rows]
    events.sort(key=lambda e: e.id)  # RETURNING order is not guaranteed; publish in commit order
    return events


async def mark_sent(engine: AsyncEngine, ids: Sequence[int]) -> None:
    """Record that the broker confirmed these rows, and give them their place in event streams.

    The rows get the next batch number, taken from the one-row counter: updating it holds the
    row's lock until this transaction commits, so a relay elsewhere waits for this commit
    before taking the following number. Batch numbers therefore become visible in increasing
    order, and a stream that has read up to one has seen everything before it (see
    :mod:`bus.store.replay`). A row marked twice (a relay taking over an expired lease) keeps
    its first place, so a stream never sees it move.

    A row also waits for the earlier rows of its dossier: the status event a worker's relay
    confirms can overtake the submitted event the API's relay is still waiting on. It is then
    marked sent without a place, and takes one with the earlier row, in the batch that marks
    that row; so a stream gives each dossier's events in sequence.
    """
    if not ids:
        return
    async with write_transaction(engine) as connection:
        batch = (
            await connection.execute(
                sa.update(outbox_batches)
                .where(outbox_batches.c.id == 1)
                .values(last_batch=outbox_batches.c.last_batch + 1)
                .returning(outbox_batches.c.last_batch)
            )
        ).scalar_one()
        await connection.execute(
            sa.update(outbox)
            .where(outbox.c.id.in_(ids))
            .values(sent_at=datetime.now(UTC), claimed_until=None, last_error=None)
        )
        earlier = outbox.alias("earlier")
        unsent_before = (
            sa.select(earlier.c.id)
            .where(
                earlier.c.dossier_code == outbox.c.dossier_code,
                earlier.c.id < outbox.c.id,
                earlier.c.sent_at.is_(None),
            )
            .exists()
        )
        # An alias: a plain ``outbox`` here would be correlated with the row being updated.
        marked = outbox.alias("marked")
        dossiers = sa.select(marked.c.dossier_code).where(marked.c.id.in_(ids))
        await connection.execute(
            sa.update(outbox)
            .where(
                outbox.c.dossier_code.in_(dossiers),
                outbox.c.sent_at.is_not(None),
                outbox.c.stream_batch.is_(None),
                ~unsent_before,
            )
            .values(stream_batch=batch)
        )


async def release(
    engine: AsyncEngine, failures: Sequence[tuple[int, str]], *, retry_in: float
) -> None:
    """Give rows back after a failed publish, with the error, to be retried after ``retry_in``."""
    if not failures:
        return
    until = datetime.now(UTC) + timedelta(seconds=retry_in)
    async with write_transaction(engine) as connection:
        await connection.execute(
            sa.update(outbox)
            .where(outbox.c.id == sa.bindparam("row_id"))
            .values(last_error=sa.bindparam("error"), claimed_until=until),
            [{"row_id": row_id, "error": error[:2000]} for row_id, error in failures],
        )


async def purge_sent(engine: AsyncEngine, *, older_than_seconds: float) -> int:
    """Delete rows sent longer ago than the retention; returns how many."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
    async with write_transaction(engine) as connection:
        result = await connection.execute(
            sa.delete(outbox).where(outbox.c.sent_at.is_not(None), outbox.c.sent_at < cutoff)
        )
    return int(result.rowcount or 0)


async def lag(engine: AsyncEngine) -> tuple[int, datetime | None]:
    """How many rows wait to be published, and when the oldest was written."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(sa.func.count(), sa.func.min(outbox.c.created_at)).where(
                    outbox.c.sent_at.is_(None)
                )
            )
        ).one()
    oldest = row[1]
    if isinstance(oldest, datetime) and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return int(row[0]), oldest
