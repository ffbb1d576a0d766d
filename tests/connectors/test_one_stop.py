"""The one-stop connector against its simulator over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from importlib.metadata import entry_points

import pytest

from bus import events
from bus.connector import Connector, ConnectorConfig, Delivery
from bus.errors import InvalidMessage, PartnerRejected
from bus.testing import FaultSwitches, serve_app
from connectors.one_stop import OneStopConnector, SimulatorState, create_simulator_app
from connectors.one_stop.wire import TOKEN_ENV
from contracts import DossierStatus, sample_birth_dossier
from tests.connectors import helpers
from tests.connectors.helpers import CODE, check_sick_then_well, sick_partner_cases

TOKEN = "one-stop-test-token"
CIVIL_STATUS = "000.00.00.G12"


def status_delivery(sequence: int, status: DossierStatus, *, attempt: int = 1) -> Delivery:
    """A status event of the sample dossier, made by the civil-status office."""
    return helpers.status_delivery(
        sequence,
        status,
        start=datetime(2026, 11, 20, 2, tzinfo=UTC),
        agency=CIVIL_STATUS,
        attempt=attempt,
        note="Đã đăng ký khai sinh",
    )


@pytest.fixture(scope="module")
def state() -> SimulatorState:
    return SimulatorState(token=TOKEN, seed=5)


@pytest.fixture(scope="module")
def base_url(state: SimulatorState) -> Iterator[str]:
    with serve_app(create_simulator_app(state)) as url:
        yield url


@pytest.fixture(autouse=True)
def _fresh(state: SimulatorState) -> None:
    state.reset()


@pytest.fixture
def config(base_url: str) -> ConnectorConfig:
    shipped = ConnectorConfig.from_file(OneStopConnector.default_config, endpoint=base_url)
    return shipped.model_copy(update={"timeout_seconds": 1.0})


@pytest.fixture
async def connector(config: ConnectorConfig) -> AsyncIterator[OneStopConnector]:
    instance = OneStopConnector(config, environ={TOKEN_ENV: TOKEN})
    yield instance
    await instance.aclose()


def test_the_one_stop_system_is_registered_and_hears_every_status() -> None:
    (entry,) = entry_points(group="lienthong_bus.connectors", name="one_stop")
    assert entry.load() is OneStopConnector
    config = ConnectorConfig.from_file(OneStopConnector.default_config)
    assert config.subscribes == ("dossier.status.#",)
    assert config.mapping == "dvcqg/1.0"
    assert isinstance(OneStopConnector(config, environ={TOKEN_ENV: TOKEN}), Connector)


async def test_each_step_reaches_the_desk_in_the_national_format(
    connector: OneStopConnector, state: SimulatorState
) -> None:
    first = await connector.deliver(status_delivery(2, DossierStatus.PROCESSING))
    await connector.deliver(status_delivery(3, DossierStatus.PROCESSED))

    assert first.status is None  # the one-stop system takes note; the dossier does not move
    assert first.mapping_version == "dvcqg/1.0/progress.out"
    steps = state.steps_of(CODE)
    assert [s.status for s in steps] == [4, 9]
    assert {s.agency for s in steps} == {CIVIL_STATUS}  # on behalf of the agency that acted
    assert steps[0].at == "20261120090200"  # yyyyMMddHHmmss, Asia/Ho_Chi_Minh
    assert steps[1].content == "Đã đăng ký khai sinh"


async def test_a_repeated_step_is_kept_once(
    connector: OneStopConnector, state: SimulatorState
) -> None:
    delivery = status_delivery(2, DossierStatus.PROCESSING)
    await connector.deliver(delivery)
    await connector.deliver(delivery)
    assert state.stats()["applied"] == 1 and state.stats()["duplicates"] == 1


async def test_a_submitted_dossier_is_a_routing_mistake(
    connector: OneStopConnector, state: SimulatorState
) -> None:
    dossier = sample_birth_dossier()
    event = events.dossier_submitted(dossier, event_id="e-1", time=datetime.now(UTC))
    with pytest.raises(InvalidMessage):
        await connector.deliver(Delivery(event.id, event, dossier=dossier))
    assert state.stats()["requests"] == 0


async def test_a_wrong_token_is_refused_permanently(config: ConnectorConfig) -> None:
    connector = OneStopConnector(config, environ={TOKEN_ENV: "wrong"})
    try:
        with pytest.raises(PartnerRejected) as caught:
            await connector.deliver(status_delivery(2, DossierStatus.PROCESSED))
    finally:
        await connector.aclose()
    assert caught.value.fault_code.startswith(("HTTP_401", "GATEWAY_100"))


@pytest.mark.parametrize(
    ("switches", "error", "fault_code"),
    sick_partner_cases(PartnerRejected, "GATEWAY_500_DATA_INCORRECT"),
)
async def test_each_failure_switch_is_classified(
    connector: OneStopConnector,
    state: SimulatorState,
    switches: FaultSwitches,
    error: type[Exception],
    fault_code: str,
) -> None:
    """Each switch makes the delivery fail as its kind of failure; a well desk takes the retry."""
    await check_sick_then_well(
        connector,
        state,
        switches,
        error,
        fault_code,
        lambda attempt: status_delivery(2, DossierStatus.PROCESSED, attempt=attempt),
    )
