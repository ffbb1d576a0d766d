"""Where a dossier's time went between its POST and its status event, split at the marks the
store keeps of every hop.

The load generator knows when it sent each dossier and when the subscriber got its status event;
the store's transaction log (``hops``) knows, for the ingest hop, when the API began handling the
request, when it had validated it and when the group commit wrote it, and, for the delivery hop,
when the worker received the message, sent it to the partner, had the answer and wrote the
outcome. Laid end to end these marks split the latency into segments that add up to it:

===========  =====================================================================
request      POST → the API's handler starts (client, connection, HTTP parsing, auth)
validate     → validated and mapped into the dossier's event (``answered_at``)
commit       → written by the group commit (waiting for the batch before it, then writing)
to worker    → received by the worker: the commit's fsync, the relay's publish, the broker
prepare      → sent to the partner: the dossier's turn, the dedup check, mapping, envelope
partner      → the partner's answer
record       → the worker's group commit wrote the outcome
announce     → the subscriber received the status event: commit, relay, broker
===========  =====================================================================

The store's marks are wall-clock times, so the load's sends and receipts are taken by the wall
clock too: all processes of one machine read the same one.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.bench.ceiling import percentile
from bus.store.schema import hops

__all__ = ["SEGMENTS", "Segment", "split"]

#: The segments in the order a dossier goes through them, with what each one holds.
SEGMENTS: Final = (
    ("request", "POST → the API's handler starts"),
    ("validate", "→ validated, its event made"),
    ("commit", "→ written by the API's group commit"),
    ("to worker", "→ received by the worker (fsync, relay, broker)"),
    ("prepare", "→ sent to the partner (turn, dedup, mapping)"),
    ("partner", "→ the partner's answer"),
    ("record", "→ outcome written by the worker's group commit"),
    ("announce", "→ status event at the subscriber (fsync, relay, broker)"),
)
#: The share of the slowest dossiers whose segments are averaged: the tail that p99 speaks of.
TAIL: Final = 0.01


@dataclass(frozen=True)
class Segment:
    """One segment's durations over a load's dossiers, in milliseconds."""

    name: str
    what: str
    p50_ms: float
    p99_ms: float
    #: Its mean over the slowest :data:`TAIL` of dossiers (by the whole latency): what they
    #: spent here, so that the segments' tails add up to the tail's latency.
    tail_ms: float


async def split(
    engine: AsyncEngine,
    sent_wall_ns: Mapping[str, int],
    received_wall_ns: Mapping[str, int],
) -> list[Segment]:
    """The segments of every dossier that has both hops and a status event, summarised; sends
    and receipts are wall-clock nanoseconds."""
    if not sent_wall_ns:
        return []
    first = min(sent_wall_ns.values()) / 1e9
    marks = await _marks(engine, set(sent_wall_ns), since=datetime.fromtimestamp(first, UTC))
    timelines: list[list[float]] = []
    for code, sent in sent_wall_ns.items():
        if code not in received_wall_ns or code not in marks:
            continue
        points = [
            sent / 1e6,
            *(mark.timestamp() * 1000 for mark in marks[code]),
            received_wall_ns[code] / 1e6,
        ]
        timelines.append([later - earlier for earlier, later in itertools.pairwise(points)])
    if not timelines:
        return []
    timelines.sort(key=sum)
    tail = timelines[-max(1, round(len(timelines) * TAIL)) :]
    return [
        Segment(
            name=name,
            what=what,
            p50_ms=percentile([t[index] for t in timelines], 0.50),
            p99_ms=percentile([t[index] for t in timelines], 0.99),
            tail_ms=sum(t[index] for t in tail) / len(tail),
        )
        for index, (name, what) in enumerate(SEGMENTS)
    ]


async def _marks(
    engine: AsyncEngine, codes: set[str], *, since: datetime
) -> dict[str, list[datetime]]:
    """Per dossier: the ingest hop's three marks, then the delivery hop's four."""
    ingested: dict[str, list[datetime]] = {}
    delivered: dict[str, list[datetime]] = {}
    query = sa.select(
        hops.c.dossier_code,
        hops.c.kind,
        hops.c.received_at,
        hops.c.sent_at,
        hops.c.answered_at,
        hops.c.done_at,
    ).where(
        # The hops written since the load began; its codes are picked out below rather than
        # bound as a list of thousands.
        hops.c.done_at >= since,
        ((hops.c.kind == "ingest") & (hops.c.outcome == "accepted"))
        | ((hops.c.kind == "deliver") & (hops.c.outcome == "delivered")),
    )
    async with engine.connect() as connection:
        for code, kind, received, sent, answered, done in await connection.execute(query):
            if code not in codes:
                continue
            if kind == "ingest" and received and answered:
                ingested[code] = [received, answered, done]
            elif kind == "deliver" and received and sent and answered:
                delivered[code] = [received, sent, answered, done]
    return {code: ingested[code] + delivered[code] for code in ingested.keys() & delivered.keys()}
