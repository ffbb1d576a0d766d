"""``/v1/dossiers``: accept a dossier from the one-stop system; read its state and history."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, Field, ValidationError

from bus.api.auth import Caller, forbidden, may_read_dossier
from bus.api.body import read_json_body
from bus.api.problems import PROBLEM_JSON, Problem, require_dossier_code, validation_problem
from bus.ingest import IngestService, Submission, UnroutableDossier
from bus.linkage.book import LinkageBook
from bus.logs import about
from bus.registry import ConnectorRegistry
from bus.security.clients import AgencyClient
from bus.settings import Settings
from bus.store.ingest import IngestConflict
from bus.store.linkage import StoredRun, read_run
from bus.store.queries import dossier_with_history
from contracts import Dossier, DossierStatus

router = APIRouter(prefix="/v1/dossiers", tags=["dossiers"])

_PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "Problem details (RFC 9457)"}


class Accepted(BaseModel):
    """The answer to an accepted dossier: it is committed and its event will be published."""

    dossier_code: str = Field(description="Mã hồ sơ")
    event_id: str = Field(description="Id of the dossier.submitted event")
    replayed: bool = Field(description="True when this repeats an earlier identical request")
    links: dict[str, str]


class Hop(BaseModel):
    """One hop of the dossier's journey, from the transaction log."""

    message_id: str
    kind: str
    sender: str
    recipient: str
    received_at: datetime | None
    sent_at: datetime | None
    answered_at: datetime | None
    done_at: datetime
    request_bytes: int
    response_bytes: int
    outcome: str
    fault_code: str | None
    fault_detail: str | None
    mapping_version: str | None
    attempt: int


class EventRecord(BaseModel):
    """An event the bus emitted about the dossier, and whether the broker confirmed it."""

    event_id: str
    routing_key: str
    created_at: datetime
    sent_at: datetime | None
    attempts: int
    last_error: str | None


class DossierState(BaseModel):
    """The dossier's current state on the bus."""

    code: str
    procedure_code: str
    receiving_agency: str
    handling_agency: str
    status: int
    status_label: str
    sequence: int
    partner_reference: str | None
    received_at: datetime
    due_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


class LinkageStepView(BaseModel):
    """One step of the dossier's linkage run."""

    step: str = Field(description="Step id in its bundle, e.g. permanent_residence")
    title: str = Field(description="What the agency does")
    connector: str = Field(description="The connector of the agency's system")
    state: str = Field(description="waiting, requested, supplement, done or rejected")
    requested_at: datetime | None = Field(description="When the step was ordered")
    due_on: date | None = Field(description="The step's due date (supplement waits added)")
    result_status: int | None = Field(description="The agency's last answer, as a status 1-10")
    result_note: str | None = Field(description="What the agency said")
    result_reference: str | None = Field(description="The agency's reference (e.g. certificate)")
    result_changed_at: datetime | None = Field(description="When the agency answered")


class LinkageView(BaseModel):
    """The dossier's run through its linkage bundle (liên thông)."""

    bundle: str = Field(description="Bundle id, e.g. birth")
    title: str
    state: str = Field(description="open, done or stopped")
    due_on: date = Field(description="The whole bundle's due date")
    stopped_reason: str | None = Field(description="Why the run stopped, when it did")
    steps: list[LinkageStepView]


class DossierView(BaseModel):
    """``GET /v1/dossiers/{code}``: current state, the accepted dossier, and its history."""

    state: DossierState
    dossier: dict[str, Any]
    history: list[Hop]
    events: list[EventRecord]
    linkage: LinkageView | None = Field(
        default=None, description="Its linkage run, when its procedure starts a bundle"
    )


def _service(request: Request) -> IngestService:
    service: IngestService = request.app.state.ingest
    return service


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@router.post(
    "",
    status_code=202,
    response_model=Accepted,
    summary="Accept a dossier (canonical contract)",
    responses={
        400: _PROBLEM,
        409: _PROBLEM,
        413: _PROBLEM,
        415: _PROBLEM,
        422: _PROBLEM,
        503: _PROBLEM,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": Dossier.model_json_schema()}},
        }
    },
)
async def submit_dossier(
    request: Request,
    caller: Caller,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=200,
            description="Makes a retried request safe: the same key returns the original answer",
        ),
    ] = None,
    traceparent: Annotated[str | None, Header(max_length=55)] = None,
) -> Response:
    """Validate a dossier against the canonical contract, commit it with its event, answer 202.

    The answer comes only after the dossier and its outgoing event are committed, so a 202 is
    never lost. Repeating a request (same ``Idempotency-Key``, or the same dossier code with the
    same content) returns the original answer and creates nothing new.
    """
    received_at = datetime.now(UTC)
    settings = _settings(request)
    raw, size = await read_json_body(
        request, max_bytes=settings.max_body_bytes, max_depth=settings.max_json_depth
    )
    try:
        dossier = Dossier.model_validate(raw)
    except ValidationError as exc:
        raise validation_problem(exc.errors()) from exc
    if not caller.may_submit_for(dossier.receiving_agency):
        raise forbidden(
            f"client {caller.id} submits for {caller.agency}, not {dossier.receiving_agency}"
        )
    if not caller.may_submit(dossier.procedure_code):
        raise forbidden(f"client {caller.id} may not submit procedure {dossier.procedure_code}")
    if traceparent is not None and not _valid_traceparent(traceparent):
        traceparent = None  # a malformed trace header starts a new trace rather than failing
    service = _service(request)
    try:
        with about(dossier=dossier.code, traceparent=traceparent):
            receipt = await service.accept(
                dossier,
                Submission(
                    received_at=received_at,
                    request_bytes=size,
                    idempotency_key=idempotency_key,
                    traceparent=traceparent,
                ),
            )
    except UnroutableDossier as exc:
        raise Problem(
            422,
            "Unknown procedure",
            str(exc),
            kind="unknown-procedure",
            errors=[{"field": exc.field, "problem": str(exc), "allowed": exc.allowed}],
        ) from exc
    except IngestConflict as exc:
        raise Problem(
            409,
            "Conflict",
            str(exc),
            kind="conflict",
            errors=[{"field": exc.field, "problem": str(exc)}],
        ) from exc
    location = f"/v1/dossiers/{receipt.dossier_code}"
    # Answered directly: the body is built from trusted values, and skipping the response
    # model's re-validation matters on the hottest route (``Accepted`` still documents it).
    body = {
        "dossier_code": receipt.dossier_code,
        "event_id": receipt.event_id,
        "replayed": receipt.replayed,
        "links": {"self": location},
    }
    return Response(
        orjson.dumps(body),
        status_code=202,
        media_type="application/json",
        headers={"Location": location},
    )


@router.get(
    "/{code}",
    response_model=DossierView,
    summary="A dossier's current state and hop-by-hop history",
    responses={404: _PROBLEM, 422: _PROBLEM},
)
async def get_dossier(request: Request, caller: Caller, code: str) -> DossierView:
    """The dossier as accepted, its current status, every hop recorded, and its events."""
    require_dossier_code(code)
    runtime = request.app.state.runtime
    # The run is read first: a reader that sees it ended then sees the dossier's final state
    # (both are committed together, but read here in two statements).
    run = await read_run(runtime.engine, code)
    found = await dossier_with_history(runtime.engine, code)
    if found is None or not _readable(caller, found["dossier"], run, runtime.registry):
        raise Problem(404, "Not found", f"no dossier {code} on this bus", kind="not-found")
    row = found["dossier"]
    state = DossierState(
        **{k: row[k] for k in DossierState.model_fields if k in row},
        status_label=DossierStatus(row["status"]).label_en,
    )
    return DossierView(
        state=state,
        dossier=row["document"],
        history=[Hop(**hop) for hop in found["hops"]],
        events=[EventRecord(**event) for event in found["events"]],
        linkage=_linkage_view(run, runtime.linkage.book),
    )


def _readable(
    caller: AgencyClient, row: dict[str, Any], run: StoredRun | None, registry: ConnectorRegistry
) -> bool:
    agencies = (row["receiving_agency"], row["handling_agency"])
    steps = () if run is None else run.connectors.values()
    return may_read_dossier(caller, agencies, steps, registry)


def _linkage_view(stored: StoredRun | None, book: LinkageBook) -> LinkageView | None:
    if stored is None:
        return None
    bundle = book.bundle(stored.run.bundle_id)
    steps = []
    for step in bundle.steps:
        record = stored.run.steps[step.id]
        result = record.result
        steps.append(
            LinkageStepView(
                step=step.id,
                title=step.title,
                connector=step.connector,
                state=record.state.value,
                requested_at=record.requested_at,
                due_on=record.due_on,
                result_status=None if result is None else int(result.status),
                result_note=None if result is None else result.note,
                result_reference=None if result is None else result.partner_reference,
                result_changed_at=None if result is None else result.changed_at,
            )
        )
    return LinkageView(
        bundle=bundle.id,
        title=bundle.title,
        state=stored.state,
        due_on=stored.due_on,
        stopped_reason=stored.run.stopped_reason,
        steps=steps,
    )


def _valid_traceparent(value: str) -> bool:
    parts = value.split("-")
    return (
        len(parts) == 4
        and parts[0] == "00"
        and len(parts[1]) == 32
        and len(parts[2]) == 16
        and len(parts[3]) == 2
        and all(c in "0123456789abcdef" for c in "".join(parts[1:]))
    )
