"""Recording what connectors did: dedup record, hop, new dossier state and status event at once.

The effect of a delivery (the dossier's new status and the event announcing it) is committed in
the same transaction as the processed-message record, so a message redelivered after a crash
finds its id already there and changes nothing: at-least-once delivery, exactly-once effect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.store.database import insert_ignoring_duplicates, write_transaction
from bus.store.schema import dossiers, hops, outbox, processed_messages
from contracts import FINISHED_STATUSES, DossierStatus, EventEnvelope

Outcome = Literal["applied", "duplicate", "failed"]


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """What one consumer did with one message, ready to be committed."""

    consumer: str
    message_id: str
    dossier_code: str
    hop_row: dict[str, Any]
    #: New status reported by the partner; ``None`` for a failed attempt (hop only).
    new_status: DossierStatus | None = None
    partner_reference: str | None = None
    #: The event that was delivered, so the status event can name its cause.
    cause: EventEnvelope | None = None
    #: The partner agency that acted, and what it said.
    agency: str | None = None
    note: str | None = None
    changed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StatusTransition:
    """A dossier's status change as committed, for building its event."""

    dossier_code: str
    receiving_agency: str
    previous_status: DossierStatus
    status: DossierStatus
    sequence: int


#: Builds the outbox row announcing a transition (kept outside the store: it knows events).
OutboxRowFactory = Callable[[DeliveryRecord, StatusTransition], dict[str, Any]]


async def already_processed(
    engine: AsyncEngine, consumer: str, message_ids: Sequence[str]
) -> set[str]:
    """Which of ``message_ids`` this consumer has already committed."""
    if not message_ids:
        return set()
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.select(processed_messages.c.message_id).where(
                processed_messages.c.consumer == consumer,
                processed_messages.c.message_id.in_(set(message_ids)),
            )
        )
        return {row[0] for row in rows}


async def commit_deliveries(
    engine: AsyncEngine, records: Sequence[DeliveryRecord], outbox_row: OutboxRowFactory
) -> list[Outcome]:
    """Commit a batch of delivery records; says per record whether its effect was applied."""
    now = datetime.now(UTC)
    dialect = engine.dialect.name
    async with write_transaction(engine) as connection:
        succeeded = [r for r in records if r.new_status is not None]
        claimed: set[tuple[str, str]] = set()
        if succeeded:
            # A message id recorded by a concurrent copy of the same message is not inserted
            # again, and only the copy that inserted it applies its effect.
            inserted = await connection.execute(
                insert_ignoring_duplicates(processed_messages, dialect).returning(
                    processed_messages.c.consumer, processed_messages.c.message_id
                ),
                [
                    {"consumer": r.consumer, "message_id": r.message_id, "processed_at": now}
                    for r in succeeded
                ],
            )
            claimed = {(row[0], row[1]) for row in inserted}

        outcomes: list[Outcome] = []
        winners: list[DeliveryRecord] = []
        for record in records:
            if record.new_status is None:
                outcomes.append("failed")
            elif (record.consumer, record.message_id) in claimed:
                claimed.discard((record.consumer, record.message_id))  # same id twice in a batch
                outcomes.append("applied")
                winners.append(record)
            else:
                outcomes.append("duplicate")

        transitions = await _apply_status(connection, winners, now)
        hop_rows = [
            {**record.hop_row, "outcome": _hop_outcome(record, outcome), "done_at": now}
            for record, outcome in zip(records, outcomes, strict=True)
        ]
        await connection.execute(hops.insert(), hop_rows)
        outbox_rows = [outbox_row(record, t) for record, t in transitions]
        if outbox_rows:
            await connection.execute(outbox.insert(), outbox_rows)
    return outcomes


def _hop_outcome(record: DeliveryRecord, outcome: Outcome) -> str:
    if outcome == "failed":
        return str(record.hop_row.get("outcome", "failed"))
    return "delivered" if outcome == "applied" else "duplicate"


async def _apply_status(
    connection: Any, records: Sequence[DeliveryRecord], now: datetime
) -> list[tuple[DeliveryRecord, StatusTransition]]:
    """Move each dossier to its new status with the next sequence number."""
    if not records:
        return []
    lookup = sa.select(
        dossiers.c.code, dossiers.c.status, dossiers.c.sequence, dossiers.c.receiving_agency
    ).where(dossiers.c.code.in_({r.dossier_code for r in records}))
    if connection.dialect.name == "postgresql":
        # Serialise concurrent workers on the same dossier (SQLite's write lock already does).
        lookup = lookup.with_for_update()
    state = {row.code: row for row in (await connection.execute(lookup)).all()}

    current: dict[str, tuple[DossierStatus, int, str]] = {
        code: (DossierStatus(row.status), row.sequence, row.receiving_agency)
        for code, row in state.items()
    }
    transitions: list[tuple[DeliveryRecord, StatusTransition]] = []
    updates: list[dict[str, Any]] = []
    for record in records:
        if record.dossier_code not in current or record.new_status is None:
            continue  # a dossier unknown to this store: evidence only, no state to move
        previous, sequence, agency = current[record.dossier_code]
        transition = StatusTransition(
            record.dossier_code, agency, previous, record.new_status, sequence + 1
        )
        current[record.dossier_code] = (record.new_status, sequence + 1, agency)
        transitions.append((record, transition))
        updates.append(
            {
                "row_code": record.dossier_code,
                "new_status": int(record.new_status),
                "new_sequence": sequence + 1,
                "new_reference": record.partner_reference,
                "new_finished_at": now if record.new_status in FINISHED_STATUSES else None,
                "new_updated_at": now,
            }
        )
    if updates:
        finished_type = dossiers.c.finished_at.type
        await connection.execute(
            sa.update(dossiers)
            .where(
                dossiers.c.code == sa.bindparam("row_code"),
                # A stale write never overwrites a newer state.
                dossiers.c.sequence < sa.bindparam("new_sequence"),
            )
            .values(
                status=sa.bindparam("new_status"),
                sequence=sa.bindparam("new_sequence"),
                partner_reference=sa.func.coalesce(
                    sa.bindparam("new_reference", type_=sa.String()), dossiers.c.partner_reference
                ),
                finished_at=sa.func.coalesce(
                    dossiers.c.finished_at, sa.bindparam("new_finished_at", type_=finished_type)
                ),
                updated_at=sa.bindparam("new_updated_at", type_=finished_type),
            ),
            updates,
        )
    return transitions
