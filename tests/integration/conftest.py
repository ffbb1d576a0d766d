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
from connectors import residence, social_insurance
from connectors.civil_status import SimulatorState, create_simulator_app
from connectors.social_insurance.wire import DEMO_PASSWORD, PASSWORD_ENV
from tests.conftest import AMQP_URL, AUTH, make_settings

#: The connectors of the birth linkage bundle, whose workers the ``workers`` fixture runs.
BIRTH_CONNECTORS = ["civil_status", "residence", "social_insurance"]


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


@dataclass
class LinkagePartners:
    """The simulators of the birth bundle's later steps (residence, health insurance)."""

    residence_url: str
    residence: residence.SimulatorState
    social_insurance_url: str
    social_insurance: social_insurance.SimulatorState

    @property
    def endpoints(self) -> dict[str, str]:
        """Connector endpoints pointing at these simulators."""
        return {"residence": self.residence_url, "social_insurance": self.social_insurance_url}


@pytest.fixture
def partners(monkeypatch: pytest.MonkeyPatch) -> Iterator[LinkagePartners]:
    """Residence and social-insurance simulators on free loopback ports, with the session
    password the social-insurance connector reads from its environment."""
    monkeypatch.setenv(PASSWORD_ENV, DEMO_PASSWORD)
    residence_state = residence.SimulatorState()
    insurance_state = social_insurance.SimulatorState(password=DEMO_PASSWORD)
    with (
        serve_app(residence.create_simulator_app(residence_state)) as residence_url,
        serve_app(social_insurance.create_simulator_app(insurance_state)) as insurance_url,
    ):
        yield LinkagePartners(residence_url, residence_state, insurance_url, insurance_state)


def partner_settings(
    namespace: str,
    database_url: str,
    simulator: Simulator,
    partners: LinkagePartners,
    **overrides: object,
) -> Settings:
    """Settings of a bus whose birth-bundle connectors point at the simulators."""
    return make_settings(
        namespace,
        database_url,
        connector_endpoints={"civil_status": simulator.url, **partners.endpoints},
        **overrides,
    )


@pytest.fixture
def settings(
    namespace: str,
    sqlite_url: str,
    simulator: Simulator,
    partners: LinkagePartners,
    broker_cleanup: list[str],
) -> Settings:
    """Settings of a bus whose birth-bundle connectors point at the simulators."""
    return partner_settings(namespace, sqlite_url, simulator, partners)


@pytest.fixture
def api(settings: Settings) -> Iterator[str]:
    """The bus API served over real HTTP; yields its base URL."""
    with serve_app(create_app(settings), lifespan="on") as url:
        yield url


@pytest.fixture
async def client(api: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the API."""
    async with httpx.AsyncClient(base_url=api, timeout=30, headers=AUTH) as client:
        yield client


@pytest.fixture
async def workers(settings: Settings, api: str) -> AsyncIterator[list[ConnectorWorker]]:
    """The birth bundle's workers, in the test's event loop (after the API declared topology).

    Only the connectors these tests point at a simulator: the event consumers (portal, one-stop,
    DVCQG) have tests of their own with their simulators.
    """
    runtime = await Runtime.open(settings, name="test-worker")
    started = await run_workers(runtime, BIRTH_CONNECTORS)
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
