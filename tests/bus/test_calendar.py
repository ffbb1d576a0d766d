"""The working-day calendar: DOMAIN.md's due-date rule on Vietnam's real calendar, 2024–2027.

Every expected date in the table was worked out by hand from the official holiday schedules
(2027: the ``holidays`` package's estimate, the government has not decided it yet), never by
calling the code under test. The days off it relies on (working days only; weekends aside):

- 2024: Tết Thu 8 – Wed 14 Feb; Hùng Kings Thu 18 Apr; Mon 29 Apr (swapped for Sat 4 May, a
  make-up working day) – Wed 1 May; National Day Mon 2 and Tue 3 Sep.
- 2025: Tết Mon 27 – Fri 31 Jan; Hùng Kings Mon 7 Apr; Wed 30 Apr – Fri 2 May (Fri 2 May swapped
  for Sat 26 Apr); National Day Mon 1 (the adjacent day) and Tue 2 Sep.
- 2026: New Year Thu 1 Jan (the government also gave Fri 2 Jan, swapped for Sat 10 Jan: the
  package does not know it, so only a configured calendar does); Tết Mon 16 – Fri 20 Feb; Hùng
  Kings Sun 26 Apr, observed Mon 27 Apr; Thu 30 Apr and Fri 1 May; Mon 31 Aug (swapped for Sat 22
  Aug), Tue 1 and Wed 2 Sep; Vietnam Culture Day Tue 24 Nov.
- 2027 (estimate): Tết Thu 4, Fri 5, Mon 8, Tue 9, Wed 10 Feb.

March 2026 has no holiday: Mon 9 – Fri 13 and Mon 16 – Fri 20 are plain working weeks.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus import calendar as calendar_module
from bus.calendar import WorkingCalendar, calendar_from_settings, due_date, end_of_day
from bus.settings import Settings, get_settings
from contracts import VN_TZ

PACKAGE = WorkingCalendar()
"""The holidays package alone, nothing configured."""

OFFICIAL_2026 = WorkingCalendar(
    extra_days_off=[date(2026, 1, 2)], makeup_working_days=[date(2026, 1, 10)]
)
"""With the 2026 New Year swap (Official Dispatch 12729/VPCP-KGVX) the package lacks."""

WORKS_24_NOV = WorkingCalendar(makeup_working_days=[date(2026, 11, 24)])
"""A province that works on a day the package lists as a holiday."""


def local(
    year: int, month: int, day: int, hour: int = 9, minute: int = 0, second: int = 0
) -> datetime:
    """A naive datetime: local time in Asia/Ho_Chi_Minh, as the calendar reads it."""
    return datetime(year, month, day, hour, minute, second)


# One case per pytest.param, its arguments on one line: the table reads across (fmt: skip).
CASES = [
    # --- DOMAIN.md's own examples, N = 3, cut-off 15:00 ------------------------------------
    pytest.param(
        PACKAGE, local(2026, 3, 9, 9), 3, 15, date(2026, 3, 12),
        id="domain-N3-monday-0900-due-thursday",
    ),  # receipt Mon 9; Tue 10, Wed 11, Thu 12
    pytest.param(
        PACKAGE, local(2026, 3, 9, 15, 30), 3, 15, date(2026, 3, 13),
        id="domain-N3-monday-1530-after-cutoff-due-friday",
    ),  # receipt Tue 10; Wed 11, Thu 12, Fri 13
    pytest.param(
        PACKAGE, local(2026, 3, 14, 10), 3, 15, date(2026, 3, 19),
        id="domain-N3-saturday-counts-as-monday-due-thursday",
    ),  # receipt Mon 16; Tue 17, Wed 18, Thu 19
    pytest.param(
        PACKAGE, local(2026, 2, 13, 9), 3, 15, date(2026, 2, 25),
        id="domain-N3-friday-before-tet-2026-week-skips-it-due-wed-25-feb",
    ),  # receipt Fri 13; Tết 16-20 and two weekends skipped; Mon 23, Tue 24, Wed 25
    # --- the cut-off hour --------------------------------------------------------------------
    pytest.param(
        PACKAGE, local(2026, 3, 9, 15, 0), 3, 15, date(2026, 3, 13),
        id="cutoff-exactly-1500-counts-from-tuesday",
    ),  # "at or after" the cut-off: receipt Tue 10
    pytest.param(
        PACKAGE, local(2026, 3, 9, 14, 59), 3, 15, date(2026, 3, 12),
        id="cutoff-1459-still-monday",
    ),
    pytest.param(
        PACKAGE, datetime(2026, 3, 9, 14, 59, 59, 999_999), 3, 15, date(2026, 3, 12),
        id="cutoff-last-microsecond-before-1500-still-monday",
    ),
    pytest.param(
        PACKAGE, local(2026, 3, 9, 23, 30), 3, None, date(2026, 3, 12),
        id="no-cutoff-whole-working-day-counts-even-2330",
    ),
    pytest.param(
        PACKAGE, local(2026, 3, 13, 16), 1, 15, date(2026, 3, 17),
        id="friday-after-cutoff-counts-as-monday-N1-due-tuesday",
    ),
    pytest.param(
        PACKAGE, local(2026, 3, 10, 0, 0), 0, 0, date(2026, 3, 11),
        id="cutoff-hour-0-every-dossier-counts-from-next-working-day",
    ),
    # --- weekends ----------------------------------------------------------------------------
    pytest.param(
        PACKAGE, local(2026, 3, 15, 10), 1, None, date(2026, 3, 17),
        id="sunday-counts-as-monday-N1-due-tuesday",
    ),
    pytest.param(
        PACKAGE, local(2026, 3, 14, 10), 0, 15, date(2026, 3, 16),
        id="saturday-N0-due-monday",
    ),
    pytest.param(
        PACKAGE, local(2026, 3, 14, 16), 0, 15, date(2026, 3, 16),
        id="saturday-after-cutoff-is-still-monday-not-tuesday",
    ),  # the cut-off applies to a working day; a day off simply moves to the next one
    # --- N = 0, 5, 10, 20 ---------------------------------------------------------------------
    pytest.param(
        PACKAGE, local(2026, 3, 10, 9), 0, 15, date(2026, 3, 10),
        id="N0-working-day-before-cutoff-due-same-day",
    ),
    pytest.param(
        PACKAGE, local(2026, 3, 9, 9), 5, 15, date(2026, 3, 16),
        id="N5-monday-due-next-monday",
    ),  # Tue 10, Wed 11, Thu 12, Fri 13, Mon 16
    pytest.param(
        PACKAGE, local(2025, 3, 31, 9), 10, 15, date(2025, 4, 15),
        id="N10-across-hung-kings-2025-mon-7-apr-due-tue-15-apr",
    ),  # Tue 1-Fri 4 (4), Mon 7 off, Tue 8-Fri 11 (8), Mon 14, Tue 15
    pytest.param(
        PACKAGE, local(2025, 4, 15, 9), 20, 15, date(2025, 5, 15),
        id="N20-across-30-apr-2025-counts-makeup-sat-26-apr",
    ),  # Wed 16-Fri 25 (8), Sat 26 (9), Mon 28, Tue 29 (11), 30 Apr-2 May off, Mon 5-Thu 15 (20)
    pytest.param(
        PACKAGE, local(2026, 2, 2, 9), 20, 15, date(2026, 3, 9),
        id="N20-across-tet-2026-due-mon-9-mar",
    ),  # Tue 3-Fri 13 Feb (9), Tết 16-20 off, Mon 23 Feb-Fri 6 Mar (19), Mon 9 Mar
    # --- Tết -----------------------------------------------------------------------------------
    pytest.param(
        PACKAGE, local(2026, 2, 17, 10), 1, 15, date(2026, 2, 24),
        id="tet-2026-received-on-new-year-day-counts-as-mon-23-feb",
    ),
    pytest.param(
        PACKAGE, local(2026, 2, 13, 15), 0, 15, date(2026, 2, 23),
        id="tet-2026-friday-at-cutoff-N0-due-first-day-after-tet",
    ),
    pytest.param(
        PACKAGE, local(2026, 2, 13, 14, 59), 0, 15, date(2026, 2, 13),
        id="tet-2026-friday-1459-N0-due-same-day",
    ),
    pytest.param(
        PACKAGE, local(2025, 1, 24, 10), 5, 15, date(2025, 2, 7),
        id="tet-2025-fri-24-jan-N5-skips-27-31-jan",
    ),  # Mon 3, Tue 4, Wed 5, Thu 6, Fri 7 Feb
    pytest.param(
        PACKAGE, local(2025, 1, 22, 9), 3, None, date(2025, 2, 3),
        id="tet-2025-wed-22-jan-N3-thu-fri-then-mon-3-feb",
    ),
    pytest.param(
        PACKAGE, local(2024, 2, 7, 16), 1, 15, date(2024, 2, 16),
        id="tet-2024-wed-7-feb-after-cutoff-counts-as-thu-15-feb",
    ),  # next working day after Wed 7 is Thu 15 (Tết Thu 8-Wed 14); N1 Fri 16
    pytest.param(
        PACKAGE, local(2027, 2, 3, 9), 2, 15, date(2027, 2, 12),
        id="tet-2027-package-estimate-off-4-5-8-9-10-feb",
    ),  # Thu 11, Fri 12
    # --- Hùng Kings' day (10th of the 3rd lunar month) --------------------------------------
    pytest.param(
        PACKAGE, local(2025, 4, 4, 9), 1, 15, date(2025, 4, 8),
        id="hung-kings-2025-mon-7-apr-skipped",
    ),
    pytest.param(
        PACKAGE, local(2024, 4, 17, 10), 1, 15, date(2024, 4, 19),
        id="hung-kings-2024-thu-18-apr-skipped",
    ),
    pytest.param(
        PACKAGE, local(2026, 4, 24, 9), 1, 15, date(2026, 4, 28),
        id="hung-kings-2026-on-sunday-observed-mon-27-apr",
    ),
    pytest.param(
        PACKAGE, local(2025, 4, 7, 8), 0, 15, date(2025, 4, 8),
        id="received-on-hung-kings-day-N0-due-next-working-day",
    ),
    # --- 30 April and 1 May, with swapped days --------------------------------------------
    pytest.param(
        PACKAGE, local(2025, 4, 29, 9), 1, 15, date(2025, 5, 5),
        id="30-apr-2025-off-wed-30-thu-1-and-swapped-fri-2-may",
    ),
    pytest.param(
        PACKAGE, local(2025, 4, 25, 9), 1, 15, date(2025, 4, 26),
        id="makeup-saturday-26-apr-2025-is-a-working-day",
    ),
    pytest.param(
        PACKAGE, local(2025, 4, 26, 10), 0, 15, date(2025, 4, 26),
        id="received-on-makeup-saturday-26-apr-2025-N0-same-day",
    ),
    pytest.param(
        PACKAGE, local(2024, 4, 26, 9), 2, 15, date(2024, 5, 3),
        id="30-apr-2024-off-mon-29-apr-to-wed-1-may",
    ),  # Thu 2, Fri 3 May
    pytest.param(
        PACKAGE, local(2024, 5, 3, 9), 1, 15, date(2024, 5, 4),
        id="makeup-saturday-4-may-2024-is-a-working-day",
    ),
    pytest.param(
        PACKAGE, local(2026, 4, 29, 15), 1, 15, date(2026, 5, 5),
        id="30-apr-2026-wed-at-cutoff-counts-as-mon-4-may",
    ),
    pytest.param(
        PACKAGE, local(2026, 4, 29, 14, 59), 1, 15, date(2026, 5, 4),
        id="30-apr-2026-wed-1459-due-mon-4-may",
    ),
    # --- National Day 2 September and its adjacent day -------------------------------------
    pytest.param(
        PACKAGE, local(2025, 8, 29, 9), 1, 15, date(2025, 9, 3),
        id="2-sep-2025-plus-adjacent-mon-1-sep",
    ),
    pytest.param(
        PACKAGE, local(2024, 8, 30, 9), 1, 15, date(2024, 9, 4),
        id="2-sep-2024-plus-adjacent-tue-3-sep",
    ),
    pytest.param(
        PACKAGE, local(2026, 8, 28, 9), 1, 15, date(2026, 9, 3),
        id="2-sep-2026-swapped-mon-31-aug-adjacent-tue-1-sep",
    ),
    pytest.param(
        PACKAGE, local(2026, 8, 21, 10), 1, 15, date(2026, 8, 22),
        id="makeup-saturday-22-aug-2026-is-a-working-day",
    ),
    pytest.param(
        PACKAGE, local(2025, 9, 2, 9), 3, 15, date(2025, 9, 8),
        id="received-on-2-sep-2025-counts-as-wed-3-sep-N3-due-mon-8",
    ),  # Thu 4, Fri 5, Mon 8
    # --- configured extra days off and make-up working days ---------------------------------
    pytest.param(
        PACKAGE, local(2025, 12, 31, 9), 1, 15, date(2026, 1, 2),
        id="new-year-2026-package-alone-works-fri-2-jan",
    ),
    pytest.param(
        OFFICIAL_2026, local(2025, 12, 31, 9), 1, 15, date(2026, 1, 5),
        id="new-year-2026-configured-extra-day-off-fri-2-jan",
    ),
    pytest.param(
        OFFICIAL_2026, local(2026, 1, 9, 9), 1, 15, date(2026, 1, 10),
        id="configured-makeup-saturday-10-jan-2026-counts",
    ),
    pytest.param(
        OFFICIAL_2026, local(2026, 1, 10, 16), 0, 15, date(2026, 1, 12),
        id="received-on-makeup-saturday-after-cutoff-counts-as-monday",
    ),
    pytest.param(
        OFFICIAL_2026, local(2026, 1, 2, 9), 0, 15, date(2026, 1, 5),
        id="received-on-configured-extra-day-off-counts-as-monday",
    ),
    pytest.param(
        PACKAGE, local(2026, 11, 23, 9), 1, 15, date(2026, 11, 25),
        id="24-nov-2026-vietnam-culture-day-in-the-package",
    ),
    pytest.param(
        WORKS_24_NOV, local(2026, 11, 23, 9), 1, 15, date(2026, 11, 24),
        id="configured-makeup-day-overrides-a-package-holiday",
    ),
    # --- naive (local) and aware input ------------------------------------------------------
    pytest.param(
        PACKAGE, datetime(2026, 3, 9, 17, 30, tzinfo=UTC), 3, None, date(2026, 3, 13),
        id="utc-mon-1730-is-vn-tue-0030-due-fri",
    ),
    pytest.param(
        PACKAGE, local(2026, 3, 9, 17, 30), 3, None, date(2026, 3, 12),
        id="naive-mon-1730-is-local-time-due-thu",
    ),
    pytest.param(
        PACKAGE, datetime(2026, 3, 9, 9, tzinfo=VN_TZ), 3, 15, date(2026, 3, 12),
        id="aware-vietnam-time-equals-naive-local",
    ),
    pytest.param(
        PACKAGE, datetime(2026, 3, 13, 20, tzinfo=UTC), 1, None, date(2026, 3, 17),
        id="utc-fri-2000-is-vn-sat-0300-counts-as-monday-due-tue",
    ),
    pytest.param(
        PACKAGE, datetime(2026, 2, 13, 17, 30, tzinfo=UTC), 0, None, date(2026, 2, 23),
        id="utc-fri-1730-is-vn-sat-before-tet-N0-due-mon-23-feb",
    ),
    pytest.param(
        PACKAGE, datetime(2026, 3, 9, 7, 59, tzinfo=UTC), 3, 15, date(2026, 3, 12),
        id="utc-0759-is-vn-1459-before-cutoff",
    ),
    pytest.param(
        PACKAGE, datetime(2026, 3, 9, 8, 0, tzinfo=UTC), 3, 15, date(2026, 3, 13),
        id="utc-0800-is-vn-1500-at-cutoff",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("calendar", "received_at", "working_days", "cutoff_hour", "expected"), CASES
)
def test_due_date_matches_the_date_worked_out_by_hand(
    calendar: WorkingCalendar,
    received_at: datetime,
    working_days: int,
    cutoff_hour: int | None,
    expected: date,
) -> None:
    """Each case is due on the date worked out by hand from the real calendar."""
    assert due_date(received_at, working_days, cutoff_hour, calendar=calendar) == expected


def test_the_table_is_large_and_its_ids_unique() -> None:
    """The table keeps at least 30 cases, each with its own id."""
    ids = [case.id for case in CASES]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)


# --- properties, over 2024-2027 -----------------------------------------------------------

_moments = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 20))
_counts = st.integers(min_value=0, max_value=25)
_cutoffs = st.none() | st.integers(min_value=0, max_value=23)
_property = settings(max_examples=300, deadline=None)


@_property
@given(_moments, _counts, _cutoffs)
def test_the_due_date_is_always_a_working_day(
    received_at: datetime, working_days: int, cutoff_hour: int | None
) -> None:
    """Whatever the receipt time, N and cut-off, a dossier is due on a working day."""
    assert PACKAGE.is_working_day(PACKAGE.due_date(received_at, working_days, cutoff_hour))


@_property
@given(_moments, _moments, _counts, _cutoffs)
def test_a_later_receipt_is_never_due_earlier(
    first: datetime, second: datetime, working_days: int, cutoff_hour: int | None
) -> None:
    """The due date never decreases as the receipt time increases."""
    earlier, later = sorted((first, second))
    assert PACKAGE.due_date(earlier, working_days, cutoff_hour) <= PACKAGE.due_date(
        later, working_days, cutoff_hour
    )


@_property
@given(_moments, _counts, _cutoffs)
def test_one_more_working_day_is_the_next_working_day(
    received_at: datetime, working_days: int, cutoff_hour: int | None
) -> None:
    """N + 1 is due strictly after N, on the very next working day."""
    due = PACKAGE.due_date(received_at, working_days, cutoff_hour)
    after = PACKAGE.due_date(received_at, working_days + 1, cutoff_hour)
    assert after > due and after == PACKAGE.next_working_day(due)


@_property
@given(_moments, _counts, _cutoffs)
def test_counting_back_from_the_due_date_gives_n(
    received_at: datetime, working_days: int, cutoff_hour: int | None
) -> None:
    """Between the day of receipt and the due date lie exactly N working days."""
    receipt = PACKAGE.receipt_day(received_at, cutoff_hour)
    due = PACKAGE.due_date(received_at, working_days, cutoff_hour)
    assert receipt >= received_at.date() and PACKAGE.is_working_day(receipt)
    assert PACKAGE.working_days_between(receipt, due) == working_days
    assert PACKAGE.working_days_between(due, receipt) == -working_days


# --- the calendar itself --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "working"),
    [
        pytest.param(date(2026, 3, 9), True, id="plain-monday"),
        pytest.param(date(2026, 3, 14), False, id="plain-saturday"),
        pytest.param(date(2026, 3, 15), False, id="plain-sunday"),
        pytest.param(date(2026, 2, 16), False, id="tet-2026-eve"),
        pytest.param(date(2024, 5, 4), True, id="package-makeup-saturday-2024"),
        pytest.param(date(2025, 9, 1), False, id="national-day-adjacent-2025"),
        pytest.param(date(2025, 1, 1), False, id="new-year-2025"),
    ],
)
def test_is_working_day(day: date, working: bool) -> None:
    """Weekends, holidays and swapped days are off; make-up Saturdays are worked."""
    assert PACKAGE.is_working_day(day) is working


def test_configured_days_win_over_the_package() -> None:
    """An extra day off and a make-up day override what the package says."""
    assert PACKAGE.is_working_day(date(2026, 1, 2)) and not PACKAGE.is_working_day(
        date(2026, 1, 10)
    )
    assert not OFFICIAL_2026.is_working_day(date(2026, 1, 2))
    assert OFFICIAL_2026.is_working_day(date(2026, 1, 10))
    package_makeup = WorkingCalendar(extra_days_off=[date(2025, 4, 26)])
    assert not package_makeup.is_working_day(date(2025, 4, 26))


def test_add_working_days_zero_is_the_day_itself_even_a_holiday() -> None:
    """Adding 0 working days returns the start unchanged; the rule's day of receipt is separate."""
    assert PACKAGE.add_working_days(date(2026, 2, 17), 0) == date(2026, 2, 17)
    assert PACKAGE.add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 23)


def test_working_days_between_counts_the_end_not_the_start() -> None:
    """Working days in (start, end]: the SLA count across Tết, signed, and 0 on the same day."""
    assert PACKAGE.working_days_between(date(2026, 2, 13), date(2026, 2, 23)) == 1
    assert PACKAGE.working_days_between(date(2026, 2, 23), date(2026, 2, 13)) == -1
    assert PACKAGE.working_days_between(date(2026, 3, 9), date(2026, 3, 9)) == 0
    # Mon 9 - Fri 20 Mar 2026: Tue 10 to Fri 20 minus the weekend of 14-15.
    assert PACKAGE.working_days_between(date(2026, 3, 9), date(2026, 3, 20)) == 9


def test_a_datetime_given_as_a_day_is_read_in_vietnam() -> None:
    """An aware datetime where a date is expected counts for its day in Asia/Ho_Chi_Minh."""
    # 18:00 UTC on Friday 13 March is 01:00 on Saturday 14 March in Hanoi.
    assert not PACKAGE.is_working_day(datetime(2026, 3, 13, 18, tzinfo=UTC))


def test_end_of_day_is_the_last_second_in_vietnam() -> None:
    """A due date becomes 23:59:59 Asia/Ho_Chi_Minh on that day."""
    moment = end_of_day(date(2026, 2, 25))
    assert moment == datetime(2026, 2, 25, 23, 59, 59, tzinfo=VN_TZ)
    assert moment.utcoffset() is not None


# --- refused input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        pytest.param((local(2026, 3, 9), -1, None), ValueError, "0 or more", id="negative-n"),
        pytest.param((local(2026, 3, 9), 3, 24), ValueError, "0 to 23", id="cutoff-24"),
        pytest.param((local(2026, 3, 9), 3, -1), ValueError, "0 to 23", id="cutoff-negative"),
        pytest.param((local(2026, 3, 9), True, None), TypeError, "int", id="n-bool"),
        pytest.param((local(2026, 3, 9), 2.5, None), TypeError, "int", id="n-float"),
        pytest.param((local(2026, 3, 9), 3, 15.0), TypeError, "cutoff_hour", id="cutoff-float"),
        pytest.param((date(2026, 3, 9), 3, 15), TypeError, "no hour", id="date-not-datetime"),
        pytest.param(("2026-03-09T09:00", 3, 15), TypeError, "datetime", id="string-received"),
    ],
)
def test_bad_arguments_are_refused_with_a_clear_error(
    arguments: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    """Invalid N, cut-off hours and receipt times raise an error naming the problem."""
    with pytest.raises(error, match=message):
        due_date(*arguments, calendar=PACKAGE)


def test_a_day_both_off_and_worked_is_refused() -> None:
    """A date configured both as an extra day off and as a make-up day is a contradiction."""
    with pytest.raises(ValueError, match=r"2026-01-02.*both"):
        WorkingCalendar(extra_days_off=[date(2026, 1, 2)], makeup_working_days=[date(2026, 1, 2)])


def test_a_string_is_not_a_list_of_dates() -> None:
    """A bare string given as the days off is refused rather than read letter by letter."""
    with pytest.raises(TypeError, match="collection of dates"):
        WorkingCalendar(extra_days_off="2026-01-02")  # type: ignore[arg-type]


# --- the default calendar, from settings ----------------------------------------------------


@pytest.fixture
def fresh_default_calendar() -> Iterator[None]:
    """Forget the cached settings and calendar before and after the test."""
    get_settings.cache_clear()
    calendar_module.default_calendar.cache_clear()
    yield
    get_settings.cache_clear()
    calendar_module.default_calendar.cache_clear()


def test_settings_read_the_days_as_json_lists_of_iso_dates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """BUS_EXTRA_DAYS_OFF and BUS_MAKEUP_WORKING_DAYS are JSON lists of ISO dates."""
    monkeypatch.setenv("BUS_EXTRA_DAYS_OFF", '["2026-01-02"]')
    monkeypatch.setenv("BUS_MAKEUP_WORKING_DAYS", '["2026-01-10"]')
    configured = Settings()
    assert configured.extra_days_off == (date(2026, 1, 2),)
    assert configured.makeup_working_days == (date(2026, 1, 10),)
    assert configured.as_environment()["BUS_EXTRA_DAYS_OFF"] == '["2026-01-02"]'
    calendar = calendar_from_settings(configured)
    assert calendar.extra_days_off == {date(2026, 1, 2)}
    assert calendar.makeup_working_days == {date(2026, 1, 10)}


@pytest.mark.usefixtures("fresh_default_calendar")
def test_due_date_without_a_calendar_uses_the_configured_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The module-level due_date counts the days the environment configures."""
    monkeypatch.setenv("BUS_EXTRA_DAYS_OFF", '["2026-01-02"]')
    assert due_date(local(2025, 12, 31), 1, 15) == date(2026, 1, 5)


@pytest.mark.usefixtures("fresh_default_calendar")
def test_due_date_without_configuration_uses_the_package_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With nothing configured, the default calendar is the package's."""
    monkeypatch.delenv("BUS_EXTRA_DAYS_OFF", raising=False)
    monkeypatch.delenv("BUS_MAKEUP_WORKING_DAYS", raising=False)
    assert due_date(local(2025, 12, 31), 1, 15) == date(2026, 1, 2)
