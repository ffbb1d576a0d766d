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
from datetime import date, datetime
from enum import StrEnum

from bus.calendar import WorkingCalendar
from contracts import FINISHED_STATUSES, VN_TZ, DossierStatus

__all__ = [
    "Punctuality",
    "StatusPoint",
    "effective_due_date",
    "judge",
    "paused_working_days",
    "supplement_requests",
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
    ordered = _ordered(history)
    finished = next((p for p in ordered if p.status in FINISHED_STATUSES), None)
    until = finished.changed_at if finished is not None else now
    considered = [p for p in ordered if p.changed_at <= until]
    due = effective_due_date(due_on, considered, calendar, until)
    if finished is None:
        return Punctuality.OVERDUE if _local_day(now) > due else Punctuality.OPEN
    if supplement_requests(considered) > 1 or _local_day(finished.changed_at) > due:
        return Punctuality.LATE
    return Punctuality.ON_TIME


def _local_day(moment: datetime) -> date:
    return moment.astimezone(VN_TZ).date()
