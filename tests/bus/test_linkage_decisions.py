"""The linkage rules on the shipped birth and death bundles, without a broker or a store."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from bus.calendar import WorkingCalendar
from bus.linkage import Decision, RunState, StepState, on_step_outcome, start_run
from contracts import VN_TZ, DossierStatus, LinkageBundle, StatusChange, load_linkage_bundles

CODE = "000.00.10.H12-261123-0001"
MONDAY = datetime(2026, 12, 7, 9, 0, tzinfo=VN_TZ)  # a week with no holiday in Vietnam
CIVIL_STATUS = "000.00.00.G12"


@pytest.fixture(scope="module")
def bundles() -> dict[str, LinkageBundle]:
    return {b.id: b for b in load_linkage_bundles()}


@pytest.fixture(scope="module")
def calendar() -> WorkingCalendar:
    return WorkingCalendar()


def answer(status: DossierStatus, *, hours: float = 1, **details: str) -> StatusChange:
    return StatusChange(
        dossier_code=CODE,
        status=status,
        changed_at=MONDAY + timedelta(hours=hours),
        agency=CIVIL_STATUS,
        **details,  # type: ignore[arg-type]
    )


def states(run: RunState) -> dict[str, StepState]:
    return {step_id: record.state for step_id, record in run.steps.items()}


def registered(bundle: LinkageBundle, calendar: WorkingCalendar) -> Decision:
    """A birth run whose civil-status step issued certificate KS/2026/000123."""
    started = start_run(bundle, CODE, MONDAY, calendar)
    done = answer(DossierStatus.PROCESSED, partner_reference="KS/2026/000123")
    return on_step_outcome(bundle, started.run, "birth_registration", done, calendar)


def test_a_birth_run_starts_with_civil_status_due_the_same_day(
    bundles: dict[str, LinkageBundle], calendar: WorkingCalendar
) -> None:
    decision = start_run(bundles["birth"], CODE, MONDAY, calendar)
    assert [r.step.id for r in decision.requests] == ["birth_registration"]
    assert decision.requests[0].due_on == date(2026, 12, 7)  # 0 working days, before 15:00
    assert decision.requests[0].form == {}
    assert decision.dossier_status is DossierStatus.PROCESSING
    assert states(decision.run)["permanent_residence"] is StepState.WAITING


def test_the_certificate_number_feeds_both_parallel_steps(
    bundles: dict[str, LinkageBundle], calendar: WorkingCalendar
) -> None:
    decision = registered(bundles["birth"], calendar)
    assert {r.step.id for r in decision.requests} == {
        "permanent_residence",
        "health_insurance_card",
    }
    for request in decision.requests:
        assert request.form == {"birth_certificate_number": "KS/2026/000123"}
        assert request.due_on == date(2026, 12, 9)  # Monday 10:00 + 2 working days
    assert decision.dossier_status is None  # still processing: no change to announce
    assert not decision.run.over


def test_the_dossier_is_processed_when_every_step_is_done(
    bundles: dict[str, LinkageBundle], calendar: WorkingCalendar
) -> None:
    birth = bundles["birth"]
    run = registered(birth, calendar).run
    first = on_step_outcome(
        birth, run, "permanent_residence", answer(DossierStatus.PROCESSED, hours=5), calendar
    )
    assert first.dossier_status is None and not first.run.over
    last = on_step_outcome(
        birth, first.run, "health_insurance_card", answer(DossierStatus.PROCESSED), calendar
    )
    assert last.dossier_status is DossierStatus.PROCESSED
    assert last.run.over and last.requests == ()


def test_a_supplement_request_pauses_the_dossier_until_the_step_moves_on(
    bundles: dict[str, LinkageBundle], calendar: WorkingCalendar
) -> None:
    birth = bundles["birth"]
    run = registered(birth, calendar).run
    asked = on_step_outcome(
        birth, run, "health_insurance_card", answer(DossierStatus.SUPPLEMENT_REQUESTED), calendar
    )
    assert asked.dossier_status is DossierStatus.SUPPLEMENT_REQUESTED
    assert states(asked.run)["health_insurance_card"] is StepState.SUPPLEMENT
    resumed = on_step_outcome(
        birth, asked.run, "health_insurance_card", answer(DossierStatus.PROCESSING), calendar
    )
    assert resumed.dossier_status is DossierStatus.PROCESSING


@pytest.mark.parametrize(
    ("after_registration", "expected"),
    [(False, DossierStatus.NOT_ACCEPTED), (True, DossierStatus.STOPPED)],
    ids=["refused-first-step-not-accepted", "refused-later-step-stopped"],
)
def test_a_rejection_stops_the_run_with_the_agencys_reason(
    bundles: dict[str, LinkageBundle],
    calendar: WorkingCalendar,
    after_registration: bool,
    expected: DossierStatus,
) -> None:
    birth = bundles["birth"]
    if after_registration:
        run, step = registered(birth, calendar).run, "permanent_residence"
    else:
        run, step = start_run(birth, CODE, MONDAY, calendar).run, "birth_registration"
    refused = answer(DossierStatus.NOT_ACCEPTED, note="Thiếu giấy chứng sinh")
    decision = on_step_outcome(birth, run, step, refused, calendar)
    assert decision.dossier_status is expected
    assert decision.run.over and decision.requests == ()
    assert decision.run.stopped_reason is not None
    assert decision.run.stopped_reason.endswith("Thiếu giấy chứng sinh")
    # Nothing moves a stopped run, not even the other branch finishing.
    late = on_step_outcome(
        birth, decision.run, "health_insurance_card", answer(DossierStatus.PROCESSED), calendar
    )
    assert not late.changed and late.run == decision.run


def test_a_late_or_repeated_answer_never_moves_a_run_back(
    bundles: dict[str, LinkageBundle], calendar: WorkingCalendar
) -> None:
    birth = bundles["birth"]
    run = registered(birth, calendar).run
    back = on_step_outcome(
        birth, run, "birth_registration", answer(DossierStatus.PROCESSING, hours=0.5), calendar
    )
    assert not back.changed and back.run == run
    done = on_step_outcome(
        birth, run, "birth_registration", answer(DossierStatus.PROCESSED), calendar
    )
    assert not done.changed and done.requests == ()  # a redelivered answer


def test_an_answer_for_a_step_never_requested_is_kept_out(
    bundles: dict[str, LinkageBundle], calendar: WorkingCalendar
) -> None:
    birth = bundles["birth"]
    run = start_run(birth, CODE, MONDAY, calendar).run
    decision = on_step_outcome(
        birth, run, "permanent_residence", answer(DossierStatus.PROCESSED), calendar
    )
    assert not decision.changed and decision.notes == (
        "step permanent_residence was not requested",
    )


def test_the_death_run_goes_one_step_at_a_time_after_the_cutoff(
    bundles: dict[str, LinkageBundle], calendar: WorkingCalendar
) -> None:
    death = bundles["death"]
    friday_late = datetime(2026, 12, 11, 15, 30, tzinfo=VN_TZ)  # after 15:00: counts Monday
    started = start_run(death, CODE, friday_late, calendar)
    assert started.requests[0].due_on == date(2026, 12, 14)
    registered_death = StatusChange(
        dossier_code=CODE,
        status=DossierStatus.PROCESSED,
        changed_at=datetime(2026, 12, 14, 10, tzinfo=VN_TZ),
        agency=CIVIL_STATUS,
        partner_reference="KT/2026/000042",
    )
    after = on_step_outcome(death, started.run, "death_registration", registered_death, calendar)
    assert [r.step.id for r in after.requests] == ["residence_removal"]
    assert after.requests[0].form == {"death_certificate_number": "KT/2026/000042"}
    assert after.requests[0].due_on == date(2026, 12, 16)
