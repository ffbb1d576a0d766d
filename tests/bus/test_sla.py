"""The 766 rules (``bus.sla``): supplement waits, effective due date, verdict, processing time.

Dates are in March 2026, which has no holiday: Mon 9 – Fri 13 and Mon 16 – Fri 20 are plain
working weeks (see tests/bus/test_calendar.py). Expected values are worked out by hand.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from bus.calendar import WorkingCalendar
from bus.sla import (
    Punctuality,
    StatusPoint,
    effective_due_date,
    finished_at,
    judge,
    paused_working_days,
    processing_time,
    processing_working_days,
    supplement_requests,
    supplement_wait_time,
    supplement_waits,
)
from contracts import VN_TZ, DossierStatus

CALENDAR = WorkingCalendar()

ACCEPTED = DossierStatus.ACCEPTED
PROCESSING = DossierStatus.PROCESSING
SUPPLEMENT = DossierStatus.SUPPLEMENT_REQUESTED
STOPPED = DossierStatus.STOPPED
PROCESSED = DossierStatus.PROCESSED
RETURNED = DossierStatus.RESULT_RETURNED


def vn(day: int, hour: int = 9, minute: int = 0) -> datetime:
    """An instant of March 2026 in Asia/Ho_Chi_Minh."""
    return datetime(2026, 3, day, hour, minute, tzinfo=VN_TZ)


def history(*points: tuple[DossierStatus, datetime]) -> list[StatusPoint]:
    """A status history from (status, when) pairs."""
    return [StatusPoint(status, at) for status, at in points]


# Received Mon 9 March 09:00; supplement asked Tue 10 at 10:00, supplied Thu 12 at 10:00;
# processed Fri 13 at 15:00. The wait is 48 h and pauses Wed 11 and Thu 12 (2 working days).
ONE_SUPPLEMENT = history(
    (ACCEPTED, vn(9)),
    (SUPPLEMENT, vn(10, 10)),
    (PROCESSING, vn(12, 10)),
    (PROCESSED, vn(13, 15)),
)


# --- finished_at -------------------------------------------------------------------------------


def test_finished_at_is_the_first_finished_status() -> None:
    """A dossier finishes when it first reaches 9; the later 10 does not move it."""
    points = history((ACCEPTED, vn(9)), (PROCESSED, vn(11)), (RETURNED, vn(12)))
    assert finished_at(points) == vn(11)


def test_stopping_finishes_a_dossier() -> None:
    """Status 8 (processing stopped) counts as finished."""
    assert finished_at(history((ACCEPTED, vn(9)), (STOPPED, vn(10)))) == vn(10)


def test_an_open_dossier_has_not_finished() -> None:
    """Without 9, 10 or 8 there is no finish time."""
    assert finished_at(history((ACCEPTED, vn(9)), (SUPPLEMENT, vn(10)))) is None


def test_history_order_is_by_time_not_by_position() -> None:
    """Points given out of order are read in time order."""
    points = history((RETURNED, vn(12)), (ACCEPTED, vn(9)), (PROCESSED, vn(11)))
    assert finished_at(points) == vn(11)


# --- supplement waits and requests -------------------------------------------------------------


def test_a_second_request_while_waiting_is_one_stretch_but_two_requests() -> None:
    """5 then 5 again is one wait; entries into 5 from elsewhere are what is counted."""
    points = history(
        (ACCEPTED, vn(9)),
        (SUPPLEMENT, vn(9, 10)),
        (SUPPLEMENT, vn(9, 11)),
        (PROCESSING, vn(10)),
        (SUPPLEMENT, vn(11)),
        (PROCESSING, vn(12)),
    )
    assert supplement_waits(points, vn(20)) == [(vn(9, 10), vn(10)), (vn(11), vn(12))]
    assert supplement_requests(points) == 2


def test_a_wait_still_open_ends_now() -> None:
    """An unanswered request waits until ``now``."""
    points = history((ACCEPTED, vn(9)), (SUPPLEMENT, vn(10)))
    assert supplement_waits(points, vn(16)) == [(vn(10), vn(16))]


def test_paused_days_are_the_working_days_after_the_request_up_to_the_supply() -> None:
    """Asked and supplied the same day pauses nothing; Tue to Thu pauses Wed and Thu."""
    assert paused_working_days([(vn(10, 9), vn(10, 16))], CALENDAR) == 0
    assert paused_working_days([(vn(10), vn(12))], CALENDAR) == 2
    # Fri 13 to Mon 16: the weekend pauses nothing more than Monday.
    assert paused_working_days([(vn(13), vn(16))], CALENDAR) == 1


def test_effective_due_date_moves_by_the_paused_days() -> None:
    """Due Thu 12, two days paused: effective due Mon 16."""
    assert effective_due_date(date(2026, 3, 12), ONE_SUPPLEMENT, CALENDAR, vn(20)) == date(
        2026, 3, 16
    )


def test_supplement_wait_time_is_clock_time_up_to_until() -> None:
    """48 h for the whole stretch; cut at ``until`` while it lasts; nothing after it counts."""
    assert supplement_wait_time(ONE_SUPPLEMENT, vn(20)) == timedelta(hours=48)
    assert supplement_wait_time(ONE_SUPPLEMENT, vn(11, 10)) == timedelta(hours=24)
    assert supplement_wait_time(ONE_SUPPLEMENT, vn(10, 9)) == timedelta()


# --- judge -------------------------------------------------------------------------------------


def test_without_due_date_there_is_no_verdict() -> None:
    """A dossier without a due date is neither on time, late, open nor overdue."""
    assert judge(None, ONE_SUPPLEMENT, CALENDAR, vn(20)) is None


@pytest.mark.parametrize(
    ("due_on", "verdict"),
    [
        pytest.param(date(2026, 3, 13), Punctuality.ON_TIME, id="finished-on-the-due-date"),
        pytest.param(date(2026, 3, 11), Punctuality.ON_TIME, id="due-moved-by-the-wait"),
        pytest.param(date(2026, 3, 10), Punctuality.LATE, id="late-even-with-the-wait"),
    ],
)
def test_a_finished_dossier_is_judged_against_its_effective_due_date(
    due_on: date, verdict: Punctuality
) -> None:
    """Finished Fri 13 with 2 days paused: due Wed 11 → effective Fri 13, on time; due Tue 10
    → effective Thu 12, late."""
    assert judge(due_on, ONE_SUPPLEMENT, CALENDAR, vn(20)) is verdict


def test_two_supplement_requests_are_late_even_when_early() -> None:
    """More than one supplement request makes the dossier late, whatever its dates."""
    points = history(
        (ACCEPTED, vn(9)),
        (SUPPLEMENT, vn(9, 10)),
        (PROCESSING, vn(9, 11)),
        (SUPPLEMENT, vn(9, 14)),
        (PROCESSING, vn(9, 15)),
        (PROCESSED, vn(9, 16)),
    )
    assert judge(date(2026, 3, 20), points, CALENDAR, vn(20)) is Punctuality.LATE


def test_what_happens_after_the_finish_does_not_change_the_verdict() -> None:
    """A supplement request after the dossier finished is not one of its requests."""
    points = history(
        (ACCEPTED, vn(9)),
        (SUPPLEMENT, vn(9, 10)),
        (PROCESSING, vn(9, 11)),
        (PROCESSED, vn(10)),
        (SUPPLEMENT, vn(11)),
        (RETURNED, vn(12)),
    )
    assert judge(date(2026, 3, 10), points, CALENDAR, vn(20)) is Punctuality.ON_TIME


def test_an_open_dossier_is_overdue_the_day_after_its_due_date() -> None:
    """Due Thu 12: open on Thu 12, overdue on Fri 13."""
    points = history((ACCEPTED, vn(9)), (PROCESSING, vn(9, 10)))
    assert judge(date(2026, 3, 12), points, CALENDAR, vn(12, 16)) is Punctuality.OPEN
    assert judge(date(2026, 3, 12), points, CALENDAR, vn(13, 8)) is Punctuality.OVERDUE


def test_a_dossier_waiting_for_a_supplement_has_its_clock_stopped() -> None:
    """Asked Wed 11, due Thu 12, still waiting Fri 20: not overdue."""
    points = history((ACCEPTED, vn(9)), (SUPPLEMENT, vn(11)))
    assert judge(date(2026, 3, 12), points, CALENDAR, vn(20)) is Punctuality.OPEN


# --- processing time ---------------------------------------------------------------------------


def test_processing_time_excludes_the_wait() -> None:
    """Mon 9 09:00 → Fri 13 15:00 is 102 h; less the 48 h wait, 54 h."""
    assert processing_time(vn(9), ONE_SUPPLEMENT) == timedelta(hours=54)


def test_an_open_dossier_has_no_processing_time() -> None:
    """No finish, no processing time, in hours or in working days."""
    points = history((ACCEPTED, vn(9)))
    assert processing_time(vn(9), points) is None
    assert processing_working_days(vn(9), points, CALENDAR) is None


def test_processing_time_is_never_negative() -> None:
    """A finish stamped before the receipt (a partner's clock) counts as no time."""
    points = history((PROCESSED, vn(9, 8)))
    assert processing_time(vn(9), points) == timedelta()


def test_processing_working_days_excludes_the_paused_days() -> None:
    """Mon 9 → Fri 13 is 4 working days; less Wed 11 and Thu 12 paused, 2."""
    assert processing_working_days(vn(9), ONE_SUPPLEMENT, CALENDAR) == 2


def test_processing_working_days_count_like_the_due_date() -> None:
    """Finished on the day of receipt: 0; on the due date with N = 3 and no supplement: 3."""
    same_day = history((ACCEPTED, vn(9)), (PROCESSED, vn(9, 16)))
    on_due_date = history((ACCEPTED, vn(9)), (PROCESSED, vn(12, 16)))
    assert CALENDAR.due_date(vn(9), 3) == date(2026, 3, 12)
    assert processing_working_days(vn(9), same_day, CALENDAR) == 0
    assert processing_working_days(vn(9), on_due_date, CALENDAR) == 3


def test_a_dossier_received_on_a_day_off_counts_from_the_next_working_day() -> None:
    """Received Sat 14, finished Tue 17: counted from Mon 16, 1 working day."""
    points = history((ACCEPTED, vn(14, 20)), (PROCESSED, vn(17)))
    assert processing_working_days(vn(14, 20), points, CALENDAR) == 1
