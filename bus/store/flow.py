"""Read side of the day's flow: how many dossiers each desk received on a local day, by
receiving agency, handling agency and current status.

One grouped statement over the receipt-time index (``ix_dossiers_received_at``): the day is a
range of instants, never a function applied to every row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.store.schema import dossiers
from contracts import VN_TZ

__all__ = ["FlowCount", "day_bounds", "received_on"]


@dataclass(frozen=True, slots=True)
class FlowCount:
    """Dossiers received on the day that share a receiving agency, handling agency and status."""

    receiving_agency: str
    handling_agency: str
    status: int
    dossiers: int


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """Local midnight at the start of ``day`` and the one after it, Asia/Ho_Chi_Minh."""
    start = datetime.combine(day, time.min, tzinfo=VN_TZ)
    return start, datetime.combine(day + timedelta(days=1), time.min, tzinfo=VN_TZ)


async def received_on(engine: AsyncEngine, day: date) -> list[FlowCount]:
    """The dossiers received on local ``day``, counted per (receiving, handling, status)."""
    start, end = day_bounds(day)
    count = sa.func.count().label("dossiers")
    statement = (
        sa.select(dossiers.c.receiving_agency, dossiers.c.handling_agency, dossiers.c.status, count)
        .where(dossiers.c.received_at >= start, dossiers.c.received_at < end)
        .group_by(dossiers.c.receiving_agency, dossiers.c.handling_agency, dossiers.c.status)
        .order_by(dossiers.c.receiving_agency, dossiers.c.handling_agency, dossiers.c.status)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(statement)).all()
    return [
        FlowCount(
            receiving_agency=row.receiving_agency,
            handling_agency=row.handling_agency,
            status=int(row.status),
            dossiers=int(row.dossiers),
        )
        for row in rows
    ]
