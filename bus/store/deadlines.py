"""Deadlines in the store: what is open and due, and raising each alert exactly once.

The scheduler (:mod:`bus.deadlines`) decides; this module reads the dossiers and the requested
linkage steps that could need an alert today, and commits the alerts it decided. The primary key
of ``deadline_alerts`` (dossier, scope, kind) is what makes an alert happen once: every replica
inserts ignoring duplicates, and only the transaction that inserted a row writes its event.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bus.sla import StatusPoint
from bus.store.audit import append_audit, audit_records
from bus.store.database import insert_ignoring_duplicates, write_transaction
from bus.store.schema import deadline_alerts, dossiers, linkage_runs, linkage_steps, outbox
from bus.store.schema import status_history as history_table
from contracts import OPEN_STATUSES, VN_TZ, AlertKind, DossierStatus

__all__ = [
    "DOSSIER_SCOPE",
    "AlertToRaise",
    "DossierFacts",
    "DueItem",
    "list_alerts",
    "open_items",
    "raise_alerts",
    "step_of_scope",
    "step_scope",
]

DOSSIER_SCOPE: Final = "dossier"
_STEP_PREFIX: Final = "step:"
#: The linkage engine's step and run states this module reads (bus/linkage/decisions.py).
_STEP_REQUESTED: Final = "requested"
_RUN_OPEN: Final = "open"
# IN the open statuses (not NOT IN the closed ones): ix_dossiers_status_due_at serves it.
_OPEN_STATUSES: Final = sorted(int(s) for s in OPEN_STATUSES)
#: Codes per ``IN (...)`` list: well under the bind-parameter limits of SQLite and asyncpg.
_CHUNK: Final = 1_000


def step_scope(step_id: str) -> str:
    """The alert scope of one linkage step: ``step:<step id>``."""
    return f"{_STEP_PREFIX}{step_id}"


def step_of_scope(scope: str) -> str | None:
    """The step id of a ``step:<id>`` scope; ``None`` for the whole dossier."""
    return scope[len(_STEP_PREFIX) :] if scope.startswith(_STEP_PREFIX) else None


@dataclass(frozen=True, slots=True)
class DossierFacts:
    """What an alert about a dossier needs to know of it: its state and its identities."""

    code: str
    status: DossierStatus
    sequence: int
    receiving_agency: str
    handling_agency: str
    accepted_event_id: str


@dataclass(frozen=True, slots=True)
class DueItem:
    """A dossier, or one requested step of its linkage run, still open with a due date."""

    dossier: DossierFacts
    #: ``dossier`` or ``step:<step id>``.
    scope: str
    #: The due date as stored: the local day of the dossier's ``due_at``, or the step's
    #: ``due_on`` (which the linkage engine already moves after a supplement).
    due_on: date
    #: When the clock started: the dossier received, or the step requested.
    opened_at: datetime
    #: Alert kinds already raised for this dossier and scope.
    raised: frozenset[str] = frozenset()
    #: The dossier's status history; read for the dossier scope only (its supplement waits).
    history: tuple[StatusPoint, ...] = ()
    connector: str | None = None

    @property
    def step_id(self) -> str | None:
        """The step, when the item is one."""
        return step_of_scope(self.scope)


@dataclass(frozen=True, slots=True)
class AlertToRaise:
    """A decided alert with its event, waiting for the transaction that raises it."""

    dossier_code: str
    scope: str
    kind: AlertKind
    due_on: date
    event_id: str
    raised_at: datetime
    #: The dossier sequence the event carries; the alert waits for the next scan if the
    #: dossier moved since it was read, so its event never carries a stale sequence.
    sequence: int
    outbox_row: dict[str, Any]

    @property
    def key(self) -> tuple[str, str, str]:
        """The alert's identity: (dossier, scope, kind)."""
        return (self.dossier_code, self.scope, self.kind)


async def open_items(engine: AsyncEngine, *, today: date) -> list[DueItem]:
    """Open dossiers and requested steps due on or before ``today`` (a local day).

    Items already overdue-alerted are left out: nothing more can happen to them. A dossier in
    status 5 is read like any other; the scheduler knows it is paused.
    """
    async with engine.connect() as connection:
        dossier_rows = (await connection.execute(_due_dossiers(today))).all()
        step_rows = (await connection.execute(_due_steps(today))).all()
        codes = {row.code for row in dossier_rows} | {row.code for row in step_rows}
        raised = await _raised_kinds(connection, codes)
        histories = await _histories(connection, {row.code for row in dossier_rows})
    items = [
        DueItem(
            dossier=_facts(row),
            scope=DOSSIER_SCOPE,
            due_on=row.due_at.astimezone(VN_TZ).date(),
            opened_at=row.received_at,
            raised=raised.get((row.code, DOSSIER_SCOPE), frozenset()),
            history=histories.get(row.code, ()),
        )
        for row in dossier_rows
    ]
    items += [
        DueItem(
            dossier=_facts(row),
            scope=step_scope(row.step_id),
            due_on=row.due_on,
            # A requested step always has its time; the dossier's receipt is a safe fallback.
            opened_at=row.requested_at or row.received_at,
            raised=raised.get((row.code, step_scope(row.step_id)), frozenset()),
            connector=row.connector,
        )
        for row in step_rows
    ]
    return items


_FACT_COLUMNS: Final = (
    dossiers.c.code,
    dossiers.c.status,
    dossiers.c.sequence,
    dossiers.c.receiving_agency,
    dossiers.c.handling_agency,
    dossiers.c.accepted_event_id,
    dossiers.c.received_at,
)


def _facts(row: sa.Row[Any]) -> DossierFacts:
    return DossierFacts(
        code=row.code,
        status=DossierStatus(row.status),
        sequence=row.sequence,
        receiving_agency=row.receiving_agency,
        handling_agency=row.handling_agency,
        accepted_event_id=row.accepted_event_id,
    )


def _not_overdue_yet(dossier_code: sa.ColumnElement[str], scope: sa.ColumnElement[str]) -> Any:
    """No overdue alert raised for this dossier and scope (the last alert an item can get)."""
    return ~sa.exists().where(
        deadline_alerts.c.dossier_code == dossier_code,
        deadline_alerts.c.scope == scope,
        deadline_alerts.c.kind == "overdue",
    )


def _due_dossiers(today: date) -> sa.Select[Any]:
    # A supplement only moves a due date later, so nothing due after today can need an alert.
    tomorrow = datetime.combine(today + timedelta(days=1), time(0), tzinfo=VN_TZ)
    return sa.select(*_FACT_COLUMNS, dossiers.c.due_at).where(
        dossiers.c.status.in_(_OPEN_STATUSES),
        dossiers.c.due_at.is_not(None),
        dossiers.c.due_at < tomorrow,
        _not_overdue_yet(dossiers.c.code, sa.literal(DOSSIER_SCOPE)),
    )


def _due_steps(today: date) -> sa.Select[Any]:
    scope = sa.literal(_STEP_PREFIX) + linkage_steps.c.step_id
    return (
        sa.select(
            *_FACT_COLUMNS,
            linkage_steps.c.step_id,
            linkage_steps.c.connector,
            linkage_steps.c.requested_at,
            linkage_steps.c.due_on,
        )
        .select_from(
            linkage_steps.join(
                linkage_runs, linkage_runs.c.dossier_code == linkage_steps.c.dossier_code
            ).join(dossiers, dossiers.c.code == linkage_steps.c.dossier_code)
        )
        .where(
            linkage_steps.c.state == _STEP_REQUESTED,
            linkage_steps.c.due_on.is_not(None),
            linkage_steps.c.due_on <= today,
            linkage_runs.c.state == _RUN_OPEN,
            _not_overdue_yet(linkage_steps.c.dossier_code, scope),
        )
    )


async def _raised_kinds(
    connection: AsyncConnection, codes: set[str]
) -> dict[tuple[str, str], frozenset[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for chunk in _chunks(codes):
        rows = await connection.execute(
            sa.select(
                deadline_alerts.c.dossier_code, deadline_alerts.c.scope, deadline_alerts.c.kind
            ).where(deadline_alerts.c.dossier_code.in_(chunk))
        )
        for code, scope, kind in rows:
            found.setdefault((code, scope), set()).add(kind)
    return {key: frozenset(kinds) for key, kinds in found.items()}


async def _histories(
    connection: AsyncConnection, codes: set[str]
) -> dict[str, tuple[StatusPoint, ...]]:
    found: dict[str, list[StatusPoint]] = {}
    for chunk in _chunks(codes):
        rows = await connection.execute(
            sa.select(
                history_table.c.dossier_code, history_table.c.status, history_table.c.changed_at
            )
            .where(history_table.c.dossier_code.in_(chunk))
            .order_by(history_table.c.dossier_code, history_table.c.sequence)
        )
        for code, status, changed_at in rows:
            found.setdefault(code, []).append(StatusPoint(DossierStatus(status), changed_at))
    return {code: tuple(points) for code, points in found.items()}


def _chunks(values: Iterable[str]) -> Iterator[list[str]]:
    ordered = sorted(values)
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]


async def raise_alerts(engine: AsyncEngine, alerts: Sequence[AlertToRaise]) -> list[AlertToRaise]:
    """Raise ``alerts`` in one transaction; returns those this call raised.

    Each alert row is inserted ignoring duplicates, and only the rows this transaction inserted
    get their event in the outbox: a replica that saw the same item a moment later inserts
    nothing and emits nothing. An alert whose dossier moved on since it was read is left for the
    next scan, which decides again on the new state.
    """
    if not alerts:
        return []
    # One order for every replica: on PostgreSQL two transactions inserting the same keys then
    # wait for each other in the same order instead of deadlocking.
    ordered = sorted(alerts, key=lambda a: a.key)
    async with write_transaction(engine) as connection:
        current = await _sequences(connection, {a.dossier_code for a in ordered})
        fresh = [a for a in ordered if current.get(a.dossier_code) == a.sequence]
        if not fresh:
            return []
        inserted_rows = await connection.execute(
            insert_ignoring_duplicates(deadline_alerts, connection.dialect.name).returning(
                deadline_alerts.c.dossier_code, deadline_alerts.c.scope, deadline_alerts.c.kind
            ),
            [_alert_row(a) for a in fresh],
        )
        inserted = {(row[0], row[1], row[2]) for row in inserted_rows}
        raised = [a for a in fresh if a.key in inserted]
        if raised:
            rows = [a.outbox_row for a in raised]
            await connection.execute(outbox.insert(), rows)
            await append_audit(connection, audit_records(outbox_rows=rows), datetime.now(UTC))
    return raised


def _alert_row(alert: AlertToRaise) -> dict[str, Any]:
    return {
        "dossier_code": alert.dossier_code,
        "scope": alert.scope,
        "kind": alert.kind,
        "due_on": alert.due_on,
        "event_id": alert.event_id,
        "raised_at": alert.raised_at,
    }


async def _sequences(connection: AsyncConnection, codes: set[str]) -> dict[str, int]:
    sequences: dict[str, int] = {}
    for chunk in _chunks(codes):
        rows = await connection.execute(
            sa.select(dossiers.c.code, dossiers.c.sequence).where(dossiers.c.code.in_(chunk))
        )
        sequences.update((row.code, row.sequence) for row in rows)
    return sequences


async def list_alerts(
    engine: AsyncEngine,
    *,
    kind: AlertKind | None = None,
    since: datetime | None = None,
    dossier_code: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Raised alerts, newest first, with their dossier's procedure, agencies and status.

    A step alert also names the step's connector (from the linkage run, while it is kept).
    """
    step_matches = sa.and_(
        linkage_steps.c.dossier_code == deadline_alerts.c.dossier_code,
        sa.literal(_STEP_PREFIX) + linkage_steps.c.step_id == deadline_alerts.c.scope,
    )
    statement = (
        sa.select(
            deadline_alerts.c.dossier_code,
            deadline_alerts.c.scope,
            deadline_alerts.c.kind,
            deadline_alerts.c.due_on,
            deadline_alerts.c.event_id,
            deadline_alerts.c.raised_at,
            dossiers.c.procedure_code,
            dossiers.c.receiving_agency,
            dossiers.c.handling_agency,
            dossiers.c.status,
            linkage_steps.c.connector,
        )
        .select_from(
            deadline_alerts.join(
                dossiers, dossiers.c.code == deadline_alerts.c.dossier_code
            ).outerjoin(linkage_steps, step_matches)
        )
        .order_by(
            deadline_alerts.c.raised_at.desc(),
            deadline_alerts.c.dossier_code,
            deadline_alerts.c.scope,
            deadline_alerts.c.kind,
        )
        .limit(limit)
    )
    if kind is not None:
        statement = statement.where(deadline_alerts.c.kind == kind)
    if since is not None:
        statement = statement.where(deadline_alerts.c.raised_at >= since)
    if dossier_code is not None:
        statement = statement.where(deadline_alerts.c.dossier_code == dossier_code)
    async with engine.connect() as connection:
        rows = (await connection.execute(statement)).all()
    return [dict(row._mapping) for row in rows]
