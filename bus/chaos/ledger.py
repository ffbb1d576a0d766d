"""What the store says happened to each dossier: the bus's side of "nothing lost, nothing twice".

Read by the fault suite after each scenario and by the integration tests; the partner's side
(what it applied) comes from its simulator's ``/_sim/stats``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.store.dead_letters import PARKED
from bus.store.schema import dead_letters, dossiers, hops, outbox

#: "Processed" (trả kết quả): where a birth registration ends when the partner registered it.
FINAL_STATUS = 9


@dataclass(frozen=True)
class Ledger:
    """Per dossier, what the bus committed: delivered hops, status events and dead letters."""

    #: How many of the dossiers asked about stand at the final status.
    processed: int
    delivered_hops: Counter[str]
    status_events: Counter[str]
    #: Events of the whole store still waiting for a publisher confirm.
    unsent_events: int
    #: Dead letters still parked, per dossier: "<error class> <fault code>: <reason>".
    parked: dict[str, list[str]] = field(default_factory=dict)
    #: The dossiers asked about that stand at the final status.
    finished: set[str] = field(default_factory=set)


async def read_ledger(engine: AsyncEngine, codes: Iterable[str]) -> Ledger:
    """Count, per dossier, the delivered hops, status events and dead letters in the store.

    The codes only narrow ``processed``: the counters cover the whole store, which is a test's
    or a scenario's own, so that something done for a dossier nobody accepted shows too.
    """
    wanted = set(codes)
    async with engine.connect() as connection:
        # Whole columns, intersected here: an IN list of 10,000 codes is a statement to avoid.
        final = set(
            (
                await connection.execute(
                    sa.select(dossiers.c.code).where(dossiers.c.status == FINAL_STATUS)
                )
            ).scalars()
        )
        delivered = Counter(
            (
                await connection.execute(
                    sa.select(hops.c.dossier_code).where(
                        hops.c.kind == "deliver", hops.c.outcome == "delivered"
                    )
                )
            ).scalars()
        )
        status_events = Counter(
            (
                await connection.execute(
                    sa.select(outbox.c.dossier_code).where(
                        outbox.c.routing_key.like("dossier.status.%")
                    )
                )
            ).scalars()
        )
        unsent = (
            await connection.execute(sa.select(sa.func.count()).where(outbox.c.sent_at.is_(None)))
        ).scalar_one()
        parked: dict[str, list[str]] = {}
        for code, error_class, fault_code, reason in await connection.execute(
            sa.select(
                dead_letters.c.dossier_code,
                dead_letters.c.error_class,
                dead_letters.c.fault_code,
                dead_letters.c.reason,
            ).where(dead_letters.c.state == PARKED)
        ):
            parked.setdefault(code or "", []).append(f"{error_class} {fault_code}: {reason}")
    finished = final & wanted
    return Ledger(len(finished), delivered, status_events, int(unsent), parked, finished)
