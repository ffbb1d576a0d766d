"""``/v1/inbound/{connector}``: partners push in their own format; SOAP partners get a WSDL.

The connector's ``[[inbound]]`` tables say what it accepts (:mod:`bus.inbound.settings`). Once
the connector is known, every answer is in its partner's style (its result codes; a SOAP fault
in the request's SOAP version); only "no such connector" and "this connector takes no pushes"
are the bus's own problem documents, since no partner convention applies yet.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request, Response

from bus.api.auth import Caller, forbidden
from bus.api.body import read_body
from bus.api.problems import PROBLEM_JSON, Problem
from bus.errors import UnknownConnector
from bus.inbound.answers import Answer, Verdict
from bus.inbound.reading import looks_like, media_type_of
from bus.inbound.service import InboundRoute, InboundService, InboundSetupError, NoInbound
from bus.inbound.soap import version_for_media_type
from bus.security.clients import AgencyClient

router = APIRouter(prefix="/v1/inbound", tags=["inbound"])

_PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "Problem details (RFC 9457)"}
_PARTNER = {"description": "The partner's own answer: its result code and a message"}
_REFUSED = {"description": "Refused in the partner's style (a SOAP fault for SOAP partners)"}
_PUSH_TYPES = ("application/json", "application/xml", "text/xml", "application/soap+xml")

ConnectorId = Annotated[
    str, Path(pattern=r"^[a-z][a-z0-9_]{1,40}$", description="Connector id, e.g. civil_status")
]


def _service(request: Request) -> InboundService:
    service: InboundService | None = getattr(request.app.state, "inbound", None)
    if service is None:
        # Built on first use from what the lifespan opened, so the app needs no other wiring.
        service = InboundService(request.app.state.runtime, request.app.state.ingest)
        request.app.state.inbound = service
    return service


def _route(request: Request, connector: str) -> InboundRoute:
    try:
        return _service(request).route(connector)
    except UnknownConnector as exc:
        raise Problem(404, "Unknown connector", str(exc), kind="not-found") from exc
    except NoInbound as exc:
        registry = request.app.state.runtime.registry
        pushing = [c for c in registry.ids if registry.get(c).config.inbound]
        raise Problem(
            404,
            "No inbound messages",
            f"{exc}; connectors that accept pushes: {', '.join(pushing) or 'none'}",
            kind="no-inbound",
        ) from exc
    except InboundSetupError as exc:
        raise Problem(500, "Inbound misconfigured", str(exc), kind="configuration") from exc


def _require_partner(caller: AgencyClient, connector: str) -> None:
    """403 unless ``caller`` is the partner behind ``connector`` (or an operator)."""
    if not (caller.may_push_as(connector) or caller.operator):
        raise forbidden(f"client {caller.id} is not the partner of connector {connector}")


def _response(answer: Answer) -> Response:
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type)


@router.post(
    "/{connector}",
    name="receive_push",
    summary="Receive a push in the partner's own format (JSON, XML or SOAP)",
    responses={
        200: _PARTNER,
        400: _REFUSED,
        404: {
            **_PROBLEM,
            "description": "No such connector, or it takes no pushes (problem details); or "
            "the partner's RECORD_NOT_FOUND",
        },
        409: _REFUSED,
        413: _REFUSED,
        415: _REFUSED,
        422: _REFUSED,
        500: {
            **_PROBLEM,
            "description": "The connector's [[inbound]] is misconfigured (problem details); or "
            "a SOAP 1.1 fault",
        },
        503: _PROBLEM,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The partner's payload, as its connector's [[inbound]] declares",
            "content": {media: {"schema": {}} for media in _PUSH_TYPES},
        }
    },
)
async def receive_push(request: Request, caller: Caller, connector: ConnectorId) -> Response:
    """Map the partner's payload with the connector's inbound mapping and commit it.

    A status change moves its dossier forward (applied once, however often it is pushed) and is
    announced as ``dossier.status_changed``; a dossier is accepted as by ``POST /v1/dossiers``.
    The answer comes after the commit, in the partner's style. Hostile or unreadable input is
    refused before any mapping runs, and nothing is stored for a refused push.
    """
    received_at = datetime.now(UTC)
    route = _route(request, connector)
    _require_partner(caller, connector)
    content_type = request.headers.get("content-type")
    try:
        raw = await read_body(request, max_bytes=request.app.state.settings.max_body_bytes)
    except Problem as exc:  # too large: refused in the partner's style, unread
        media = media_type_of(content_type)
        kind = looks_like(media, {m.format for m in route.config.inbound})
        version = version_for_media_type(media) if kind == "soap" else None
        verdict = Verdict("unreadable", exc.detail, exc.status)
        return _response(route.answer(verdict, None, version, looked_like=kind))
    answer = await _service(request).receive(route, raw, content_type, received_at)
    return _response(answer)


@router.get(
    "/{connector}",
    summary="What a connector's partner may push; with ?wsdl, the WSDL of its SOAP service",
    responses={
        200: {"content": {"text/xml": {}, "application/json": {}}},
        404: _PROBLEM,
        422: _PROBLEM,
    },
)
async def describe_inbound(
    request: Request,
    caller: Caller,
    connector: ConnectorId,
    wsdl: Annotated[
        str | None,
        Query(description="Present (`?wsdl`): the WSDL, its address pointing at this bus"),
    ] = None,
) -> Response:
    """The connector's inbound messages, or its WSDL (``?wsdl``) for SOAP partners."""
    route = _route(request, connector)
    _require_partner(caller, connector)
    address = str(request.url_for("receive_push", connector=connector))
    if wsdl is not None:
        if route.wsdl is None:
            raise Problem(
                404,
                "No WSDL",
                f"connector {connector} accepts no SOAP messages, so it has no WSDL",
                kind="not-found",
            )
        return Response(route.wsdl.served(address), media_type="text/xml; charset=utf-8")
    accepts: list[dict[str, Any]] = [
        {
            "mapping": message.mapping.ref,
            "format": message.settings.format,
            "operation": message.settings.operation,
            "when": message.settings.when,
            "produces": message.settings.produces,
            "answer": message.settings.answer_style.style,
        }
        for message in route.messages
    ]
    body: dict[str, Any] = {"connector": connector, "address": address, "accepts": accepts}
    if route.wsdl is not None:
        body["wsdl"] = f"{address}?wsdl"
    return Response(orjson.dumps(body), media_type="application/json")
