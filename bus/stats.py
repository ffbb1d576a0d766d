"""The statistics of bộ chỉ số 766 over a period, per agency, commune or procedure: pure counting.

The store (:mod:`bus.store.stats`) hands over each dossier with its status history; everything
here is arithmetic on them, judged by the same rules as the deadline alerts (:mod:`bus.sla`).
The definitions, all in Asia/Ho_Chi_Minh local time:

- **period**: the local days ``first_day`` to ``last_day``, both included.
- **received**: dossiers whose ``received_at`` falls on a day of the period (the moment of
  receipt, not the working day it counts from), whatever happened to them since; split by
  channel (1 in person, 2 online, 3 public postal service).
- **finished**: dossiers that *first* reached 9, 10 or 8 (stopped) on a day of the period,
  whenever they were received. A later 9 → 10 inside the period does not make a dossier
  finished twice, nor one that finished before the period finished in it.
- **on time / late**: those finished dossiers judged by :func:`bus.sla.judge` (supplement waits
  excluded; more than one supplement request is late). A finished dossier without a due date
  is counted in ``finished`` but is neither on time nor late.
- **on-time rate**: on time / (on time + late); ``None`` when none was judged.
- **overdue now**: dossiers still open now (status 1, 2, 4, 5 or 6) whose effective due date is
  before today. A snapshot at ``now``, *not* limited to the period: an old dossier forgotten
  since last year is exactly what must show. A dossier without a due date is never overdue;
  one waiting for a supplement has its clock stopped; a withdrawn (7) or refused (3) one is
  closed, not overdue.
- **average processing time**: over the dossiers finished in the period, the mean of finish −
  receipt − time waiting for supplements, in clock hours; and the mean in working days
  (:func:`bus.sla.processing_working_days`). ``None`` when none finished.

A group appears when at least one of its dossiers counts in received, finished or overdue now.
The total is computed over all dossiers, not summed from the groups' averages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Final

from bus.calendar import WorkingCalendar
from bus.sla import (
    Punctuality,
    StatusPoint,
    finished_at,
    judge,
    processing_time,
    processing_working_days,
)
from contracts import OPEN_STATUSES, VN_TZ, Channel, DossierStatus

__all__ = [
    "MAX_PERIOD_DAYS",
    "UNKNOWN_COMMUNE",
    "DossierFacts",
    "GroupStats",
    "Grouping",
    "Period",
    "StatsReport",
    "compute_stats",
]

MAX_PERIOD_DAYS: Final = 366
"""The longest period a report may cover: a leap year."""

UNKNOWN_COMMUNE: Final = "unknown"
"""The group of dossiers whose applicant's commune is not known."""

_HOUR: Final = timedelta(hours=1)


class Grouping(StrEnum):
    """What the report's rows are."""

    AGENCY = "agency"  # the handling agency (đơn vị xử lý), not the receiving desk
    COMMUNE = "commune"  # the applicant's commune; UNKNOWN_COMMUNE when not given
    PROCEDURE = "procedure"  # the procedure code as the dossier carries it


@dataclass(frozen=True, slots=True)
class Period:
    """Local days ``first_day`` to ``last_day`` inclusive, in Asia/Ho_Chi_Minh."""

    first_day: date
    last_day: date

    def __post_init__(self) -> None:
        if self.last_day < self.first_day:
            raise ValueError(f"the period ends ({self.last_day}) before it starts")

    @property
    def days(self) -> int:
        """How many days the period covers."""
        return (self.last_day - self.first_day).days + 1

    @property
    def starts_at(self) -> datetime:
        """Midnight at the start of the first day, local time."""
        return datetime.combine(self.first_day, time.min, tzinfo=VN_TZ)

    @property
    def ends_before(self) -> datetime:
        """Midnight after the last day, local time: the first instant outside the period."""
        return datetime.combine(self.last_day + timedelta(days=1), time.min, tzinfo=VN_TZ)

    def __contains__(self, moment: object) -> bool:
        """Whether an instant falls on a day of the period (``received_at in period``)."""
        return isinstance(moment, datetime) and self.starts_at <= moment < self.ends_before


@dataclass(frozen=True, slots=True)
class DossierFacts:
    """One dossier as the statistics see it: where it belongs, and what happened to it."""

    code: str
    procedure_code: str
    handling_agency: str
    commune_code: str | None
    channel: int
    status: DossierStatus  # its current status
    received_at: datetime
    due_at: datetime | None
    history: tuple[StatusPoint, ...]

    def key(self, grouping: Grouping) -> str:
        """The row of the report this dossier belongs to."""
        if grouping is Grouping.AGENCY:
            return self.handling_agency
        if grouping is Grouping.COMMUNE:
            return self.commune_code or UNKNOWN_COMMUNE
        return self.procedure_code


@dataclass(frozen=True, slots=True)
class GroupStats:
    """The indicators of one group (or of all, for the total)."""

    key: str
    received: int
    received_in_person: int
    received_online: int
    received_postal: int
    finished: int
    on_time: int
    late: int
    overdue_now: int
    average_processing_hours: float | None
    average_processing_working_days: float | None

    @property
    def on_time_rate(self) -> float | None:
        """On time / (on time + late); ``None`` when no finished dossier had a due date."""
        judged = self.on_time + self.late
        return self.on_time / judged if judged else None


@dataclass(frozen=True, slots=True)
class StatsReport:
    """The whole answer: one row per group, ordered by key, and the total."""

    period: Period
    grouping: Grouping
    as_of: datetime
    groups: tuple[GroupStats, ...]
    total: GroupStats


@dataclass(frozen=True, slots=True)
class _Assessment:
    """What one dossier adds to its group."""

    received_in_period: bool
    channel: Channel | None  # None for a value outside the contract's channels
    finished_in_period: bool
    punctuality: Punctuality | None  # ON_TIME or LATE when finished in the period and judged
    processing: timedelta | None
    processing_days: int | None
    overdue_now: bool

    @property
    def counts(self) -> bool:
        return self.received_in_period or self.finished_in_period or self.overdue_now


@dataclass(slots=True)
class _Tally:
    """Running sums of one group."""

    received: int = 0
    by_channel: dict[Channel, int] = field(default_factory=dict)
    finished: int = 0
    on_time: int = 0
    late: int = 0
    overdue_now: int = 0
    processing: timedelta = field(default_factory=timedelta)
    processing_days: int = 0

    def add(self, assessment: _Assessment) -> None:
        if assessment.received_in_period:
            self.received += 1
            if assessment.channel is not None:
                self.by_channel[assessment.channel] = self.by_channel.get(assessment.channel, 0) + 1
        if assessment.finished_in_period:
            self.finished += 1
            self.on_time += assessment.punctuality is Punctuality.ON_TIME
            self.late += assessment.punctuality is Punctuality.LATE
            self.processing += assessment.processing or timedelta()
            self.processing_days += assessment.processing_days or 0
        self.overdue_now += assessment.overdue_now

    def freeze(self, key: str) -> GroupStats:
        return GroupStats(
            key=key,
            received=self.received,
            received_in_person=self.by_channel.get(Channel.IN_PERSON, 0),
            received_online=self.by_channel.get(Channel.ONLINE, 0),
            received_postal=self.by_channel.get(Channel.POSTAL, 0),
            finished=self.finished,
            on_time=self.on_time,
            late=self.late,
            overdue_now=self.overdue_now,
            average_processing_hours=(
                self.processing / _HOUR / self.finished if self.finished else None
            ),
            average_processing_working_days=(
                self.processing_days / self.finished if self.finished else None
            ),
        )


def _assess(
    dossier: DossierFacts, period: Period, calendar: WorkingCalendar, now: datetime
) -> _Assessment:
    """What ``dossier`` counts for in a report over ``period`` made at ``now``."""
    received_in_period = dossier.received_at in period
    finished = finished_at(dossier.history)
    finished_in_period = finished is not None and finished in period
    verdict = judge(_due_on(dossier), dossier.history, calendar, now)
    return _Assessment(
        received_in_period=received_in_period,
        channel=_channel(dossier.channel),
        finished_in_period=finished_in_period,
        punctuality=verdict if finished_in_period else None,
        processing=(
            processing_time(dossier.received_at, dossier.history) if finished_in_period else None
        ),
        processing_days=(
            processing_working_days(dossier.received_at, dossier.history, calendar)
            if finished_in_period
            else None
        ),
        # The current status, not the history, says whether the dossier is closed: a
        # withdrawn dossier is past its due date, but nobody owes it anything any more.
        overdue_now=dossier.status in OPEN_STATUSES and verdict is Punctuality.OVERDUE,
    )


def compute_stats(
    dossiers: Iterable[DossierFacts],
    *,
    period: Period,
    grouping: Grouping,
    calendar: WorkingCalendar,
    now: datetime,
) -> StatsReport:
    """The report over ``period`` as of ``now``, one row per ``grouping`` key, with the total.

    ``dossiers`` may hold more than the period needs (the store selects a superset): a dossier
    that counts for nothing adds no row.
    """
    groups: dict[str, _Tally] = {}
    total = _Tally()
    for dossier in dossiers:
        assessment = _assess(dossier, period, calendar, now)
        if not assessment.counts:
            continue
        groups.setdefault(dossier.key(grouping), _Tally()).add(assessment)
        total.add(assessment)
    return StatsReport(
        period=period,
        grouping=grouping,
        as_of=now,
        groups=tuple(groups[key].freeze(key) for key in sorted(groups)),
        total=total.freeze("total"),
    )


def _due_on(dossier: DossierFacts) -> date | None:
    # The stored due_at is an instant (23:59:59 local on the due date when the bus derived it);
    # the rules compare local days.
    return dossier.due_at.astimezone(VN_TZ).date() if dossier.due_at is not None else None


def _channel(value: int) -> Channel | None:
    # The contract validates the channel at ingest; a row from elsewhere with another value
    # still counts as received, only in no channel column.
    try:
        return Channel(value)
    except ValueError:
        return None
