"""Deadline alerts: dossiers and linkage steps at risk of being late, or late, raised once each.

The rules (DOMAIN "Deadlines", bộ chỉ số 766), decided by :func:`decide_alert` from what the
store reads, a working-day calendar and the time:

* **at_risk**: still open on its due date (the local Asia/Ho_Chi_Minh day is the due date), and
  open for at least ``BUS_AT_RISK_GRACE_SECONDS`` since it was received or requested, so a step
  asked a moment ago and about to be answered is not flagged;
* **overdue**: still open after its due date, with how many working days late it is (0 on the
  weekend after a Friday due date: late, but no working day lost yet);
* a dossier's due date is its *effective* one, moved by the working days it waited for the
  citizen's supplement (:func:`bus.sla.effective_due_date`); a dossier waiting now (status 5)
  is paused and gets nothing. A step's due date is moved by the linkage engine itself when its
  supplement arrives, and a step waiting for one is not read at all;
* an item first seen already past its due date gets only ``overdue``.

:class:`DeadlineScheduler` runs in each worker process: every ``BUS_DEADLINE_SCAN_SECONDS`` it
reads what is open and due, decides, and commits the alerts with their events in one
transaction (:func:`bus.store.deadlines.raise_alerts`), which keeps each (dossier, scope, kind)
alert to exactly one event however many workers look.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

from pydantic import ValidationError

from bus import events
from bus.calendar import WorkingCalendar, calendar_from_settings
from bus.runtime import Runtime
from bus.sla import effective_due_date
from bus.store import deadlines as store
from bus.store.deadlines import AlertToRaise, DueItem
from bus.tasks import cancel_and_wait
from contracts import VN_TZ, AlertKind, DeadlineAlert, DossierStatus

__all__ = ["Clock", "DeadlineScheduler", "decide_alert", "effective_due_on"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
"""Returns the current time, aware; tests pass a fixed one."""


def _system_clock() -> datetime:
    return datetime.now(UTC)


def effective_due_on(item: DueItem, calendar: WorkingCalendar, now: datetime) -> date:
    """The day ``item`` is due: a dossier's moved by its supplement waits, a step's as stored.

    Only the history up to ``now`` counts, as in :func:`bus.sla.judge`, so an alert and the
    statistics never disagree about a dossier.
    """
    if item.step_id is not None:
        return item.due_on
    known = [point for point in item.history if point.changed_at <= now]
    return effective_due_date(item.due_on, known, calendar, now)


def decide_alert(
    item: DueItem,
    *,
    calendar: WorkingCalendar,
    now: datetime,
    grace: timedelta,
    agency: str | None = None,
) -> DeadlineAlert | None:
    """The alert ``item`` needs now, if any (see the module's rules).

    ``agency`` is the one that must act on a step (its connector's); a dossier's is its
    handling agency. Alerts in ``item.raised`` are not decided again.
    """
    if item.step_id is None and item.dossier.status is DossierStatus.SUPPLEMENT_REQUESTED:
        return None  # waiting for the citizen: the clock stands still
    today = _local_day(now)
    due = effective_due_on(item, calendar, now)
    if today > due:
        if "overdue" in item.raised:
            return None
        late = max(0, calendar.working_days_between(due, today))
        return _alert(item, "overdue", due, now, agency, working_days_late=late)
    if today == due and "at_risk" not in item.raised and now - item.opened_at >= grace:
        return _alert(item, "at_risk", due, now, agency)
    return None


def _alert(
    item: DueItem,
    kind: AlertKind,
    due: date,
    now: datetime,
    agency: str | None,
    *,
    working_days_late: int = 0,
) -> DeadlineAlert:
    step = item.step_id
    acting: str | None
    if step is None:
        acting = item.dossier.handling_agency
        note = f"waiting for {acting} to finish the dossier"
    else:
        acting = agency
        note = f"waiting for {item.connector} to answer step {step}"
    return DeadlineAlert(
        dossier_code=item.dossier.code,
        kind=kind,
        scope="dossier" if step is None else "step",
        step=step,
        connector=item.connector,
        agency=acting,
        status=item.dossier.status,
        due_on=due,
        detected_at=now,
        working_days_late=working_days_late,
        note=note,
    )


def _local_day(moment: datetime) -> date:
    return moment.astimezone(VN_TZ).date()


class DeadlineScheduler:
    """Looks for dossiers and steps at risk or overdue every ``BUS_DEADLINE_SCAN_SECONDS``.

    One per worker process; several processes (or replicas) are safe, since the store raises
    each alert once. When a scan raises something, the process's outbox relay is woken so the
    events leave at once.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        clock: Clock = _system_clock,
        calendar: WorkingCalendar | None = None,
    ) -> None:
        self._runtime = runtime
        self._settings = runtime.settings
        self._clock = clock
        self._calendar = calendar or calendar_from_settings(runtime.settings)
        self._grace = timedelta(seconds=runtime.settings.at_risk_grace_seconds)
        #: Connector id -> the agency behind it: who must act on a step.
        self._agencies: Mapping[str, str] = {
            cid: runtime.registry.get(cid).config.agency for cid in runtime.registry.ids
        }
        self._task: asyncio.Task[None] | None = None
        #: Alerts this scheduler raised (another replica's are not counted).
        self.raised = 0

    def start(self) -> None:
        """Scan now, then every ``BUS_DEADLINE_SCAN_SECONDS``, in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="deadline-scheduler")

    async def stop(self) -> None:
        """Stop after the scan in flight (its transaction commits whole or not at all)."""
        await cancel_and_wait(self._task)
        self._task = None

    async def scan_once(self) -> list[AlertToRaise]:
        """Decide and raise the alerts due now; returns those this scan raised."""
        now = self._clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("the scheduler's clock must return an aware datetime")
        items = await store.open_items(self._runtime.engine, today=_local_day(now))
        candidates = [c for item in items if (c := self._candidate(item, now)) is not None]
        raised: list[AlertToRaise] = []
        for start in range(0, len(candidates), self._settings.batch_max):
            batch = candidates[start : start + self._settings.batch_max]
            raised += await store.raise_alerts(self._runtime.writer, batch)
        if raised:
            self.raised += len(raised)
            self._runtime.relay.wake()
            log.info("deadline alerts raised: %s", _summary(raised))
        return raised

    def _candidate(self, item: DueItem, now: datetime) -> AlertToRaise | None:
        """The alert ``item`` needs, with its event, or ``None``."""
        try:
            alert = decide_alert(
                item,
                calendar=self._calendar,
                now=now,
                grace=self._grace,
                agency=self._agencies.get(item.connector or ""),
            )
        except ValidationError as exc:
            # One malformed row (a step id the contract refuses) must not hold up every alert.
            log.warning("no deadline alert for %s %s: %s", item.dossier.code, item.scope, exc)
            return None
        if alert is None:
            return None
        event_id = events.new_event_id()
        return AlertToRaise(
            dossier_code=item.dossier.code,
            scope=item.scope,
            kind=alert.kind,
            due_on=alert.due_on,
            event_id=event_id,
            raised_at=now,
            sequence=item.dossier.sequence,
            outbox_row=events.alert_outbox_row(
                alert,
                event_id=event_id,
                sequence=item.dossier.sequence,
                receiving_agency=item.dossier.receiving_agency,
                correlation_id=item.dossier.accepted_event_id,
                exchange=self._runtime.names.events,
            ),
        )

    async def _run(self) -> None:
        interval = self._settings.deadline_scan_seconds
        while True:
            try:
                await self.scan_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The store is away for a moment: the next scan decides again, nothing is lost.
                log.exception("deadline scan failed; trying again in %.0f s", interval)
            await asyncio.sleep(interval)


def _summary(raised: Sequence[AlertToRaise]) -> str:
    shown = ", ".join(f"{a.dossier_code} {a.scope} {a.kind}" for a in raised[:5])
    more = len(raised) - 5
    return shown + (f" and {more} more" if more > 0 else "")
