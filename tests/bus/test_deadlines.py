"""Deadline alerts decided from the store's rows, a calendar and the time (no store, no broker).

November 2026: Monday 16 to Friday 20 are working days, 21–22 a weekend, Tuesday 24 a public
holiday (Vietnamese Culture Day, a day off from 2026).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import orjson
import pytest

from bus import events
from bus.calendar import WorkingCalendar
from bus.deadlines import decide_alert, effective_due_on
from bus.settings import Settings
from bus.sla import StatusPoint
from bus.store.deadlines import DOSSIER_SCOPE, DossierFacts, DueItem, step_of_scope, step_scope
from contracts import (
    DEADLINE_ALERT_DATASCHEMA,
    EVENT_DOSSIER_AT_RISK,
    EVENT_DOSSIER_OVERDUE,
    VN_TZ,
    DeadlineAlert,
    DossierStatus,
)

CODE = "000.00.10.H12-261116-0001"
RECEIVING = "000.00.10.H12"
HANDLING = "000.00.20.H12"
RESIDENCE = "000.00.00.G05"
GRACE = timedelta(minutes=15)
CALENDAR = WorkingCalendar()


def local(day: int, hour: int = 10, minute: int = 0) -> datetime:
    """An instant of November 2026, local time."""
    return datetime(2026, 11, day, hour, minute, tzinfo=VN_TZ)


def dossier(
    due: int,
    *,
    status: DossierStatus = DossierStatus.PROCESSING,
    received: datetime | None = None,
    history: tuple[StatusPoint, ...] = (),
    raised: frozenset[str] = frozenset(),
) -> DueItem:
    """A dossier due on ``due`` November, received Monday 16 unless told."""
    return DueItem(
        dossier=_facts(status),
        scope=DOSSIER_SCOPE,
        due_on=date(2026, 11, due),
        opened_at=received or local(16, 9),
        raised=raised,
        history=history,
    )


def step(
    due: int, *, requested: datetime, status: DossierStatus = DossierStatus.PROCESSING
) -> DueItem:
    """The residence step of the dossier, requested at ``requested``, due on ``due``."""
    return DueItem(
        dossier=_facts(status),
        scope=step_scope("permanent_residence"),
        due_on=date(2026, 11, due),
        opened_at=requested,
        connector="residence",
    )


def _facts(status: DossierStatus) -> DossierFacts:
    return DossierFacts(
        code=CODE,
        status=status,
        sequence=3,
        receiving_agency=RECEIVING,
        handling_agency=HANDLING,
        accepted_event_id="accepted-1",
    )


def decide(item: DueItem, now: datetime, *, agency: str | None = None) -> DeadlineAlert | None:
    """The alert ``item`` needs at ``now``, with the tests' calendar and grace period."""
    return decide_alert(item, calendar=CALENDAR, now=now, grace=GRACE, agency=agency)


def test_open_on_its_due_date_is_at_risk() -> None:
    """A dossier still open on the morning of its due date is at risk, not late."""
    alert = decide(dossier(19), local(19, 10))
    assert alert is not None
    assert (alert.kind, alert.scope, alert.due_on) == ("at_risk", "dossier", date(2026, 11, 19))
    assert alert.working_days_late == 0
    assert alert.agency == HANDLING
    assert alert.status is DossierStatus.PROCESSING
    assert alert.detected_at == local(19, 10)


def test_before_its_due_date_nothing() -> None:
    """The day before the due date is not a risk yet."""
    assert decide(dossier(19), local(18, 23, 59)) is None


def test_at_risk_waits_for_the_grace_period() -> None:
    """Received a moment ago on its due date: not flagged until the grace period has passed."""
    item = dossier(19, received=local(19, 10))
    assert decide(item, local(19, 10, 14)) is None
    alert = decide(item, local(19, 10, 15))
    assert alert is not None and alert.kind == "at_risk"


def test_past_its_due_date_is_overdue_with_working_days_late() -> None:
    """Open the day after its due date: overdue, one working day late."""
    alert = decide(dossier(18), local(19, 8))
    assert alert is not None
    assert (alert.kind, alert.due_on, alert.working_days_late) == (
        "overdue",
        date(2026, 11, 18),
        1,
    )


def test_first_seen_past_due_gets_only_overdue() -> None:
    """An item never seen on its due date is overdue, and never at risk after the fact."""
    alert = decide(dossier(16), local(20))
    assert alert is not None
    assert (alert.kind, alert.working_days_late) == ("overdue", 4)


def test_overdue_needs_no_grace_period() -> None:
    """The grace period only holds back at_risk: a missed due date is missed."""
    item = dossier(18, received=local(18, 23, 58))
    alert = decide(item, local(19, 0, 1))
    assert alert is not None and alert.kind == "overdue"


def test_the_local_day_decides_not_utc() -> None:
    """17:30 UTC on the 19th is already the 20th in Vietnam: a dossier due the 19th is late."""
    alert = decide(dossier(19), datetime(2026, 11, 19, 17, 30, tzinfo=UTC))
    assert alert is not None and alert.kind == "overdue"
    assert decide(dossier(19), datetime(2026, 11, 19, 16, 30, tzinfo=UTC)) is not None


def test_raised_alerts_are_not_decided_again() -> None:
    """An at_risk already raised is not raised again; an overdue raised ends the item's alerts."""
    assert decide(dossier(19, raised=frozenset({"at_risk"})), local(19, 16)) is None
    later = decide(dossier(19, raised=frozenset({"at_risk"})), local(20))
    assert later is not None and later.kind == "overdue"
    assert decide(dossier(18, raised=frozenset({"at_risk", "overdue"})), local(20)) is None


def test_waiting_for_the_citizen_raises_nothing() -> None:
    """A dossier now in status 5 is paused: no alert, however late its stored due date."""
    waiting = dossier(
        16,
        status=DossierStatus.SUPPLEMENT_REQUESTED,
        history=(
            StatusPoint(DossierStatus.PROCESSING, local(16, 9)),
            StatusPoint(DossierStatus.SUPPLEMENT_REQUESTED, local(16, 11)),
        ),
    )
    assert decide(waiting, local(16, 16)) is None
    assert decide(waiting, local(27)) is None


def test_supplement_time_moves_the_due_date() -> None:
    """Two working days waiting for a supplement (Mon → Wed) move a Wednesday due date to Friday."""
    item = dossier(
        18,
        history=(
            StatusPoint(DossierStatus.PROCESSING, local(16, 9)),
            StatusPoint(DossierStatus.SUPPLEMENT_REQUESTED, local(16, 10)),
            StatusPoint(DossierStatus.PROCESSING, local(18, 9)),
        ),
    )
    assert effective_due_on(item, CALENDAR, local(19)) == date(2026, 11, 20)
    assert decide(item, local(19)) is None
    at_risk = decide(item, local(20))
    assert at_risk is not None and (at_risk.kind, at_risk.due_on) == ("at_risk", date(2026, 11, 20))


def test_history_after_now_does_not_count() -> None:
    """A supplement wait recorded with a later time than the scan's is not counted yet."""
    item = dossier(
        18,
        history=(
            StatusPoint(DossierStatus.SUPPLEMENT_REQUESTED, local(19, 9)),
            StatusPoint(DossierStatus.PROCESSING, local(23, 9)),
        ),
    )
    assert effective_due_on(item, CALENDAR, local(17)) == date(2026, 11, 18)


def test_friday_due_date_is_overdue_on_saturday_with_no_working_day_lost_yet() -> None:
    """Past a Friday due date the dossier is late on Saturday, 0 working days; 1 on Monday."""
    saturday = decide(dossier(20), local(21))
    monday = decide(dossier(20), local(23))
    assert saturday is not None and (saturday.kind, saturday.working_days_late) == ("overdue", 0)
    assert monday is not None and monday.working_days_late == 1


def test_nothing_is_at_risk_on_the_weekend_before_a_monday_due_date() -> None:
    """On the weekend a Monday due date is still ahead."""
    assert decide(dossier(23), local(22, 16)) is None


def test_a_holiday_is_not_a_working_day_late() -> None:
    """Due Monday 23, still open Wednesday 25: Tuesday 24 is a holiday, so 1 working day late."""
    alert = decide(dossier(23), local(25))
    assert alert is not None and alert.working_days_late == 1


def test_supplement_waits_skip_the_holiday() -> None:
    """A supplement asked on Monday 23 and given on Wednesday 25 pauses one working day."""
    item = dossier(
        23,
        history=(
            StatusPoint(DossierStatus.SUPPLEMENT_REQUESTED, local(23, 9)),
            StatusPoint(DossierStatus.PROCESSING, local(25, 9)),
        ),
    )
    assert effective_due_on(item, CALENDAR, local(25)) == date(2026, 11, 25)
    at_risk = decide(item, local(25))
    assert at_risk is not None and at_risk.kind == "at_risk"


def test_a_step_open_on_its_due_date_is_at_risk_after_the_grace_period() -> None:
    """A step asked two minutes ago is not flagged; after the grace period it is, agency named."""
    item = step(19, requested=local(19, 9, 58))
    assert decide(item, local(19, 10), agency=RESIDENCE) is None
    alert = decide(item, local(19, 10, 13), agency=RESIDENCE)
    assert alert is not None
    assert (alert.kind, alert.scope, alert.step, alert.connector, alert.agency) == (
        "at_risk",
        "step",
        "permanent_residence",
        "residence",
        RESIDENCE,
    )
    assert alert.note is not None and "residence" in alert.note


def test_a_late_step_is_overdue_even_while_its_dossier_waits_for_a_supplement() -> None:
    """A requested step runs on its own due date (the engine moves it), whatever the dossier."""
    item = step(18, requested=local(16, 9), status=DossierStatus.SUPPLEMENT_REQUESTED)
    alert = decide(item, local(19))
    assert alert is not None
    assert (alert.kind, alert.scope, alert.working_days_late) == ("overdue", "step", 1)
    assert alert.status is DossierStatus.SUPPLEMENT_REQUESTED


def test_a_step_due_date_is_taken_as_stored() -> None:
    """The dossier's supplement history does not move a step's due date a second time."""
    item = DueItem(
        dossier=_facts(DossierStatus.PROCESSING),
        scope=step_scope("permanent_residence"),
        due_on=date(2026, 11, 18),
        opened_at=local(16, 9),
        history=(
            StatusPoint(DossierStatus.SUPPLEMENT_REQUESTED, local(16, 10)),
            StatusPoint(DossierStatus.PROCESSING, local(18, 9)),
        ),
        connector="residence",
    )
    assert effective_due_on(item, CALENDAR, local(19)) == date(2026, 11, 18)


@pytest.mark.parametrize(
    ("scope", "step_id"),
    [("dossier", None), ("step:permanent_residence", "permanent_residence")],
)
def test_scopes_name_their_step(scope: str, step_id: str | None) -> None:
    """``step:<id>`` names a step; ``dossier`` names none."""
    assert step_of_scope(scope) == step_id
    if step_id is not None:
        assert step_scope(step_id) == scope


@pytest.mark.parametrize(
    ("kind", "event_type"), [("at_risk", EVENT_DOSSIER_AT_RISK), ("overdue", EVENT_DOSSIER_OVERDUE)]
)
def test_an_alert_event_is_a_cloudevent_about_the_dossier(kind: str, event_type: str) -> None:
    """The outbox row carries the alert as a CloudEvent of its dossier, routed by kind, agency."""
    alert = decide(dossier(19 if kind == "at_risk" else 18), local(19))
    assert alert is not None and alert.kind == kind
    row = events.alert_outbox_row(
        alert,
        event_id="alert-1",
        sequence=3,
        receiving_agency=RECEIVING,
        correlation_id="accepted-1",
        exchange="bus.events",
    )
    assert row["routing_key"] == f"dossier.{kind}.{RECEIVING}"
    assert row["mandatory"] is False
    assert (row["event_id"], row["dossier_code"], row["exchange"]) == (
        "alert-1",
        CODE,
        "bus.events",
    )
    event = events.decode(row["payload"])
    assert (event.type, event.dataschema, event.subject) == (
        event_type,
        DEADLINE_ALERT_DATASCHEMA,
        CODE,
    )
    assert (event.dossierseq, event.correlationid, event.source) == (3, "accepted-1", RECEIVING)
    assert event.causationid is None and event.traceparent is not None
    assert DeadlineAlert.model_validate(event.data) == alert
    assert orjson.loads(row["payload"])["data"]["kind"] == kind


def test_the_scan_interval_and_grace_period_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """BUS_DEADLINE_SCAN_SECONDS and BUS_AT_RISK_GRACE_SECONDS configure the scheduler."""
    defaults = Settings.model_fields
    assert defaults["deadline_scan_seconds"].default == 60.0
    assert defaults["at_risk_grace_seconds"].default == 900.0
    monkeypatch.setenv("BUS_DEADLINE_SCAN_SECONDS", "5")
    monkeypatch.setenv("BUS_AT_RISK_GRACE_SECONDS", "0")
    configured = Settings()
    assert (configured.deadline_scan_seconds, configured.at_risk_grace_seconds) == (5.0, 0.0)
