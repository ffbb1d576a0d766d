"""``/v1/dossiers/{code}/trace``: every hop of a dossier across agencies (:mod:`bus.trace`)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from bus.api.auth import Caller, require_readable_dossier
from bus.api.problems import PROBLEM_JSON, Problem, require_dossier_code
from bus.store.queries import dossier_with_history
from bus.trace import DossierTrace, build_trace

router = APIRouter(tags=["dossiers"])

_PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "Problem details (RFC 9457)"}


@router.get(
    "/v1/dossiers/{code}/trace",
    response_model=DossierTrace,
    summary="Every hop of a dossier across agencies, with where its time went",
    responses={404: _PROBLEM, 422: _PROBLEM},
)
async def dossier_trace(request: Request, caller: Caller, code: str) -> DossierTrace:
    """Each attempt of each hop in order: from, to, received, sent, answered, done, sizes,
    outcome, fault, mapping version and retries; the events emitted; and the totals."""
    require_dossier_code(code)
    await require_readable_dossier(request, caller, code)
    found = await dossier_with_history(request.app.state.runtime.engine, code)
    if found is None:
        raise Problem(404, "Not found", f"no dossier {code} on this bus", kind="not-found")
    return build_trace(found)
