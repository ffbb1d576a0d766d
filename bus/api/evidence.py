"""``/v1/dossiers/{code}/evidence``: one dossier's audit records and their proof, as one file.

The same export as ``bus audit export`` (:mod:`bus.audit.export`); ``bus audit check-export``
checks it offline.
"""

from __future__ import annotations

from typing import Annotated, Final

import orjson
from fastapi import APIRouter, Query, Request, Response

from bus.api.auth import Caller, require_readable_dossier
from bus.api.problems import PROBLEM_JSON, Problem, require_dossier_code
from bus.audit.evidence import EvidenceExport
from bus.audit.export import (
    DEFAULT_MAX_LINKS,
    ChainBroken,
    ProofTooLong,
    UnknownDossier,
    export_evidence,
)

router = APIRouter(tags=["audit"])

_PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "Problem details (RFC 9457)"}
#: Above this the file is too large to build in an API process's memory: use the CLI.
API_MAX_LINKS: Final = 1_000_000


@router.get(
    "/v1/dossiers/{code}/evidence",
    response_model=EvidenceExport,
    summary="One dossier's evidence: audit records, event bodies, chain proof",
    responses={404: _PROBLEM, 422: _PROBLEM, 500: _PROBLEM},
)
async def dossier_evidence(
    request: Request,
    caller: Caller,
    code: str,
    max_links: Annotated[
        int,
        Query(
            ge=1,
            le=API_MAX_LINKS,
            description="Most links in the chain proof (records from the dossier's first one "
            "to the head); a longer proof is refused with the number it needs",
        ),
    ] = DEFAULT_MAX_LINKS,
) -> Response:
    """The dossier as stored, each of its audit records in full, the event bodies they sealed,
    the signatures recorded with them, and the chain proof from its first record to the head.

    Check it offline with ``bus audit check-export FILE``.
    """
    require_dossier_code(code)
    await require_readable_dossier(request, caller, code)
    try:
        export = await export_evidence(request.app.state.runtime.engine, code, max_links=max_links)
    except UnknownDossier as exc:
        raise Problem(404, "Not found", str(exc), kind="not-found") from exc
    except ProofTooLong as exc:
        raise Problem(
            422,
            "Chain proof too long",
            str(exc),
            kind="validation",
            errors=[
                {
                    "field": "max_links",
                    "problem": f"the proof needs {exc.needed} links",
                    "allowed": f"1 to {API_MAX_LINKS}; beyond, use `bus audit export`",
                }
            ],
        ) from exc
    except ChainBroken as exc:
        raise Problem(500, "Audit chain broken", str(exc), kind="audit-chain-broken") from exc
    # Serialised directly: the model was validated when it was built, and a proof of many
    # links would pay for a second validation.
    return Response(
        orjson.dumps(export.model_dump(mode="json")),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="evidence-{code}.json"'},
    )
