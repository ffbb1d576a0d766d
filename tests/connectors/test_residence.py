"""The residence connector against its simulator over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from importlib.metadata import entry_points
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bus.connector import Connector, ConnectorConfig, Delivery, DeliveryReceipt, NoAuth
from bus.errors import InvalidMessage, MappingError, PartnerRejected, PartnerUnavailable
from bus.mapping import MappingCatalog
from bus.rest import RestClient
from bus.testing import serve_app
from connectors.residence import (
    DEFAULT_MAPPING,
    REGISTER_PATH,
    REMOVAL_PATH,
    REMOVE_PERMANENT_RESIDENCE,
    ResidenceConnector,
    SimulatorState,
    create_simulator_app,
)
from connectors.residence.simulator import HeldDossier, Registration, Removal
from connectors.residence.wire import LOOKUP_PATH
from contracts import (
    DOSSIER_DATASCHEMA,
    EVENT_DOSSIER_SUBMITTED,
    Dossier,
    DossierStatus,
    EventEnvelope,
    sample_birth_dossier,
)
from tests.connectors.helpers import set_faults, stats
from tests.connectors.linkage_steps import BUNDLES, DEATH_CERTIFICATE, death_dossier, step_delivery

BIRTH_CERTIFICATE = "KS/2024/000001"


def birth_dossier(sequence: int = 1, **form: Any) -> Dossier:
    """The sample birth dossier with the birth certificate number step 1 issued in its form."""
    dossier = sample_birth_dossier(sequence=sequence)
    values = {**dossier.form, "birth_certificate_number": BIRTH_CERTIFICATE, **form}
    return dossier.model_copy(update={"form": {k: v for k, v in values.items() if v is not None}})


def make_delivery(dossier: Dossier, *, message_id: str | None = None) -> Delivery:
    """A delivery of ``dossier`` as the bus would hand it to the connector."""
    event = EventEnvelope(
        id=message_id or f"evt-{dossier.code}",
        source=dossier.receiving_agency,
        type=EVENT_DOSSIER_SUBMITTED,
        subject=dossier.code,
        time=dossier.received_at,
        dataschema=DOSSIER_DATASCHEMA,
        correlationid=f"run-{dossier.code}",
        dossierseq=1,
        data=dossier.model_dump(mode="json"),
    )
    return Delivery(message_id=event.id, event=event, dossier=dossier)


@pytest.fixture(scope="module")
def state() -> SimulatorState:
    """One simulator register for the module; reset before every test."""
    return SimulatorState(seed=7)


@pytest.fixture(scope="module")
def base_url(state: SimulatorState) -> Iterator[str]:
    """The simulator, served over HTTP on a free loopback port."""
    with serve_app(create_simulator_app(state)) as url:
        yield url


@pytest.fixture(autouse=True)
def _fresh_simulator(state: SimulatorState) -> None:
    """Every test starts with an empty register and no faults."""
    state.reset()


@pytest.fixture(scope="module")
def catalog() -> MappingCatalog:
    """The shipped mappings, compiled once for the module."""
    return MappingCatalog.load(partners=("residence",))


@pytest.fixture
def config(base_url: str) -> ConnectorConfig:
    """The shipped connector.toml, pointed at the simulator."""
    return ConnectorConfig.from_file(ResidenceConnector.default_config, endpoint=base_url)


@pytest.fixture
async def connector(
    config: ConnectorConfig, catalog: MappingCatalog
) -> AsyncIterator[ResidenceConnector]:
    """A connector talking to the simulator."""
    instance = ResidenceConnector(config, catalog=catalog)
    yield instance
    await instance.aclose()


async def deliver_mocked(
    config: ConnectorConfig,
    handler: Callable[[httpx.Request], httpx.Response],
    dossier: Dossier | None = None,
) -> DeliveryReceipt:
    """Deliver to a partner whose answers come from ``handler`` instead of the network."""
    connector = ResidenceConnector(config, transport=httpx.MockTransport(handler))
    try:
        return await connector.deliver(make_delivery(dossier or birth_dossier()))
    finally:
        await connector.aclose()


def answering(body: dict[str, Any]) -> Callable[[httpx.Request], httpx.Response]:
    """A handler answering ``body`` with HTTP 200."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body)

    return answer


# --- configuration -------------------------------------------------------------------------


def test_entry_point_resolves_to_connector() -> None:
    """The lienthong_bus.connectors entry point residence loads ResidenceConnector."""
    (entry,) = entry_points(group="lienthong_bus.connectors", name="residence")
    assert entry.load() is ResidenceConnector


def test_shipped_config_reads() -> None:
    """The shipped connector.toml: a REST connector on 8102, no procedures, X-Road identity."""
    config = ConnectorConfig.from_file(ResidenceConnector.default_config)
    assert (config.id, config.kind, config.mapping) == ("residence", "rest", "residence/1.0")
    assert config.procedures == ()
    assert config.concurrency == 8
    assert str(config.endpoint) == "http://127.0.0.1:8102/"
    assert isinstance(config.auth, NoAuth)
    assert config.xroad is not None and config.xroad.client.startswith("VN/GOV/")


def test_public_names_resolve() -> None:
    """Every name in connectors.residence.__all__ can be imported from the package."""
    import connectors.residence as package

    for name in package.__all__:
        assert getattr(package, name) is not None


async def test_connector_satisfies_protocol(connector: ResidenceConnector) -> None:
    """ResidenceConnector is a bus Connector."""
    assert isinstance(connector, Connector)


async def test_built_from_config_alone(config: ConnectorConfig) -> None:
    """Built as the registry builds it, from its config alone, the connector maps and delivers."""
    connector = ResidenceConnector(config)
    try:
        receipt = await connector.deliver(make_delivery(birth_dossier()))
    finally:
        await connector.aclose()
    assert receipt.status is DossierStatus.PROCESSED


# --- the happy path ------------------------------------------------------------------------


async def test_delivery_is_registered(
    connector: ResidenceConnector, sim: httpx.AsyncClient, state: SimulatorState
) -> None:
    """A birth dossier is registered: PROCESSED, the household number as reference."""
    dossier = birth_dossier()
    receipt = await connector.deliver(make_delivery(dossier))

    assert receipt.status is DossierStatus.PROCESSED
    assert receipt.partner_reference is not None
    assert len(receipt.partner_reference) == 14
    assert receipt.partner_reference.startswith("01") and receipt.partner_reference.endswith("1")
    assert receipt.mapping_version == f"{DEFAULT_MAPPING}/registration.out"
    assert receipt.note == "Đã đăng ký thường trú cho trẻ tại hộ có chủ hộ Trần Thị Cúc"
    assert receipt.extra == {"partner_status": "DA_DANG_KY"}
    assert receipt.request_size > 0 and receipt.response_size > 0
    assert receipt.sent_at.tzinfo is not None and receipt.sent_at <= receipt.answered_at
    assert await stats(sim) == {
        "applied": 1,
        "duplicates": 0,
        "requests": 1,
        "applied_codes": [dossier.code],
        "held": [],
    }
    registration = state.lookup(dossier.code)
    assert registration is not None and registration.child_full_name == "Nguyễn Thị Bình"


async def test_xroad_headers_reach_the_partner(
    connector: ResidenceConnector, config: ConnectorConfig, state: SimulatorState
) -> None:
    """The partner receives the configured X-Road client and user, and the dossier as issue."""
    dossier = birth_dossier()
    await connector.deliver(make_delivery(dossier))
    assert config.xroad is not None
    assert state.last_xroad["x-road-client"] == config.xroad.client
    assert state.last_xroad["x-road-userid"] == config.xroad.user_id
    assert state.last_xroad["x-road-issue"] == dossier.code


async def test_request_carries_birth_certificate_and_idempotency_key(
    config: ConnectorConfig,
) -> None:
    """The body is the mapped registration with the form's birth certificate number."""
    seen: list[httpx.Request] = []
    dossier = birth_dossier()

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"error_code": 0, "ketQua": "DA_TIEP_NHAN", "thoiGian": "20240316090000"}
        )

    connector = ResidenceConnector(config, transport=httpx.MockTransport(answer))
    try:
        await connector.deliver(make_delivery(dossier, message_id="msg-7"))
    finally:
        await connector.aclose()
    (request,) = seen
    assert request.url.path == REGISTER_PATH
    assert request.headers["Idempotency-Key"] == "msg-7"
    body = json.loads(request.content)
    assert body["maHoSo"] == dossier.code
    assert body["congDan"]["soGiayKhaiSinh"] == BIRTH_CERTIFICATE
    assert body["chuHo"]["hoTen"] == "Trần Thị Cúc"
    assert "session" not in body


async def test_same_delivery_twice_is_applied_once(
    connector: ResidenceConnector, sim: httpx.AsyncClient
) -> None:
    """Delivering the same dossier twice registers it once and answers the same number."""
    delivery = make_delivery(birth_dossier())
    first = await connector.deliver(delivery)
    second = await connector.deliver(delivery)

    assert second.partner_reference == first.partner_reference
    assert second.status is DossierStatus.PROCESSED
    assert "already_registered" not in first.extra
    assert second.extra["already_registered"] == "true"
    counters = await stats(sim)
    assert (counters["applied"], counters["duplicates"], counters["requests"]) == (1, 1, 2)


async def test_concurrent_deliveries_are_counted_exactly(
    connector: ResidenceConnector, sim: httpx.AsyncClient
) -> None:
    """Thirty dossiers delivered twice, all at once, are applied thirty times, never more."""
    deliveries = [make_delivery(birth_dossier(sequence=n)) for n in range(1, 31)]
    receipts = await asyncio.gather(*(connector.deliver(d) for d in deliveries * 2))

    assert len({receipt.partner_reference for receipt in receipts}) == 30
    counters = await stats(sim)
    assert (counters["applied"], counters["duplicates"], counters["requests"]) == (30, 30, 60)
    assert sorted(counters["applied_codes"]) == sorted(d.dossier.code for d in deliveries)


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ("DA_TIEP_NHAN", DossierStatus.ACCEPTED),
        ("DA_DANG_KY", DossierStatus.PROCESSED),
        ("TU_CHOI", DossierStatus.NOT_ACCEPTED),
        ("BO_SUNG", DossierStatus.SUPPLEMENT_REQUESTED),
    ],
)
async def test_partner_result_maps_to_dossier_status(
    config: ConnectorConfig, result: str, expected: DossierStatus
) -> None:
    """ketQua DA_TIEP_NHAN, DA_DANG_KY, TU_CHOI and BO_SUNG map to 2, 9, 3 and 5."""
    receipt = await deliver_mocked(
        config,
        answering({"error_code": 0, "ketQua": result, "thoiGian": "20240316090000", "lyDo": "..."}),
    )
    assert receipt.status is expected
    assert receipt.note == "..."
    assert receipt.extra["partner_status"] == result


async def test_receipt_note_masks_identity_numbers(config: ConnectorConfig) -> None:
    """A CCCD echoed in lyDo reaches the receipt's note masked."""
    answer = {
        "error_code": 0,
        "ketQua": "BO_SUNG",
        "thoiGian": "20240316090000",
        "lyDo": "Bổ sung CCCD 001192054321 của chủ hộ",
    }
    receipt = await deliver_mocked(config, answering(answer))
    assert receipt.note == "Bổ sung CCCD *********321 của chủ hộ"


@pytest.mark.parametrize(
    "answer",
    [
        {"error_code": 0, "ketQua": "DANG_XU_LY", "thoiGian": "20240316090000"},
        {"error_code": 0, "ketQua": "DA_DANG_KY"},
        {"error_code": 0, "ketQua": "DA_DANG_KY", "thoiGian": "20240316090000", "maHoSo": "x"},
    ],
)
async def test_unreadable_answers_are_malformed_reply(
    config: ConnectorConfig, answer: dict[str, Any]
) -> None:
    """An unknown ketQua, no thoiGian, or another dossier's answer is MALFORMED_REPLY."""
    with pytest.raises(PartnerUnavailable) as caught:
        await deliver_mocked(config, answering(answer))
    assert caught.value.fault_code == "MALFORMED_REPLY"
    assert isinstance(caught.value.__cause__, ValueError)


# --- failure switches ----------------------------------------------------------------------


async def test_server_error_is_transient(
    connector: ResidenceConnector, sim: httpx.AsyncClient
) -> None:
    """error_rate 1 (HTTP 503) is PartnerUnavailable HTTP_503, and nothing is registered."""
    await set_faults(sim, error_rate=1.0)
    with pytest.raises(PartnerUnavailable) as caught:
        await connector.deliver(make_delivery(birth_dossier()))
    assert caught.value.fault_code == "HTTP_503"
    assert isinstance(caught.value.__cause__, httpx.HTTPStatusError)
    assert (await stats(sim))["applied"] == 0


async def test_hang_times_out_as_transient(config: ConnectorConfig, sim: httpx.AsyncClient) -> None:
    """A partner that never answers is PARTNER_TIMEOUT once timeout_seconds have passed."""
    await set_faults(sim, hang=True)
    connector = ResidenceConnector(config.model_copy(update={"timeout_seconds": 0.3}))
    started = time.monotonic()
    try:
        with pytest.raises(PartnerUnavailable) as caught:
            await connector.deliver(make_delivery(birth_dossier()))
    finally:
        await connector.aclose()
    assert time.monotonic() - started < 5
    assert caught.value.fault_code == "PARTNER_TIMEOUT"
    await set_faults(sim)
    assert (await stats(sim))["applied"] == 0


async def test_latency_below_timeout_still_registers(
    connector: ResidenceConnector, sim: httpx.AsyncClient
) -> None:
    """A slow partner that answers within the timeout registers the dossier normally."""
    await set_faults(sim, latency_ms=150)
    receipt = await connector.deliver(make_delivery(birth_dossier()))
    assert receipt.status is DossierStatus.PROCESSED
    assert (receipt.answered_at - receipt.sent_at).total_seconds() >= 0.15


async def test_reject_all_is_a_gateway_rejection(
    connector: ResidenceConnector, sim: httpx.AsyncClient
) -> None:
    """reject_all (error_code 500) is PartnerRejected GATEWAY_500_DATA_INCORRECT, permanent."""
    await set_faults(sim, reject_all=True)
    with pytest.raises(PartnerRejected, match="hồ sơ bị từ chối") as caught:
        await connector.deliver(make_delivery(birth_dossier()))
    assert caught.value.fault_code == "GATEWAY_500_DATA_INCORRECT"
    assert caught.value.error_class == "permanent"
    assert (await stats(sim))["applied"] == 0


async def test_garbage_answer_is_malformed_reply(
    connector: ResidenceConnector, sim: httpx.AsyncClient
) -> None:
    """malformed (an HTML page with HTTP 200) is PartnerUnavailable MALFORMED_REPLY."""
    await set_faults(sim, malformed=True)
    with pytest.raises(PartnerUnavailable) as caught:
        await connector.deliver(make_delivery(birth_dossier()))
    assert caught.value.fault_code == "MALFORMED_REPLY"


async def test_failing_dossier_fails_alone(
    connector: ResidenceConnector, sim: httpx.AsyncClient
) -> None:
    """A dossier in failing_dossiers gets HTTP 503 while the next one registers."""
    poison, healthy = birth_dossier(sequence=1), birth_dossier(sequence=2)
    await set_faults(sim, failing_dossiers=[poison.code])
    with pytest.raises(PartnerUnavailable) as caught:
        await connector.deliver(make_delivery(poison))
    assert caught.value.fault_code == "HTTP_503"
    receipt = await connector.deliver(make_delivery(healthy))
    assert receipt.status is DossierStatus.PROCESSED
    assert (await stats(sim))["applied_codes"] == [healthy.code]


async def test_connection_refused_is_transient(config: ConnectorConfig) -> None:
    """A partner that refuses the connection is PARTNER_UNREACHABLE."""
    with serve_app(create_simulator_app()) as url:
        pass  # the port is free again once the server has stopped
    connector = ResidenceConnector(config.model_copy(update={"endpoint": url}))
    try:
        with pytest.raises(PartnerUnavailable) as caught:
            await connector.deliver(make_delivery(birth_dossier()))
    finally:
        await connector.aclose()
    assert caught.value.fault_code == "PARTNER_UNREACHABLE"


# --- the partner's own checks, through the REST kit ----------------------------------------


@pytest.mark.parametrize(
    ("change", "fault"),
    [
        ({"congDan": None}, "GATEWAY_200_RECORD_UNCOMPLETE"),
        ({"maDonViTiepNhan": "H12"}, "GATEWAY_106_AGENCY_ID_INCORRECT"),
        ({"noiThuongTru": {"maTinh": "1", "maXa": "00001"}}, "GATEWAY_108_PROVINCE_ID_INCORRECT"),
        ({"ngayTiepNhan": "15/03/2024"}, "GATEWAY_302_DATA_TYPE_INVALID"),
        ({"loaiThuTuc": "XYZ"}, "GATEWAY_500_DATA_INCORRECT"),
    ],
)
async def test_simulator_answers_gateway_codes(
    config: ConnectorConfig, catalog: MappingCatalog, change: dict[str, Any], fault: str
) -> None:
    """The simulator refuses a bad registration with the gateway code that names the fault."""
    mapping = catalog.get(f"{DEFAULT_MAPPING}/registration.out")
    dossier = birth_dossier()
    body = mapping.apply(dossier.model_dump(mode="json"), {"birth_certificate_number": "1/2024"})
    client = RestClient(config)
    try:
        with pytest.raises(PartnerRejected) as caught:
            await client.request("POST", REGISTER_PATH, json={**body, **change}, issue=dossier.code)
    finally:
        await client.aclose()
    assert caught.value.fault_code == fault


async def test_lookup_of_unknown_dossier_is_record_not_found(
    connector: ResidenceConnector, config: ConnectorConfig
) -> None:
    """traCuuHoSo answers a registered dossier, and error_code 201 for an unknown one."""
    dossier = birth_dossier()
    receipt = await connector.deliver(make_delivery(dossier))
    client = RestClient(config)
    try:
        known = await client.request(
            "GET", "/api/cutru/traCuuHoSo", params={"maHoSo": dossier.code}
        )
        with pytest.raises(PartnerRejected) as caught:
            await client.request("GET", "/api/cutru/traCuuHoSo", params={"maHoSo": "không-có"})
    finally:
        await client.aclose()
    assert known.body["soHoKhau"] == receipt.partner_reference
    assert caught.value.fault_code == "GATEWAY_201_RECORD_NOT_FOUND"


# --- mapping -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", 125])
async def test_missing_birth_certificate_fails_before_any_call(
    connector: ResidenceConnector, sim: httpx.AsyncClient, value: Any
) -> None:
    """Without a birth_certificate_number string in the form, a MappingError names it; no call."""
    dossier = birth_dossier(birth_certificate_number=value)
    with pytest.raises(MappingError, match="birth_certificate_number") as caught:
        await connector.deliver(make_delivery(dossier))
    assert caught.value.fault_code == "FORM_INVALID"
    assert caught.value.mapping == f"{DEFAULT_MAPPING}/registration.out"
    assert caught.value.source_path == "form.birth_certificate_number"
    assert dossier.code in str(caught.value)
    assert (await stats(sim))["requests"] == 0


async def test_unmappable_form_fails_before_any_call(
    connector: ResidenceConnector, sim: httpx.AsyncClient
) -> None:
    """A gender outside the code list is a MappingError FORM_INVALID naming the field."""
    dossier = birth_dossier(child_gender="unknown")
    with pytest.raises(MappingError) as caught:
        await connector.deliver(make_delivery(dossier))
    assert caught.value.fault_code == "FORM_INVALID"
    assert caught.value.source_path == "form.child_gender"
    assert (await stats(sim))["requests"] == 0


# --- the simulator on its own --------------------------------------------------------------


async def test_reset_clears_faults_and_counters(
    connector: ResidenceConnector, sim: httpx.AsyncClient
) -> None:
    """POST /_sim/reset switches every fault off and zeroes the counters."""
    await connector.deliver(make_delivery(birth_dossier()))
    await set_faults(sim, error_rate=1.0)
    await sim.post("/_sim/reset")
    assert (await sim.get("/_sim/faults")).json()["error_rate"] == 0
    assert await stats(sim) == {
        "applied": 0,
        "duplicates": 0,
        "requests": 0,
        "applied_codes": [],
        "held": [],
    }


async def test_fault_switches_are_validated(sim: httpx.AsyncClient) -> None:
    """An error_rate outside 0..1 or an unknown switch is refused with 422."""
    assert (await sim.post("/_sim/faults", json={"error_rate": 1.5})).status_code == 422
    assert (await sim.post("/_sim/faults", json={"explode": True})).status_code == 422


# --- the death bundle: removal of the deceased's permanent residence ------------------------


@pytest.fixture
async def quick_connector(
    config: ConnectorConfig, catalog: MappingCatalog
) -> AsyncIterator[ResidenceConnector]:
    """A connector that gives up after one second, for the hanging partner."""
    instance = ResidenceConnector(
        config.model_copy(update={"timeout_seconds": 1.0}), catalog=catalog
    )
    yield instance
    await instance.aclose()


def removal(dossier: Dossier | None = None, *, attempt: int = 1) -> Delivery:
    """The death bundle's residence step for ``dossier`` (default: the sample death dossier)."""
    return step_delivery(dossier or death_dossier(), "residence_removal", attempt=attempt)


def test_operations_cover_the_bundles() -> None:
    """Every step the shipped bundles give residence names its default or a listed operation."""
    assert ResidenceConnector.operations == frozenset({REMOVE_PERMANENT_RESIDENCE})
    asked = {
        step.operation
        for bundle in BUNDLES.values()
        for step in bundle.steps
        if step.connector == "residence"
    }
    assert asked == {None, REMOVE_PERMANENT_RESIDENCE}


async def test_birth_step_keeps_the_registration(
    connector: ResidenceConnector, state: SimulatorState
) -> None:
    """The birth bundle's step, which names no operation, registers the newborn as before."""
    dossier = birth_dossier()
    delivery = step_delivery(dossier, "permanent_residence", bundle=BUNDLES["birth"])
    assert delivery.operation is None

    receipt = await connector.deliver(delivery)

    assert receipt.status is DossierStatus.PROCESSED
    assert receipt.mapping_version == f"{DEFAULT_MAPPING}/registration.out"
    assert receipt.extra["partner_status"] == "DA_DANG_KY"
    assert isinstance(state.lookup(dossier.code), Registration)


async def test_death_step_removes_the_permanent_residence(
    connector: ResidenceConnector, sim: httpx.AsyncClient, state: SimulatorState
) -> None:
    """remove_permanent_residence: PROCESSED (DA_XOA), the household number as reference."""
    dossier = death_dossier()
    receipt = await connector.deliver(removal(dossier))

    assert receipt.status is DossierStatus.PROCESSED
    assert receipt.partner_reference is not None and len(receipt.partner_reference) == 14
    assert receipt.mapping_version == f"{DEFAULT_MAPPING}/removal.out"
    assert receipt.note == "Đã xóa đăng ký thường trú của công dân Trần Văn Đức (đã chết)"
    assert receipt.extra == {"partner_status": "DA_XOA"}
    assert await stats(sim) == {
        "applied": 1,
        "duplicates": 0,
        "requests": 1,
        "applied_codes": [dossier.code],
        "held": [],
    }
    record = state.lookup(dossier.code)
    assert isinstance(record, Removal)
    assert (record.full_name, record.death_extract_number) == ("Trần Văn Đức", DEATH_CERTIFICATE)
    assert state.last_request is not None and state.last_request.path == REMOVAL_PATH
    assert state.last_xroad["x-road-issue"] == dossier.code


async def test_removal_request_carries_the_death_extract(config: ConnectorConfig) -> None:
    """The removal body: the deceased, the passed death extract number, reason CHET."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"error_code": 0, "ketQua": "DA_TIEP_NHAN", "thoiGian": "20240316090000"}
        )

    dossier = death_dossier()
    connector = ResidenceConnector(config, transport=httpx.MockTransport(answer))
    try:
        receipt = await connector.deliver(
            step_delivery(dossier, "residence_removal", message_id="msg-9")
        )
    finally:
        await connector.aclose()
    (request,) = seen
    assert request.url.path == REMOVAL_PATH
    assert request.headers["Idempotency-Key"] == "msg-9"
    body = json.loads(request.content)
    assert (body["maHoSo"], body["loaiThuTuc"], body["lyDoXoa"]) == (dossier.code, "XDKTT", "CHET")
    assert body["khaiTu"] == {"soTrichLuc": DEATH_CERTIFICATE, "ngayChet": "12/03/2024"}
    assert body["congDan"]["soDinhDanh"] == dossier.form["deceased_identity_number"]
    assert body["nguoiDeNghi"]["quanHe"] == "Con"
    assert receipt.status is DossierStatus.ACCEPTED


async def test_same_removal_twice_is_applied_once(
    connector: ResidenceConnector, sim: httpx.AsyncClient
) -> None:
    """Delivering the same removal twice removes once and answers the same household number."""
    first = await connector.deliver(removal())
    second = await connector.deliver(removal(attempt=2))

    assert second.partner_reference == first.partner_reference
    assert second.extra["already_registered"] == "true"
    counters = await stats(sim)
    assert (counters["applied"], counters["duplicates"], counters["requests"]) == (1, 1, 2)


@pytest.mark.parametrize(
    ("switches", "error", "fault_code"),
    [
        pytest.param({"error_rate": 1.0}, PartnerUnavailable, "HTTP_503", id="503"),
        pytest.param({"malformed": True}, PartnerUnavailable, "MALFORMED_REPLY", id="malformed"),
        pytest.param(
            {"hang": True, "hang_seconds": 5}, PartnerUnavailable, "PARTNER_TIMEOUT", id="hang"
        ),
        pytest.param(
            {"reject_all": True}, PartnerRejected, "GATEWAY_500_DATA_INCORRECT", id="refusal"
        ),
    ],
)
async def test_removal_failures_are_classified(
    quick_connector: ResidenceConnector,
    sim: httpx.AsyncClient,
    switches: dict[str, Any],
    error: type[Exception],
    fault_code: str,
) -> None:
    """503, a malformed answer, a hang and a refusal fail the removal as their kind, and remove
    nothing; a well partner takes the retry."""
    await set_faults(sim, **switches)
    with pytest.raises(error) as caught:
        await quick_connector.deliver(removal())
    assert getattr(caught.value, "fault_code", None) == fault_code
    assert (await stats(sim))["applied"] == 0

    await set_faults(sim)
    receipt = await quick_connector.deliver(removal(attempt=2))
    assert receipt.status is DossierStatus.PROCESSED
    assert (await stats(sim))["applied"] == 1


async def test_slow_partner_still_removes(
    connector: ResidenceConnector, sim: httpx.AsyncClient
) -> None:
    """A partner that answers after 150 ms, within the timeout, removes the residence."""
    await set_faults(sim, latency_ms=150)
    receipt = await connector.deliver(removal())
    assert receipt.status is DossierStatus.PROCESSED
    assert (receipt.answered_at - receipt.sent_at).total_seconds() >= 0.15


async def test_failing_removal_fails_alone(
    connector: ResidenceConnector, sim: httpx.AsyncClient
) -> None:
    """A death dossier in failing_dossiers gets HTTP 503 while the next one is removed."""
    poison, healthy = death_dossier(sequence=1), death_dossier(sequence=2)
    await set_faults(sim, failing_dossiers=[poison.code])
    with pytest.raises(PartnerUnavailable) as caught:
        await connector.deliver(removal(poison))
    assert caught.value.fault_code == "HTTP_503"
    assert (await connector.deliver(removal(healthy))).status is DossierStatus.PROCESSED
    assert (await stats(sim))["applied_codes"] == [healthy.code]


@pytest.mark.parametrize("value", [None, "", "  ", 125])
async def test_missing_death_certificate_fails_before_any_call(
    connector: ResidenceConnector, sim: httpx.AsyncClient, value: Any
) -> None:
    """Without a death_certificate_number string in the form: FORM_INVALID, permanent, no call."""
    dossier = death_dossier(death_certificate_number=value)
    with pytest.raises(MappingError, match="death_certificate_number") as caught:
        await connector.deliver(removal(dossier))
    assert caught.value.fault_code == "FORM_INVALID"
    assert caught.value.error_class == "permanent"
    assert caught.value.mapping == f"{DEFAULT_MAPPING}/removal.out"
    assert caught.value.source_path == "form.death_certificate_number"
    assert caught.value.target_field == "khaiTu.soTrichLuc"
    assert (await stats(sim))["requests"] == 0


async def test_birth_certificate_does_not_stand_in_for_the_death_extract(
    connector: ResidenceConnector, sim: httpx.AsyncClient
) -> None:
    """A form holding only a birth certificate number cannot remove a residence."""
    dossier = death_dossier(death_certificate_number=None, birth_certificate_number="1/2024")
    with pytest.raises(MappingError, match="death_certificate_number"):
        await connector.deliver(removal(dossier))
    assert (await stats(sim))["requests"] == 0


async def test_unmappable_death_form_fails_before_any_call(
    connector: ResidenceConnector, sim: httpx.AsyncClient
) -> None:
    """A death form without the deceased's identity number is FORM_INVALID naming the field."""
    dossier = death_dossier(deceased_identity_number=None)
    with pytest.raises(MappingError) as caught:
        await connector.deliver(removal(dossier))
    assert caught.value.fault_code == "FORM_INVALID"
    assert caught.value.source_path == "form.deceased_identity_number"
    assert (await stats(sim))["requests"] == 0


async def test_unknown_operation_is_permanent(
    connector: ResidenceConnector, sim: httpx.AsyncClient
) -> None:
    """An operation residence does not have is InvalidMessage naming the ones it has; no call."""
    delivery = step_delivery(death_dossier(), "residence_removal", operation="temporary_stay")
    with pytest.raises(InvalidMessage, match=REMOVE_PERMANENT_RESIDENCE) as caught:
        await connector.deliver(delivery)
    assert caught.value.fault_code == "UNSUPPORTED_OPERATION"
    assert caught.value.error_class == "permanent"
    assert "temporary_stay" in str(caught.value)
    assert (await stats(sim))["requests"] == 0


@pytest.mark.parametrize(
    ("change", "fault"),
    [
        ({"khaiTu": {"ngayChet": "12/03/2024"}}, "GATEWAY_200_RECORD_UNCOMPLETE"),
        ({"lyDoXoa": "CHUYEN_DI"}, "GATEWAY_500_DATA_INCORRECT"),
        ({"loaiThuTuc": "DKTT"}, "GATEWAY_500_DATA_INCORRECT"),
        (
            {"khaiTu": {"soTrichLuc": "1/2024", "ngayChet": "16/03/2024"}},
            "GATEWAY_500_DATA_INCORRECT",
        ),
        (
            {"khaiTu": {"soTrichLuc": "1/2024", "ngayChet": "2024-03-12"}},
            "GATEWAY_302_DATA_TYPE_INVALID",
        ),
    ],
)
async def test_simulator_checks_a_removal(
    config: ConnectorConfig, catalog: MappingCatalog, change: dict[str, Any], fault: str
) -> None:
    """No extract, another reason or procedure, a death after receipt, a foreign date: refused."""
    mapping = catalog.get(f"{DEFAULT_MAPPING}/removal.out")
    dossier = death_dossier()
    body = mapping.apply(dossier.model_dump(mode="json"), {"death_certificate_number": "1/2024"})
    client = RestClient(config)
    try:
        with pytest.raises(PartnerRejected) as caught:
            await client.request("POST", REMOVAL_PATH, json={**body, **change}, issue=dossier.code)
    finally:
        await client.aclose()
    assert caught.value.fault_code == fault


async def test_one_dossier_code_names_one_procedure(
    connector: ResidenceConnector, sim: httpx.AsyncClient
) -> None:
    """A removal under the code of a registered newborn is refused: one dossier, one act."""
    newborn, deceased = birth_dossier(), death_dossier()
    assert newborn.code == deceased.code  # the samples share agency, day and sequence
    await connector.deliver(make_delivery(newborn))
    with pytest.raises(PartnerRejected, match="thủ tục khác") as caught:
        await connector.deliver(removal(deceased))
    assert caught.value.fault_code == "GATEWAY_500_DATA_INCORRECT"
    assert (await stats(sim))["applied"] == 1


async def test_lookup_answers_a_removal(
    connector: ResidenceConnector, config: ConnectorConfig
) -> None:
    """traCuuHoSo answers a removed residence with DA_XOA and its household number."""
    dossier = death_dossier()
    receipt = await connector.deliver(removal(dossier))
    client = RestClient(config)
    try:
        known = await client.request(
            "GET", "/api/cutru/traCuuHoSo", params={"maHoSo": dossier.code}
        )
    finally:
        await client.aclose()
    assert (known.body["ketQua"], known.body["soHoKhau"]) == ("DA_XOA", receipt.partner_reference)


# --- a supplement asked, then brought ----------------------------------------------------


async def test_a_supplement_request_holds_the_dossier_until_it_is_brought(
    connector: ResidenceConnector, sim: httpx.AsyncClient, state: SimulatorState
) -> None:
    """With ask_supplement the call is answered BO_SUNG (5) and nothing is registered, a repeat
    gets the same request; bringing the supplement registers the dossier once and pushes the
    outcome where it is told to."""
    await set_faults(sim, ask_supplement=True)
    dossier = birth_dossier()
    first = await connector.deliver(make_delivery(dossier))
    again = await connector.deliver(make_delivery(dossier))
    assert first.status is again.status is DossierStatus.SUPPLEMENT_REQUESTED
    assert first.note == again.note and first.note is not None and "bổ sung" in first.note
    assert first.partner_reference is None
    assert state.lookup(dossier.code) is None
    assert isinstance(state.held[dossier.code], HeldDossier)
    looked_up = await sim.get(LOOKUP_PATH, params={"maHoSo": dossier.code})
    assert looked_up.json()["ketQua"] == "BO_SUNG"

    pushed: list[dict[str, Any]] = []
    inbound = FastAPI()

    @inbound.post("/v1/inbound/residence")
    async def receive(body: dict[str, Any]) -> dict[str, Any]:
        pushed.append(body)
        return {"error_code": 0, "message": "Thành công"}

    with serve_app(inbound) as bus_url:
        brought = await sim.post(
            f"/_sim/supplements/{dossier.code}",
            json={"push_to": f"{bus_url}/v1/inbound/residence"},
        )
    assert brought.status_code == 200, brought.text
    outcome = brought.json()
    assert outcome["pushed"] == 200 and pushed == [outcome["answer"]]
    assert outcome["answer"]["ketQua"] == "DA_DANG_KY" and outcome["answer"]["soHoKhau"]
    counters = await stats(sim)
    assert (counters["applied_codes"], counters["held"]) == ([dossier.code], [])
    assert (await sim.post(f"/_sim/supplements/{dossier.code}")).status_code == 404

    # Once registered, a repeated call is answered from the register, not asked again.
    later = await connector.deliver(make_delivery(dossier))
    assert later.status is DossierStatus.PROCESSED
    assert later.partner_reference == outcome["answer"]["soHoKhau"]
    assert (await stats(sim))["applied"] == 1
