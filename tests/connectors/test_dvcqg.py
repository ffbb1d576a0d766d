"""The DVCQG connector against its simulator over real HTTP: dossier sync, progress, sessions."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import pytest

from bus import events
from bus.connector import Connector, ConnectorConfig, Delivery, DeliveryReceipt, SessionAuth
from bus.errors import PartnerRejected, PartnerUnavailable, PermanentError
from bus.mapping import MappingCatalog, default_root
from bus.testing import delivery_of as make_delivery
from bus.testing import serve_app
from connectors.dvcqg import (
    DEFAULT_MAPPING,
    DOSSIER_SYNC,
    LOGIN_PATH,
    LOOKUP,
    PASSWORD_ENV,
    PROGRESS,
    SERVICE_PATH,
    DvcqgConnector,
    SimulatorState,
    create_simulator_app,
)
from contracts import (
    VN_TZ,
    Dossier,
    DossierStatus,
    StatusChange,
    is_agency_code,
    sample_birth_dossier,
)
from tests.connectors.helpers import set_faults, stats

PASSWORD = "dvcqg-Secret-42"
ENVIRON = {PASSWORD_ENV: PASSWORD}
JUSTICE = "000.00.00.G12"  # the partner agency that reports a change (civil status)
EXAMPLES = default_root() / "dvcqg" / "1.0" / "examples"


def status_change(
    dossier: Dossier, status: DossierStatus, minutes: int = 5, *, agency: str = JUSTICE
) -> StatusChange:
    """A status change of ``dossier`` made ``minutes`` after it was received."""
    return StatusChange(
        dossier_code=dossier.code,
        status=status,
        changed_at=dossier.received_at + timedelta(minutes=minutes),
        agency=agency,
        note=f"Chuyển trạng thái {int(status)}",
    )


def change_delivery(change: StatusChange, sequence: int = 2) -> Delivery:
    """A status event as the bus would hand it to the connector."""
    event = events.status_changed(
        change, sequence=sequence, correlation_id=f"run-{change.dossier_code}"
    )
    return Delivery(message_id=event.id, event=event, change=change)


def golden(message: str, case: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A golden example of the shipped mappings: its input and expected output."""
    folder = EXAMPLES / message

    def read(suffix: str) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((folder / f"{case}.{suffix}.json").read_text("utf-8"))
        return loaded

    return read("input"), read("expected")


@pytest.fixture(scope="module")
def state() -> SimulatorState:
    """One simulator for the module, accepting the test password; reset before every test."""
    return SimulatorState(password=PASSWORD, seed=7)


@pytest.fixture(scope="module")
def base_url(state: SimulatorState) -> Iterator[str]:
    """The simulator, served over HTTP on a free loopback port."""
    with serve_app(create_simulator_app(state)) as url:
        yield url


@pytest.fixture(autouse=True)
def _fresh_simulator(state: SimulatorState) -> None:
    """Every test starts with no dossier, session, counter or fault."""
    state.reset()


@pytest.fixture(scope="module")
def catalog() -> MappingCatalog:
    """The shipped mappings, compiled once for the module."""
    return MappingCatalog.load(partners=("dvcqg",))


@pytest.fixture
def config(base_url: str) -> ConnectorConfig:
    """The shipped connector.toml, pointed at the simulator."""
    return ConnectorConfig.from_file(DvcqgConnector.default_config, endpoint=base_url)


@pytest.fixture
async def connector(
    config: ConnectorConfig, catalog: MappingCatalog
) -> AsyncIterator[DvcqgConnector]:
    """A connector talking to the simulator, with the password in its environment."""
    instance = DvcqgConnector(config, catalog=catalog, environ=ENVIRON)
    yield instance
    await instance.aclose()


async def login(sim: httpx.AsyncClient) -> str:
    """A session on the simulator, logged in by hand."""
    response = await sim.post(
        LOGIN_PATH,
        json={"username": "lgsp.h12", "password": PASSWORD},
        headers={"dstcode": "H12"},
    )
    session: str = response.json()["session"]
    return session


async def call(sim: httpx.AsyncClient, session: str, **body: Any) -> dict[str, Any]:
    """One service call by hand; the gateway's answer."""
    response = await sim.post(SERVICE_PATH, json={"session": session, **body})
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


async def deliver_mocked(
    config: ConnectorConfig, delivery: Delivery, answer: dict[str, Any] | None = None
) -> tuple[DeliveryReceipt, list[httpx.Request]]:
    """Deliver to a mocked gateway: login succeeds, the call answers ``answer``; all requests."""
    seen: list[httpx.Request] = []

    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == LOGIN_PATH:
            return httpx.Response(200, json={"error_code": 0, "session": "s-9"})
        return httpx.Response(200, json=answer or {"error_code": 0, "message": "Thành công"})

    connector = DvcqgConnector(config, transport=httpx.MockTransport(respond), environ=ENVIRON)
    try:
        return await connector.deliver(delivery), seen
    finally:
        await connector.aclose()


# --- configuration -------------------------------------------------------------------------


def test_entry_point_resolves_to_connector() -> None:
    """The lienthong_bus.connectors entry point dvcqg loads the connector."""
    (entry,) = entry_points(group="lienthong_bus.connectors", name="dvcqg")
    assert entry.load() is DvcqgConnector


def test_shipped_config_reads() -> None:
    """The shipped connector.toml: REST on 8105, every dossier and status, session login."""
    config = ConnectorConfig.from_file(DvcqgConnector.default_config)
    assert (config.id, config.kind) == ("dvcqg", "rest")
    assert config.mapping == DEFAULT_MAPPING
    assert config.procedures == ()
    assert config.subscribes == ("dossier.submitted.#", "dossier.status.#")
    assert str(config.endpoint) == "http://127.0.0.1:8105/"
    assert is_agency_code(config.agency)
    assert isinstance(config.auth, SessionAuth)
    assert config.auth.login_path == LOGIN_PATH
    assert config.auth.password_env == PASSWORD_ENV == "BUS_DVCQG_PASSWORD"
    assert config.auth.headers == {"dstcode": "H12"}


def test_simulator_ports_do_not_collide() -> None:
    """Every shipped connector.toml has its own port, so `bus run` can start every simulator."""
    ports = {
        path.parent.name: ConnectorConfig.from_file(path).endpoint.port
        for path in Path(DvcqgConnector.default_config).parents[1].glob("*/connector.toml")
    }
    assert ports["dvcqg"] == 8105
    assert len(set(ports.values())) == len(ports), ports


def test_public_names_resolve() -> None:
    """Every name in connectors.dvcqg.__all__ can be imported from the package."""
    import connectors.dvcqg as package

    for name in package.__all__:
        assert getattr(package, name) is not None


async def test_connector_satisfies_protocol(connector: DvcqgConnector) -> None:
    """DvcqgConnector is a bus Connector."""
    assert isinstance(connector, Connector)


async def test_built_without_password_fails_only_when_called(
    config: ConnectorConfig, sim: httpx.AsyncClient
) -> None:
    """Without the password variable the connector builds, and a delivery is CREDENTIALS_MISSING."""
    connector = DvcqgConnector(config, environ={})
    try:
        with pytest.raises(PermanentError) as caught:
            await connector.deliver(make_delivery(sample_birth_dossier()))
    finally:
        await connector.aclose()
    assert caught.value.fault_code == "CREDENTIALS_MISSING"
    assert PASSWORD_ENV in str(caught.value)
    assert (await stats(sim))["logins"] == 0


# --- dossier sync and progress -------------------------------------------------------------


async def test_submitted_dossier_is_synced_after_one_login(
    connector: DvcqgConnector, sim: httpx.AsyncClient, state: SimulatorState
) -> None:
    """A submitted dossier is kept by the portal; the receipt moves no status."""
    dossier = sample_birth_dossier()
    receipt = await connector.deliver(make_delivery(dossier))

    assert receipt.status is None
    assert receipt.partner_reference is None
    assert receipt.mapping_version == f"{DEFAULT_MAPPING}/dossier-sync.out"
    assert receipt.extra == {"service": DOSSIER_SYNC}
    assert receipt.request_size > 0 and receipt.response_size > 0
    assert receipt.sent_at.tzinfo is not None and receipt.sent_at <= receipt.answered_at
    counters = await stats(sim)
    assert counters == {
        "requests": 1,
        "synced": 1,
        "updated": 0,
        "steps": 0,
        "duplicates": 0,
        "unavailable": 0,
        "synced_codes": [dossier.code],
        "logins": 1,
        "expired": 0,
    }
    assert state.login_dstcodes == ["H12"]
    held = state.lookup(dossier.code)
    assert held is not None
    assert held.agency == dossier.receiving_agency
    assert (held.record["MaTTHC"], held.status) == (dossier.procedure_code, 1)


async def test_sync_request_is_the_golden_mapping(config: ConnectorConfig) -> None:
    """DongBoHoSoMC posts {session, madonvi, service, isUpdating false, data: [the mapping]}."""
    source, expected = golden("dossier-sync.out", "birth-registration")
    dossier = Dossier.model_validate(source)
    receipt, (login_call, sync) = await deliver_mocked(config, make_delivery(dossier))

    assert json.loads(login_call.content) == {"username": "lgsp.h12", "password": PASSWORD}
    assert login_call.headers["dstcode"] == "H12"
    assert sync.url.path == SERVICE_PATH
    assert json.loads(sync.content) == {
        "session": "s-9",
        "madonvi": dossier.receiving_agency,
        "service": DOSSIER_SYNC,
        "isUpdating": False,
        "data": [expected],
    }
    assert receipt.request_size == len(sync.content)


async def test_progress_request_is_the_golden_mapping(config: ConnectorConfig) -> None:
    """CapNhatTienDoHoSoMC posts {session, madonvi: the acting agency, service, data: [step]}."""
    source, expected = golden("progress.out", "accepted-at-desk")
    change = StatusChange.model_validate(source)
    receipt, (_, progress) = await deliver_mocked(config, change_delivery(change))

    assert json.loads(progress.content) == {
        "session": "s-9",
        "madonvi": change.agency,
        "service": PROGRESS,
        "data": [expected],
    }
    assert receipt.status is None
    assert receipt.mapping_version == f"{DEFAULT_MAPPING}/progress.out"
    assert receipt.extra == {"service": PROGRESS}


async def test_status_changes_become_progress_in_order(
    connector: DvcqgConnector, sim: httpx.AsyncClient
) -> None:
    """Three status changes after the sync are three progress steps, in the order sent."""
    dossier = sample_birth_dossier()
    await connector.deliver(make_delivery(dossier))
    steps = [DossierStatus.ACCEPTED, DossierStatus.PROCESSING, DossierStatus.PROCESSED]
    for sequence, status in enumerate(steps, start=2):
        change = status_change(dossier, status, minutes=sequence)
        receipt = await connector.deliver(change_delivery(change, sequence))
        assert receipt.status is None

    session = await login(sim)
    answer = await call(
        sim, session, madonvi=dossier.receiving_agency, service=LOOKUP, MaHoSo=dossier.code
    )
    assert answer["error_code"] == 0
    record = answer["data"]
    assert [step["TrangThai"] for step in record["DanhSachTienDo"]] == [2, 4, 9]
    assert record["DanhSachTienDo"][0]["ThoiDiemXuLy"] == (
        (dossier.received_at + timedelta(minutes=2)).astimezone(VN_TZ).strftime("%Y%m%d%H%M%S")
    )
    assert record["TrangThaiHoSo"] == 9
    counters = await stats(sim)
    assert (counters["synced"], counters["steps"], counters["duplicates"]) == (1, 3, 0)


async def test_same_sync_twice_is_kept_once(
    connector: DvcqgConnector, sim: httpx.AsyncClient
) -> None:
    """A dossier pushed again (a lost answer retried) is taken, and the portal keeps one."""
    delivery = make_delivery(sample_birth_dossier())
    await connector.deliver(delivery)
    await connector.deliver(delivery)
    counters = await stats(sim)
    assert (counters["synced"], counters["duplicates"], counters["requests"]) == (1, 1, 2)


async def test_progress_of_unsynced_dossier_is_retried(
    connector: DvcqgConnector, sim: httpx.AsyncClient
) -> None:
    """Progress for a dossier DVCQG does not know yet (201) is transient: its sync may follow."""
    change = status_change(sample_birth_dossier(), DossierStatus.PROCESSED)
    with pytest.raises(PartnerUnavailable, match="does not know the dossier yet") as caught:
        await connector.deliver(change_delivery(change))
    assert caught.value.fault_code == "GATEWAY_201_RECORD_NOT_FOUND"
    assert caught.value.error_class == "transient"
    assert (await stats(sim))["steps"] == 0


# --- sessions ------------------------------------------------------------------------------


async def test_one_login_serves_many_calls(
    connector: DvcqgConnector, sim: httpx.AsyncClient
) -> None:
    """Five syncs and five progress steps share the first login's session."""
    for n in range(1, 6):
        dossier = sample_birth_dossier(sequence=n)
        await connector.deliver(make_delivery(dossier))
        await connector.deliver(change_delivery(status_change(dossier, DossierStatus.PROCESSED)))
    counters = await stats(sim)
    assert (counters["logins"], counters["requests"], counters["expired"]) == (1, 10, 0)
    assert connector.logins == 1


async def test_session_expiring_after_n_calls_is_renewed(
    connector: DvcqgConnector, sim: httpx.AsyncClient
) -> None:
    """Sessions good for 2 calls: 5 syncs need 3 logins, and each refusal is retried once."""
    await set_faults(sim, session_max_calls=2)
    receipts = [
        await connector.deliver(make_delivery(sample_birth_dossier(sequence=n)))
        for n in range(1, 6)
    ]
    assert ["session_renewed" in receipt.extra for receipt in receipts] == [
        False,
        False,
        True,
        False,
        True,
    ]
    counters = await stats(sim)
    assert (counters["logins"], counters["expired"], counters["requests"]) == (3, 2, 7)
    assert counters["synced"] == 5


async def test_session_expiring_after_seconds_is_renewed(
    connector: DvcqgConnector, sim: httpx.AsyncClient
) -> None:
    """A session the gateway ends after 0.2 s is renewed by the next delivery, once."""
    await set_faults(sim, session_ttl_seconds=0.2)
    dossier = sample_birth_dossier()
    await connector.deliver(make_delivery(dossier))
    await asyncio.sleep(0.3)
    change = status_change(dossier, DossierStatus.PROCESSED)
    receipt = await connector.deliver(change_delivery(change))
    assert receipt.extra["session_renewed"] == "true"
    counters = await stats(sim)
    assert (counters["logins"], counters["expired"], counters["steps"]) == (2, 1, 1)


@pytest.mark.parametrize("as_401", [False, True])
async def test_expired_sessions_renewed_once_for_concurrent_deliveries(
    connector: DvcqgConnector, sim: httpx.AsyncClient, as_401: bool
) -> None:
    """After the gateway drops its sessions, eight deliveries at once share one new login."""
    await connector.deliver(make_delivery(sample_birth_dossier(sequence=1)))
    await set_faults(sim, latency_ms=50, expired_as_401=as_401)
    assert (await sim.post("/_sim/expire-sessions")).json() == {"expired_sessions": 1}

    deliveries = [make_delivery(sample_birth_dossier(sequence=n)) for n in range(2, 10)]
    receipts = await asyncio.gather(*(connector.deliver(d) for d in deliveries))

    counters = await stats(sim)
    assert counters["logins"] == 2
    assert counters["expired"] >= 2  # several deliveries really came back with the old session
    assert sum("session_renewed" in r.extra for r in receipts) == counters["expired"]
    assert counters["synced"] == 9


async def test_session_refused_after_new_login_is_permanent(
    connector: DvcqgConnector, sim: httpx.AsyncClient
) -> None:
    """error_code 100 on every call: one new login, then PartnerRejected GATEWAY_100."""
    await set_faults(sim, error_code=100)
    with pytest.raises(PartnerRejected) as caught:
        await connector.deliver(make_delivery(sample_birth_dossier()))
    assert caught.value.fault_code == "GATEWAY_100_AUTHEN_ERROR"
    counters = await stats(sim)
    assert (counters["logins"], counters["requests"], counters["synced"]) == (2, 2, 0)


async def test_wrong_password_is_rejected_at_login(
    config: ConnectorConfig, sim: httpx.AsyncClient
) -> None:
    """A wrong password is PartnerRejected GATEWAY_100_AUTHEN_ERROR; nothing is synced."""
    connector = DvcqgConnector(config, environ={PASSWORD_ENV: "wrong"})
    try:
        with pytest.raises(PartnerRejected, match="login refused") as caught:
            await connector.deliver(make_delivery(sample_birth_dossier()))
    finally:
        await connector.aclose()
    assert caught.value.fault_code == "GATEWAY_100_AUTHEN_ERROR"
    assert "wrong" not in str(caught.value)
    counters = await stats(sim)
    assert (counters["logins"], counters["requests"], counters["synced"]) == (0, 0, 0)


async def test_wrong_dstcode_is_province_id_incorrect() -> None:
    """A gateway expecting another province's dstcode refuses the login with error_code 108."""
    other = SimulatorState(password=PASSWORD, dstcode="H29")
    with serve_app(create_simulator_app(other)) as url:
        config = ConnectorConfig.from_file(DvcqgConnector.default_config, endpoint=url)
        connector = DvcqgConnector(config, environ=ENVIRON)
        try:
            with pytest.raises(PartnerRejected) as caught:
                await connector.deliver(make_delivery(sample_birth_dossier()))
        finally:
            await connector.aclose()
    assert caught.value.fault_code == "GATEWAY_108_PROVINCE_ID_INCORRECT"
    assert other.login_dstcodes == ["H12"]


async def test_password_stays_out_of_logs_and_reprs(
    connector: DvcqgConnector,
    sim: httpx.AsyncClient,
    state: SimulatorState,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Neither the connector's logs nor the simulator's repr show the password or a session."""
    caplog.set_level(logging.DEBUG)
    await set_faults(sim, session_max_calls=1)
    for n in (1, 2):
        await connector.deliver(make_delivery(sample_birth_dossier(sequence=n)))
    assert "logged in as lgsp.h12" in caplog.text
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(state)


# --- failure switches ----------------------------------------------------------------------


async def test_server_error_is_transient(connector: DvcqgConnector, sim: httpx.AsyncClient) -> None:
    """error_rate 1 (HTTP 503, login included) is PartnerUnavailable HTTP_503, nothing synced."""
    await set_faults(sim, error_rate=1.0)
    with pytest.raises(PartnerUnavailable) as caught:
        await connector.deliver(make_delivery(sample_birth_dossier()))
    assert caught.value.fault_code == "HTTP_503"
    counters = await stats(sim)
    assert (counters["synced"], counters["unavailable"]) == (0, 1)


async def test_server_error_on_progress_is_transient(
    connector: DvcqgConnector, sim: httpx.AsyncClient
) -> None:
    """A 503 on CapNhatTienDoHoSoMC after a good login is HTTP_503; no step is kept."""
    dossier = sample_birth_dossier()
    await connector.deliver(make_delivery(dossier))
    await set_faults(sim, error_rate=1.0)
    with pytest.raises(PartnerUnavailable) as caught:
        await connector.deliver(change_delivery(status_change(dossier, DossierStatus.PROCESSED)))
    assert caught.value.fault_code == "HTTP_503"
    assert (await stats(sim))["steps"] == 0


async def test_hang_times_out_as_transient(config: ConnectorConfig, sim: httpx.AsyncClient) -> None:
    """A portal that never answers is PARTNER_TIMEOUT once timeout_seconds have passed."""
    await set_faults(sim, hang=True)
    connector = DvcqgConnector(config.model_copy(update={"timeout_seconds": 0.3}), environ=ENVIRON)
    started = time.monotonic()
    try:
        with pytest.raises(PartnerUnavailable) as caught:
            await connector.deliver(make_delivery(sample_birth_dossier()))
    finally:
        await connector.aclose()
    assert time.monotonic() - started < 5
    assert caught.value.fault_code == "PARTNER_TIMEOUT"
    await set_faults(sim)
    assert (await stats(sim))["synced"] == 0


async def test_latency_below_timeout_still_syncs(
    connector: DvcqgConnector, sim: httpx.AsyncClient
) -> None:
    """A slow portal that answers within the timeout keeps the dossier normally."""
    await set_faults(sim, latency_ms=150)
    receipt = await connector.deliver(make_delivery(sample_birth_dossier()))
    assert (receipt.answered_at - receipt.sent_at).total_seconds() >= 0.15
    assert (await stats(sim))["synced"] == 1


@pytest.mark.parametrize(
    ("code", "fault"),
    [
        (101, "GATEWAY_101_IP_DISALLOWED"),
        (106, "GATEWAY_106_AGENCY_ID_INCORRECT"),
        (200, "GATEWAY_200_RECORD_UNCOMPLETE"),
        (302, "GATEWAY_302_DATA_TYPE_INVALID"),
        (500, "GATEWAY_500_DATA_INCORRECT"),
    ],
)
@pytest.mark.parametrize("service", [DOSSIER_SYNC, PROGRESS])
async def test_gateway_error_codes_are_permanent(
    connector: DvcqgConnector, sim: httpx.AsyncClient, service: str, code: int, fault: str
) -> None:
    """A gateway error_code on either service is PartnerRejected with its code: parked."""
    dossier = sample_birth_dossier()
    delivery = make_delivery(dossier)
    if service == PROGRESS:
        await connector.deliver(delivery)
        delivery = change_delivery(status_change(dossier, DossierStatus.PROCESSED))
    await set_faults(sim, error_code=code)
    with pytest.raises(PartnerRejected) as caught:
        await connector.deliver(delivery)
    assert caught.value.fault_code == fault
    assert caught.value.error_class == "permanent"
    counters = await stats(sim)
    assert (counters["synced"], counters["steps"]) == (int(service == PROGRESS), 0)


async def test_garbage_answer_is_malformed_reply(
    connector: DvcqgConnector, sim: httpx.AsyncClient
) -> None:
    """malformed (an HTML page with HTTP 200) is PartnerUnavailable MALFORMED_REPLY."""
    await set_faults(sim, malformed=True)
    with pytest.raises(PartnerUnavailable) as caught:
        await connector.deliver(make_delivery(sample_birth_dossier()))
    assert caught.value.fault_code == "MALFORMED_REPLY"


async def test_failing_dossier_fails_alone(
    connector: DvcqgConnector, sim: httpx.AsyncClient
) -> None:
    """A dossier in failing_dossiers gets HTTP 503 while the next one is synced."""
    poison, healthy = sample_birth_dossier(sequence=1), sample_birth_dossier(sequence=2)
    await set_faults(sim, failing_dossiers=[poison.code])
    with pytest.raises(PartnerUnavailable) as caught:
        await connector.deliver(make_delivery(poison))
    assert caught.value.fault_code == "HTTP_503"
    await connector.deliver(make_delivery(healthy))
    assert (await stats(sim))["synced_codes"] == [healthy.code]


async def test_connection_refused_is_transient(config: ConnectorConfig) -> None:
    """A portal that refuses the connection is PARTNER_UNREACHABLE (at login)."""
    with serve_app(create_simulator_app(SimulatorState(password=PASSWORD))) as url:
        pass  # the port is free again once the server has stopped
    connector = DvcqgConnector(config.model_copy(update={"endpoint": url}), environ=ENVIRON)
    try:
        with pytest.raises(PartnerUnavailable) as caught:
            await connector.deliver(make_delivery(sample_birth_dossier()))
    finally:
        await connector.aclose()
    assert caught.value.fault_code == "PARTNER_UNREACHABLE"


# --- the simulator on its own --------------------------------------------------------------


async def test_calls_without_a_session_are_refused(sim: httpx.AsyncClient) -> None:
    """A service call without a valid session gets error_code 100 and keeps nothing."""
    answer = await call(sim, "forged", madonvi="000.00.10.H12", service=DOSSIER_SYNC)
    assert answer["error_code"] == 100
    counters = await stats(sim)
    assert (counters["expired"], counters["synced"]) == (1, 0)


def _sync_body(**changes: Any) -> dict[str, Any]:
    """A valid DongBoHoSoMC call body (the golden record), with ``changes`` to its record."""
    _, record = golden("dossier-sync.out", "birth-registration")
    record.update(changes)
    return {
        "madonvi": "000.00.10.H12",
        "service": DOSSIER_SYNC,
        "isUpdating": False,
        "data": [{k: v for k, v in record.items() if v is not None}],
    }


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (_sync_body(MaHoSo=None), 200),
        (_sync_body(MaHoSo="HS-1"), 302),
        (_sync_body(NgayTiepNhan="2024-03-15"), 302),
        (_sync_body(KenhThucHien="2"), 302),
        (_sync_body(TrangThaiHoSo=11), 500),
        (_sync_body(DonViXuLy="H12"), 106),
        ({**_sync_body(), "madonvi": "000.00.10"}, 106),
        ({**_sync_body(), "madonvi": None}, 200),
        ({**_sync_body(), "isUpdating": "false"}, 302),
        ({**_sync_body(), "data": []}, 200),
        ({**_sync_body(), "data": {"MaHoSo": "x"}}, 302),
        ({**_sync_body(), "service": "XoaHoSo"}, 302),
        (
            {
                "madonvi": "000.00.10.H12",
                "service": PROGRESS,
                "data": [{"MaHoSo": "000.00.10.H12-240315-0001", "TrangThai": 9}],
            },
            200,
        ),
    ],
)
async def test_invalid_calls_are_refused_like_the_gateway(
    sim: httpx.AsyncClient, body: dict[str, Any], code: int
) -> None:
    """Missing fields are 200, wrong types 302, values off their list 500, bad agencies 106."""
    answer = await call(sim, await login(sim), **body)
    assert answer["error_code"] == code, answer
    assert (await stats(sim))["synced"] == 0


async def test_update_of_unknown_dossier_is_record_not_found(sim: httpx.AsyncClient) -> None:
    """isUpdating true for a dossier the portal does not hold is 201; for a held one, kept."""
    session = await login(sim)
    unknown = await call(sim, session, **{**_sync_body(), "isUpdating": True})
    assert unknown["error_code"] == 201
    assert (await call(sim, session, **_sync_body()))["error_code"] == 0
    updated = await call(sim, session, **{**_sync_body(TrangThaiHoSo=2), "isUpdating": True})
    assert updated["error_code"] == 0
    counters = await stats(sim)
    assert (counters["synced"], counters["updated"]) == (1, 1)


async def test_lookup_reads_back_dossier_with_progress(
    connector: DvcqgConnector, sim: httpx.AsyncClient
) -> None:
    """TraCuuHoSo answers the held record with its progress; an unknown MaHoSo is 201."""
    dossier = sample_birth_dossier()
    await connector.deliver(make_delivery(dossier))
    session = await login(sim)
    held = await call(sim, session, madonvi=JUSTICE, service=LOOKUP, MaHoSo=dossier.code)
    assert held["data"]["MaHoSo"] == dossier.code
    assert held["data"]["DanhSachTienDo"] == []
    missing = await call(
        sim, session, madonvi=JUSTICE, service=LOOKUP, MaHoSo="000.00.10.H12-240315-9999"
    )
    assert missing["error_code"] == 201


async def test_reset_clears_faults_sessions_and_counters(
    connector: DvcqgConnector, sim: httpx.AsyncClient
) -> None:
    """POST /_sim/reset switches every fault off, ends sessions and zeroes the counters."""
    await connector.deliver(make_delivery(sample_birth_dossier()))
    await set_faults(sim, error_rate=1.0, session_max_calls=3, error_code=500)
    await sim.post("/_sim/reset")
    faults = (await sim.get("/_sim/faults")).json()
    assert (faults["error_rate"], faults["session_max_calls"], faults["error_code"]) == (
        0,
        None,
        None,
    )
    assert (await sim.post("/_sim/expire-sessions")).json() == {"expired_sessions": 0}
    counters = await stats(sim)
    assert (counters["logins"], counters["synced"], counters["synced_codes"]) == (0, 0, [])


async def test_fault_switches_are_validated(sim: httpx.AsyncClient) -> None:
    """A session_max_calls of 0, an error_code of 0 or an unknown switch is refused with 422."""
    assert (await sim.post("/_sim/faults", json={"session_max_calls": 0})).status_code == 422
    assert (await sim.post("/_sim/faults", json={"error_code": 0})).status_code == 422
    assert (await sim.post("/_sim/faults", json={"explode": True})).status_code == 422
