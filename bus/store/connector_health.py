"""Read side of connector health: what the transaction log and the dead letters say about each
connector's recent deliveries.

Three statements whatever the number of connectors, each a range on an index: the window's
``deliver`` hops per connector and outcome and the newest success of each connector on
``ix_hops_recipient_kind_done_at``, and the dead letters still parked on
``ix_dead_letters_state_parked_at``. Nothing here scans the whole log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bus.store.schema import dead_letters, hops

__all__ = ["FAILED_OUTCOMES", "ConnectorActivity", "connector_activity"]

#: Outcomes of a ``deliver`` hop that mean the partner was not reached or refused: the message
#: went to a retry tier, or to the parking queue.
FAILED_OUTCOMES: Final = ("retry", "parked")
_DELIVERED: Final = "delivered"
_PARKED: Final = "parked"


@dataclass(frozen=True, slots=True)
class ConnectorActivity:
    """One connector's deliveries as recorded: in the window, and the last success ever."""

    connector: str
    delivered: int  # attempts in the window that the partner applied
    failed: int  # attempts in the window that failed (retried or parked)
    retries: int  # of those, the ones sent to a retry tier
    last_success_at: datetime | None  # newest applied delivery, however old
    last_failure_at: datetime | None  # newest failed attempt in the window
    parked: int  # dead letters of the connector still waiting for an operator


@dataclass(slots=True)
class _Window:
    delivered: int = 0
    failed: int = 0
    retries: int = 0
    last_failure_at: datetime | None = None


async def connector_activity(
    engine: AsyncEngine, connectors: Iterable[str], since: datetime
) -> list[ConnectorActivity]:
    """The activity of ``connectors`` since ``since``, and of any other connector that still has
    parked dead letters (a connector removed from the bus leaves them behind), by id."""
    known = sorted(set(connectors))
    async with engine.connect() as connection:
        parked = {
            row.connector: int(row.parked)
            for row in await connection.execute(
                sa.select(dead_letters.c.connector, sa.func.count().label("parked"))
                .where(dead_letters.c.state == _PARKED, dead_letters.c.connector.is_not(None))
                .group_by(dead_letters.c.connector)
            )
        }
        ids = sorted(set(known) | set(parked))
        if not ids:
            return []
        windows = await _windows(connection, ids, since)
        successes = await _last_successes(connection, ids)
    return [
        ConnectorActivity(
            connector=connector,
            delivered=windows.get(connector, _Window()).delivered,
            failed=windows.get(connector, _Window()).failed,
            retries=windows.get(connector, _Window()).retries,
            last_success_at=successes.get(connector),
            last_failure_at=windows.get(connector, _Window()).last_failure_at,
            parked=parked.get(connector, 0),
        )
        for connector in ids
    ]


async def _windows(
    connection: AsyncConnection, ids: list[str], since: datetime
) -> dict[str, _Window]:
    rows = await connection.execute(
        sa.select(
            hops.c.recipient,
            hops.c.outcome,
            sa.func.count().label("attempts"),
            sa.func.max(hops.c.done_at).label("last_at"),
        )
        .where(hops.c.recipient.in_(ids), hops.c.kind == "deliver", hops.c.done_at >= since)
        .group_by(hops.c.recipient, hops.c.outcome)
    )
    windows: dict[str, _Window] = {}
    for row in rows:
        window = windows.setdefault(row.recipient, _Window())
        attempts = int(row.attempts)
        if row.outcome == _DELIVERED:
            window.delivered += attempts
        elif row.outcome in FAILED_OUTCOMES:
            window.failed += attempts
            window.retries += attempts if row.outcome == "retry" else 0
            last_at: datetime = row.last_at
            if window.last_failure_at is None or last_at > window.last_failure_at:
                window.last_failure_at = last_at
    return windows


async def _last_successes(connection: AsyncConnection, ids: list[str]) -> dict[str, datetime]:
    # One scalar subquery per connector, each walking the index backwards from its newest hop
    # to its newest success; a GROUP BY would read every delivered hop ever recorded.
    newest = [
        sa.select(hops.c.done_at)
        .where(
            hops.c.recipient == connector, hops.c.kind == "deliver", hops.c.outcome == _DELIVERED
        )
        .order_by(hops.c.done_at.desc())
        .limit(1)
        .scalar_subquery()
        .label(f"c{n}")
        for n, connector in enumerate(ids)
    ]
    row = (await connection.execute(sa.select(*newest))).one()
    return {
        connector: value for connector, value in zip(ids, row, strict=True) if value is not None
    }
