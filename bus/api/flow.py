"""``/v1/flow``: the day's flow, how many dossiers each desk received on a local day and where
they stand now, per receiving agency, handling agency and status.

The dashboard's first panel. Counts only: no dossier code or applicant leaves this route, so
it is as open as the statistics (``read: all`` or an operator).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from bus.api.auth import require_read_all
from bus.api.problems import PROBLEM_JSON, Problem
from bus.api.stats import LocalDay, clock
from bus.store.flow import received_on
from contracts import VN_TZ, DossierStatus

__all__ = ["router"]

router = APIRouter(tags=["statistics"])

_PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "Problem details (RFC 9457)"}
# The day is read as the instants from its local midnight to the next one, which must exist.
_FIRST_DAY: Final = date.min + timedelta(days=1)
_LAST_DAY: Final = date.max - timedelta(days=1)


class FlowRow(BaseModel):
    """Dossiers received on the day that share a receiving agency, handling agency and status."""

    receiving_agency: str = Field(description="The agency whose desk received them")
    handling_agency: str = Field(description="The agency that handles them (đơn vị xử lý)")
    status: int = Field(description="Their status now (DVCQG TrangThaiHoSo, 1 to 10)")
    status_label_vi: str = Field(description="Vietnamese label of that status")
    status_label_en: str = Field(description="English label of that status")
    dossiers: int = Field(description="How many")


class FlowAnswer(BaseModel):
    """``GET /v1/flow``: the dossiers received on one local day, where they stand now."""

    day: date = Field(description="The local day (Asia/Ho_Chi_Minh)")
    time_zone: str = Field(description="Asia/Ho_Chi_Minh")
    received: int = Field(description="Dossiers received on the day in all")
    rows: list[FlowRow] = Field(
        description="One row per receiving agency, handling agency and current status, ordered "
        "by those"
    )


@router.get(
    "/v1/flow",
    response_model=FlowAnswer,
    summary="Dossiers received on a day, per agency and current status",
    responses={403: _PROBLEM, 422: _PROBLEM},
)
async def get_flow(
    request: Request,
    _reader: Annotated[object, Depends(require_read_all)],
    now: Annotated[datetime, Depends(clock)],
    day: Annotated[
        LocalDay | None,
        Query(description="The local day, YYYY-MM-DD (default: today in Asia/Ho_Chi_Minh)"),
    ] = None,
) -> FlowAnswer:
    """Every dossier whose ``received_at`` falls on the local day, counted by receiving agency,
    handling agency and the status it has now."""
    day = day if day is not None else now.astimezone(VN_TZ).date()
    if not _FIRST_DAY <= day <= _LAST_DAY:
        allowed = f"a day from {_FIRST_DAY} to {_LAST_DAY}"
        raise Problem(
            422,
            "Invalid flow query",
            f"the day is out of range: {allowed}",
            kind="validation",
            errors=[{"field": "day", "problem": "the day is out of range", "allowed": allowed}],
        )
    counts = await received_on(request.app.state.runtime.engine, day)
    rows = [
        FlowRow(
            receiving_agency=count.receiving_agency,
            handling_agency=count.handling_agency,
            status=count.status,
            status_label_vi=_label(count.status, english=False),
            status_label_en=_label(count.status, english=True),
            dossiers=count.dossiers,
        )
        for count in counts
    ]
    return FlowAnswer(
        day=day, time_zone=VN_TZ.key, received=sum(r.dossiers for r in rows), rows=rows
    )


def _label(status: int, *, english: bool) -> str:
    # A status outside the national list can only come from a row written elsewhere; show its
    # number rather than fail the whole panel.
    try:
        known = DossierStatus(status)
    except ValueError:
        return str(status)
    return known.label_en if english else known.label_vi
