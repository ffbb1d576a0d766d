"""DVCQG sync end to end: each accepted dossier pushed once, then its statuses reported in order.

On the real broker and store: dossiers go in through the API, civil status (its simulator)
registers each birth (status 9), the one-stop desk then returns the result (status 10), and the
dvcqg worker pushes every dossier to the DVCQG simulator (DongBoHoSoMC) and reports every
status change (CapNhatTienDoHoSoMC), while the simulator answers a fifth of all calls with
HTTP 503. Run with ``-s`` to see what went in and what came out.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from bus.api.app import create_app
from bus.connector import (
    CircuitPolicy,
    ConnectorConfig,
    Delivery,
    DeliveryReceipt,
    RetryPolicy,
)
from bus.registry import ConnectorRegistry, RegisteredConnector
from bus.rest import RestClient
from bus.runtime import Runtime
from bus.settings import Settings
from bus.store.database import create_engine
from bus.store.schema import dossiers, hops, outbox
from bus.testing import serve_app
from bus.worker import ConnectorWorker, run_workers
from connectors import civil_status, dvcqg
from contracts import DossierStatus
from tests.conftest import AUTH, FAST_RETRIES, make_settings
from tests.integration.helpers import push_dossiers, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.slow]

DOSSIERS = 20
PASSWORD = "dvcqg-e2e-Secret"
DESK = "one_stop_desk"
DESK_AGENCY = "000.00.10.H12"
SYNC_MAPPING = "dvcqg/1.0/dossier-sync.out"
PROGRESS_MAPPING = "dvcqg/1.0/progress.out"
#: Each dossier's events as DVCQG must hear them: the sync, then status 9, then status 10.
EVENTS_PER_DOSSIER = 3
# Seven attempts, on the test bus's own tiers (so no retry queue outside FAST_RETRIES): a fifth
# of calls failing must not exhaust them, or a dossier would be parked and the counts lie.
# Retried in place (keep_order, as shipped): a failed report holds back the dossier's later ones.
DVCQG_RETRY = RetryPolicy(delays=(FAST_RETRIES[0],) * 2 + (FAST_RETRIES[1],) * 4, keep_order=True)
# The test counts retries, not the circuit breaker: an open circuit would only add waiting.
NO_BREAKER = CircuitPolicy(failure_threshold=10_000)


class ResultDesk:
    """The one-stop desk: hands the registered certificate to the citizen (status 10)."""

    def __init__(self, config: ConnectorConfig) -> None:
        self.config = config

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        delivery.require_change()
        sent_at = datetime.now(UTC)
        await asyncio.sleep(random.uniform(0, 0.01))
        return DeliveryReceipt(
            status=DossierStatus.RESULT_RETURNED,
            sent_at=sent_at,
            answered_at=datetime.now(UTC),
            note="Đã trả kết quả cho công dân",
        )

    async def aclose(self) -> None:
        return None


@dataclass
class Partners:
    """The two simulators behind the bus."""

    civil_url: str
    dvcqg_url: str
    dvcqg: dvcqg.SimulatorState


@pytest.fixture
def partners() -> Iterator[Partners]:
    """Civil status and DVCQG simulators on free loopback ports."""
    portal = dvcqg.SimulatorState(password=PASSWORD, seed=20)
    with (
        serve_app(civil_status.create_simulator_app(civil_status.SimulatorState())) as civil,
        serve_app(dvcqg.create_simulator_app(portal)) as portal_url,
    ):
        yield Partners(civil, portal_url, portal)


@pytest.fixture
def registry(partners: Partners) -> ConnectorRegistry:
    """Civil status, the DVCQG sync and the result desk, pointed at the simulators."""
    civil = ConnectorConfig.from_file(
        civil_status.CivilStatusConnector.default_config, endpoint=partners.civil_url
    )
    sync = ConnectorConfig.from_file(
        dvcqg.DvcqgConnector.default_config, endpoint=partners.dvcqg_url
    ).model_copy(update={"retry": DVCQG_RETRY, "circuit": NO_BREAKER})
    desk = ConnectorConfig(
        id=DESK,
        agency=DESK_AGENCY,
        title="Bộ phận Một cửa (trả kết quả)",
        endpoint="http://127.0.0.1:9",  # type: ignore[arg-type]
        subscribes=("dossier.status.9.#",),
    )
    return ConnectorRegistry(
        [
            RegisteredConnector(civil_status.CivilStatusConnector, civil),
            RegisteredConnector(dvcqg.DvcqgConnector, sync),
            RegisteredConnector(ResultDesk, desk),  # type: ignore[arg-type]
        ]
    )


@pytest.fixture
async def bus(
    namespace: str,
    database_url: str,
    registry: ConnectorRegistry,
    broker_cleanup: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[Settings, httpx.AsyncClient, list[ConnectorWorker]]]:
    """The API over real HTTP and one worker process's connector workers, on one registry."""
    broker_cleanup.append(DESK)
    # Read by the dvcqg connector at its first login, as on a production worker.
    monkeypatch.setenv(dvcqg.PASSWORD_ENV, PASSWORD)
    settings = make_settings(namespace, database_url)
    with serve_app(create_app(settings, registry=registry), lifespan="on") as api:
        runtime = await Runtime.open(settings, name="test-worker", registry=registry)
        workers = await run_workers(runtime)
        try:
            async with httpx.AsyncClient(base_url=api, timeout=30, headers=AUTH) as client:
                yield settings, client, workers
        finally:
            for worker in workers:
                await worker.stop()
            await runtime.close()


@dataclass(frozen=True)
class Ledger:
    """What the store says happened, per dossier."""

    dvcqg_hops: dict[str, Counter[str]]
    mappings: Counter[str]
    status_events: Counter[str]
    statuses: dict[str, int]
    unsent_events: int


async def read_ledger(settings: Settings, codes: set[str]) -> Ledger:
    """The dvcqg hops by outcome, the status events and the final status of each dossier."""
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            hop_rows = await connection.execute(
                sa.select(hops.c.dossier_code, hops.c.outcome, hops.c.mapping_version).where(
                    hops.c.recipient == "dvcqg", hops.c.dossier_code.in_(codes)
                )
            )
            by_dossier: dict[str, Counter[str]] = defaultdict(Counter)
            mappings: Counter[str] = Counter()
            for code, outcome, mapping in hop_rows:
                by_dossier[code][outcome] += 1
                if outcome == "delivered":
                    mappings[mapping] += 1
            events = Counter(
                (
                    await connection.execute(
                        sa.select(outbox.c.dossier_code).where(
                            outbox.c.routing_key.like("dossier.status.%"),
                            outbox.c.dossier_code.in_(codes),
                        )
                    )
                ).scalars()
            )
            status_rows = await connection.execute(
                sa.select(dossiers.c.code, dossiers.c.status).where(dossiers.c.code.in_(codes))
            )
            statuses = {row.code: row.status for row in status_rows}
            unsent = (
                await connection.execute(
                    sa.select(sa.func.count()).where(outbox.c.sent_at.is_(None))
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    return Ledger(dict(by_dossier), mappings, events, statuses, int(unsent))


def _settled(hop_outcomes: Counter[str]) -> int:
    """Events of one dossier the dvcqg worker is done with (told, skipped, or given up on)."""
    return hop_outcomes["delivered"] + hop_outcomes["superseded"] + hop_outcomes["parked"]


async def lookup(url: str, codes: set[str]) -> dict[str, dict[str, Any]]:
    """What DVCQG holds for each dossier, read back with TraCuuHoSo."""
    config = ConnectorConfig.from_file(dvcqg.DvcqgConnector.default_config, endpoint=url)
    client = RestClient(config, environ={dvcqg.PASSWORD_ENV: PASSWORD})
    try:
        held = {}
        for code in sorted(codes):
            reply = await client.request(
                "POST",
                dvcqg.SERVICE_PATH,
                json={"madonvi": DESK_AGENCY, "service": dvcqg.LOOKUP, "MaHoSo": code},
            )
            held[code] = reply.body["data"]
        return held
    finally:
        await client.aclose()


async def test_every_dossier_synced_once_and_its_statuses_reported_in_order(
    bus: tuple[Settings, httpx.AsyncClient, list[ConnectorWorker]], partners: Partners
) -> None:
    """Through 503s and retries, DVCQG gets each dossier once and its progress in order."""
    settings, client, workers = bus
    portal = partners.dvcqg
    portal.set_faults(dvcqg.SimulatorFaults(error_rate=0.2))

    pushed = await push_dossiers(client, range(1, DOSSIERS + 1))
    assert len(pushed.accepted) == DOSSIERS and not pushed.refused, pushed.refused
    codes = pushed.accepted

    async def settled() -> Ledger | None:
        ledger = await read_ledger(settings, codes)
        done = all(
            _settled(ledger.dvcqg_hops.get(code, Counter())) == EVENTS_PER_DOSSIER for code in codes
        )
        return ledger if done and ledger.unsent_events == 0 else None

    ledger: Ledger = await wait_for(settled, timeout=90)
    portal.set_faults(dvcqg.SimulatorFaults())  # the read-back below must not meet a 503
    held = await lookup(partners.dvcqg_url, codes)
    stats = portal.stats()

    # In: every dossier accepted, registered (9), its result returned (10): two status events.
    assert set(ledger.statuses.values()) == {int(DossierStatus.RESULT_RETURNED)}
    assert ledger.status_events == Counter(dict.fromkeys(codes, 2))
    # Out: no event given up on, and the 503s were really met and retried.
    parked = {code: c["parked"] for code, c in ledger.dvcqg_hops.items() if c["parked"]}
    assert not parked, f"dvcqg parked events of {parked}"
    assert stats["unavailable"] > 0
    retries = sum(c["retry"] for c in ledger.dvcqg_hops.values())
    assert retries >= stats["unavailable"]  # each 503, at login or call, fails one attempt

    # DongBoHoSoMC once per dossier: kept once, never pushed again, never replaced.
    assert sorted(stats["synced_codes"]) == sorted(codes)
    assert (stats["synced"], stats["duplicates"], stats["updated"]) == (DOSSIERS, 0, 0)
    assert ledger.mappings[SYNC_MAPPING] == DOSSIERS

    # Every step, in sequence order, no duplicates: a retried 9 held back its 10, so none was
    # overtaken and skipped as superseded.
    for code in codes:
        steps = held[code]["DanhSachTienDo"]
        told = [step["TrangThai"] for step in steps]
        assert told == [9, 10], f"{code}: DVCQG was told {told}"
        assert ledger.dvcqg_hops[code]["superseded"] == 0
        times = [step["ThoiDiemXuLy"] for step in steps]
        assert times == sorted(times), f"{code}: progress times out of order: {times}"
        assert held[code]["TrangThaiHoSo"] == 10
        assert held[code]["DonViXuLy"] == DESK_AGENCY
    assert stats["steps"] == ledger.mappings[PROGRESS_MAPPING] == 2 * DOSSIERS

    dvcqg_worker = next(w for w in workers if w.connector_id == "dvcqg")
    assert dvcqg_worker.counts["parked"] == 0
    print(
        f"\n  in: {DOSSIERS} dossiers answered 202, {sum(ledger.status_events.values())} status "
        f"events committed"
        f"\n  out: {stats['synced']} DongBoHoSoMC kept once each, {stats['steps']} progress steps "
        f"in order, 0 superseded, 0 duplicates, 0 parked"
        f"\n  faults: {stats['unavailable']} calls answered 503, {retries} retries, "
        f"{stats['logins']} logins"
    )
