"""The portal connector against its simulator over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points

import pytest

from bus import events
from bus.connector import Connector, ConnectorConfig, Delivery
from bus.errors import InvalidMessage, PartnerRejected
from bus.testing import FaultSwitches, serve_app
from connectors.portal import PortalConnector, SimulatorState, create_simulator_app
from connectors.portal.wire import TOKEN_ENV
from contracts import DossierStatus, sample_birth_dossier
from tests.connectors import helpers
from tests.connectors.helpers import CODE, check_sick_then_well, sick_partner_cases

TOKEN = "portal-test-token"


def status_delivery(sequence: int, status: DossierStatus, *, attempt: int = 1) -> Delivery:
    """A status event of the sample dossier as the bus hands it to the connector."""
    return helpers.status_delivery(
        sequence,
        status,
        start=datetime(2026, 11, 20, 9, tzinfo=UTC),
        agency="000.00.00.G12",
        attempt=attempt,
        partner_reference="KS/2026/000001",
    )


@pytest.fixture(scope="module")
def state() -> SimulatorState:
    """One portal for the module; reset before every test."""
    return SimulatorState(token=TOKEN, seed=3)


@pytest.fixture(scope="module")
def base_url(state: SimulatorState) -> Iterator[str]:
    with serve_app(create_simulator_app(state)) as url:
        yield url


@pytest.fixture(autouse=True)
def _fresh_portal(state: SimulatorState) -> None:
    state.reset()


@pytest.fixture
def config(base_url: str) -> ConnectorConfig:
    """The shipped connector.toml, pointed at the simulator, with a shorter timeout."""
    shipped = ConnectorConfig.from_file(PortalConnector.default_config, endpoint=base_url)
    return shipped.model_copy(update={"timeout_seconds": 1.0})


@pytest.fixture
async def connector(config: ConnectorConfig) -> AsyncIterator[PortalConnector]:
    instance = PortalConnector(config, environ={TOKEN_ENV: TOKEN})
    yield instance
    await instance.aclose()


def test_the_portal_is_registered_and_subscribes_to_status_events() -> None:
    (entry,) = entry_points(group="lienthong_bus.connectors", name="portal")
    assert entry.load() is PortalConnector
    config = ConnectorConfig.from_file(PortalConnector.default_config)
    assert config.procedures == ()
    assert config.subscribes == ("dossier.status.#",)
    assert isinstance(PortalConnector(config, environ={TOKEN_ENV: TOKEN}), Connector)


async def test_a_status_event_reaches_the_portal_as_a_cloudevent(
    connector: PortalConnector, state: SimulatorState
) -> None:
    receipt = await connector.deliver(status_delivery(2, DossierStatus.PROCESSED))

    assert receipt.status is None  # the portal takes note; the dossier does not move
    assert receipt.request_size > 0 and receipt.response_size > 0
    assert receipt.sent_at <= receipt.answered_at
    shown = state.lookup(CODE)
    assert shown is not None and shown.status == 9 and shown.sequence == 2
    request = state.last_request
    assert request is not None
    assert request.headers["content-type"] == "application/cloudevents+json"
    assert request.headers["idempotency-key"] == shown.steps[0].event_id


async def test_a_redelivered_event_is_taken_once(
    connector: PortalConnector, state: SimulatorState
) -> None:
    delivery = status_delivery(2, DossierStatus.PROCESSING)
    await connector.deliver(delivery)
    await connector.deliver(delivery)
    assert state.stats()["applied"] == 1
    assert state.stats()["duplicates"] == 1


async def test_a_status_change_in_a_dossier_event_slot_is_a_routing_mistake(
    connector: PortalConnector, state: SimulatorState
) -> None:
    dossier = sample_birth_dossier()
    event = events.dossier_submitted(dossier, event_id="e-1", time=datetime.now(UTC))
    with pytest.raises(InvalidMessage, match="receives status changes"):
        await connector.deliver(Delivery(event.id, event, dossier=dossier))
    assert state.stats()["requests"] == 0


async def test_a_wrong_token_is_refused_permanently(config: ConnectorConfig) -> None:
    connector = PortalConnector(config, environ={TOKEN_ENV: "not-the-token"})
    try:
        with pytest.raises(PartnerRejected) as caught:
            await connector.deliver(status_delivery(2, DossierStatus.PROCESSED))
    finally:
        await connector.aclose()
    assert caught.value.fault_code == "HTTP_401"


@pytest.mark.parametrize(
    ("switches", "error", "fault_code"), sick_partner_cases(PartnerRejected, "HTTP_422")
)
async def test_each_failure_switch_is_classified(
    connector: PortalConnector,
    state: SimulatorState,
    switches: FaultSwitches,
    error: type[Exception],
    fault_code: str,
) -> None:
    """Each switch makes the delivery fail as its kind of failure; a well portal takes the retry."""
    await check_sick_then_well(
        connector,
        state,
        switches,
        error,
        fault_code,
        lambda attempt: status_delivery(2, DossierStatus.PROCESSED, attempt=attempt),
    )


async def test_the_latency_switch_only_slows_the_portal(
    connector: PortalConnector, state: SimulatorState
) -> None:
    state.set_faults(FaultSwitches(latency_ms=150))
    receipt = await connector.deliver(status_delivery(2, DossierStatus.PROCESSED))
    assert receipt.answered_at - receipt.sent_at >= timedelta(milliseconds=140)
    assert state.stats()["applied"] == 1
