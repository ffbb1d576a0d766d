"""Linkage runs in the store: one row per run, one per step, read and written under lock.

The engine (:mod:`bus.linkage.engine`) decides; this module only turns its
:class:`~bus.linkage.decisions.RunState` into rows and back, inside the caller's transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bus.linkage.decisions import RunState, StepRecord, StepState
from bus.store.database import one_of_bound
from bus.store.schema import linkage_runs, linkage_steps
from contracts import Dossier, DossierStatus, EventEnvelope, StatusChange

__all__ = [
    "StepAnswer",
    "StoredRun",
    "insert_runs",
    "lock_runs",
    "read_run",
    "run_state",
    "save_runs",
]


@dataclass(frozen=True, slots=True)
class RunStart:
    """A dossier the ingest batch just inserted, whose procedure may start a bundle."""

    dossier: Dossier
    #: Its ``dossier.submitted`` event: the cause of the run's first events.
    cause: EventEnvelope
    status: DossierStatus
    sequence: int


@dataclass(frozen=True, slots=True)
class StepAnswer:
    """A partner's word about a dossier: a step delivery's answer, a push or a polled record."""

    dossier_code: str
    connector: str
    change: StatusChange
    #: The step the answer is to, when it answers a step order; else the connector's step.
    step_id: str | None = None
    cause: EventEnvelope | None = None


@dataclass(frozen=True, slots=True)
class StoredRun:
    """A run as the store keeps it: the engine's state plus its bookkeeping."""

    run: RunState
    started_at: datetime
    #: The whole bundle's due date.
    due_on: date
    #: Per step: its connector, and the id of the order event sent for it.
    connectors: dict[str, str]
    request_event_ids: dict[str, str | None]

    @property
    def state(self) -> str:
        """``open``, ``done`` or ``stopped``."""
        return run_state(self.run)


def run_state(run: RunState) -> str:
    """The run row's ``state`` for ``run``."""
    if run.stopped_reason is not None:
        return "stopped"
    return "done" if run.over else "open"


async def insert_runs(
    connection: AsyncConnection, runs: Sequence[StoredRun], now: datetime
) -> None:
    """Write new runs and all their steps."""
    if not runs:
        return
    await connection.execute(linkage_runs.insert(), [_run_row(r, now) for r in runs])
    await connection.execute(
        linkage_steps.insert(),
        [
            {
                "dossier_code": r.run.dossier_code,
                "step_id": step_id,
                **_step_values(r, step_id, now),
            }
            for r in runs
            for step_id in r.run.steps
        ],
    )


async def save_runs(connection: AsyncConnection, runs: Sequence[StoredRun], now: datetime) -> None:
    """Write the new state of runs read with :func:`lock_runs`."""
    if not runs:
        return
    run_values = [_run_row(r, now) for r in runs]
    await connection.execute(
        sa.update(linkage_runs)
        .where(linkage_runs.c.dossier_code == sa.bindparam("row_code"))
        .values(
            state=sa.bindparam("state"),
            dossier_status=sa.bindparam("dossier_status"),
            stopped_reason=sa.bindparam("stopped_reason"),
            updated_at=sa.bindparam("updated_at"),
        ),
        [{**row, "row_code": row["dossier_code"]} for row in run_values],
    )
    step_columns = [c for c in linkage_steps.c if c.name not in ("dossier_code", "step_id")]
    await connection.execute(
        sa.update(linkage_steps)
        .where(
            linkage_steps.c.dossier_code == sa.bindparam("row_code"),
            linkage_steps.c.step_id == sa.bindparam("row_step"),
        )
        .values({c.name: sa.bindparam(f"new_{c.name}", type_=c.type) for c in step_columns}),
        [
            {
                "row_code": r.run.dossier_code,
                "row_step": step_id,
                **{f"new_{k}": v for k, v in _step_values(r, step_id, now).items()},
            }
            for r in runs
            for step_id in r.run.steps
        ],
    )


async def lock_runs(connection: AsyncConnection, codes: Collection[str]) -> dict[str, StoredRun]:
    """The runs of those of ``codes`` that have one, locked until the transaction ends.

    Called after the dossiers themselves are locked (:func:`bus.store.deliveries.lock_dossiers`),
    so two writers of one dossier are already serialised; the lock here keeps it so on
    PostgreSQL should a caller read runs first.
    """
    return await _runs(connection, codes, lock=True)


async def _runs(
    connection: AsyncConnection, codes: Collection[str], *, lock: bool
) -> dict[str, StoredRun]:
    if not codes:
        return {}
    dialect = connection.dialect.name
    # A worker's every commit asks (most dossiers have no run): the statements are built once.
    run_query = _run_query(dialect, lock=lock and dialect == "postgresql")
    run_rows = (await connection.execute(run_query, {"codes": list(set(codes))})).mappings().all()
    if not run_rows:
        return {}
    in_runs = list({row["dossier_code"] for row in run_rows})
    step_rows = (await connection.execute(_step_query(dialect), {"codes": in_runs})).mappings()
    steps: dict[str, list[Any]] = {}
    for row in step_rows:
        steps.setdefault(row["dossier_code"], []).append(row)
    return {
        row["dossier_code"]: _stored(row, steps.get(row["dossier_code"], [])) for row in run_rows
    }


@functools.cache
def _run_query(dialect_name: str, *, lock: bool) -> sa.Select[Any]:
    query = sa.select(linkage_runs).where(
        one_of_bound(linkage_runs.c.dossier_code, "codes", dialect_name)
    )
    return query.with_for_update() if lock else query


@functools.cache
def _step_query(dialect_name: str) -> sa.Select[Any]:
    return sa.select(linkage_steps).where(
        one_of_bound(linkage_steps.c.dossier_code, "codes", dialect_name)
    )


async def read_run(engine: AsyncEngine, code: str) -> StoredRun | None:
    """The run of one dossier, for reading (the API, tests)."""
    async with engine.connect() as connection:
        return (await _runs(connection, [code], lock=False)).get(code)


def _stored(run_row: Any, step_rows: Sequence[Any]) -> StoredRun:
    code = run_row["dossier_code"]
    records: dict[str, StepRecord] = {}
    for row in step_rows:
        result = None
        if row["result_status"] is not None:
            result = StatusChange.model_construct(
                dossier_code=code,
                status=DossierStatus(row["result_status"]),
                changed_at=row["result_changed_at"],
                agency=row["result_agency"],
                note=row["result_note"],
                partner_reference=row["result_reference"],
            )
        records[row["step_id"]] = StepRecord(
            step_id=row["step_id"],
            state=StepState(row["state"]),
            requested_at=row["requested_at"],
            due_on=row["due_on"],
            result=result,
        )
    run = RunState(
        bundle_id=run_row["bundle_id"],
        dossier_code=code,
        steps=records,
        dossier_status=DossierStatus(run_row["dossier_status"]),
        stopped_reason=run_row["stopped_reason"],
    )
    return StoredRun(
        run=run,
        started_at=run_row["started_at"],
        due_on=run_row["due_on"],
        connectors={row["step_id"]: row["connector"] for row in step_rows},
        request_event_ids={row["step_id"]: row["request_event_id"] for row in step_rows},
    )


def _run_row(stored: StoredRun, now: datetime) -> dict[str, Any]:
    run = stored.run
    return {
        "dossier_code": run.dossier_code,
        "bundle_id": run.bundle_id,
        "state": run_state(run),
        "dossier_status": int(run.dossier_status),
        "stopped_reason": run.stopped_reason,
        "started_at": stored.started_at,
        "due_on": stored.due_on,
        "updated_at": now,
    }


def _step_values(stored: StoredRun, step_id: str, now: datetime) -> dict[str, Any]:
    record = stored.run.steps[step_id]
    result = record.result
    return {
        "connector": stored.connectors[step_id],
        "state": str(record.state),
        "requested_at": record.requested_at,
        "due_on": record.due_on,
        "request_event_id": stored.request_event_ids.get(step_id),
        "result_status": None if result is None else int(result.status),
        "result_agency": None if result is None else result.agency,
        "result_changed_at": None if result is None else result.changed_at,
        "result_note": None if result is None else result.note,
        "result_reference": None if result is None else result.partner_reference,
        "updated_at": now,
    }
