"""Outbox rows: claimed by one relay at a time with a lease, marked sent only after a confirm.

A lease (``claimed_until``) rather than a lock held across the publish keeps the statements
identical on SQLite and PostgreSQL; rows of a relay that died become claimable again when its
lease runs out, so they are published late rather than never.

A writer that runs beside a relay (the API's ingest, a worker's commit) inserts its rows already
leased to that relay and hands them over in memory once committed (:class:`Handover`): the relay
publishes them without first claiming them back from the store, which saves a write transaction
and a round trip on the way from the commit to the broker.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bus.store.database import one_of_bound, reader, write_transaction
from bus.store.schema import outbox, outbox_batches


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An outbox row claimed for publishing (``event_id`` names it: it is unique)."""

    event_id: str
    dossier_code: str
    exchange: str
    routing_key: str
    mandatory: bool
    payload: bytes
    attempts: int


@dataclass(slots=True)
class Handover:
    """Outbox rows a writer inserted leased to ``relay_id``, for that relay once committed.

    Nothing here is published if the transaction rolls back: the writer hands it over only after
    its commit. If the process dies first, the rows are claimed by any relay when the lease
    runs out, as the rows of a relay that died mid-publish are.
    """

    relay_id: str
    lease_seconds: float
    events: list[PendingEvent] = field(default_factory=list)


async def insert_events(
    connection: AsyncConnection, rows: Sequence[dict[str, Any]], handover: Handover | None
) -> None:
    """Insert outbox rows in the caller's transaction; leased to ``handover``'s relay if given."""
    if not rows:
        return
    if handover is None:
        await connection.execute(outbox.insert(), rows)
        return
    until = datetime.now(UTC) + timedelta(seconds=handover.lease_seconds)
    leased = [
        {**row, "claimed_by": handover.relay_id, "claimed_until": until, "attempts": 1}
        for row in rows
    ]
    # No RETURNING: rows are named by their event id, and a plain executemany keeps one
    # statement text whatever the batch's size (see bus.store.database.one_of_bound).
    await connection.execute(outbox.insert(), leased)
    handover.events.extend(
        PendingEvent(
            event_id=row["event_id"],
            dossier_code=row["dossier_code"],
            exchange=row["exchange"],
            routing_key=row["routing_key"],
            mandatory=row["mandatory"],
            payload=row["payload"],
            attempts=1,
        )
        for row in rows
    )


async def claim(
    engine: AsyncEngine, *, relay_id: str, limit: int, lease_seconds: float
) -> list[PendingEvent]:
    """Claim up to ``limit`` unsent rows, oldest first, for ``lease_seconds``.

    A read comes first: relays poll several times a second and usually find every pending row
    leased to the relay its writer handed it to, and on SQLite an empty claim would still take
    the write lock that the API's and the workers' commits are waiting for.
    """
    now = datetime.now(UTC)
    claiming = _claiming(engine.dialect.name)
    async with reader(engine).connect() as connection:
        if (await connection.execute(claiming.peek, {"now": now})).first() is None:
            return []
    values = {
        "now": now,
        "until": now + timedelta(seconds=lease_seconds),
        "relay_id": relay_id,
        "limit": limit,
    }
    async with write_transaction(engine) as connection:
        rows = (await connection.execute(claiming.claim, values)).all()
    # RETURNING order is not guaranteed; publish in commit order.
    return [PendingEvent(*row[1:]) for row in sorted(rows, key=lambda row: row[0])]


@dataclass(frozen=True, slots=True)
class _Claiming:
    """The statements of :func:`claim`, built once per dialect."""

    peek: sa.Select[Any]
    claim: sa.Update


@functools.cache
def _claiming(dialect_name: str) -> _Claiming:
    now = sa.bindparam("now", type_=outbox.c.claimed_until.type)
    claimable = (
        sa.select(outbox.c.id)
        .where(
            outbox.c.sent_at.is_(None),
            sa.or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < now),
        )
        .order_by(outbox.c.id)
    )
    peek = claimable.limit(1)
    claimable = claimable.limit(sa.bindparam("limit", type_=sa.Integer))
    if dialect_name == "postgresql":
        # Relays on other nodes skip rows this one is claiming instead of waiting for them.
        claimable = claimable.with_for_update(skip_locked=True)
    statement = (
        sa.update(outbox)
        .where(outbox.c.id.in_(claimable.scalar_subquery()))
        .values(
            claimed_by=sa.bindparam("relay_id"),
            claimed_until=sa.bindparam("until", type_=outbox.c.claimed_until.type),
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
    return _Claiming(peek, statement)


async def mark_sent(engine: AsyncEngine, event_ids: Sequence[str]) -> None:
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
    if not event_ids:
        return
    marking = _marking(engine.dialect.name)
    values = {"event_ids": list(event_ids)}
    async with write_transaction(engine) as connection:
        batch = (await connection.execute(marking.next_batch)).scalar_one()
        await connection.execute(marking.sent, {**values, "sent_at": datetime.now(UTC)})
        await connection.execute(marking.placed, {**values, "batch": batch})


@dataclass(frozen=True, slots=True)
class _Marking:
    """The statements of :func:`mark_sent`, built once per dialect."""

    next_batch: sa.Update
    sent: sa.Update
    placed: sa.Update


@functools.cache
def _marking(dialect_name: str) -> _Marking:
    next_batch = (
        sa.update(outbox_batches)
        .where(outbox_batches.c.id == 1)
        .values(last_batch=outbox_batches.c.last_batch + 1)
        .returning(outbox_batches.c.last_batch)
    )
    sent = (
        sa.update(outbox)
        .where(one_of_bound(outbox.c.event_id, "event_ids", dialect_name))
        .values(sent_at=sa.bindparam("sent_at"), claimed_until=None, last_error=None)
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
    dossiers = sa.select(marked.c.dossier_code).where(
        one_of_bound(marked.c.event_id, "event_ids", dialect_name)
    )
    placed = (
        sa.update(outbox)
        .where(
            outbox.c.dossier_code.in_(dossiers),
            outbox.c.sent_at.is_not(None),
            outbox.c.stream_batch.is_(None),
            ~unsent_before,
        )
        .values(stream_batch=sa.bindparam("batch"))
    )
    return _Marking(next_batch, sent, placed)


async def release(
    engine: AsyncEngine, failures: Sequence[tuple[str, str]], *, retry_in: float
) -> None:
    """Give rows back after a failed publish, with the error, to be retried after ``retry_in``."""
    if not failures:
        return
    until = datetime.now(UTC) + timedelta(seconds=retry_in)
    async with write_transaction(engine) as connection:
        await connection.execute(
            sa.update(outbox)
            .where(outbox.c.event_id == sa.bindparam("row_event_id"))
            .values(last_error=sa.bindparam("error"), claimed_until=until),
            [{"row_event_id": event_id, "error": error[:2000]} for event_id, error in failures],
        )


async def purge_sent(engine: AsyncEngine, *, older_than_seconds: float) -> int:
    """Delete rows sent longer ago than the retention; returns how many."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
    async with write_transaction(engine) as connection:
        result = await connection.execute(
            sa.delete(outbox).where(outbox.c.sent_at.is_not(None), outbox.c.sent_at < cutoff)
        )
    return int(result.rowcount or 0)


async def unsent(engine: AsyncEngine, event_ids: Sequence[str]) -> set[str]:
    """Which of these rows are not yet marked sent (by any relay)."""
    found: set[str] = set()
    if not event_ids:
        return found
    async with reader(engine).connect() as connection:
        query = _unsent_among(connection.dialect.name)
        # In slices: SQLite binds each id of a list as a parameter of its own.
        for start in range(0, len(event_ids), _UNSENT_SLICE):
            values = {"event_ids": list(event_ids[start : start + _UNSENT_SLICE])}
            found.update(row[0] for row in await connection.execute(query, values))
    return found


_UNSENT_SLICE = 1000


@functools.cache
def _unsent_among(dialect_name: str) -> sa.Select[Any]:
    return sa.select(outbox.c.event_id).where(
        one_of_bound(outbox.c.event_id, "event_ids", dialect_name), outbox.c.sent_at.is_(None)
    )


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
