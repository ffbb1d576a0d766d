"""The 766 statistics on a hand-computed fixture: 18 dossiers, Dec 2026 – Jan 2027.

Every expected number below was worked out by hand from the comments on each dossier, never by
running the code under test. The period is Mon 14 Dec 2026 – Fri 15 Jan 2027 (local days, both
included) and the report is made on Wed 20 Jan 2027 at 10:00 local time.

The calendar is the ``holidays`` package's, nothing configured. Days off in those weeks, besides
Saturdays and Sundays: Fri 1 Jan 2027 (New Year). 25 December is a working day in Vietnam.
Processing times N: procedure 1.001193 (P1) 3 working days, 1.004227 (P2) 5, 1.000894 (P3) 10;
the due date is the N-th working day after the day of receipt (DOMAIN.md), stored like the bus
stores it, at 23:59:59 local time on that day.

The integration test (``tests/integration/test_stats_api.py``) stores these same dossiers and
expects the same numbers from ``GET /v1/stats``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import NamedTuple

import pytest

from bus.calendar import WorkingCalendar, end_of_day
from bus.sla import Punctuality, StatusPoint, judge
from bus.stats import (
    UNKNOWN_COMMUNE,
    DossierFacts,
    Grouping,
    GroupStats,
    Period,
    StatsReport,
    compute_stats,
)
from contracts import VN_TZ, Channel, DossierStatus

CALENDAR = WorkingCalendar()
PERIOD = Period(date(2026, 12, 14), date(2027, 1, 15))

AGENCY_A = "000.00.10.H12"
AGENCY_B = "000.00.11.H12"
P1, P2, P3 = "1.001193", "1.004227", "1.000894"  # N = 3, 5 and 10 working days

NEW = DossierStatus.NEW
ACCEPTED = DossierStatus.ACCEPTED
PROCESSING = DossierStatus.PROCESSING
SUPPLEMENT = DossierStatus.SUPPLEMENT_REQUESTED
WITHDRAWN = DossierStatus.WITHDRAWN
STOPPED = DossierStatus.STOPPED
PROCESSED = DossierStatus.PROCESSED
RETURNED = DossierStatus.RESULT_RETURNED
IN_PERSON, ONLINE, POSTAL = Channel.IN_PERSON, Channel.ONLINE, Channel.POSTAL


def vn(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """An instant in Asia/Ho_Chi_Minh."""
    return datetime(year, month, day, hour, minute, tzinfo=VN_TZ)


NOW = vn(2027, 1, 20, 10)
"""Wed 20 Jan 2027, 10:00: when the report is made."""


@dataclass(frozen=True)
class Case:
    """One dossier of the fixture: where it belongs, its due date and its status history.

    The history starts at receipt, as the bus records it at ingest; the last status is the
    dossier's current one.
    """

    name: str
    agency: str
    commune: str | None
    procedure: str
    channel: Channel
    due_on: date | None
    history: tuple[tuple[DossierStatus, datetime], ...]

    @property
    def received_at(self) -> datetime:
        return self.history[0][1]

    @property
    def code(self) -> str:
        return f"{self.agency}-{self.received_at:%y%m%d}-{int(self.name[1:]):04d}"

    @property
    def due_at(self) -> datetime | None:
        return end_of_day(self.due_on) if self.due_on is not None else None

    @property
    def status(self) -> DossierStatus:
        return self.history[-1][0]

    @property
    def points(self) -> tuple[StatusPoint, ...]:
        return tuple(StatusPoint(status, at) for status, at in self.history)

    def facts(self) -> DossierFacts:
        """The dossier as the store hands it to the statistics."""
        return DossierFacts(
            code=self.code,
            procedure_code=self.procedure,
            handling_agency=self.agency,
            commune_code=self.commune,
            channel=int(self.channel),
            status=self.status,
            received_at=self.received_at,
            due_at=self.due_at,
            history=self.points,
        )


# Laid out by hand, one status a line (fmt: off): the formatter would give each argument a line.
# fmt: off
FIXTURE: tuple[Case, ...] = (
    # D01 finished on time. Received Mon 14 Dec 09:00, P1: due Thu 17 Dec. Processed Wed 16 Dec
    # 15:00 (returned Thu 17: the first finish counts). 54 h; working days Mon 14 → Wed 16 = 2.
    Case("D01", AGENCY_A, "00001", P1, IN_PERSON, date(2026, 12, 17), (
        (ACCEPTED, vn(2026, 12, 14, 9)),
        (PROCESSING, vn(2026, 12, 14, 10)),
        (PROCESSED, vn(2026, 12, 16, 15)),
        (RETURNED, vn(2026, 12, 17, 9)),
    )),
    # D02 finished late. Received Tue 15 Dec 10:00, P1: due Fri 18 Dec. Processed Mon 21 Dec
    # 10:00 > Fri 18. 144 h (6 days); working days Tue 15 → Mon 21 = Wed, Thu, Fri, Mon = 4.
    Case("D02", AGENCY_A, "00001", P1, ONLINE, date(2026, 12, 18), (
        (ACCEPTED, vn(2026, 12, 15, 10)),
        (PROCESSING, vn(2026, 12, 15, 11)),
        (PROCESSED, vn(2026, 12, 21, 10)),
    )),
    # D03 on time only thanks to the supplement exclusion. Received Wed 16 Dec 09:00, P2: due
    # Wed 23 Dec. Supplement asked Fri 18 Dec 09:00, supplied Tue 22 Dec 09:00: the clock
    # stood still Mon 21 and Tue 22 (2 working days), so the effective due date is Fri 25 Dec.
    # Processed Fri 25 Dec 14:00: on time (late against the bare Wed 23). 221 h − 96 h waiting
    # = 125 h; working days Wed 16 → Fri 25 = 7, less 2 paused = 5.
    Case("D03", AGENCY_B, "00004", P2, IN_PERSON, date(2026, 12, 23), (
        (ACCEPTED, vn(2026, 12, 16, 9)),
        (PROCESSING, vn(2026, 12, 16, 10)),
        (SUPPLEMENT, vn(2026, 12, 18, 9)),
        (PROCESSING, vn(2026, 12, 22, 9)),
        (PROCESSED, vn(2026, 12, 25, 14)),
    )),
    # D04 late although early: two supplement requests. Received Thu 17 Dec 09:00, P2: due Thu
    # 24 Dec; processed Mon 21 Dec 16:00. 103 h − waits (Thu 14:00 → Fri 09:00 = 19 h, Fri
    # 15:00 → Mon 09:00 = 66 h) = 18 h; working days Thu 17 → Mon 21 = 2, less 1 + 1 paused = 0.
    Case("D04", AGENCY_B, "00004", P2, POSTAL, date(2026, 12, 24), (
        (ACCEPTED, vn(2026, 12, 17, 9)),
        (SUPPLEMENT, vn(2026, 12, 17, 14)),
        (PROCESSING, vn(2026, 12, 18, 9)),
        (SUPPLEMENT, vn(2026, 12, 18, 15)),
        (PROCESSING, vn(2026, 12, 21, 9)),
        (PROCESSED, vn(2026, 12, 21, 16)),
    )),
    # D05 stopped (8) counts as finished. Received Mon 21 Dec 09:00, P3: due Tue 5 Jan (the
    # count skips Fri 1 Jan). Stopped Wed 23 Dec 11:00: on time. 50 h; Mon 21 → Wed 23 = 2.
    Case("D05", AGENCY_A, "00007", P3, ONLINE, date(2027, 1, 5), (
        (ACCEPTED, vn(2026, 12, 21, 9)),
        (PROCESSING, vn(2026, 12, 21, 10)),
        (STOPPED, vn(2026, 12, 23, 11)),
    )),
    # D06 on time across New Year. Received Wed 30 Dec 09:00, P1: Thu 31, (Fri 1 Jan off),
    # Mon 4, Tue 5: due Tue 5 Jan. Processed Tue 5 Jan 10:00: on time (late if 1 Jan were
    # worked). 145 h; working days Wed 30 → Tue 5 = Thu 31, Mon 4, Tue 5 = 3.
    Case("D06", AGENCY_A, "00001", P1, IN_PERSON, date(2027, 1, 5), (
        (ACCEPTED, vn(2026, 12, 30, 9)),
        (PROCESSING, vn(2026, 12, 30, 10)),
        (PROCESSED, vn(2027, 1, 5, 10)),
        (RETURNED, vn(2027, 1, 5, 16)),
    )),
    # D07 finished after the period. Received Mon 28 Dec 09:00, P3: due Tue 12 Jan; processed
    # Mon 18 Jan: late, but not in this period. Counts as received only.
    Case("D07", AGENCY_B, "00007", P3, ONLINE, date(2027, 1, 12), (
        (ACCEPTED, vn(2026, 12, 28, 9)),
        (PROCESSING, vn(2026, 12, 28, 10)),
        (PROCESSED, vn(2027, 1, 18, 9)),
    )),
    # D08 received before the period, finished in it. Received Thu 10 Dec 09:00, P2: due Thu
    # 17 Dec; processed Tue 15 Dec 09:00: on time. Not received in the period. 120 h; working
    # days Thu 10 → Tue 15 = Fri 11, Mon 14, Tue 15 = 3.
    Case("D08", AGENCY_A, "00004", P2, POSTAL, date(2026, 12, 17), (
        (ACCEPTED, vn(2026, 12, 10, 9)),
        (PROCESSING, vn(2026, 12, 10, 10)),
        (PROCESSED, vn(2026, 12, 15, 9)),
    )),
    # D09 finished before the period; its result was returned (10) on Mon 14 Dec, inside it.
    # The first finish (Wed 9 Dec) is what counts: it counts for nothing here.
    Case("D09", AGENCY_B, "00001", P1, IN_PERSON, date(2026, 12, 10), (
        (ACCEPTED, vn(2026, 12, 7, 9)),
        (PROCESSING, vn(2026, 12, 7, 10)),
        (PROCESSED, vn(2026, 12, 9, 15)),
        (RETURNED, vn(2026, 12, 14, 9)),
    )),
    # D10 open, not due. Received Mon 11 Jan 09:00, P3: due Mon 25 Jan. Received only.
    Case("D10", AGENCY_A, "00007", P3, IN_PERSON, date(2027, 1, 25), (
        (ACCEPTED, vn(2027, 1, 11, 9)),
        (PROCESSING, vn(2027, 1, 11, 10)),
    )),
    # D11 overdue now. Received Mon 4 Jan 09:00, P2: due Mon 11 Jan; still processing on Wed
    # 20 Jan. Received and overdue.
    Case("D11", AGENCY_B, "00001", P2, ONLINE, date(2027, 1, 11), (
        (ACCEPTED, vn(2027, 1, 4, 9)),
        (PROCESSING, vn(2027, 1, 4, 10)),
    )),
    # D12 waiting for a supplement: clock stopped, not overdue. Received Thu 7 Jan 09:00, P1:
    # due Tue 12 Jan. Supplement asked Mon 11 Jan, still awaited: Tue 12 → Wed 20 Jan pauses
    # 7 working days, so the effective due date is Thu 21 Jan (overdue without the pause).
    Case("D12", AGENCY_B, "00004", P1, POSTAL, date(2027, 1, 12), (
        (ACCEPTED, vn(2027, 1, 7, 9)),
        (SUPPLEMENT, vn(2027, 1, 11, 14)),
    )),
    # D13 received before the period, overdue now: "overdue now" is not limited to the
    # period. Received Tue 1 Dec 09:00, P2: due Tue 8 Dec; still processing.
    Case("D13", AGENCY_A, "00001", P2, IN_PERSON, date(2026, 12, 8), (
        (ACCEPTED, vn(2026, 12, 1, 9)),
        (PROCESSING, vn(2026, 12, 1, 10)),
    )),
    # D14 no due date, no commune. Received Tue 22 Dec 09:00, processed Thu 24 Dec 09:00:
    # finished, neither on time nor late; 48 h, 2 working days. Commune group "unknown".
    Case("D14", AGENCY_A, None, P3, ONLINE, None, (
        (ACCEPTED, vn(2026, 12, 22, 9)),
        (PROCESSED, vn(2026, 12, 24, 9)),
    )),
    # D15 withdrawn (7) on Fri 18 Dec: past its due date (Tue 22 Dec) but closed, so not
    # overdue. Received Tue 15 Dec 09:00: received only.
    Case("D15", AGENCY_B, "00007", P2, IN_PERSON, date(2026, 12, 22), (
        (ACCEPTED, vn(2026, 12, 15, 9)),
        (WITHDRAWN, vn(2026, 12, 18, 10)),
    )),
    # D16 received online on Saturday 19 Dec 20:00: it counts from Mon 21, P1: due Thu 24 Dec.
    # Processed Wed 23 Dec 16:00: on time. 92 h; working days Mon 21 → Wed 23 = 2.
    Case("D16", AGENCY_B, "00001", P1, ONLINE, date(2026, 12, 24), (
        (NEW, vn(2026, 12, 19, 20)),
        (ACCEPTED, vn(2026, 12, 21, 8)),
        (PROCESSING, vn(2026, 12, 21, 9)),
        (PROCESSED, vn(2026, 12, 23, 16)),
    )),
    # D17 received Fri 15 Jan 23:30 local (16:30 UTC): the period's last day. P1: due Wed 20
    # Jan, which is today: not overdue yet. Received only.
    Case("D17", AGENCY_A, "00004", P1, ONLINE, date(2027, 1, 20), (
        (NEW, vn(2027, 1, 15, 23, 30)),
    )),
    # D18 received Sat 16 Jan 00:30 local, i.e. Fri 15 Jan 17:30 UTC: after the period in
    # Vietnam. P3: due Mon 1 Feb. Counts for nothing.
    Case("D18", AGENCY_B, "00007", P3, ONLINE, date(2027, 2, 1), (
        (NEW, vn(2027, 1, 16, 0, 30)),
    )),
)
# fmt: on
CASES = {case.name: case for case in FIXTURE}


class Row(NamedTuple):
    """One expected row: counts, then the two averages (None when nothing finished)."""

    received: int
    in_person: int
    online: int
    postal: int
    finished: int
    on_time: int
    late: int
    overdue_now: int
    hours: float | None
    working_days: float | None


# Received in the period: D01–D07, D10, D11, D12, D14, D15, D16, D17 (14).
# Finished in it: D01 D02 D03 D04 D05 D06 D08 D14 D16 (9): on time D01 D03 D05 D06 D08 D16,
# late D02 D04, D14 unjudged. Overdue now: D11, D13.
TOTAL = Row(14, 5, 7, 2, 9, 6, 2, 2, 796 / 9, 23 / 9)

EXPECTED: dict[Grouping, dict[str, Row]] = {
    Grouping.AGENCY: {
        # A: received D01 D06 D10 in person, D02 D05 D14 D17 online; finished D01 D02 D05
        # D06 D08 D14; late D02; overdue D13; hours 54+144+50+145+120+48, days 2+4+2+3+3+2.
        AGENCY_A: Row(7, 3, 4, 0, 6, 4, 1, 1, 561 / 6, 16 / 6),
        # B: received D03 D15 in person, D07 D11 D16 online, D04 D12 postal; finished D03 D04
        # D16; late D04; overdue D11; hours 125+18+92, days 5+0+2.
        AGENCY_B: Row(7, 2, 3, 2, 3, 2, 1, 1, 235 / 3, 7 / 3),
    },
    Grouping.COMMUNE: {
        # D01 D02 D06 D11 D16 received; D01 D02 D06 D16 finished (D02 late); D11 D13 overdue.
        "00001": Row(5, 2, 3, 0, 4, 3, 1, 2, (54 + 144 + 145 + 92) / 4, (2 + 4 + 3 + 2) / 4),
        # D03 D04 D12 D17 received; D03 D04 D08 finished (D04 late).
        "00004": Row(4, 1, 1, 2, 3, 2, 1, 0, (125 + 18 + 120) / 3, (5 + 0 + 3) / 3),
        # D05 D07 D10 D15 received; D05 finished (stopped, on time).
        "00007": Row(4, 2, 2, 0, 1, 1, 0, 0, 50, 2),
        # D14: received and finished, without a due date.
        UNKNOWN_COMMUNE: Row(1, 0, 1, 0, 1, 0, 0, 0, 48, 2),
    },
    Grouping.PROCEDURE: {
        # D01 D02 D06 D12 D16 D17 received; D01 D02 D06 D16 finished (D02 late).
        P1: Row(6, 2, 3, 1, 4, 3, 1, 0, (54 + 144 + 145 + 92) / 4, (2 + 4 + 3 + 2) / 4),
        # D03 D04 D11 D15 received; D03 D04 D08 finished (D04 late); D11 D13 overdue.
        P2: Row(4, 2, 1, 1, 3, 2, 1, 2, (125 + 18 + 120) / 3, (5 + 0 + 3) / 3),
        # D05 D07 D10 D14 received; D05 (on time) and D14 (no due date) finished.
        P3: Row(4, 1, 3, 0, 2, 1, 0, 0, (50 + 48) / 2, (2 + 2) / 2),
    },
}

# Agency B only, per commune (the API's ``agency`` filter).
EXPECTED_AGENCY_B_BY_COMMUNE: dict[str, Row] = {
    # D11 D16 received online; D16 finished on time; D11 overdue. D09 counts for nothing.
    "00001": Row(2, 0, 2, 0, 1, 1, 0, 1, 92, 2),
    # D03 in person, D04 D12 postal; D03 on time, D04 late.
    "00004": Row(3, 1, 0, 2, 2, 1, 1, 0, (125 + 18) / 2, (5 + 0) / 2),
    # D07 online, D15 in person; nothing finished in the period. D18 counts for nothing.
    "00007": Row(2, 1, 1, 0, 0, 0, 0, 0, None, None),
}


def as_row(stats: GroupStats) -> Row:
    """A computed group in the shape of the expectations."""
    return Row(
        stats.received,
        stats.received_in_person,
        stats.received_online,
        stats.received_postal,
        stats.finished,
        stats.on_time,
        stats.late,
        stats.overdue_now,
        stats.average_processing_hours,
        stats.average_processing_working_days,
    )


def approx_row(row: Row) -> Row:
    """An expected row whose averages compare approximately (thirds do not end)."""
    return row._replace(
        hours=None if row.hours is None else pytest.approx(row.hours),
        working_days=None if row.working_days is None else pytest.approx(row.working_days),
    )


def rate(row: Row) -> float | None:
    """The on-time rate an expected row implies."""
    judged = row.on_time + row.late
    return row.on_time / judged if judged else None


def report(grouping: Grouping, cases: tuple[Case, ...] = FIXTURE) -> StatsReport:
    """The statistics of ``cases`` over the fixture's period, as of NOW."""
    return compute_stats(
        (case.facts() for case in cases),
        period=PERIOD,
        grouping=grouping,
        calendar=CALENDAR,
        now=NOW,
    )


# --- the hand-computed fixture -----------------------------------------------------------------


@pytest.mark.parametrize("grouping", list(Grouping))
def test_each_group_matches_the_hand_computed_numbers(grouping: Grouping) -> None:
    """Every row of the report, per agency, commune and procedure, is the hand-computed one."""
    computed = report(grouping)
    assert [g.key for g in computed.groups] == sorted(EXPECTED[grouping])
    assert {g.key: as_row(g) for g in computed.groups} == {
        key: approx_row(row) for key, row in EXPECTED[grouping].items()
    }


@pytest.mark.parametrize("grouping", list(Grouping))
def test_the_total_is_over_all_dossiers(grouping: Grouping) -> None:
    """The total row is the same whatever the grouping, and its averages are over all."""
    assert as_row(report(grouping).total) == approx_row(TOTAL)


@pytest.mark.parametrize("grouping", list(Grouping))
def test_on_time_rate_is_on_time_over_judged(grouping: Grouping) -> None:
    """The rate is on time / (on time + late), None for a group with nothing judged."""
    computed = report(grouping)
    rates = {g.key: g.on_time_rate for g in computed.groups}
    assert rates == pytest.approx({key: rate(row) for key, row in EXPECTED[grouping].items()})
    assert computed.total.on_time_rate == pytest.approx(6 / 8)


def test_commune_without_a_code_has_no_rate() -> None:
    """The 'unknown' commune finished one dossier without a due date: rate None, not 0."""
    unknown = next(g for g in report(Grouping.COMMUNE).groups if g.key == UNKNOWN_COMMUNE)
    assert unknown.finished == 1 and unknown.on_time_rate is None


def test_report_carries_its_period_grouping_and_moment() -> None:
    """The report says what it covers and when overdue dossiers were judged."""
    computed = report(Grouping.PROCEDURE)
    assert (computed.period, computed.grouping, computed.as_of) == (
        PERIOD,
        Grouping.PROCEDURE,
        NOW,
    )


def test_dossiers_that_count_for_nothing_add_no_row() -> None:
    """D09 (finished before the period) and D18 (received after it) make an empty report."""
    computed = report(Grouping.AGENCY, (CASES["D09"], CASES["D18"]))
    assert computed.groups == ()
    assert as_row(computed.total) == Row(0, 0, 0, 0, 0, 0, 0, 0, None, None)
    assert computed.total.on_time_rate is None


# --- the fixture really tests the rules: each case would count otherwise without them ---------


def test_d03_is_on_time_only_because_the_supplement_wait_is_excluded() -> None:
    """Without its supplement stretch, D03 would be late."""
    d03 = CASES["D03"]
    without_wait = [p for p in d03.points if p.status is not SUPPLEMENT]
    assert judge(d03.due_on, d03.points, CALENDAR, NOW) is Punctuality.ON_TIME
    assert judge(d03.due_on, without_wait, CALENDAR, NOW) is Punctuality.LATE


def test_d04_is_late_only_because_of_its_second_supplement_request() -> None:
    """D04 finished before its due date: one request fewer and it is on time."""
    d04 = CASES["D04"]
    one_request = [p for p in d04.points if p.changed_at != vn(2026, 12, 18, 15)]
    assert judge(d04.due_on, d04.points, CALENDAR, NOW) is Punctuality.LATE
    assert judge(d04.due_on, one_request, CALENDAR, NOW) is Punctuality.ON_TIME


def test_d06_is_on_time_only_because_new_year_is_a_holiday() -> None:
    """Were 1 Jan 2027 a working day, D06's due date would be Mon 4 Jan and it would be late."""
    d06 = CASES["D06"]
    works_new_year = WorkingCalendar(makeup_working_days=[date(2027, 1, 1)])
    assert CALENDAR.due_date(d06.received_at, 3) == d06.due_on
    assert works_new_year.due_date(d06.received_at, 3) == date(2027, 1, 4)
    assert judge(works_new_year.due_date(d06.received_at, 3), d06.points, CALENDAR, NOW) is (
        Punctuality.LATE
    )


def test_d12_is_not_overdue_only_because_its_clock_is_stopped() -> None:
    """D12 waits for a supplement: judged on its bare due date it would be overdue."""
    d12 = CASES["D12"]
    bare = [p for p in d12.points if p.status is not SUPPLEMENT]
    assert judge(d12.due_on, d12.points, CALENDAR, NOW) is Punctuality.OPEN
    assert judge(d12.due_on, bare, CALENDAR, NOW) is Punctuality.OVERDUE


def test_d15_withdrawn_is_past_due_but_not_overdue() -> None:
    """The rule alone calls withdrawn D15 overdue; the statistics know it is closed."""
    d15 = CASES["D15"]
    assert judge(d15.due_on, d15.points, CALENDAR, NOW) is Punctuality.OVERDUE
    assert report(Grouping.AGENCY, (d15,)).total.overdue_now == 0


def test_due_dates_of_the_fixture_follow_the_domain_rule() -> None:
    """Each stated due date is the calendar's, from receipt and the procedure's N."""
    working_days = {P1: 3, P2: 5, P3: 10}
    for case in FIXTURE:
        if case.due_on is not None:
            expected = CALENDAR.due_date(case.received_at, working_days[case.procedure])
            assert case.due_on == expected, case.name


# --- the period ------------------------------------------------------------------------------


def test_period_bounds_are_local_midnights() -> None:
    """An instant belongs to the period by its local date, not its UTC one."""
    assert CASES["D17"].received_at in PERIOD  # Fri 15 Jan 23:30 local
    assert CASES["D18"].received_at not in PERIOD  # Sat 16 Jan 00:30 local, Fri 15 Jan in UTC
    assert vn(2026, 12, 14, 0) in PERIOD
    assert vn(2026, 12, 14, 0) - timedelta(microseconds=1) not in PERIOD
    assert PERIOD.days == 33


def test_period_cannot_end_before_it_starts() -> None:
    """A period whose last day precedes its first is refused."""
    with pytest.raises(ValueError, match="before it starts"):
        Period(date(2027, 1, 2), date(2027, 1, 1))
