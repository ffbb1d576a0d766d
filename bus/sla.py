"""The service-level rules of bộ chỉ số 766: supplement time, the effective due date, on time.

DOMAIN ("Deadlines"): a dossier is on time when it finished (9, 10, or stopped) no later than
its due date; time spent waiting for the citizen's supplement does not count, and more than one
supplement request makes it late. Here the waiting time is counted from the dossier's status
history (each stretch in status 5), in working days, and added to the due date: the *effective*
due date. The statistics (:mod:`bus.stats`) and the deadline scheduler use these same functions,
so an alert and a report never disagree about a dossier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from bus.calendar import WorkingCalendar
from contracts import FINISHED_STATUSES, VN_TZ, DossierStatus

__all__ = [
    "Punctuality",
    "StatusPoint",
    "effective_due_date",
    "finished_at",
    "judge",
    "paused_working_days",
    "processing_time",
    "processing_working_days",
    "supplement_requests",
    "supplement_wait_time",
    "supplement_waits",
]


@dataclass(frozen=True, slots=True)
class StatusPoint:
    """One entry of a dossier's status history."""

    status: DossierStatus
    changed_at: datetime


class Punctuality(StrEnum):
    """Where a dossier stands against its due date."""

    ON_TIME = "on_time"  # finished no later than its effective due date, ≤ 1 supplement
    LATE = "late"  # finished after it, or more than one supplement was requested
    OPEN = "open"  # not finished, not past its effective due date
    OVERDUE = "overdue"  # not finished, past its effective due date


def _ordered(history: Sequence[StatusPoint]) -> list[StatusPoint]:
    return sorted(history, key=lambda p: p.changed_at)


def finished_at(history: Sequence[StatusPoint]) -> datetime | None:
    """When the dossier finished: it first reached 9, 10 or 8 (stopped); ``None`` if never."""
    return next((p.changed_at for p in _ordered(history) if p.status in FINISHED_STATUSES), None)


def _up_to(history: Sequence[StatusPoint], until: datetime) -> list[StatusPoint]:
    """The history as it stood at ``until``, in order: what happened later cannot count."""
    return [p for p in _ordered(history) if p.changed_at <= until]


def supplement_waits(
    history: Sequence[StatusPoint], now: datetime
) -> list[tuple[datetime, datetime]]:
    """The stretches the dossier spent waiting for a supplement (status 5), in order.

    A stretch still open ends at ``now``; consecutive 5s (a second request while waiting) are
    one stretch.
    """
    waits: list[tuple[datetime, datetime]] = []
    started: datetime | None = None
    for point in _ordered(history):
        waiting = point.status is DossierStatus.SUPPLEMENT_REQUESTED
        if waiting and started is None:
            started = point.changed_at
        elif not waiting and started is not None:
            waits.append((started, point.changed_at))
            started = None
    if started is not None:
        waits.append((started, max(started, now)))
    return waits


def supplement_requests(history: Sequence[StatusPoint]) -> int:
    """How many times a supplement was requested: entries into status 5."""
    count, previous = 0, None
    for point in _ordered(history):
        if point.status is DossierStatus.SUPPLEMENT_REQUESTED and previous is not point.status:
            count += 1
        previous = point.status
    return count


def paused_working_days(
    waits: Sequence[tuple[datetime, datetime]], calendar: WorkingCalendar
) -> int:
    """Working days the SLA clock stood still: for each stretch, the working days after the
    day of the request up to and including the day the supplement arrived.

    A supplement asked and supplied the same day pauses nothing; asked on Monday and supplied on
    Wednesday, two working days.
    """
    return sum(
        max(0, calendar.working_days_between(_local_day(start), _local_day(end)))
        for start, end in waits
    )


def effective_due_date(
    due_on: date, history: Sequence[StatusPoint], calendar: WorkingCalendar, now: datetime
) -> date:
    """The due date moved by the working days spent waiting for supplements."""
    return calendar.add_working_days(
        due_on, paused_working_days(supplement_waits(history, now), calendar)
    )


def judge(
    due_on: date | None,
    history: Sequence[StatusPoint],
    calendar: WorkingCalendar,
    now: datetime,
) -> Punctuality | None:
    """On time, late, open or overdue per the 766 rule; ``None`` when there is no due date.

    The dossier finished when it first reached 9, 10 or 8 (stopped); its history after that
    (9 then 10) does not change the verdict.
    """
    if due_on is None:
        return None
    finished = finished_at(history)
    until = finished if finished is not None else now
    considered = _up_to(history, until)
    due = effective_due_date(due_on, considered, calendar, until)
    if finished is None:
        return Punctuality.OVERDUE if _local_day(now) > due else Punctuality.OPEN
    if supplement_requests(considered) > 1 or _local_day(finished) > due:
        return Punctuality.LATE
    return Punctuality.ON_TIME


def supplement_wait_time(history: Sequence[StatusPoint], until: datetime) -> timedelta:
    """Clock time spent waiting for supplements up to ``until`` (a wait still open ends there).

    Nights and days off count: this is elapsed time, where :func:`paused_working_days` counts
    the working days the SLA clock stood still.
    """
    waits = supplement_waits(_up_to(history, until), until)
    return sum((end - start for start, end in waits), timedelta())


def processing_time(received_at: datetime, history: Sequence[StatusPoint]) -> timedelta | None:
    """Clock time from receipt to finish, less the time waiting for supplements.

    ``None`` while the dossier has not finished. Never negative: a history that says the
    dossier finished before it was received (a partner's clock) counts as no time.
    """
    finished = finished_at(history)
    if finished is None:
        return None
    spent = finished - received_at - supplement_wait_time(history, finished)
    return max(spent, timedelta())


def processing_working_days(
    received_at: datetime, history: Sequence[StatusPoint], calendar: WorkingCalendar
) -> int | None:
    """Working days from receipt to finish, less the working days waiting for supplements.

    Counted like the due date: from the day of receipt (a day off moves it to the next working
    day; a procedure's cut-off hour is not known here and not applied), the working days after
    it up to and including the day the dossier finished, minus :func:`paused_working_days`.
    A dossier finished on its day of receipt took 0 days; one finished on its due date with no
    supplement took its procedure's N. ``None`` while the dossier has not finished.
    """
    finished = finished_at(history)
    if finished is None:
        return None
    elapsed = calendar.working_days_between(calendar.receipt_day(received_at), _local_day(finished))
    waits = supplement_waits(_up_to(history, finished), finished)
    return max(0, elapsed - paused_working_days(waits, calendar))


def _local_day(moment: datetime) -> date:
    return moment.astimezone(VN_TZ).date()
