"""The linkage engine: starts a bundle's run when its dossier is accepted, moves it on answers.

It runs inside the transactions that already commit a dossier's changes (the ingest batch, a
worker's delivery batch, a poll page or a push), so a run, the dossier's status, the status
event and the orders to the next agencies are committed together or not at all: a worker that
dies mid-way leaves the answer unacknowledged, and its redelivery finds either nothing done or
everything done (its dedup record). The rules themselves are pure (:mod:`bus.linkage.decisions`).

For a dossier in a run the engine owns its overall status: an agency's answer about its step is
reported as a status event of the *dossier* (4 while steps are under way, 5 while one waits for
a supplement, 9 when all are done, 3 or 8 when one refuses), with the step named in the note, so
the portals and DVCQG hear every step.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bus import events
from bus.calendar import end_of_day
from bus.linkage.book import LinkageBook
from bus.linkage.decisions import Decision, RunState, StepRequest, on_step_outcome, start_run
from bus.store.database import one_of_bound
from bus.store.deliveries import DossierState, StatusMove, StatusTransition, move_dossiers
from bus.store.linkage import RunStart, StepAnswer, StoredRun, insert_runs, lock_runs, save_runs
from bus.store.schema import dossiers
from contracts import (
    FINISHED_STATUSES,
    TERMINAL_STATUSES,
    Dossier,
    DossierStatus,
    EventEnvelope,
    LinkageBundle,
    StatusChange,
    StepOrder,
)

__all__ = [
    "Announcement",
    "LinkageEngine",
    "RunStart",
    "Settlement",
    "StepAnswer",
    "order_event_id",
]

# Step orders get ids derived from dossier and step: one order per step of a dossier, whatever
# retries or replays happen around it.
_ORDER_IDS: Final = uuid.UUID("4f1c0b8e-6a53-5d7e-9c1e-2b1d0e7a9f10")

# A dossier arriving already decided (pushed for the record after the fact) starts no run.
_STARTABLE: Final = frozenset({DossierStatus.NEW, DossierStatus.ACCEPTED, DossierStatus.PROCESSING})


@dataclass(frozen=True, slots=True)
class Announcement:
    """A dossier status change the engine made, for the caller to announce as its event."""

    change: StatusChange
    transition: StatusTransition


@dataclass
class Settlement:
    """What the engine did with a batch of answers."""

    #: By answer index, for answers about a step of a run: the move to announce, or ``None``
    #: when the answer changed nothing (late, repeated, about a settled step).
    taken: dict[int, Announcement | None] = field(default_factory=dict)
    #: Step orders to the next agencies, as outbox rows.
    outbox_rows: list[dict[str, Any]] = field(default_factory=list)


class LinkageEngine:
    """Starts and moves runs, inside the caller's transaction."""

    def __init__(
        self, book: LinkageBook, *, exchange: str, agencies: Mapping[str, str] | None = None
    ) -> None:
        self.book = book
        self._exchange = exchange
        # Connector id -> agency code, to name the agency in each step order.
        self._agencies = dict(agencies or {})

    def starts(self, dossier: Dossier) -> LinkageBundle | None:
        """The bundle a newly accepted dossier starts, if any."""
        if dossier.status not in _STARTABLE:
            return None
        return self.book.starting_for(dossier.procedure_code)

    def due_on(self, dossier: Dossier) -> datetime | None:
        """The dossier's due date (end of day) when its bundle sets it, else ``None``."""
        bundle = self.starts(dossier)
        if bundle is None:
            return None
        day = self.book.calendar.due_date(
            dossier.received_at, bundle.working_days, bundle.cutoff_hour
        )
        return end_of_day(day)

    async def start(
        self, connection: AsyncConnection, starts: Sequence[RunStart], now: datetime
    ) -> list[dict[str, Any]]:
        """Start the runs of newly inserted dossiers; returns the outbox rows to insert."""
        stored: list[StoredRun] = []
        moves: list[StatusMove] = []
        rows: list[dict[str, Any]] = []
        for start in starts:
            bundle = self.starts(start.dossier)
            if bundle is None:
                continue
            calendar = self.book.calendar
            # The first steps count from the dossier's receipt (and its cut-off), as its own
            # due date does; later steps from when the step before them finished.
            decision = start_run(bundle, start.dossier.code, start.dossier.received_at, calendar)
            sequence = start.sequence + 1
            titles = ", ".join(request.step.title for request in decision.requests)
            change = StatusChange(
                dossier_code=start.dossier.code,
                status=decision.run.dossier_status,
                previous_status=start.status,
                changed_at=now,
                agency=start.dossier.receiving_agency,
                note=f"Liên thông {bundle.id}: đã chuyển {titles}",
            )
            moves.append(StatusMove(start.dossier.code, change.status, sequence, updated_at=now))
            rows.append(
                events.status_outbox_row(
                    change,
                    sequence=sequence,
                    receiving_agency=start.dossier.receiving_agency,
                    exchange=self._exchange,
                    cause=start.cause,
                )
            )
            due_on = calendar.due_date(
                start.dossier.received_at, bundle.working_days, bundle.cutoff_hour
            )
            run = self._stored(bundle, decision.run, started_at=now, due_on=due_on)
            run = self._ordered(run, decision.requests)
            stored.append(run)
            rows += self._order_rows(
                bundle, decision.requests, start.dossier, sequence, now, cause=start.cause
            )
        await move_dossiers(connection, moves)
        await insert_runs(connection, stored, now)
        return rows

    async def settle(
        self,
        connection: AsyncConnection,
        answers: Sequence[StepAnswer],
        current: dict[str, DossierState],
        now: datetime,
    ) -> Settlement:
        """Apply answers about dossiers in a run; ``current`` (locked) is updated in place.

        Answers about dossiers without a run, and answers from a connector that has no step in
        the dossier's bundle, are left to the caller (not in ``Settlement.taken``); such an
        answer that ends the dossier (3, 7, 8, 10) also closes its run.
        """
        settlement = Settlement()
        runs = await lock_runs(connection, {a.dossier_code for a in answers} & current.keys())
        if not runs:
            return settlement
        changed: dict[str, StoredRun] = {}
        moves: list[StatusMove] = []
        pending_orders: list[tuple[LinkageBundle, Decision, int, StepAnswer]] = []
        for index, answer in enumerate(answers):
            stored = changed.get(answer.dossier_code) or runs.get(answer.dossier_code)
            if stored is None:
                continue
            bundle = self.book.bundle(stored.run.bundle_id)
            step_id = answer.step_id or _step_of(bundle, answer.connector)
            if step_id is None:
                if answer.change.status in TERMINAL_STATUSES and stored.state == "open":
                    changed[answer.dossier_code] = _closed(stored, answer)
                continue
            decision = on_step_outcome(
                bundle, stored.run, step_id, answer.change, self.book.calendar
            )
            if not decision.changed:
                settlement.taken[index] = None
                continue
            state = current[answer.dossier_code]
            announcement = _announcement(bundle, step_id, decision, state, answer.change)
            current[answer.dossier_code] = replace(
                state, status=announcement.change.status, sequence=announcement.transition.sequence
            )
            # The first steps' reference (the certificate) is the dossier's result reference.
            first = not bundle.step(step_id).after
            moves.append(_move(announcement, now, keep_reference=first))
            settlement.taken[index] = announcement
            changed[answer.dossier_code] = self._ordered(
                replace(stored, run=decision.run), decision.requests
            )
            if decision.requests:
                pending_orders.append((bundle, decision, announcement.transition.sequence, answer))
        await move_dossiers(connection, moves)
        await save_runs(connection, list(changed.values()), now)
        documents = await _dossiers(connection, {a.dossier_code for *_, a in pending_orders})
        for bundle, decision, sequence, answer in pending_orders:
            settlement.outbox_rows += self._order_rows(
                bundle,
                decision.requests,
                documents[answer.dossier_code],
                sequence,
                now,
                cause=answer.cause,
                correlation_id=current[answer.dossier_code].accepted_event_id,
            )
        return settlement

    def _stored(
        self, bundle: LinkageBundle, run: RunState, *, started_at: datetime, due_on: Any
    ) -> StoredRun:
        return StoredRun(
            run=run,
            started_at=started_at,
            due_on=due_on,
            connectors={step.id: step.connector for step in bundle.steps},
            request_event_ids={step.id: None for step in bundle.steps},
        )

    def _ordered(self, stored: StoredRun, requests: Sequence[StepRequest]) -> StoredRun:
        """``stored`` with the ids of the orders sent for ``requests``."""
        if not requests:
            return stored
        ids = dict(stored.request_event_ids)
        for request in requests:
            ids[request.step.id] = order_event_id(stored.run.dossier_code, request.step.id)
        return replace(stored, request_event_ids=ids)

    def _order_rows(
        self,
        bundle: LinkageBundle,
        requests: Sequence[StepRequest],
        dossier: Dossier,
        sequence: int,
        now: datetime,
        *,
        cause: EventEnvelope | None,
        correlation_id: str | None = None,
    ) -> list[dict[str, Any]]:
        rows = []
        for request in requests:
            step = request.step
            order = StepOrder(
                bundle=bundle.id,
                step=step.id,
                title=step.title,
                connector=step.connector,
                agency=self._agencies.get(step.connector),
                operation=step.operation,
                due_on=request.due_on,
                passed=dict(request.form),
                dossier=dossier.model_copy(update={"form": {**dossier.form, **request.form}}),
            )
            rows.append(
                events.step_order_outbox_row(
                    order,
                    event_id=order_event_id(dossier.code, step.id),
                    sequence=sequence,
                    time=now,
                    exchange=self._exchange,
                    cause=cause,
                    correlation_id=correlation_id,
                )
            )
        return rows


def order_event_id(dossier_code: str, step_id: str) -> str:
    """The id of the order sent for ``step_id`` of a dossier: the same on every attempt."""
    return str(uuid.uuid5(_ORDER_IDS, f"{dossier_code}/{step_id}"))


def _step_of(bundle: LinkageBundle, connector: str) -> str | None:
    """The step ``connector`` acts in (a bundle gives each connector one step at most)."""
    return next((step.id for step in bundle.steps if step.connector == connector), None)


def _closed(stored: StoredRun, answer: StepAnswer) -> StoredRun:
    """A run closed by an answer outside its steps that ended the dossier (e.g. withdrawn)."""
    change = answer.change
    reason = change.note or f"closed by {change.agency}: status {int(change.status)}"
    return replace(stored, run=replace(stored.run, stopped_reason=reason))


def _announcement(
    bundle: LinkageBundle,
    step_id: str,
    decision: Decision,
    state: DossierState,
    change: StatusChange,
) -> Announcement:
    """The dossier's status event for one step's answer: its new overall status, the step named."""
    run = decision.run
    step = bundle.step(step_id)
    record = run.steps[step_id]
    if run.stopped_reason is not None:
        note = run.stopped_reason
    else:
        note = f"{step.title}: {change.note or change.status.label_vi}"
    announced = StatusChange(
        dossier_code=change.dossier_code,
        status=run.dossier_status,
        previous_status=state.status,
        changed_at=change.changed_at,
        agency=change.agency,
        officer=change.officer,
        officer_title=change.officer_title,
        department=change.department,
        note=note[:2000],
        step_started_at=record.requested_at,
        step_due_at=None if record.due_on is None else end_of_day(record.due_on),
        partner_reference=change.partner_reference,
    )
    transition = StatusTransition(
        change.dossier_code,
        state.receiving_agency,
        state.status,
        run.dossier_status,
        state.sequence + 1,
        state.accepted_event_id,
    )
    return Announcement(announced, transition)


def _move(announcement: Announcement, now: datetime, *, keep_reference: bool) -> StatusMove:
    change = announcement.change
    return StatusMove(
        change.dossier_code,
        change.status,
        announcement.transition.sequence,
        updated_at=now,
        # Later steps' references stay in their step rows and status events.
        partner_reference=change.partner_reference if keep_reference else None,
        finished_at=change.changed_at if change.status in FINISHED_STATUSES else None,
        changed_at=change.changed_at,
    )


async def _dossiers(connection: AsyncConnection, codes: set[str]) -> dict[str, Dossier]:
    """The accepted dossiers ``codes``, to build the orders of their next steps."""
    if not codes:
        return {}
    rows = await connection.execute(_documents(connection.dialect.name), {"codes": list(codes)})
    return {row.code: Dossier.model_validate(row.document) for row in rows}


@functools.cache
def _documents(dialect_name: str) -> sa.Select[Any]:
    """The select of :func:`_dossiers`, built once per dialect."""
    return sa.select(dossiers.c.code, dossiers.c.document).where(
        one_of_bound(dossiers.c.code, "codes", dialect_name)
    )
