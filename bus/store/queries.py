"""Read side of the store: a dossier's current state and its hop-by-hop history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.store.schema import dossiers, hops, linkage_steps, outbox


async def dossier_with_history(engine: AsyncEngine, code: str) -> dict[str, Any] | None:
    """The dossier's state, its hops in order and its events, or ``None`` when unknown."""
    async with engine.connect() as connection:
        row = (await connection.execute(sa.select(dossiers).where(dossiers.c.code == code))).first()
        if row is None:
            return None
        hop_rows = (
            await connection.execute(
                sa.select(hops).where(hops.c.dossier_code == code).order_by(hops.c.id)
            )
        ).all()
        event_rows = (
            await connection.execute(
                sa.select(
                    outbox.c.event_id,
                    outbox.c.routing_key,
                    outbox.c.created_at,
                    outbox.c.sent_at,
                    outbox.c.attempts,
                    outbox.c.last_error,
                )
                .where(outbox.c.dossier_code == code)
                .order_by(outbox.c.id)
            )
        ).all()
    return {
        "dossier": dict(row._mapping),
        "hops": [dict(h._mapping) for h in hop_rows],
        "events": [dict(e._mapping) for e in event_rows],
    }


async def count_dossiers(engine: AsyncEngine) -> int:
    """How many dossiers the store holds."""
    async with engine.connect() as connection:
        return int(
            (
                await connection.execute(sa.select(sa.func.count()).select_from(dossiers))
            ).scalar_one()
        )


@dataclass(frozen=True, slots=True)
class DossierParties:
    """Who has a hand in a dossier: what decides which clients may read it."""

    receiving_agency: str
    handling_agency: str
    #: The connectors of its linkage run's steps (empty outside a bundle).
    step_connectors: frozenset[str]


async def dossier_parties(engine: AsyncEngine, code: str) -> DossierParties | None:
    """The agencies and step connectors of dossier ``code``, or ``None`` when unknown."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(dossiers.c.receiving_agency, dossiers.c.handling_agency).where(
                    dossiers.c.code == code
                )
            )
        ).first()
        if row is None:
            return None
        steps = await connection.execute(
            sa.select(linkage_steps.c.connector).where(linkage_steps.c.dossier_code == code)
        )
        return DossierParties(row.receiving_agency, row.handling_agency, frozenset(steps.scalars()))
