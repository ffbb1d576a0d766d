"""What happens next in a linkage run: the rules, as pure functions.

A run is the state of one dossier in its bundle: each step waiting, requested, waiting for the
citizen's supplement, done or rejected. Two events move it:

* the dossier is accepted (:func:`start_run`): the first steps are requested;
* a step's agency answers (:func:`on_step_outcome`) with a national status (1–10).

Each decision says which steps to request now (with the data earlier steps pass on and their
due dates), the dossier's overall status when it changes, and whether the run is over. The
rules, from DOMAIN ("Deadlines", "The two national linkage bundles") and issue 5:

* a step answered 9 or 10 is done; when every step is done the dossier is processed (9);
* 5 (supplement requested) puts the dossier in 5, which pauses its SLA clock, until the step
  moves on;
* 3, 7 or 8 rejects the step and stops the whole run: 3 (not accepted) when nothing was done
  yet, else 8 (processing stopped), with the agency's reason;
* 1, 2, 4 and 6 keep the step under way and the dossier processing (4);
* an answer about a step that is already done or rejected changes nothing, and neither does
  one dated before the step's last answer: an event that arrives late never moves a run
  backwards;
* the time a step waited for a supplement does not count against it: when it moves on, its
  due date moves by the working days it waited.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum

from bus.calendar import WorkingCalendar
from contracts import VN_TZ, DossierStatus, LinkageBundle, LinkageStep, StatusChange

__all__ = [
    "Decision",
    "RunState",
    "StepRecord",
    "StepRequest",
    "StepState",
    "on_step_outcome",
    "start_run",
]


class StepState(StrEnum):
    """Where one step of a run stands."""

    WAITING = "waiting"  # its predecessors are not all done
    REQUESTED = "requested"  # sent to its agency, under way
    SUPPLEMENT = "supplement"  # its agency asked the citizen for a supplement
    DONE = "done"
    REJECTED = "rejected"


_SETTLED = frozenset({StepState.DONE, StepState.REJECTED})
_DONE_STATUSES = frozenset({DossierStatus.PROCESSED, DossierStatus.RESULT_RETURNED})
_REJECTING = frozenset({DossierStatus.NOT_ACCEPTED, DossierStatus.WITHDRAWN, DossierStatus.STOPPED})


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step of a run, with what its agency last said."""

    step_id: str
    state: StepState = StepState.WAITING
    requested_at: datetime | None = None
    due_on: date | None = None
    #: The agency's last answer: what later steps may be passed (``steps.<id>.<field>``).
    result: StatusChange | None = None


@dataclass(frozen=True, slots=True)
class RunState:
    """A dossier's run through its bundle."""

    bundle_id: str
    dossier_code: str
    steps: Mapping[str, StepRecord]
    dossier_status: DossierStatus = DossierStatus.ACCEPTED
    stopped_reason: str | None = None

    @property
    def over(self) -> bool:
        """Every step done, or the run stopped."""
        return self.stopped_reason is not None or all(
            s.state is StepState.DONE for s in self.steps.values()
        )


@dataclass(frozen=True, slots=True)
class StepRequest:
    """A step to send to its agency now."""

    step: LinkageStep
    #: Form keys the step is given by earlier steps (e.g. birth_certificate_number).
    form: Mapping[str, str]
    due_on: date


@dataclass(frozen=True, slots=True)
class Decision:
    """The run after an event, and what to do about it."""

    run: RunState
    requests: tuple[StepRequest, ...] = ()
    #: The dossier's new overall status, when it changes.
    dossier_status: DossierStatus | None = None
    #: Whether the event changed the run (False: late, repeated or about a settled step).
    changed: bool = True
    notes: tuple[str, ...] = field(default=())


def start_run(
    bundle: LinkageBundle, dossier_code: str, received_at: datetime, calendar: WorkingCalendar
) -> Decision:
    """The run of a dossier just accepted: its first steps requested, the dossier processing."""
    run = RunState(
        bundle_id=bundle.id,
        dossier_code=dossier_code,
        steps={step.id: StepRecord(step.id) for step in bundle.steps},
    )
    run, requests = _request_ready(bundle, run, received_at, calendar)
    run = replace(run, dossier_status=DossierStatus.PROCESSING)
    return Decision(run, requests, DossierStatus.PROCESSING)


def on_step_outcome(
    bundle: LinkageBundle,
    run: RunState,
    step_id: str,
    change: StatusChange,
    calendar: WorkingCalendar,
) -> Decision:
    """Apply one agency's answer about ``step_id`` and decide what follows."""
    record = run.steps[step_id]
    if run.stopped_reason is not None or record.state in _SETTLED:
        return Decision(run, changed=False)
    if record.state is StepState.WAITING:
        # An answer about a step never requested: a partner mistake, kept out of the run.
        return Decision(run, changed=False, notes=(f"step {step_id} was not requested",))
    if record.result is not None and change.changed_at < record.result.changed_at:
        return Decision(run, changed=False, notes=(f"older than step {step_id}'s last answer",))
    if record.state is StepState.SUPPLEMENT and change.status is not (
        DossierStatus.SUPPLEMENT_REQUESTED
    ):
        record = _resumed(record, change.changed_at, calendar)

    if change.status in _REJECTING:
        return _stop(bundle, _with_step(run, record), step_id, change)
    if change.status in _DONE_STATUSES:
        run = _with_step(run, replace(record, state=StepState.DONE, result=change))
        if run.over:
            return _moved(run, (), DossierStatus.PROCESSED)
        run, requests = _request_ready(bundle, run, change.changed_at, calendar)
        return _moved(run, requests, _open_status(run))
    state = (
        StepState.SUPPLEMENT
        if change.status is DossierStatus.SUPPLEMENT_REQUESTED
        else StepState.REQUESTED
    )
    run = _with_step(run, replace(record, state=state, result=change))
    return _moved(run, (), _open_status(run))


def _resumed(record: StepRecord, resumed_at: datetime, calendar: WorkingCalendar) -> StepRecord:
    """The step after its supplement arrived: its due date moved by the working days waited."""
    if record.result is None or record.due_on is None:
        return record
    waited = calendar.working_days_between(
        _local_day(record.result.changed_at), _local_day(resumed_at)
    )
    return replace(record, due_on=calendar.add_working_days(record.due_on, max(0, waited)))


def _local_day(moment: datetime) -> date:
    return moment.astimezone(VN_TZ).date()


def _stop(bundle: LinkageBundle, run: RunState, step_id: str, change: StatusChange) -> Decision:
    nothing_done = all(s.state is not StepState.DONE for s in run.steps.values())
    status = DossierStatus.NOT_ACCEPTED if nothing_done else DossierStatus.STOPPED
    title = bundle.step(step_id).title
    reason = f"{title}: {change.note}" if change.note else f"{title}: refused ({change.status})"
    record = replace(run.steps[step_id], state=StepState.REJECTED, result=change)
    run = replace(_with_step(run, record), stopped_reason=reason)
    return _moved(run, (), status)


def _open_status(run: RunState) -> DossierStatus:
    """A run under way: waiting for a supplement if any step is, else processing."""
    if any(s.state is StepState.SUPPLEMENT for s in run.steps.values()):
        return DossierStatus.SUPPLEMENT_REQUESTED
    return DossierStatus.PROCESSING


def _moved(run: RunState, requests: tuple[StepRequest, ...], status: DossierStatus) -> Decision:
    changed_status = status if status is not run.dossier_status else None
    return Decision(replace(run, dossier_status=status), requests, changed_status)


def _with_step(run: RunState, record: StepRecord) -> RunState:
    return replace(run, steps={**run.steps, record.step_id: record})


def _request_ready(
    bundle: LinkageBundle, run: RunState, now: datetime, calendar: WorkingCalendar
) -> tuple[RunState, tuple[StepRequest, ...]]:
    """Request every waiting step whose predecessors are all done."""
    done = {i for i, s in run.steps.items() if s.state is StepState.DONE}
    requests: list[StepRequest] = []
    for step in bundle.next_steps(done):
        record = run.steps[step.id]
        if record.state is not StepState.WAITING:
            continue
        due_on = calendar.due_date(now, step.working_days, bundle.cutoff_hour)
        requests.append(StepRequest(step, _passed(step, run), due_on))
        run = _with_step(
            run, replace(record, state=StepState.REQUESTED, requested_at=now, due_on=due_on)
        )
    return run, tuple(requests)


def _passed(step: LinkageStep, run: RunState) -> dict[str, str]:
    """The form keys ``step`` is given: ``steps.<id>.<field>`` of finished earlier steps."""
    form: dict[str, str] = {}
    for key, source in step.passes.items():
        _, source_step, name = source.split(".")
        result = run.steps[source_step].result
        value = None if result is None else getattr(result, name)
        if value is not None:
            form[key] = value.isoformat() if isinstance(value, datetime) else str(value)
    return form
