"""Dead letters in the store: kept as they leave the parking queue, read, replayed, discarded.

Each change is evidence: a replay or a discard is a hop of the dossier (kind ``replay`` or
``discard``, the operator as sender, the reason in its detail), sealed in the audit chain in the
same transaction; a message the broker dead-lettered by itself (delivery limit), which no worker
recorded, gets its ``parked`` hop when it is kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.store.audit import append_audit, audit_records
from bus.store.database import insert_ignoring_duplicates, write_transaction
from bus.store.schema import dead_letters, dossiers, hops

__all__ = [
    "DeadLetterQuery",
    "DeadLetterState",
    "Resolution",
    "count_dead_letters",
    "find_dead_letters",
    "keep_dead_letters",
    "matching_ids",
    "read_dead_letter",
    "read_parked",
    "resolve_dead_letters",
]

DeadLetterState = Literal["parked", "replayed", "discarded"]
PARKED: Final = "parked"
#: The hop kinds an operator's decision is recorded as.
_DECISION_HOPS: Final = {"replayed": "replay", "discarded": "discard"}
#: A dossier code when the parked body named none (unreadable JSON, say).
_NO_DOSSIER: Final = "?"


@dataclass(frozen=True, slots=True)
class DeadLetterQuery:
    """Which dead letters: each field set narrows the set (all of them: AND)."""

    state: DeadLetterState | None = PARKED
    connector: str | None = None
    procedure_code: str | None = None
    error_class: str | None = None
    fault_code: str | None = None
    dossier_code: str | None = None
    message_id: str | None = None
    parked_after: datetime | None = None
    parked_before: datetime | None = None
    ids: tuple[int, ...] | None = None

    def where(self) -> list[sa.ColumnElement[bool]]:
        """The SQL conditions of this query."""
        table = dead_letters.c
        exact: list[tuple[sa.Column[Any], object]] = [
            (table.state, self.state),
            (table.connector, self.connector),
            (table.procedure_code, self.procedure_code),
            (table.error_class, self.error_class),
            (table.fault_code, self.fault_code),
            (table.dossier_code, self.dossier_code),
            (table.message_id, self.message_id),
        ]
        conditions = [column == value for column, value in exact if value is not None]
        if self.parked_after is not None:
            conditions.append(table.parked_at >= self.parked_after)
        if self.parked_before is not None:
            conditions.append(table.parked_at < self.parked_before)
        if self.ids is not None:
            conditions.append(table.id.in_(self.ids))
        return conditions


@dataclass(frozen=True, slots=True)
class Resolution:
    """An operator's decision on dead letters: replayed, or discarded with a reason."""

    state: Literal["replayed", "discarded"]
    by: str
    note: str | None = None


async def keep_dead_letters(
    engine: AsyncEngine, rows: Sequence[Mapping[str, Any]], *, recorded: Sequence[bool]
) -> list[bool]:
    """Insert parked messages (rows of ``dead_letters`` without ``procedure_code`` and
    ``state``); whether each was new. ``recorded[i]``: a worker already recorded its parking hop.
    """
    now = datetime.now(UTC)
    async with write_transaction(engine) as connection:
        codes = {row["dossier_code"] for row in rows if row["dossier_code"]}
        procedures: dict[str, str] = {}
        if codes:
            found = await connection.execute(
                sa.select(dossiers.c.code, dossiers.c.procedure_code).where(
                    dossiers.c.code.in_(codes)
                )
            )
            procedures = {str(code): str(procedure) for code, procedure in found}
        insert = insert_ignoring_duplicates(dead_letters, connection.dialect.name)
        kept: list[bool] = []
        park_hops: list[dict[str, Any]] = []
        for row, already in zip(rows, recorded, strict=True):
            values = {
                **row,
                "procedure_code": procedures.get(row["dossier_code"] or ""),
                "state": PARKED,
            }
            inserted = await connection.execute(insert.values(**values))
            new = inserted.rowcount == 1
            kept.append(new)
            if new and not already:
                park_hops.append(_hop(row, "deliver", now, outcome="parked", sender="bus"))
        if park_hops:
            await connection.execute(hops.insert(), park_hops)
            await append_audit(connection, audit_records(park_hops), now)
    return kept


async def find_dead_letters(
    engine: AsyncEngine, query: DeadLetterQuery, *, limit: int, before_id: int | None = None
) -> list[dict[str, Any]]:
    """Dead letters matching ``query``, newest first, without their bodies; ``before_id`` pages."""
    columns = [c for c in dead_letters.c if c.name not in ("body", "headers")]
    statement = sa.select(*columns).where(*query.where())
    if before_id is not None:
        statement = statement.where(dead_letters.c.id < before_id)
    statement = statement.order_by(dead_letters.c.id.desc()).limit(limit)
    async with engine.connect() as connection:
        return [dict(row._mapping) for row in await connection.execute(statement)]


async def count_dead_letters(engine: AsyncEngine, query: DeadLetterQuery) -> int:
    """How many dead letters match ``query``."""
    statement = sa.select(sa.func.count()).select_from(dead_letters).where(*query.where())
    async with engine.connect() as connection:
        return int((await connection.execute(statement)).scalar_one())


async def matching_ids(engine: AsyncEngine, query: DeadLetterQuery, *, limit: int) -> list[int]:
    """The ids of the dead letters matching ``query``, oldest first (the order to replay in)."""
    statement = (
        sa.select(dead_letters.c.id).where(*query.where()).order_by(dead_letters.c.id).limit(limit)
    )
    async with engine.connect() as connection:
        return [int(i) for i in (await connection.execute(statement)).scalars()]


async def read_parked(engine: AsyncEngine, ids: Sequence[int]) -> list[dict[str, Any]]:
    """The still-parked dead letters among ``ids``, in full, oldest first."""
    statement = (
        sa.select(dead_letters)
        .where(dead_letters.c.id.in_(ids), dead_letters.c.state == PARKED)
        .order_by(dead_letters.c.id)
    )
    async with engine.connect() as connection:
        return [dict(row._mapping) for row in await connection.execute(statement)]


async def read_dead_letter(engine: AsyncEngine, dead_letter_id: int) -> dict[str, Any] | None:
    """One dead letter in full (body and headers), or None."""
    statement = sa.select(dead_letters).where(dead_letters.c.id == dead_letter_id)
    async with engine.connect() as connection:
        row = (await connection.execute(statement)).first()
    return None if row is None else dict(row._mapping)


async def resolve_dead_letters(
    engine: AsyncEngine, ids: Sequence[int], resolution: Resolution
) -> list[int]:
    """Mark the still-parked ones among ``ids`` as replayed or discarded, with a hop each for
    their dossiers; the ids it changed (another operator may have been first for the rest)."""
    if not ids:
        return []
    now = datetime.now(UTC)
    table = dead_letters.c
    async with write_transaction(engine) as connection:
        found = await connection.execute(
            sa.select(dead_letters).where(table.id.in_(ids), table.state == PARKED)
        )
        rows = [dict(row._mapping) for row in found]
        if not rows:
            return []
        changed = [row["id"] for row in rows]
        await connection.execute(
            sa.update(dead_letters)
            .where(table.id.in_(changed), table.state == PARKED)
            .values(
                state=resolution.state,
                resolved_at=now,
                resolved_by=resolution.by,
                resolution_note=resolution.note,
            )
        )
        decision_hops = [
            _hop(
                row,
                _DECISION_HOPS[resolution.state],
                now,
                outcome=resolution.state,
                sender=resolution.by,
                detail=resolution.note,
            )
            for row in rows
        ]
        await connection.execute(hops.insert(), decision_hops)
        await append_audit(connection, audit_records(decision_hops), now)
    return changed


def _hop(
    row: Mapping[str, Any],
    kind: str,
    now: datetime,
    *,
    outcome: str,
    sender: str,
    detail: str | None = None,
) -> dict[str, Any]:
    """A hop of the dead letter's dossier: parked by the broker, replayed, or discarded."""
    parked_by_broker = kind == "deliver"
    return {
        "message_id": row["message_id"],
        "dossier_code": row["dossier_code"] or _NO_DOSSIER,
        "correlation_id": row["correlation_id"] or row["message_id"],
        "kind": kind,
        "sender": sender,
        "recipient": row["connector"] or row["queue"] or "parking",
        "received_at": row["parked_at"] if parked_by_broker else None,
        "sent_at": None,
        "answered_at": None,
        "done_at": now,
        "request_bytes": len(row["body"]),
        "response_bytes": 0,
        "outcome": outcome,
        "fault_code": row["fault_code"] if parked_by_broker else None,
        "fault_detail": (row["reason"] if parked_by_broker else detail),
        "mapping_version": None,
        "attempt": row["attempts"] or 1,
        "signatures": None,
    }
