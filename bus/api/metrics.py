"""``GET /metrics``: the API process's counters and the store's figures, for Prometheus.

Monitoring clients (``metrics: true`` in the client directory) and operators may read it; scrape
it with the client's key (``authorization`` or an ``X-API-Key`` header in the scrape config).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from bus.api.auth import require_metrics
from bus.api.problems import PROBLEM_JSON
from bus.metrics import StoreCollector
from bus.security.clients import AgencyClient

router = APIRouter(tags=["health"])

_PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "Problem details (RFC 9457)"}


def store_registry(request: Request) -> tuple[CollectorRegistry, StoreCollector]:
    """This app's registry of store figures (one per app: the process's own counters live in
    prometheus_client's global registry, which several apps of one process share)."""
    state = request.app.state
    if getattr(state, "store_metrics", None) is None:
        registry = CollectorRegistry(auto_describe=False)
        collector = StoreCollector(state.runtime.engine)
        registry.register(collector)
        state.store_metrics = (registry, collector)
    found: tuple[CollectorRegistry, StoreCollector] = state.store_metrics
    return found


@router.get(
    "/metrics",
    summary="Prometheus metrics: messages, latencies, dossiers by status, dead letters, lag",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
        403: _PROBLEM,
    },
)
async def metrics(
    request: Request, _caller: Annotated[AgencyClient, Depends(require_metrics)]
) -> Response:
    """The process's counters and histograms, then the store's figures (read at most every
    few seconds)."""
    registry, collector = store_registry(request)
    await collector.refresh()
    body = generate_latest(REGISTRY) + generate_latest(registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
