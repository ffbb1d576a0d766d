"""The FastAPI application: ingest, dossier state and history, health.

OpenAPI is served at ``/docs``. The lifespan opens the process's runtime (store, broker,
topology, relay) once; every request shares it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from bus.api import alerts, dossiers, events_stream, inbound, stats, subscriptions
from bus.api.problems import Problem, problem_handler, request_validation_handler
from bus.errors import BusError
from bus.ingest import IngestService
from bus.registry import ConnectorRegistry
from bus.runtime import Runtime
from bus.settings import Settings, get_settings
from contracts import load_procedure_catalogue

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, *, registry: ConnectorRegistry | None = None
) -> FastAPI:
    """The bus's HTTP API, configured by ``settings`` (default: the environment)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.open(settings, name="bus-api", registry=registry)
        ingest = IngestService(runtime, load_procedure_catalogue())
        ingest.start()
        app.state.runtime = runtime
        app.state.ingest = ingest
        try:
            yield
        finally:
            await ingest.stop()
            await runtime.close()

    app = FastAPI(
        title="Liên thông bus",
        summary="Inter-agency interoperability bus for provincial one-stop administration",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_exception_handler(Problem, problem_handler)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    app.add_exception_handler(SQLAlchemyError, _unavailable)
    app.add_exception_handler(BusError, _unavailable)
    app.include_router(dossiers.router)
    app.include_router(subscriptions.router)
    app.include_router(events_stream.router)
    app.include_router(inbound.router)
    app.include_router(stats.router)
    app.include_router(alerts.router)

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="The store and the broker are reachable")
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
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    return app


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
