"""Faults injected for real against the local RabbitMQ: nothing accepted is lost or applied twice.

Each test counts what went in (dossiers answered 202) and what came out (registrations at the
partner simulator, delivered hops and status events in the store).
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import httpx
import pytest

from bus.api.app import create_app
from bus.runtime import Runtime
from bus.settings import Settings
from bus.testing import TcpProxy, serve_app
from bus.topology import Names
from bus.worker import run_workers
from contracts import sample_birth_dossier_json
from tests.conftest import ALL_BUNDLES, AMQP_URL, AUTH, make_settings
from tests.integration.conftest import BIRTH_CONNECTORS, LinkagePartners, Simulator
from tests.integration.helpers import (
    assert_exactly_once,
    push_dossiers,
    read_ledger,
    wait_until_applied,
    worker_process,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.fixture
def broker_link() -> Iterator[TcpProxy]:
    """A cuttable link between the bus and RabbitMQ."""
    target = urlsplit(AMQP_URL)
    with TcpProxy(target.hostname or "127.0.0.1", target.port or 5672) as proxy:
        yield proxy


async def test_cutting_the_broker_link_during_ingest_loses_nothing(
    namespace: str,
    sqlite_url: str,
    simulator: Simulator,
    broker_cleanup: list[str],
    broker_link: TcpProxy,
) -> None:
    """Every dossier answered 202 while the broker link is cut twice is delivered exactly once."""
    url = f"amqp://guest:guest@127.0.0.1:{broker_link.port}/"
    settings = make_settings(
        namespace,
        sqlite_url,
        amqp_url=url,
        publish_timeout=2.0,
        connector_endpoints={"civil_status": simulator.url},
    )
    with serve_app(create_app(settings), lifespan="on") as api:
        runtime = await Runtime.open(settings, name="test-worker")
        workers = await run_workers(runtime, ["civil_status"])
        cuts: list[asyncio.Task[None]] = []

        async def cut_for(seconds: float) -> None:
            await asyncio.to_thread(broker_link.cut)
            await asyncio.sleep(seconds)
            broker_link.restore()

        def on_accepted(count: int) -> None:
            if count in (80, 220):
                cuts.append(asyncio.get_running_loop().create_task(cut_for(2.5)))

        try:
            async with httpx.AsyncClient(base_url=api, timeout=30, headers=AUTH) as client:
                pushed = await push_dossiers(
                    client, range(1, 301), concurrency=8, on_accepted=on_accepted
                )
            await asyncio.gather(*cuts)
            assert len(cuts) == 2
            assert len(pushed.accepted) == 300, pushed.refused
            await wait_until_applied(simulator.state, pushed.accepted, timeout=120)
            await assert_exactly_once(settings, simulator.state, pushed.accepted)
            assert broker_link.connections >= 4  # both processes reconnected after each cut
        finally:
            for worker in workers:
                await worker.stop()
            await runtime.close()


@pytest.fixture
def settings(
    namespace: str, sqlite_url: str, simulator: Simulator, broker_cleanup: list[str]
) -> Settings:
    """Settings of a bus whose civil-status connector points at the simulator."""
    return make_settings(namespace, sqlite_url, connector_endpoints={"civil_status": simulator.url})


async def test_a_worker_killed_mid_stream_loses_and_repeats_nothing(
    settings: Settings, simulator: Simulator, tmp_path: Path
) -> None:
    """SIGKILL of the worker while 1,000 dossiers flow: all 1,000 delivered, none applied twice."""
    with serve_app(create_app(settings), lifespan="on") as api:
        first = await asyncio.to_thread(worker_process, settings, tmp_path / "worker.log")
        killed = asyncio.Event()

        async def kill_when_busy() -> None:
            # The count lives in the simulator's thread: polling is the only way to watch it.
            while simulator.state.stats()["applied"] < 150:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.wait)
            killed.set()

        killer = asyncio.create_task(kill_when_busy())
        async with httpx.AsyncClient(base_url=api, timeout=30, headers=AUTH) as client:
            pushed = await push_dossiers(client, range(1, 1001), concurrency=16)
        await asyncio.wait_for(killer, 60)
        assert killed.is_set() and first.returncode == -signal.SIGKILL
        applied_at_kill = simulator.state.stats()["applied"]
        assert applied_at_kill < 1000, "the worker finished before it could be killed"

        second = await asyncio.to_thread(worker_process, settings, tmp_path / "worker.log")
        try:
            assert len(pushed.accepted) == 1000, pushed.refused
            await wait_until_applied(simulator.state, pushed.accepted, timeout=180)
            await assert_exactly_once(settings, simulator.state, pushed.accepted)
        finally:
            second.send_signal(signal.SIGTERM)
            await asyncio.to_thread(second.wait, 30)
        assert second.returncode == 0


async def test_a_worker_killed_mid_bundle_finishes_every_run_once(
    namespace: str,
    sqlite_url: str,
    simulator: Simulator,
    partners: LinkagePartners,
    broker_cleanup: list[str],
    tmp_path: Path,
) -> None:
    """SIGKILL of the worker process that runs the birth bundle's three agencies while 300
    dossiers are in their runs: after a restart every run ends at 9, each agency applied each
    dossier once, and each dossier has one delivered hop per agency and one event per step."""
    settings = make_settings(
        namespace,
        sqlite_url,
        connector_endpoints={"civil_status": simulator.url, **partners.endpoints},
        linkage_bundles=ALL_BUNDLES,
    )
    log = tmp_path / "worker.log"
    agencies = (simulator.state, partners.residence, partners.social_insurance)
    with serve_app(create_app(settings), lifespan="on") as api:
        first = await asyncio.to_thread(worker_process, settings, log, BIRTH_CONNECTORS)

        async def kill_mid_bundle() -> None:
            # Residence acts second: with 40 done, runs stand at every step when the kill lands.
            while partners.residence.stats()["applied"] < 40:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.wait)

        killer = asyncio.create_task(kill_mid_bundle())
        async with httpx.AsyncClient(base_url=api, timeout=30, headers=AUTH) as client:
            pushed = await push_dossiers(client, range(1, 301), concurrency=16)
        await asyncio.wait_for(killer, 60)
        assert first.returncode == -signal.SIGKILL
        at_kill = [state.stats()["applied"] for state in agencies]
        assert min(at_kill) < 300, f"every run ended before the kill: {at_kill}"

        second = await asyncio.to_thread(worker_process, settings, log, BIRTH_CONNECTORS)
        try:
            assert len(pushed.accepted) == 300, pushed.refused
            for state in agencies:
                await wait_until_applied(state, pushed.accepted, timeout=180)
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                ledger = await read_ledger(settings, pushed.accepted)
                settled = ledger.processed == 300 and ledger.unsent_events == 0
                if settled or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.2)
        finally:
            second.send_signal(signal.SIGTERM)
            await asyncio.to_thread(second.wait, 30)
        assert second.returncode == 0
    for state in agencies:
        counters = state.stats()
        assert counters["applied"] == len(set(counters["applied_codes"])) == 300
        assert set(counters["applied_codes"]) == pushed.accepted
    assert ledger.processed == 300 and ledger.unsent_events == 0
    # One delivered hop per agency; events: started, step 1 done, one later step, all done (9).
    assert {code: ledger.delivered_hops[code] for code in pushed.accepted} == dict.fromkeys(
        pushed.accepted, 3
    )
    assert {code: ledger.status_events[code] for code in pushed.accepted} == dict.fromkeys(
        pushed.accepted, 4
    )
    print(
        f"\n  in: 300 birth dossiers answered 202; killed with {at_kill} applied"
        f" (civil status, residence, health insurance)"
        f"\n  out: 300 runs at 9, each agency 300 applied once"
        f" ({sum(s.stats()['duplicates'] for s in agencies)} repeated calls answered from records)"
    )


@pytest.fixture
async def parking(settings: Settings) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """The namespace's parking queue, read directly."""
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    yield await channel.get_queue(Names(settings.namespace).parking, ensure=True)
    await connection.close()


async def _parked(
    queue: aio_pika.abc.AbstractQueue, count: int, timeout: float
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    messages: list[aio_pika.abc.AbstractIncomingMessage] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(messages) < count and asyncio.get_running_loop().time() < deadline:
        message = await queue.get(fail=False)
        if message is None:
            await asyncio.sleep(0.1)
            continue
        await message.ack()
        messages.append(message)
    return messages


async def test_a_message_that_always_fails_is_parked_with_its_reason_and_blocks_nothing(
    namespace: str, sqlite_url: str, simulator: Simulator, broker_cleanup: list[str]
) -> None:
    """A dossier the partner always refuses (503) is retried, then parked; others flow past it."""
    settings = make_settings(
        namespace,
        sqlite_url,
        retry_delays=(1.0, 2.0),  # slower tiers, also deleted by broker_cleanup
        connector_endpoints={"civil_status": simulator.url},
    )
    poison = sample_birth_dossier_json(sequence=9000)
    unmappable = sample_birth_dossier_json(sequence=9001)
    del unmappable["form"]["child_full_name"]  # valid contract, but the partner needs the name
    simulator.state.set_faults(
        simulator.state.current_faults().model_copy(
            update={"failing_dossiers": frozenset({poison["code"]})}
        )
    )
    with serve_app(create_app(settings), lifespan="on") as api:
        runtime = await Runtime.open(settings, name="test-worker")
        workers = await run_workers(runtime, ["civil_status"])
        connection = await aio_pika.connect(AMQP_URL)
        try:
            channel = await connection.channel()
            parking = await channel.get_queue(Names(namespace).parking, ensure=True)
            async with httpx.AsyncClient(base_url=api, timeout=30, headers=AUTH) as client:
                for body in (poison, unmappable):
                    assert (await client.post("/v1/dossiers", json=body)).status_code == 202
                pushed = await push_dossiers(client, range(1, 41), concurrency=8)
                await wait_until_applied(simulator.state, pushed.accepted, timeout=30)
                good_done = asyncio.get_running_loop().time()
                parked = await _parked(parking, 2, timeout=30)
                poison_view = (await client.get(f"/v1/dossiers/{poison['code']}")).json()
                unmappable_view = (await client.get(f"/v1/dossiers/{unmappable['code']}")).json()
        finally:
            await connection.close()
            for worker in workers:
                await worker.stop()
            await runtime.close()

    assert len(pushed.accepted) == 40
    by_code = {json.loads(m.body)["subject"]: m for m in parked}
    assert set(by_code) == {poison["code"], unmappable["code"]}

    poisoned = by_code[poison["code"]].headers
    assert poisoned["x-bus-error-class"] == "transient"
    assert poisoned["x-bus-attempts"] == 3
    assert str(poisoned["x-bus-reason"]).startswith("retries exhausted after 3 attempts")
    assert poisoned["x-bus-fault-code"] == "HTTP_503"
    assert poisoned["x-bus-queue"] == Names(namespace).connector_queue("civil_status")
    outcomes = [h["outcome"] for h in poison_view["history"] if h["kind"] == "deliver"]
    assert outcomes == ["retry", "retry", "parked"]

    broken = by_code[unmappable["code"]].headers
    assert broken["x-bus-error-class"] == "permanent"
    assert broken["x-bus-attempts"] == 1  # a permanent failure is not retried
    assert "child_full_name" in str(broken["x-bus-reason"])
    assert [h["outcome"] for h in unmappable_view["history"] if h["kind"] == "deliver"] == [
        "parked"
    ]

    # The 40 good dossiers, sent after the poison, were all delivered before it was parked.
    assert good_done - 3.0 < asyncio.get_running_loop().time()
    assert poison_view["state"]["status"] == 1 and unmappable_view["state"]["status"] == 1
    assert simulator.state.stats()["applied"] == 40
