"""Working days and due dates (ngày hẹn trả): which days agencies work, and when a dossier is due.

The holiday data is the ``holidays`` package's (Vietnam, with its observed and swapped days);
what the government decides that the package does not know yet is configured as extra days off
(``BUS_EXTRA_DAYS_OFF``) and make-up working days (``BUS_MAKEUP_WORKING_DAYS``). Only the
counting is written here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Final

import holidays

from bus.settings import Settings, get_settings
from contracts import VN_TZ

__all__ = [
    "WorkingCalendar",
    "calendar_from_settings",
    "default_calendar",
    "due_date",
    "end_of_day",
]

_ONE_DAY: Final = timedelta(days=1)
# The last second rather than office closing time: a result finished at 17:30 on its due day is
# on time ("no later than the due date"), and comparing instants must agree with that.
_END_OF_DAY: Final = time(23, 59, 59)


class WorkingCalendar:
    """Which days the state administration works, and counting in working days.

    A day is a working day when it is a configured make-up working day; otherwise when it is
    not a configured extra day off and the holiday source counts it as one: Monday to Friday
    and not a public holiday (with its observed day), or a make-up Saturday the source knows.
    Configured days win over the source, because they come from this year's official schedule.
    """

    def __init__(
        self,
        holiday_source: holidays.HolidayBase | None = None,
        *,
        extra_days_off: Iterable[date] = (),
        makeup_working_days: Iterable[date] = (),
    ) -> None:
        # Vietnam's public holidays; the object fills in each year when it is first asked.
        self._holidays = (
            holiday_source if holiday_source is not None else holidays.country_holidays("VN")
        )
        self._extra_days_off = frozenset(_as_dates(extra_days_off, "extra_days_off"))
        self._makeup_working_days = frozenset(_as_dates(makeup_working_days, "makeup_working_days"))
        both = self._extra_days_off & self._makeup_working_days
        if both:
            listed = ", ".join(sorted(day.isoformat() for day in both))
            raise ValueError(
                f"{listed}: configured both as an extra day off and as a make-up working day; "
                "remove it from one of the two lists"
            )

    @property
    def extra_days_off(self) -> frozenset[date]:
        """The configured extra days off."""
        return self._extra_days_off

    @property
    def makeup_working_days(self) -> frozenset[date]:
        """The configured make-up working days."""
        return self._makeup_working_days

    def is_working_day(self, day: date) -> bool:
        """Whether agencies work on ``day``."""
        day = _as_date(day, "day")
        if day in self._makeup_working_days:
            return True
        if day in self._extra_days_off:
            return False
        # Weekend (Saturday, Sunday for Vietnam), holidays and the package's make-up Saturdays.
        return bool(self._holidays.is_working_day(day))

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after ``day``."""
        day = _as_date(day, "day") + _ONE_DAY
        while not self.is_working_day(day):
            day += _ONE_DAY
        return day

    def add_working_days(self, day: date, count: int) -> date:
        """The ``count``-th working day after ``day``, which is not counted; ``day`` for 0."""
        day = _as_date(day, "day")
        for _ in range(_check_count(count, "count")):
            day = self.next_working_day(day)
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days after ``start`` up to and including ``end``; negative when end < start.

        The inverse of :meth:`add_working_days`: ``working_days_between(d, add_working_days(d,
        n)) == n``. For an SLA, ``working_days_between(due, finished)`` is how many working
        days late a dossier was (0 or less: on time).
        """
        start, end = _as_date(start, "start"), _as_date(end, "end")
        if end < start:
            return -self.working_days_between(end, start)
        count = 0
        day = start + _ONE_DAY
        while day <= end:
            count += self.is_working_day(day)
            day += _ONE_DAY
        return count

    def receipt_day(self, received_at: datetime, cutoff_hour: int | None = None) -> date:
        """The working day a dossier counts as received on.

        Received on a day off, or on a working day at or after ``cutoff_hour`` (local time),
        it counts as received on the next working day. ``received_at`` may be naive (taken as
        Asia/Ho_Chi_Minh) or aware (converted to Asia/Ho_Chi_Minh).
        """
        local = _local(received_at)
        cutoff = _check_cutoff(cutoff_hour)
        day = local.date()
        if not self.is_working_day(day) or (cutoff is not None and local.hour >= cutoff):
            return self.next_working_day(day)
        return day

    def due_date(
        self, received_at: datetime, working_days: int, cutoff_hour: int | None = None
    ) -> date:
        """The due date: the ``working_days``-th working day after the day of receipt."""
        count = _check_count(working_days, "working_days")
        return self.add_working_days(self.receipt_day(received_at, cutoff_hour), count)

    def __repr__(self) -> str:
        return (
            f"WorkingCalendar({type(self._holidays).__name__}, "
            f"{len(self._extra_days_off)} extra days off, "
            f"{len(self._makeup_working_days)} make-up working days)"
        )


def due_date(
    received_at: datetime,
    working_days: int,
    cutoff_hour: int | None = None,
    *,
    calendar: WorkingCalendar | None = None,
) -> date:
    """The due date of a dossier received at ``received_at`` with ``working_days`` to process it.

    DOMAIN.md's rule: received on a day off, or on a working day at or after ``cutoff_hour``,
    the dossier counts as received on the next working day; it is due on the
    ``working_days``-th working day after that day (0: that day itself). Without a cut-off the
    whole working day counts. ``received_at`` naive is local (Asia/Ho_Chi_Minh); aware is
    converted. ``calendar`` defaults to :func:`default_calendar`.
    """
    return (calendar or default_calendar()).due_date(received_at, working_days, cutoff_hour)


def end_of_day(day: date) -> datetime:
    """23:59:59 in Asia/Ho_Chi_Minh on ``day``: the ``due_at`` of a dossier due that day."""
    return datetime.combine(_as_date(day, "day"), _END_OF_DAY, tzinfo=VN_TZ)


def calendar_from_settings(settings: Settings) -> WorkingCalendar:
    """The Vietnamese calendar with the extra days off and make-up days of ``settings``."""
    return WorkingCalendar(
        extra_days_off=settings.extra_days_off,
        makeup_working_days=settings.makeup_working_days,
    )


@lru_cache(maxsize=1)
def default_calendar() -> WorkingCalendar:
    """The process-wide calendar, built once from the environment's settings."""
    return calendar_from_settings(get_settings())


def _local(moment: datetime, name: str = "received_at") -> datetime:
    if not isinstance(moment, datetime):
        raise TypeError(
            f"{name} must be a datetime, not {type(moment).__name__}; "
            "a bare date has no hour to compare with the cut-off"
        )
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment  # naive: already the agency's local time
    return moment.astimezone(VN_TZ)


def _as_date(day: date, name: str) -> date:
    # A datetime is a date too, but its time would leak into date arithmetic and set lookups;
    # an aware one may even fall on another day in Vietnam than where it was written.
    if isinstance(day, datetime):
        return _local(day, name).date()
    if not isinstance(day, date):
        raise TypeError(f"{name} must be a date, not {type(day).__name__}")
    return day


def _as_dates(days: Iterable[date], name: str) -> list[date]:
    if isinstance(days, str | bytes):
        raise TypeError(f"{name} must be a collection of dates, not a string")
    return [_as_date(day, name) for day in days]


def _check_count(count: int, name: str) -> int:
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"{name} must be an int, not {type(count).__name__}")
    if count < 0:
        raise ValueError(f"{name} must be 0 or more, got {count}")
    return count


def _check_cutoff(cutoff_hour: int | None) -> int | None:
    if cutoff_hour is None:
        return None
    if isinstance(cutoff_hour, bool) or not isinstance(cutoff_hour, int):
        raise TypeError(f"cutoff_hour must be an int or None, not {type(cutoff_hour).__name__}")
    if not 0 <= cutoff_hour <= 23:
        raise ValueError(f"cutoff_hour must be an hour from 0 to 23, got {cutoff_hour}")
    return cutoff_hour
