"""Recording what connectors did: dedup record, hop, new dossier state and status event at once.

The effect of a delivery (the dossier's new status and the event announcing it) is committed in
the same transaction as the processed-message record, so a message redelivered after a crash
finds its id already there and changes nothing: at-least-once delivery, exactly-once effect.
The building blocks (claiming message ids, locking and moving dossiers) are shared with the
poller's records (:mod:`bus.store.polls`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bus.store.audit import append_audit, audit_records
from bus.store.database import insert_ignoring_duplicates, one_of_bound, write_transaction
from bus.store.linkage import StepAnswer
from bus.store.outbox import Handover, insert_events
from bus.store.schema import (
    consumer_positions,
    dossiers,
    hops,
    processed_messages,
    status_history,
)
from contracts import FINISHED_STATUSES, DossierStatus, EventEnvelope, StatusChange

if TYPE_CHECKING:  # the engine builds on this module's primitives; it is handed in at run time
    from bus.linkage.engine import LinkageEngine

Outcome = Literal["applied", "duplicate", "failed"]


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """What one consumer did with one message, ready to be committed."""

    consumer: str
    message_id: str
    dossier_code: str
    hop_row: dict[str, Any]
    #: New status reported by the partner; ``None`` when its answer moves no status (an event
    #: consumer's acknowledgement) or the attempt failed.
    new_status: DossierStatus | None = None
    partner_reference: str | None = None
    #: The event that was delivered, so the status event can name its cause.
    cause: EventEnvelope | None = None
    #: The partner agency that acted, and what it said.
    agency: str | None = None
    note: str | None = None
    changed_at: datetime | None = None
    #: The attempt failed: only its hop is recorded, the message stays unprocessed.
    failed: bool = False
    #: The dossier sequence of a delivered status event: the consumer's new position.
    delivered_sequence: int | None = None
    #: The linkage step the delivery was an order for, if it was one.
    step_id: str | None = None


@dataclass(frozen=True, slots=True)
class StatusTransition:
    """A dossier's status change as committed, for building its event."""

    dossier_code: str
    receiving_agency: str
    previous_status: DossierStatus
    status: DossierStatus
    sequence: int
    #: The id of the event that accepted the dossier: it names the dossier's linkage run.
    accepted_event_id: str | None = None


@dataclass(frozen=True, slots=True)
class DossierState:
    """A dossier's current state, as read under its row lock."""

    status: DossierStatus
    sequence: int
    receiving_agency: str
    accepted_event_id: str


@dataclass(frozen=True, slots=True)
class StatusMove:
    """One dossier moved to a new status with its next sequence number."""

    dossier_code: str
    status: DossierStatus
    sequence: int
    updated_at: datetime
    partner_reference: str | None = None
    #: When the dossier finished, if this status finishes it (kept when already set).
    finished_at: datetime | None = None
    #: When the agency made the change (its own date when it gave one), for the history.
    changed_at: datetime | None = None


#: Builds the outbox row announcing a change (kept outside the store: it knows events).
OutboxRowFactory = Callable[[DeliveryRecord, StatusChange, StatusTransition], dict[str, Any]]


async def already_processed(
    engine: AsyncEngine, consumer: str, message_ids: Sequence[str]
) -> set[str]:
    """Which of ``message_ids`` this consumer has already committed."""
    if not message_ids:
        return set()
    values = {"consumer": consumer, "message_ids": list(set(message_ids))}
    async with engine.connect() as connection:
        rows = await connection.execute(_processed(connection.dialect.name), values)
        return {row[0] for row in rows}


@functools.cache
def _processed(dialect_name: str) -> sa.Select[Any]:
    """The select of :func:`already_processed`, built once per dialect."""
    return sa.select(processed_messages.c.message_id).where(
        processed_messages.c.consumer == sa.bindparam("consumer"),
        one_of_bound(processed_messages.c.message_id, "message_ids", dialect_name),
    )


async def commit_deliveries(
    engine: AsyncEngine,
    records: Sequence[DeliveryRecord],
    outbox_row: OutboxRowFactory,
    *,
    linkage: LinkageEngine | None = None,
    handover: Handover | None = None,
) -> list[Outcome]:
    """Commit a batch of delivery records; says per record whether its effect was applied.

    With ``linkage``, an answer about a dossier in a linkage run moves the run, and the engine
    decides the dossier's status and orders the next steps, in the same transaction. With
    ``handover``, the outbox rows are leased to its relay and listed in it once committed.
    """
    now = datetime.now(UTC)
    async with write_transaction(engine) as connection:
        succeeded = [r for r in records if not r.failed]
        # A message id recorded by a concurrent copy of the same message is not inserted
        # again, and only the copy that inserted it applies its effect.
        claimed = await claim_message_ids(
            connection, [(r.consumer, r.message_id) for r in succeeded], now
        )

        outcomes: list[Outcome] = []
        winners: list[DeliveryRecord] = []
        for record in records:
            if record.failed:
                outcomes.append("failed")
            elif (record.consumer, record.message_id) in claimed:
                claimed.discard((record.consumer, record.message_id))  # same id twice in a batch
                outcomes.append("applied")
                winners.append(record)
            else:
                outcomes.append("duplicate")

        transitions, orders = await _apply_status(connection, winners, now, linkage)
        await _advance_positions(connection, winners, now)
        hop_rows = [
            {**record.hop_row, "outcome": _hop_outcome(record, outcome), "done_at": now}
            for record, outcome in zip(records, outcomes, strict=True)
        ]
        await connection.execute(hops.insert(), hop_rows)
        outbox_rows = [outbox_row(record, change, t) for record, change, t in transitions]
        outbox_rows += orders
        await insert_events(connection, outbox_rows, handover)
        # Last: the audit head stays locked from here to the commit.
        await append_audit(connection, audit_records(hop_rows, outbox_rows), now)
    return outcomes


def _hop_outcome(record: DeliveryRecord, outcome: Outcome) -> str:
    if outcome == "failed":
        return str(record.hop_row.get("outcome", "failed"))
    if outcome == "duplicate":
        return "duplicate"
    # "delivered", unless the worker named it otherwise (a superseded status event).
    return str(record.hop_row.get("outcome", "delivered"))


async def consumer_positions_of(
    engine: AsyncEngine, consumer: str, dossier_codes: Collection[str]
) -> dict[str, int]:
    """The last sequence of each dossier among ``dossier_codes`` delivered to ``consumer``."""
    if not dossier_codes:
        return {}
    values = {"consumer": consumer, "codes": list(set(dossier_codes))}
    async with engine.connect() as connection:
        rows = await connection.execute(_positions(connection.dialect.name), values)
        return {row[0]: row[1] for row in rows}


@functools.cache
def _positions(dialect_name: str) -> sa.Select[Any]:
    """The select of :func:`consumer_positions_of`, built once per dialect."""
    return sa.select(consumer_positions.c.dossier_code, consumer_positions.c.sequence).where(
        consumer_positions.c.consumer == sa.bindparam("consumer"),
        one_of_bound(consumer_positions.c.dossier_code, "codes", dialect_name),
    )


async def _advance_positions(
    connection: AsyncConnection, records: Sequence[DeliveryRecord], now: datetime
) -> None:
    """Record the status events consumers were handed; a position never moves back."""
    # One row per key (the highest): a multi-row upsert may not touch the same row twice.
    highest: dict[tuple[str, str], int] = {}
    for r in records:
        if r.delivered_sequence is not None:
            key = (r.consumer, r.dossier_code)
            highest[key] = max(r.delivered_sequence, highest.get(key, 0))
    if not highest:
        return
    rows = [
        {"consumer": c, "dossier_code": code, "sequence": seq, "updated_at": now}
        for (c, code), seq in highest.items()
    ]
    await connection.execute(_advancing(connection.dialect.name), rows)


@functools.cache
def _advancing(dialect_name: str) -> Any:
    """The upsert of :func:`_advance_positions`, built once per dialect."""
    insert = (sqlite if dialect_name == "sqlite" else postgresql).insert(consumer_positions)
    newer = insert.excluded.sequence > consumer_positions.c.sequence
    return insert.on_conflict_do_update(
        index_elements=[consumer_positions.c.consumer, consumer_positions.c.dossier_code],
        set_={
            "sequence": sa.case(
                (newer, insert.excluded.sequence), else_=consumer_positions.c.sequence
            ),
            "updated_at": insert.excluded.updated_at,
        },
    )


async def claim_message_ids(
    connection: AsyncConnection, ids: Sequence[tuple[str, str]], now: datetime
) -> set[tuple[str, str]]:
    """Record ``(consumer, message id)`` pairs as processed; returns those this call inserted.

    A pair already recorded (by an earlier or a concurrent transaction) is not inserted again,
    so only the one transaction that inserted it may apply the message's effect.
    """
    if not ids:
        return set()
    statement = _claiming(connection.dialect.name)
    if connection.dialect.name == "postgresql":
        values: Any = {
            "consumers": [consumer for consumer, _ in ids],
            "message_ids": [message_id for _, message_id in ids],
            "processed_at": now,
        }
    else:
        values = [
            {"consumer": consumer, "message_id": message_id, "processed_at": now}
            for consumer, message_id in ids
        ]
    inserted = await connection.execute(statement, values)
    return {(row[0], row[1]) for row in inserted}


@functools.cache
def _claiming(dialect_name: str) -> Any:
    """The insert of :func:`claim_message_ids`, built once per dialect."""
    columns = processed_messages.c
    if dialect_name == "postgresql":
        # The pairs as two arrays: one statement text whatever the batch's size (a multi-row
        # VALUES would be a new prepared statement per size; see bus.store.database.one_of_bound).
        texts = postgresql.ARRAY(sa.String)
        pairs = (
            sa.func.unnest(
                sa.bindparam("consumers", type_=texts), sa.bindparam("message_ids", type_=texts)
            )
            .table_valued("consumer", "message_id")
            .render_derived()
        )
        source = sa.select(
            pairs.c.consumer,
            pairs.c.message_id,
            sa.bindparam("processed_at", type_=columns.processed_at.type),
        )
        return (
            postgresql.insert(processed_messages)
            .from_select(["consumer", "message_id", "processed_at"], source)
            .on_conflict_do_nothing()
            .returning(columns.consumer, columns.message_id)
        )
    return insert_ignoring_duplicates(processed_messages, dialect_name).returning(
        columns.consumer, columns.message_id
    )


async def lock_dossiers(
    connection: AsyncConnection, codes: Collection[str]
) -> dict[str, DossierState]:
    """The current state of the dossiers this store knows among ``codes``, locked for update."""
    if not codes:
        return {}
    rows = await connection.execute(_locking(connection.dialect.name), {"codes": list(codes)})
    return {
        row.code: DossierState(
            DossierStatus(row.status), row.sequence, row.receiving_agency, row.accepted_event_id
        )
        for row in rows.all()
    }


@functools.cache
def _locking(dialect_name: str) -> sa.Select[Any]:
    """The select of :func:`lock_dossiers`, built once per dialect."""
    lookup = sa.select(
        dossiers.c.code,
        dossiers.c.status,
        dossiers.c.sequence,
        dossiers.c.receiving_agency,
        dossiers.c.accepted_event_id,
    ).where(one_of_bound(dossiers.c.code, "codes", dialect_name))
    if dialect_name == "postgresql":
        # Serialise concurrent writers on the same dossier (SQLite's write lock already does).
        lookup = lookup.with_for_update()
    return lookup


_MOVE_DOSSIER: Final = (
    sa.update(dossiers)
    .where(
        dossiers.c.code == sa.bindparam("row_code"),
        dossiers.c.sequence < sa.bindparam("new_sequence"),
    )
    .values(
        status=sa.bindparam("new_status"),
        sequence=sa.bindparam("new_sequence"),
        partner_reference=sa.func.coalesce(
            sa.bindparam("new_reference", type_=sa.String()), dossiers.c.partner_reference
        ),
        finished_at=sa.func.coalesce(
            dossiers.c.finished_at,
            sa.bindparam("new_finished_at", type_=dossiers.c.finished_at.type),
        ),
        updated_at=sa.bindparam("new_updated_at", type_=dossiers.c.updated_at.type),
    )
)


async def move_dossiers(connection: AsyncConnection, moves: Sequence[StatusMove]) -> None:
    """Write the dossiers' new status and sequence; a stale move never overwrites a newer one.

    Each move is also added to the dossier's status history (the statistics' evidence).
    """
    if not moves:
        return
    await connection.execute(
        status_history.insert(),
        [
            {
                "dossier_code": move.dossier_code,
                "sequence": move.sequence,
                "status": int(move.status),
                "changed_at": move.changed_at or move.updated_at,
                "recorded_at": move.updated_at,
            }
            for move in moves
        ],
    )
    await connection.execute(
        _MOVE_DOSSIER,
        [
            {
                "row_code": move.dossier_code,
                "new_status": int(move.status),
                "new_sequence": move.sequence,
                "new_reference": move.partner_reference,
                "new_finished_at": move.finished_at,
                "new_updated_at": move.updated_at,
            }
            for move in moves
        ],
    )


async def _apply_status(
    connection: AsyncConnection,
    records: Sequence[DeliveryRecord],
    now: datetime,
    linkage: LinkageEngine | None,
) -> tuple[list[tuple[DeliveryRecord, StatusChange, StatusTransition]], list[dict[str, Any]]]:
    """Move each dossier to its new status with the next sequence number.

    Returns the changes to announce and the outbox rows of any linkage step orders.
    """
    moving = [r for r in records if r.new_status is not None]
    if not moving:
        return [], []
    current = await lock_dossiers(connection, {r.dossier_code for r in moving})
    transitions: list[tuple[DeliveryRecord, StatusChange, StatusTransition]] = []
    orders: list[dict[str, Any]] = []
    if linkage is not None:
        known = [r for r in moving if r.dossier_code in current]
        settlement = await linkage.settle(
            connection,
            [
                StepAnswer(r.dossier_code, r.consumer, _change_of(r, now), r.step_id, r.cause)
                for r in known
            ],
            current,
            now,
        )
        for index, announcement in settlement.taken.items():
            if announcement is not None:
                transitions.append((known[index], announcement.change, announcement.transition))
        taken = {id(known[index]) for index in settlement.taken}
        moving = [r for r in moving if id(r) not in taken]
        orders = settlement.outbox_rows
    moves: list[StatusMove] = []
    for record in moving:
        state = current.get(record.dossier_code)
        if state is None or record.new_status is None:
            continue  # a dossier unknown to this store: evidence only, no state to move
        sequence = state.sequence + 1
        transition = StatusTransition(
            record.dossier_code,
            state.receiving_agency,
            state.status,
            record.new_status,
            sequence,
            state.accepted_event_id,
        )
        change = _change_of(record, now).model_copy(update={"previous_status": state.status})
        transitions.append((record, change, transition))
        current[record.dossier_code] = replace(state, status=record.new_status, sequence=sequence)
        moves.append(
            StatusMove(
                record.dossier_code,
                record.new_status,
                sequence,
                updated_at=now,
                partner_reference=record.partner_reference,
                finished_at=now if record.new_status in FINISHED_STATUSES else None,
                changed_at=record.changed_at,
            )
        )
    await move_dossiers(connection, moves)
    return transitions, orders


def _change_of(record: DeliveryRecord, now: datetime) -> StatusChange:
    """The status change a partner's answer reports."""
    if record.new_status is None or record.agency is None:
        raise ValueError("a delivery that changes status must name its status and agency")
    return StatusChange(
        dossier_code=record.dossier_code,
        status=record.new_status,
        changed_at=record.changed_at or now,
        agency=record.agency,
        note=record.note,
        partner_reference=record.partner_reference,
    )
