"""The circuit breaker on the real broker: a partner goes down, the worker stops, probes, resumes.

The civil-status simulator is switched off and on over HTTP, as an operator would, and every
call it receives is counted there; what the bus did is read from the broker (queue depths,
consumers) and the store (hops, status events).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

import aio_pika
import httpx
import pytest
import sqlalchemy as sa

from bus.circuit import CircuitState
from bus.connector import CircuitPolicy, RetryPolicy
from bus.registry import ConnectorRegistry, RegisteredConnector
from bus.runtime import Runtime
from bus.settings import Settings
from bus.store.database import create_engine
from bus.store.schema import hops
from bus.topology import Names
from bus.worker import ConnectorWorker
from contracts import sample_birth_dossier_json
from tests.conftest import AMQP_URL, FAST_RETRIES
from tests.integration.conftest import Simulator
from tests.integration.helpers import assert_exactly_once, wait_for, wait_until_applied

pytestmark = pytest.mark.broker

THRESHOLD = 3
OPEN_SECONDS = 3.0
#: Connector call timeout in the "timeout" scenario: well under OPEN_SECONDS.
CALL_TIMEOUT = 0.4
#: Long enough for the calls in flight when the circuit opened to have ended.
SETTLE = CALL_TIMEOUT + 0.4
DOSSIERS = 12
#: Retries to spare, so that no dossier is parked for meeting the failing partner a few times.
#: Only the bus's own test tiers are used, so no retry queue outlives the test (broker_cleanup
#: deletes exactly those tiers).
RETRIES = (0.2, 0.4, 0.4, 0.4, 0.4, 0.4)
assert set(RETRIES) <= set(FAST_RETRIES)

Down = Literal["fault", "timeout"]


@dataclass
class Partner:
    """The civil-status simulator driven over real HTTP: its failure switches and call count."""

    client: httpx.AsyncClient

    async def go_down(self, how: Down) -> None:
        """Answer every call with a soap:Server fault (HTTP 500), or hang until the caller quits."""
        faults = {"error_rate": 1.0} if how == "fault" else {"hang": True, "hang_seconds": 60}
        (await self.client.post("/_sim/faults", json=faults)).raise_for_status()

    async def come_back(self) -> None:
        """Switch every fault off."""
        (await self.client.post("/_sim/faults", json={})).raise_for_status()

    async def calls(self) -> int:
        """SOAP calls received so far, whatever their outcome."""
        answer = await self.client.get("/_sim/stats")
        answer.raise_for_status()
        return int(answer.json()["requests"])


@pytest.fixture
async def partner(simulator: Simulator) -> AsyncIterator[Partner]:
    """The simulator's control surface over loopback HTTP."""
    async with httpx.AsyncClient(base_url=simulator.url, timeout=10) as client:
        yield Partner(client)


def _registry(simulator: Simulator, *, concurrency: int) -> ConnectorRegistry:
    """The registered connectors, civil status with a fast breaker, short timeout, many retries."""
    discovered = ConnectorRegistry.discover({"civil_status": simulator.url})
    registered = []
    for connector_id in discovered.ids:
        entry = discovered.get(connector_id)
        if connector_id == "civil_status":
            config = entry.config.model_copy(
                update={
                    "circuit": CircuitPolicy(
                        failure_threshold=THRESHOLD, open_seconds=OPEN_SECONDS
                    ),
                    "retry": RetryPolicy(delays=RETRIES),
                    "timeout_seconds": CALL_TIMEOUT,
                    "concurrency": concurrency,
                }
            )
            entry = RegisteredConnector(entry.factory, config)
        registered.append(entry)
    return ConnectorRegistry(registered)


@dataclass(frozen=True)
class QueueState:
    """A queue's ready messages and consumers, as the broker reports them."""

    messages: int
    consumers: int


async def _queue_state(channel: aio_pika.abc.AbstractChannel, name: str) -> QueueState:
    queue = await channel.declare_queue(name, passive=True)
    result = queue.declaration_result
    return QueueState(int(result.message_count or 0), int(result.consumer_count or 0))


async def _until(predicate: Callable[[], bool], timeout: float = 20.0) -> float:
    """Wait until ``predicate()`` holds (checked every 5 ms); return when it first did."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)
    return time.monotonic()


async def _calls_until(
    partner: Partner, done: Callable[[int], bool], timeout: float
) -> tuple[int, float]:
    """Poll the partner's call count until ``done(count)``; the count and when it was seen."""
    deadline = time.monotonic() + timeout
    while True:
        count = await partner.calls()
        if done(count):
            return count, time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"partner call count stuck at {count}")
        await asyncio.sleep(0.02)


async def _deliver_hops(settings: Settings) -> list[dict[str, Any]]:
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                sa.select(hops.c.dossier_code, hops.c.outcome, hops.c.attempt).where(
                    hops.c.kind == "deliver"
                )
            )
            return [dict(row._mapping) for row in rows]
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("down", "concurrency"),
    [
        pytest.param("fault", 1, id="server-fault-sequential"),
        pytest.param("timeout", 4, id="timeout-4-in-flight"),
    ],
)
async def test_an_open_circuit_stops_consuming_probes_once_and_loses_nothing(
    settings: Settings,
    api: str,
    client: httpx.AsyncClient,
    simulator: Simulator,
    partner: Partner,
    down: Down,
    concurrency: int,
) -> None:
    """The circuit opens after THRESHOLD failures, holds the queue unspent, probes, resumes.

    While it is open no call reaches the partner and every dossier waits in the connector's
    queue with no consumer; after OPEN_SECONDS exactly one probe is made; a failed probe opens
    it again; a good one lets every dossier through exactly once, with no attempt spent by the
    wait and nothing parked.
    """
    runtime = await Runtime.open(
        settings, name="test-circuit", registry=_registry(simulator, concurrency=concurrency)
    )
    worker = ConnectorWorker(runtime, runtime.registry.get("civil_status"))
    names = Names(settings.namespace)
    connection = await aio_pika.connect(AMQP_URL)
    started = False
    try:
        channel = await connection.channel()
        queue = names.connector_queue("civil_status")
        await partner.go_down(down)
        codes: set[str] = set()
        for sequence in range(1, DOSSIERS + 1):
            body = sample_birth_dossier_json(sequence=sequence)
            answer = await client.post("/v1/dossiers", json=body)
            assert answer.status_code == 202, answer.text
            codes.add(str(body["code"]))
        # A backlog meets the failing partner: the worker gets every dossier in hand at once.
        await wait_for(lambda: _all_waiting(channel, queue))
        await worker.start()
        started = True

        # 1. THRESHOLD failures open the circuit. Calls admitted before it opened may still be
        # in flight (at most one per partner slot); once they have ended, the count is frozen.
        opened_at = await _until(lambda: worker.circuit.opened == 1)
        await asyncio.sleep(SETTLE)
        before_probe = await partner.calls()
        assert THRESHOLD <= before_probe <= THRESHOLD + concurrency - 1

        # 2. While open: no consumer on the queue, every dossier back in it (deferred ones came
        # back through a retry tier), nothing parked, and not one call to the partner.
        waiting = await wait_for(
            lambda: _all_waiting(channel, queue),
            timeout=OPEN_SECONDS - (time.monotonic() - opened_at),
        )
        assert waiting == QueueState(messages=DOSSIERS, consumers=0)
        assert (await _queue_state(channel, names.parking)).messages == 0

        # 3. After OPEN_SECONDS one probe, which fails: the circuit opens again, the count holds.
        probed, probed_at = await _calls_until(partner, lambda n: n > before_probe, timeout=10)
        assert probed == before_probe + 1, "more than one probe call"
        assert probed_at - opened_at >= OPEN_SECONDS - 0.05, "probed before the pause was over"
        reopened_at = await _until(lambda: worker.circuit.opened == 2)
        await asyncio.sleep(SETTLE)
        assert await partner.calls() == before_probe + 1
        assert await wait_for(
            lambda: _all_waiting(channel, queue),
            timeout=OPEN_SECONDS - (time.monotonic() - reopened_at),
        ) == QueueState(messages=DOSSIERS, consumers=0)

        # 4. The partner comes back: after the second pause the probe succeeds, the flow resumes.
        await partner.come_back()
        _, resumed_at = await _calls_until(partner, lambda n: n > before_probe + 1, timeout=10)
        assert resumed_at - reopened_at >= OPEN_SECONDS - 0.05, "probed before the pause was over"
        await wait_until_applied(simulator.state, codes, timeout=30)
        await assert_exactly_once(settings, simulator.state, codes)
        assert worker.circuit.opened == 2 and worker.circuit.state is CircuitState.CLOSED
        # Every call the partner got is accounted for: the failures, then one per dossier.
        assert await partner.calls() == before_probe + 1 + DOSSIERS
        assert worker.counts["parked"] == 0 and worker.counts["deferred"] > 0
        assert (await _queue_state(channel, names.parking)).messages == 0

        # Waiting spent no attempt: a dossier's delivered hop counts only its own failed calls.
        recorded = await _deliver_hops(settings)
        failed = Counter(h["dossier_code"] for h in recorded if h["outcome"] == "retry")
        assert sum(failed.values()) == before_probe + 1
        delivered = {
            h["dossier_code"]: h["attempt"] for h in recorded if h["outcome"] == "delivered"
        }
        assert delivered == {code: 1 + failed[code] for code in codes}
        assert not [h for h in recorded if h["outcome"] == "parked"]
    finally:
        if started:
            await worker.stop()
        await connection.close()
        await runtime.close()


async def _all_waiting(channel: aio_pika.abc.AbstractChannel, queue: str) -> QueueState | None:
    state = await _queue_state(channel, queue)
    return state if state.messages == DOSSIERS and state.consumers == 0 else None
