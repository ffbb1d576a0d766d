"""``/v1/connectors/health``: each connector's deliveries in the last hour, its last success,
the dead letters it left parked, and its health in one word.

Read from the store (:mod:`bus.store.connector_health`), so any API process answers alike; the
word's rule is :mod:`bus.connector_health`'s.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from bus.api.auth import require_read_all
from bus.api.problems import PROBLEM_JSON
from bus.api.stats import clock
from bus.connector_health import HEALTH_WINDOW, Health, health_of
from bus.store.connector_health import connector_activity

__all__ = ["router"]

router = APIRouter(prefix="/v1/connectors", tags=["connectors"])

_PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "Problem details (RFC 9457)"}


class ConnectorHealth(BaseModel):
    """One connector's recent deliveries, from the transaction log and the dead letters."""

    connector: str = Field(description="The connector id")
    health: Health = Field(
        description="idle: no attempt in the window; failing: the newest attempt in the window "
        "failed; ok: it succeeded"
    )
    last_success_at: datetime | None = Field(
        description="The newest delivery the partner applied, however old; null if none"
    )
    last_failure_at: datetime | None = Field(
        description="The newest failed attempt (retried or parked) in the window; null if none"
    )
    delivered: int = Field(description="Deliveries the partner applied in the window")
    failed: int = Field(description="Attempts that failed in the window (retried or parked)")
    retries: int = Field(description="Of those, the attempts sent to a retry tier")
    parked: int = Field(description="Dead letters of the connector still parked, any age")


class ConnectorHealthList(BaseModel):
    """Every connector of the bus (and any that left parked dead letters), by id."""

    as_of: datetime = Field(description="When the window ends (UTC)")
    window_seconds: int = Field(description="How far back the counts look")
    connectors: list[ConnectorHealth]


@router.get(
    "/health",
    response_model=ConnectorHealthList,
    summary="Each connector's deliveries in the last hour and its health",
    responses={403: _PROBLEM},
)
async def connectors_health(
    request: Request,
    _reader: Annotated[object, Depends(require_read_all)],
    now: Annotated[datetime, Depends(clock)],
) -> ConnectorHealthList:
    """Per connector: last success, deliveries, failures and retries in the last hour, dead
    letters still parked, and a health word (ok, failing, idle)."""
    runtime = request.app.state.runtime
    activities = await connector_activity(
        runtime.engine, runtime.registry.ids, since=now - HEALTH_WINDOW
    )
    return ConnectorHealthList(
        as_of=now.astimezone(UTC),
        window_seconds=int(HEALTH_WINDOW.total_seconds()),
        connectors=[
            ConnectorHealth(
                connector=a.connector,
                health=health_of(a),
                last_success_at=a.last_success_at,
                last_failure_at=a.last_failure_at,
                delivered=a.delivered,
                failed=a.failed,
                retries=a.retries,
                parked=a.parked,
            )
            for a in activities
        ],
    )
