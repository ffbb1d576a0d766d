"""Prometheus metrics: what each process counts, and what the store says at scrape time.

Counted where it happens, in the process it happens in (prometheus_client, per process):

* ``bus_dossiers_accepted_total{procedure}``: dossiers the API accepted (ingest);
* ``bus_deliveries_total{connector, procedure, outcome}``: each message a worker settled, by
  outcome: delivered, retried, parked, deferred (circuit open), duplicate, superseded;
* ``bus_partner_call_seconds{connector}``: the partner's time (sent → answered) per delivery;
* ``bus_hop_seconds{connector}``: received by the worker → outcome recorded, per delivery;
* ``bus_circuit_open{connector}``: 1 while a connector's circuit is open (its worker paused).

Read from the store when ``/metrics`` is scraped (:class:`StoreCollector`, in the API process;
kept a few seconds, so that several scrapers cost one query round):

* ``bus_dossiers{status}``: dossiers by status; ``bus_dossiers_overdue``: open past their due;
* ``bus_dead_letters{connector}``: dead letters still parked, per connector;
* ``bus_outbox_pending`` and ``bus_outbox_lag_seconds``: events not yet confirmed by the broker,
  and the age of the oldest one (the relay's lag).

Workers have no HTTP API: each serves its own ``/metrics`` on ``BUS_WORKER_METRICS_PORT`` when
it is set (one port per worker process; ``bus run`` gives each worker one).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import sqlalchemy as sa
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.store.schema import dead_letters, dossiers, outbox
from contracts import OPEN_STATUSES

__all__ = [
    "CIRCUIT_OPEN",
    "DELIVERIES",
    "DOSSIERS_ACCEPTED",
    "HOP_SECONDS",
    "PARTNER_CALL_SECONDS",
    "StoreCollector",
    "StoreFigures",
    "read_store_figures",
]

#: Seconds: from a fast partner on loopback (a few ms) to one at its timeout.
_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Label of messages that carry no procedure (status events handed to a consumer).
NO_PROCEDURE: Final = "-"

DOSSIERS_ACCEPTED: Final = Counter(
    "bus_dossiers_accepted", "Dossiers accepted by the API", ["procedure"]
)
DELIVERIES: Final = Counter(
    "bus_deliveries",
    "Messages a worker settled, by outcome (delivered, retried, parked, deferred, duplicate, "
    "superseded)",
    ["connector", "procedure", "outcome"],
)
PARTNER_CALL_SECONDS: Final = Histogram(
    "bus_partner_call_seconds",
    "The partner's time per delivery: sent to answered",
    ["connector"],
    buckets=_BUCKETS,
)
HOP_SECONDS: Final = Histogram(
    "bus_hop_seconds",
    "One delivery hop: received by the worker to its outcome recorded",
    ["connector"],
    buckets=_BUCKETS,
)
CIRCUIT_OPEN: Final = Gauge(
    "bus_circuit_open", "1 while the connector's circuit is open (its worker paused)", ["connector"]
)


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


class StoreCollector(Collector):
    """Adds the store's figures to a scrape; :meth:`refresh` reads them (kept ``max_age``
    seconds, so that several scrapers cost one query round)."""

    def __init__(self, engine: AsyncEngine, *, max_age: float = 5.0) -> None:
        self._engine = engine
        self._max_age = max_age
        self._figures: StoreFigures | None = None
        self._read_at = -float("inf")

    async def refresh(self) -> None:
        """Read the figures now, if the kept ones are too old."""
        if time.monotonic() - self._read_at < self._max_age:
            return
        self._figures = await read_store_figures(self._engine)
        self._read_at = time.monotonic()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        figures = self._figures
        if figures is None:
            return
        statuses = GaugeMetricFamily("bus_dossiers", "Dossiers by status", labels=["status"])
        for status, count in sorted(figures.by_status.items()):
            statuses.add_metric([str(status)], count)
        yield statuses
        yield GaugeMetricFamily(
            "bus_dossiers_overdue", "Open dossiers past their due date", value=figures.overdue
        )
        parked = GaugeMetricFamily(
            "bus_dead_letters", "Dead letters still parked", labels=["connector"]
        )
        for connector, count in sorted(figures.parked.items()):
            parked.add_metric([connector], count)
        yield parked
        yield GaugeMetricFamily(
            "bus_outbox_pending",
            "Events not yet confirmed by the broker",
            value=figures.outbox_pending,
        )
        yield GaugeMetricFamily(
            "bus_outbox_lag_seconds",
            "Age of the oldest event not yet confirmed by the broker",
            value=figures.outbox_lag_seconds,
        )
