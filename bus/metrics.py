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
from typing import Final

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.store.figures import StoreFigures, read_store_figures

__all__ = [
    "CIRCUIT_OPEN",
    "DELIVERIES",
    "DOSSIERS_ACCEPTED",
    "HOP_SECONDS",
    "PARTNER_CALL_SECONDS",
    "PARTNER_CLIENTS_REPLACED",
    "StoreCollector",
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
PARTNER_CLIENTS_REPLACED: Final = Counter(
    "bus_partner_clients_replaced",
    "HTTP clients to a partner closed and made anew after a cancelled call or a stuck slot",
    ["connector"],
)


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
