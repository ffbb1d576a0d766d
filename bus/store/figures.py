"""What the store says about the bus at one moment: dossiers by status, overdue ones, dead
letters still parked per connector, and the outbox's lag (read by ``/metrics`` and
``bus status``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.store.schema import dead_letters, dossiers, outbox
from contracts import OPEN_STATUSES

__all__ = ["StoreFigures", "read_store_figures"]


@dataclass(frozen=True)
class StoreFigures:
    """What the store says at one moment."""

    by_status: dict[int, int] = field(default_factory=dict)
    overdue: int = 0
    parked: dict[str, int] = field(default_factory=dict)
    outbox_pending: int = 0
    outbox_lag_seconds: float = 0.0


async def read_store_figures(engine: AsyncEngine, now: datetime | None = None) -> StoreFigures:
    """Dossiers by status, overdue ones, parked dead letters per connector, the outbox's lag."""
    now = now or datetime.now(UTC)
    async with engine.connect() as connection:
        by_status = {
            int(status): int(count)
            for status, count in await connection.execute(
                sa.select(dossiers.c.status, sa.func.count()).group_by(dossiers.c.status)
            )
        }
        overdue = (
            await connection.execute(
                sa.select(sa.func.count())
                .select_from(dossiers)
                .where(
                    dossiers.c.status.in_([int(s) for s in OPEN_STATUSES]),
                    dossiers.c.due_at < now,
                )
            )
        ).scalar_one()
        parked = {
            str(connector or "?"): int(count)
            for connector, count in await connection.execute(
                sa.select(dead_letters.c.connector, sa.func.count())
                .where(dead_letters.c.state == "parked")
                .group_by(dead_letters.c.connector)
            )
        }
        pending, oldest = (
            await connection.execute(
                sa.select(sa.func.count(), sa.func.min(outbox.c.created_at)).where(
                    outbox.c.sent_at.is_(None)
                )
            )
        ).one()
    lag = 0.0
    if oldest is not None:
        oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
        lag = max(0.0, (now - oldest).total_seconds())
    return StoreFigures(by_status, int(overdue), parked, int(pending), lag)
