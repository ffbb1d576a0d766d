"""The FastAPI application: ingest, dossier state and history, health.

OpenAPI is served at ``/docs``. The lifespan opens the process's runtime (store, broker,
topology, relay) once; every request shares it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from bus.api import (
    alerts,
    connectors,
    dead_letters,
    dossiers,
    events_stream,
    flow,
    inbound,
    metrics,
    oauth,
    stats,
    subscriptions,
    trace,
)
from bus.api.auth import Security
from bus.api.evidence import router as evidence_router
from bus.api.problems import (
    PROBLEM_JSON,
    Problem,
    problem_handler,
    request_validation_handler,
)
from bus.api.replies import SignedReplies
from bus.connector_health import HEALTH_WINDOW, health_of
from bus.dashboard import DASHBOARD_PATH, dashboard_files
from bus.errors import BusError
from bus.heap import freeze_startup_objects
from bus.ingest import IngestService
from bus.registry import ConnectorRegistry
from bus.runtime import Runtime
from bus.security.agency_keys import public_agency_keys
from bus.security.signing import public_jwk
from bus.security.tokens import load_or_create_key
from bus.settings import Settings, get_settings
from bus.store.connector_health import connector_activity
from contracts import load_procedure_catalogue

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    registry: ConnectorRegistry | None = None,
    freeze_heap: bool = False,
) -> FastAPI:
    """The bus's HTTP API, configured by ``settings`` (default: the environment).

    ``freeze_heap``: once started, freeze the process's objects out of the garbage
    collector's walks (:mod:`bus.heap`); for a process that serves this app alone.
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.open(settings, name="bus-api", registry=registry)
        ingest = IngestService(runtime, load_procedure_catalogue())
        ingest.start()
        app.state.runtime = runtime
        app.state.ingest = ingest
        if freeze_heap:
            freeze_startup_objects("api")
        try:
            yield
        finally:
            await ingest.stop()
            await runtime.close()

    app = FastAPI(
        title="Liên thông bus",
        summary="Inter-agency interoperability bus for provincial one-stop administration",
        description=_AUTHENTICATION,
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    # Read when the app is made, not at start-up: a broken client directory stops the process
    # before it listens, with the file and the problem named.
    app.state.security = Security.from_settings(settings)
    signing_key = load_or_create_key(Path(settings.signing_key_file))
    agency_keys = public_agency_keys(Path(settings.agency_keys_dir))
    app.add_middleware(SignedReplies, key_id=settings.signing_key_id, key=signing_key)
    app.add_exception_handler(Problem, problem_handler)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    app.add_exception_handler(SQLAlchemyError, _unavailable)
    app.add_exception_handler(BusError, _unavailable)
    app.include_router(oauth.router)
    app.include_router(dossiers.router)
    app.include_router(subscriptions.router)
    app.include_router(events_stream.router)
    app.include_router(inbound.router)
    app.include_router(stats.router)
    app.include_router(alerts.router)
    app.include_router(evidence_router)
    app.include_router(dead_letters.router)
    app.include_router(trace.router)
    app.include_router(flow.router)
    app.include_router(connectors.router)
    app.include_router(metrics.router)
    # The officers' dashboard: public static files, no data (they call the API with a token).
    app.mount(DASHBOARD_PATH, dashboard_files(), name="dashboard")

    app.openapi = _documented_refusals(app)  # type: ignore[method-assign]

    @app.get("/v1/keys", tags=["auth"], summary="The public keys of the bus's signatures")
    async def keys() -> dict[str, list[dict[str, str]]]:
        """The bus's public keys as a JSON Web Key set (RFC 8037): the key of its replies to
        signed requests, and each agency's key (key id = agency code) that signs its calls to
        partners (read when the process starts)."""
        own = public_jwk(settings.signing_key_id, signing_key.public_key())
        return {"keys": [own, *(public_jwk(a, key) for a, key in agency_keys.items())]}

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="The store and the broker are reachable; each partner's state (ok, failing, idle)",
    )
    async def readyz(request: Request) -> JSONResponse:
        runtime: Runtime = request.app.state.runtime
        checks: dict[str, Any] = {"broker": runtime.broker.is_connected}
        try:
            async with runtime.engine.connect() as connection:
                await connection.execute(sa.text("SELECT 1"))
            checks["database"] = True
        except SQLAlchemyError:
            checks["database"] = False
        ready = all(checks.values())
        body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": checks}
        if checks["database"]:
            # Each partner's state as the log shows it (a worker's circuit lives in its memory;
            # its effect, failures then none, is in the log). Not a readiness condition: a
            # partner down must not take the API out of its load balancer.
            since = datetime.now(UTC) - HEALTH_WINDOW
            activity = await connector_activity(runtime.engine, runtime.registry.ids, since)
            body["partners"] = {a.connector: health_of(a).value for a in activity}
        return JSONResponse(body, status_code=200 if ready else 503)

    return app


_AUTHENTICATION = """Every operation but `/healthz`, `/readyz`, `/v1/keys` and `/v1/oauth/token`
needs an agency client's credentials: `Authorization: Bearer <token>` (OAuth2 client credentials at
`POST /v1/oauth/token`), `X-API-Key: <secret>`, or a client certificate forwarded by a trusted
TLS-terminating proxy. Clients that registered signing keys sign every request (RFC 9421)."""

#: Operations anyone may call.
_PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/v1/keys", "/v1/oauth/token"})
_REFUSALS = {
    "401": "No valid credentials (or signature): how to authenticate is in WWW-Authenticate",
    "403": "The client's rights do not cover this",
    "429": "The client (or its address, after failed authentications) is over its rate limit; "
    "see Retry-After",
}


def _documented_refusals(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi`` with the authentication refusals every protected operation may answer."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for path, operations in schema.get("paths", {}).items():
            if path in _PUBLIC_PATHS:
                continue
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for status, description in _REFUSALS.items():
                    responses.setdefault(
                        status, {"description": description, "content": {PROBLEM_JSON: {}}}
                    )
        app.openapi_schema = schema
        return schema

    return openapi


async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    # The store or the broker failed under the request: nothing was committed, so the client
    # may retry with the same Idempotency-Key.
    log.error("request failed on a dependency: %r", exc)
    return Problem(
        503,
        "Temporarily unavailable",
        "the bus could not commit the request; nothing was stored. Retry with the same "
        "Idempotency-Key.",
        kind="unavailable",
        headers={"Retry-After": "2"},
    ).response()
