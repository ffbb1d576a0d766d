"""Deadline alerts the bus raised: ``/v1/alerts`` for the dashboard, and one dossier's.

The scheduler (:mod:`bus.deadlines`) raises each alert once and announces it as a
``dossier.at_risk`` or ``dossier.overdue`` event; these routes read the same record.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from bus.api.auth import Caller, require_read_all, require_readable_dossier
from bus.api.problems import PROBLEM_JSON, require_dossier_code
from bus.security.clients import AgencyClient
from bus.store import deadlines as store
from contracts import AlertKind, AlertScope, DossierStatus, VnDateTime

router = APIRouter(tags=["alerts"])

_PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "Problem details (RFC 9457)"}


class AlertRecord(BaseModel):
    """A deadline alert the bus raised, with the dossier it is about."""

    dossier_code: str = Field(description="Mã hồ sơ")
    kind: AlertKind = Field(description="at_risk (open on its due date) or overdue (after it)")
    scope: AlertScope = Field(description="The whole dossier, or one step of its linkage bundle")
    step: str | None = Field(description="The step, when scope is step")
    connector: str | None = Field(description="The connector of the step's agency, when known")
    due_on: date = Field(description="The due date at risk or missed (supplement time added)")
    raised_at: datetime = Field(description="When the bus raised the alert")
    event_id: str = Field(description="Id of the dossier.at_risk or dossier.overdue event")
    procedure_code: str = Field(description="Mã TTHC of the dossier")
    receiving_agency: str = Field(description="The agency that received the dossier")
    handling_agency: str = Field(description="The agency that handles the dossier")
    status: int = Field(description="The dossier's status now (it may have moved on since)")
    status_label: str = Field(description="English label of that status")


class AlertList(BaseModel):
    """Deadline alerts, newest first."""

    alerts: list[AlertRecord]


@router.get(
    "/v1/alerts",
    response_model=AlertList,
    summary="Deadline alerts raised, newest first",
    responses={403: _PROBLEM, 422: _PROBLEM},
)
async def list_alerts(
    request: Request,
    caller: Annotated[AgencyClient, Depends(require_read_all)],
    kind: Annotated[
        AlertKind | None, Query(description="Only at_risk or only overdue alerts")
    ] = None,
    since: Annotated[
        VnDateTime | None,
        Query(description="Only alerts raised at or after this instant (ISO 8601 with offset)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most alerts returned")] = 100,
) -> AlertList:
    """Dossiers and linkage steps found at risk (still open on their due date) or overdue.

    Each alert is raised once; poll with ``since`` set to the newest ``raised_at`` seen to get
    the new ones (the boundary alert comes again: deduplicate on ``event_id``).
    """
    rows = await store.list_alerts(
        request.app.state.runtime.engine, kind=kind, since=since, limit=limit
    )
    return AlertList(alerts=[_record(row) for row in rows])


@router.get(
    "/v1/dossiers/{code}/alerts",
    response_model=AlertList,
    summary="The deadline alerts of one dossier",
    responses={404: _PROBLEM, 422: _PROBLEM},
)
async def dossier_alerts(request: Request, caller: Caller, code: str) -> AlertList:
    """Every alert raised about the dossier and its linkage steps, newest first."""
    require_dossier_code(code)
    await require_readable_dossier(request, caller, code)
    rows = await store.list_alerts(request.app.state.runtime.engine, dossier_code=code, limit=1000)
    return AlertList(alerts=[_record(row) for row in rows])


def _record(row: dict[str, Any]) -> AlertRecord:
    step = store.step_of_scope(row["scope"])
    return AlertRecord(
        dossier_code=row["dossier_code"],
        kind=row["kind"],
        scope="dossier" if step is None else "step",
        step=step,
        connector=row["connector"] if step is not None else None,
        due_on=row["due_on"],
        raised_at=row["raised_at"],
        event_id=row["event_id"],
        procedure_code=row["procedure_code"],
        receiving_agency=row["receiving_agency"],
        handling_agency=row["handling_agency"],
        status=row["status"],
        status_label=DossierStatus(row["status"]).label_en,
    )
