"""Read side of the statistics: the dossiers a report needs, each with its status history.

Two statements, whatever the number of dossiers: one for the dossiers, one for all their history
rows (never a query per dossier), read in one transaction so both see the same moment. The
selection is a superset that :func:`bus.stats.compute_stats` narrows by the exact rules:

- received in the period;
- with a finished status (9, 10, 8) recorded in the period (a 9 → 10 there may belong to a
  dossier that finished before: the computation tells);
- still open and past its *nominal* due date: the effective one (supplement waits added) is
  never earlier, so nothing overdue is missed.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bus.sla import StatusPoint
from bus.stats import DossierFacts, Period
from bus.store.schema import dossiers, status_history
from contracts import FINISHED_STATUSES, OPEN_STATUSES, VN_TZ, DossierStatus

__all__ = ["load_dossier_facts"]


async def load_dossier_facts(
    engine: AsyncEngine,
    period: Period,
    now: datetime,
    *,
    procedure: str | None = None,
    agency: str | None = None,
) -> list[DossierFacts]:
    """The dossiers a report over ``period`` made at ``now`` needs, with their histories.

    ``procedure`` and ``agency`` (the handling agency) narrow the selection to one of each.
    """
    wanted = _wanted_codes(period, now, _filters(procedure, agency))
    async with engine.connect() as connection:
        await _snapshot(connection)
        dossier_rows = (
            await connection.execute(
                sa.select(
                    dossiers.c.code,
                    dossiers.c.procedure_code,
                    dossiers.c.handling_agency,
                    dossiers.c.commune_code,
                    dossiers.c.channel,
                    dossiers.c.status,
                    dossiers.c.received_at,
                    dossiers.c.due_at,
                ).where(dossiers.c.code.in_(wanted))
            )
        ).all()
        history_rows = (
            await connection.execute(
                sa.select(
                    status_history.c.dossier_code,
                    status_history.c.status,
                    status_history.c.changed_at,
                )
                .where(status_history.c.dossier_code.in_(wanted))
                .order_by(status_history.c.dossier_code, status_history.c.sequence)
            )
        ).all()
    histories: defaultdict[str, list[StatusPoint]] = defaultdict(list)
    for row in history_rows:
        histories[row.dossier_code].append(StatusPoint(DossierStatus(row.status), row.changed_at))
    return [
        DossierFacts(
            code=row.code,
            procedure_code=row.procedure_code,
            handling_agency=row.handling_agency,
            commune_code=row.commune_code,
            channel=row.channel,
            status=DossierStatus(row.status),
            received_at=row.received_at,
            due_at=row.due_at,
            history=tuple(histories.get(row.code, ())),
        )
        for row in dossier_rows
    ]


def _filters(procedure: str | None, agency: str | None) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if procedure is not None:
        conditions.append(dossiers.c.procedure_code == procedure)
    if agency is not None:
        conditions.append(dossiers.c.handling_agency == agency)
    return conditions


def _wanted_codes(
    period: Period, now: datetime, filters: list[sa.ColumnElement[bool]]
) -> sa.CompoundSelect[Any]:
    """The codes of the dossiers the report may count, as one UNION (one index per branch)."""
    start, end = period.starts_at, period.ends_before
    received = sa.select(dossiers.c.code).where(
        *filters, dossiers.c.received_at >= start, dossiers.c.received_at < end
    )
    finished = (
        sa.select(dossiers.c.code)
        .join(status_history, status_history.c.dossier_code == dossiers.c.code)
        .where(
            *filters,
            status_history.c.status.in_(sorted(int(s) for s in FINISHED_STATUSES)),
            status_history.c.changed_at >= start,
            status_history.c.changed_at < end,
        )
    )
    # Overdue means due before today (local): a due_at at or after today's midnight cannot be.
    today = datetime.combine(now.astimezone(VN_TZ).date(), time.min, tzinfo=VN_TZ)
    open_past_due = sa.select(dossiers.c.code).where(
        *filters,
        dossiers.c.status.in_(sorted(int(s) for s in OPEN_STATUSES)),
        dossiers.c.due_at < today,
    )
    return sa.union(received, finished, open_past_due)


async def _snapshot(connection: AsyncConnection) -> None:
    # PostgreSQL's default READ COMMITTED gives each statement its own snapshot: a dossier
    # committed between the two reads would come without its history. SQLite's read
    # transaction is already one snapshot.
    if connection.dialect.name == "postgresql":
        await connection.execution_options(isolation_level="REPEATABLE READ")
