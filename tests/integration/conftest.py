"""A whole bus in the test process: simulator, API (own thread) and workers (test's loop)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aio_pika
import httpx
import pytest

from bus.api.app import create_app
from bus.runtime import Runtime
from bus.settings import Settings
from bus.testing import serve_app
from bus.topology import Names
from bus.worker import ConnectorWorker, run_workers
from connectors.civil_status import SimulatorState, create_simulator_app
from tests.conftest import AMQP_URL, make_settings


@dataclass
class Simulator:
    """The civil-status simulator under test and its in-memory state."""

    url: str
    state: SimulatorState


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    """A civil-status simulator on a free loopback port."""
    state = SimulatorState()
    with serve_app(create_simulator_app(state)) as url:
        yield Simulator(url, state)


@pytest.fixture
def settings(
    namespace: str, sqlite_url: str, simulator: Simulator, broker_cleanup: list[str]
) -> Settings:
    """Settings of a bus whose civil-status connector points at the simulator."""
    return make_settings(namespace, sqlite_url, connector_endpoints={"civil_status": simulator.url})


@pytest.fixture
def api(settings: Settings) -> Iterator[str]:
    """The bus API served over real HTTP; yields its base URL."""
    with serve_app(create_app(settings), lifespan="on") as url:
        yield url


@pytest.fixture
async def client(api: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the API."""
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        yield client


@pytest.fixture
async def workers(settings: Settings, api: str) -> AsyncIterator[list[ConnectorWorker]]:
    """The civil-status worker, in the test's event loop (after the API declared topology).

    Only the connector these tests point at a simulator: the event consumers (portal, one-stop,
    DVCQG) have tests of their own with their simulators.
    """
    runtime = await Runtime.open(settings, name="test-worker")
    started = await run_workers(runtime, ["civil_status"])
    yield started
    for worker in started:
        await worker.stop()
    await runtime.close()


@pytest.fixture
async def portal_queue(settings: Settings, api: str) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """A queue bound to every status event, as a portal would bind one."""
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(Names(settings.namespace).events, routing_key="dossier.status.#")
    yield queue
    await connection.close()
