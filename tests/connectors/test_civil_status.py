"""The civil-status connector against its simulator over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import pytest

from bus.connector import Connector, ConnectorConfig, Delivery, DeliveryReceipt
from bus.errors import MappingError, PartnerRejected, PartnerUnavailable
from bus.mapping import MappingCatalog, SpecError
from bus.testing import HOSTILE_XML, serve_app
from bus.xmlsafe import parse_xml
from connectors.civil_status import (
    DEFAULT_MAPPING,
    CivilStatusConnector,
    SimulatorState,
    create_simulator_app,
)
from contracts import (
    DOSSIER_DATASCHEMA,
    EVENT_DOSSIER_SUBMITTED,
    VN_TZ,
    Dossier,
    DossierStatus,
    EventEnvelope,
    StatusChange,
    sample_birth_dossier,
)

REGISTER = "/api/hotich/dangKyHoTich"


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


def register_body(data: str, code: str = "000.00.10.H12-240315-0001") -> dict[str, str]:
    """A dangKyHoTich body around an arbitrary ``data`` payload."""
    return {
        "maDonVi": "000.00.10.H12",
        "module": "KS",
        "maHoSo": code,
        "ngayTiepNhan": "20240315090000",
        "data": data,
    }


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
    return MappingCatalog.load()


@pytest.fixture
def config(base_url: str) -> ConnectorConfig:
    """The shipped connector.toml, pointed at the simulator."""
    return ConnectorConfig.from_file(CivilStatusConnector.default_config, endpoint=base_url)


@pytest.fixture
async def connector(
    config: ConnectorConfig, catalog: MappingCatalog
) -> AsyncIterator[CivilStatusConnector]:
    """A connector talking to the simulator."""
    instance = CivilStatusConnector(config, catalog=catalog)
    yield instance
    await instance.aclose()


@pytest.fixture
async def sim(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client on the simulator, for its switches and for hostile requests."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        yield client


async def set_faults(sim: httpx.AsyncClient, **faults: Any) -> None:
    """Switch the simulator's failure modes."""
    response = await sim.post("/_sim/faults", json=faults)
    response.raise_for_status()


async def stats(sim: httpx.AsyncClient) -> dict[str, Any]:
    """The simulator's exact counters, read over HTTP."""
    response = await sim.get("/_sim/stats")
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def mocked_connector(
    config: ConnectorConfig, handler: Callable[[httpx.Request], httpx.Response]
) -> CivilStatusConnector:
    """A connector whose HTTP calls are answered by ``handler`` instead of the network."""
    return CivilStatusConnector(config, transport=httpx.MockTransport(handler))


async def deliver_answered(config: ConnectorConfig, body: dict[str, Any]) -> DeliveryReceipt:
    """Deliver the sample dossier to a partner that answers ``body`` with HTTP 200."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body)

    connector = mocked_connector(config, answer)
    try:
        return await connector.deliver(make_delivery(sample_birth_dossier()))
    finally:
        await connector.aclose()


# --- configuration -------------------------------------------------------------------------


def test_entry_point_resolves_to_connector() -> None:
    """The lienthong_bus.connectors entry point civil_status loads CivilStatusConnector."""
    (entry,) = entry_points(group="lienthong_bus.connectors", name="civil_status")
    assert entry.load() is CivilStatusConnector


def test_public_names_resolve() -> None:
    """Every name in connectors.civil_status.__all__ can be imported from the package."""
    import connectors.civil_status as package

    assert sorted(package.__all__) == sorted(
        ["DEFAULT_MAPPING", "CivilStatusConnector", "SimulatorState", "create_simulator_app"]
    )
    for name in package.__all__:
        assert getattr(package, name) is not None


def test_shipped_config_reads() -> None:
    """The shipped connector.toml is a valid ConnectorConfig for procedure 1.001193."""
    config = ConnectorConfig.from_file(CivilStatusConnector.default_config)
    assert config.id == "civil_status"
    assert config.procedures == ("1.001193",)
    assert config.concurrency == 8
    assert str(config.endpoint) == "http://127.0.0.1:8101/"


async def test_connector_satisfies_protocol(connector: CivilStatusConnector) -> None:
    """CivilStatusConnector is a bus Connector."""
    assert isinstance(connector, Connector)


async def test_connector_without_catalog_loads_the_shipped_mappings(
    config: ConnectorConfig,
) -> None:
    """Built as the registry builds it, from its config alone, the connector maps and delivers."""
    connector = CivilStatusConnector(config)
    try:
        receipt = await connector.deliver(make_delivery(sample_birth_dossier()))
    finally:
        await connector.aclose()
    assert receipt.status is DossierStatus.PROCESSED


def test_catalog_without_its_mappings_fails_at_construction(config: ConnectorConfig) -> None:
    """A catalogue that lacks civil_status/1.0 is a SpecError when the connector is built."""
    with pytest.raises(SpecError, match=r"civil_status/1\.0/birth-registration\.out"):
        CivilStatusConnector(config, catalog=MappingCatalog({}, Path("mappings")))


# --- the happy path ------------------------------------------------------------------------


async def test_delivery_is_registered(
    connector: CivilStatusConnector, sim: httpx.AsyncClient
) -> None:
    """A birth dossier is registered: PROCESSED, with the register's soDangKy as reference."""
    dossier = sample_birth_dossier()
    receipt = await connector.deliver(make_delivery(dossier))

    assert receipt.status is DossierStatus.PROCESSED
    assert receipt.partner_reference is not None
    assert receipt.partner_reference.startswith("KS/")
    assert receipt.partner_reference.endswith("/000001")
    assert receipt.mapping_version == f"{DEFAULT_MAPPING}/birth-registration.out"
    assert DEFAULT_MAPPING == "civil_status/1.0"
    assert receipt.note == "Đã đăng ký khai sinh"
    assert receipt.request_size > 0
    assert receipt.response_size > 0
    assert receipt.sent_at.tzinfo is not None
    assert receipt.sent_at <= receipt.answered_at
    assert await stats(sim) == {
        "applied": 1,
        "duplicates": 0,
        "requests": 1,
        "applied_codes": [dossier.code],
    }


async def test_same_delivery_twice_is_applied_once(
    connector: CivilStatusConnector, sim: httpx.AsyncClient
) -> None:
    """Delivering the same dossier twice registers it once and answers the same number."""
    delivery = make_delivery(sample_birth_dossier())
    first = await connector.deliver(delivery)
    second = await connector.deliver(delivery)

    assert second.partner_reference == first.partner_reference
    assert second.status is DossierStatus.PROCESSED
    assert "already_registered" not in first.extra
    assert second.extra["already_registered"] == "true"
    counters = await stats(sim)
    assert (counters["applied"], counters["duplicates"], counters["requests"]) == (1, 1, 2)


async def test_concurrent_deliveries_are_counted_exactly(
    connector: CivilStatusConnector, sim: httpx.AsyncClient
) -> None:
    """Sixty dossiers delivered twice, all at once, are applied sixty times, never more."""
    deliveries = [make_delivery(sample_birth_dossier(sequence=n)) for n in range(1, 61)]
    receipts = await asyncio.gather(*(connector.deliver(d) for d in deliveries * 2))

    numbers = {receipt.partner_reference for receipt in receipts}
    assert len(numbers) == 60
    counters = await stats(sim)
    assert (counters["applied"], counters["duplicates"], counters["requests"]) == (60, 60, 120)
    assert sorted(counters["applied_codes"]) == sorted(d.dossier.code for d in deliveries)


async def test_sent_xml_is_safe_and_names_the_child(config: ConnectorConfig) -> None:
    """The request carries the partner's JSON with <hoSoKhaiSinh> XML that bus.xmlsafe reads."""
    dossier = sample_birth_dossier(received_at=datetime(2024, 3, 15, 16, 30, 5, tzinfo=VN_TZ))
    delivery = make_delivery(dossier, message_id="msg-42")
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"trangThai": 4, "soDangKy": "KS/2024/000009"})

    connector = mocked_connector(config, answer)
    try:
        receipt = await connector.deliver(delivery)
    finally:
        await connector.aclose()

    (request,) = seen
    assert request.url.path == REGISTER
    assert request.headers["Idempotency-Key"] == "msg-42"
    assert request.headers["X-Road-Issue"] == dossier.code
    body = json.loads(request.content)
    assert body["maDonVi"] == "000.00.10.H12"
    assert body["module"] == "KS"
    assert body["maHoSo"] == dossier.code
    assert body["ngayTiepNhan"] == "20240315163005"
    assert receipt.request_size == len(request.content)

    root = parse_xml(body["data"].encode("utf-8"))
    assert root.tag == "hoSoKhaiSinh"
    assert root.findtext("treEm/hoTen") == "Nguyễn Thị Bình"
    assert root.findtext("treEm/ngaySinh") == "10/03/2024"
    assert root.findtext("treEm/gioiTinh") == "2"
    assert root.findtext("treEm/quocTich") == "VN"
    assert root.findtext("me/soDinhDanh") == dossier.form["mother_identity_number"]
    assert root.findtext("cha/hoTen") == "Nguyễn Văn An"
    assert root.findtext("nguoiYeuCau/soDinhDanh") == dossier.applicant.identity_number


async def test_father_is_optional(config: ConnectorConfig) -> None:
    """A form without a father sends no <cha> element rather than an empty one."""
    dossier = sample_birth_dossier()
    form = {k: v for k, v in dossier.form.items() if not k.startswith("father_")}
    dossier = dossier.model_copy(update={"form": form})
    sent: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.content)
        return httpx.Response(200, json={"trangThai": 4})

    connector = mocked_connector(config, answer)
    try:
        await connector.deliver(make_delivery(dossier))
    finally:
        await connector.aclose()
    root = parse_xml(json.loads(sent[0])["data"].encode("utf-8"))
    assert root.find("cha") is None


async def test_simulator_registers_the_child_it_was_sent(
    connector: CivilStatusConnector, state: SimulatorState
) -> None:
    """The simulator reads the child's name from the XML the connector sent over HTTP."""
    dossier = sample_birth_dossier()
    await connector.deliver(make_delivery(dossier))
    registration = state.lookup(dossier.code)
    assert registration is not None
    assert registration.child_full_name == "Nguyễn Thị Bình"
    assert registration.agency == dossier.receiving_agency


@pytest.mark.parametrize(
    ("partner_status", "expected"),
    [
        (1, DossierStatus.ACCEPTED),
        (2, DossierStatus.SUPPLEMENT_REQUESTED),
        (3, DossierStatus.PROCESSING),
        (4, DossierStatus.PROCESSED),
    ],
)
async def test_partner_status_maps_to_dossier_status(
    config: ConnectorConfig, partner_status: int, expected: DossierStatus
) -> None:
    """Civil-status trangThai 1-4 map to ACCEPTED, SUPPLEMENT_REQUESTED, PROCESSING, PROCESSED."""
    receipt = await deliver_answered(config, {"trangThai": partner_status, "moTa": "..."})
    assert receipt.status is expected
    assert receipt.partner_reference is None
    assert receipt.note == "..."
    assert receipt.extra["partner_status"] == str(partner_status)


async def test_receipt_note_masks_identity_numbers(config: ConnectorConfig) -> None:
    """A CCCD echoed in an accepted answer's moTa reaches the receipt's note masked."""
    receipt = await deliver_answered(
        config, {"trangThai": 2, "moTa": "Bổ sung bản sao CCCD 001192054321 của mẹ"}
    )
    assert receipt.status is DossierStatus.SUPPLEMENT_REQUESTED
    assert receipt.note == "Bổ sung bản sao CCCD *********321 của mẹ"


# --- failure switches ----------------------------------------------------------------------


async def test_server_error_is_transient(
    connector: CivilStatusConnector, sim: httpx.AsyncClient
) -> None:
    """An HTTP 503 from the partner is PartnerUnavailable, and nothing is registered."""
    await set_faults(sim, error_rate=1.0)
    with pytest.raises(PartnerUnavailable) as caught:
        await connector.deliver(make_delivery(sample_birth_dossier()))
    assert caught.value.fault_code == "HTTP_503"
    assert caught.value.error_class == "transient"
    assert isinstance(caught.value.__cause__, httpx.HTTPStatusError)
    assert (await stats(sim))["applied"] == 0


async def test_hang_times_out_as_transient(config: ConnectorConfig, sim: httpx.AsyncClient) -> None:
    """A partner that never answers is PartnerUnavailable once timeout_seconds have passed."""
    await set_faults(sim, hang=True)
    connector = CivilStatusConnector(config.model_copy(update={"timeout_seconds": 0.3}))
    started = time.monotonic()
    try:
        with pytest.raises(PartnerUnavailable) as caught:
            await connector.deliver(make_delivery(sample_birth_dossier()))
    finally:
        await connector.aclose()
    assert time.monotonic() - started < 5
    assert caught.value.fault_code == "PARTNER_TIMEOUT"
    assert isinstance(caught.value.__cause__, httpx.TimeoutException)
    await set_faults(sim)
    assert (await stats(sim))["applied"] == 0


async def test_latency_below_timeout_still_registers(
    connector: CivilStatusConnector, sim: httpx.AsyncClient
) -> None:
    """A slow partner that answers within the timeout registers the dossier normally."""
    await set_faults(sim, latency_ms=150)
    receipt = await connector.deliver(make_delivery(sample_birth_dossier()))
    assert receipt.status is DossierStatus.PROCESSED
    assert (receipt.answered_at - receipt.sent_at).total_seconds() >= 0.15


async def test_business_rejection_is_permanent(
    connector: CivilStatusConnector, sim: httpx.AsyncClient
) -> None:
    """trangThai 0 with HTTP 200 is PartnerRejected carrying the partner's reason."""
    await set_faults(sim, reject_all=True)
    with pytest.raises(PartnerRejected, match="Hồ sơ bị từ chối") as caught:
        await connector.deliver(make_delivery(sample_birth_dossier()))
    assert caught.value.error_class == "permanent"
    assert (await stats(sim))["applied"] == 0


async def test_garbage_answer_is_malformed_reply(
    connector: CivilStatusConnector, sim: httpx.AsyncClient
) -> None:
    """A non-JSON answer is PartnerUnavailable with fault code MALFORMED_REPLY."""
    await set_faults(sim, malformed=True)
    with pytest.raises(PartnerUnavailable) as caught:
        await connector.deliver(make_delivery(sample_birth_dossier()))
    assert caught.value.fault_code == "MALFORMED_REPLY"
    assert caught.value.__cause__ is not None


async def test_connection_refused_is_transient(config: ConnectorConfig) -> None:
    """A partner that refuses the connection is PartnerUnavailable."""
    with serve_app(create_simulator_app()) as url:
        pass  # the port is free again once the server has stopped
    connector = CivilStatusConnector(config.model_copy(update={"endpoint": url}))
    try:
        with pytest.raises(PartnerUnavailable) as caught:
            await connector.deliver(make_delivery(sample_birth_dossier()))
    finally:
        await connector.aclose()
    assert caught.value.fault_code == "PARTNER_UNREACHABLE"
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize(
    ("status_code", "expected"),
    [(400, PartnerRejected), (404, PartnerRejected), (429, PartnerUnavailable)],
)
async def test_client_errors_are_classified(
    config: ConnectorConfig, status_code: int, expected: type[Exception]
) -> None:
    """A 4xx is PartnerRejected with the partner's moTa, except 429 which is transient."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status_code, json={"trangThai": 0, "moTa": "Mã đơn vị sai"})

    connector = mocked_connector(config, answer)
    try:
        with pytest.raises(expected, match="Mã đơn vị sai"):
            await connector.deliver(make_delivery(sample_birth_dossier()))
    finally:
        await connector.aclose()


@pytest.mark.parametrize("refusal", [0, "0"])
async def test_refusal_in_any_spelling_is_rejected(
    config: ConnectorConfig, refusal: int | str
) -> None:
    """trangThai 0, as a number or as text, is PartnerRejected before the mapping reads it."""
    with pytest.raises(PartnerRejected) as caught:
        await deliver_answered(config, {"trangThai": refusal, "moTa": "Sai mẫu tờ khai"})
    assert caught.value.fault_code == "TRANG_THAI_0"
    assert "Sai mẫu tờ khai" in str(caught.value)


async def test_partner_text_never_leaks_an_identity_number(config: ConnectorConfig) -> None:
    """A CCCD echoed in the partner's moTa is masked in the PartnerRejected message."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"trangThai": 0, "moTa": "CCCD 001192054321 không khớp"})

    connector = mocked_connector(config, answer)
    try:
        with pytest.raises(PartnerRejected) as caught:
            await connector.deliver(make_delivery(sample_birth_dossier()))
    finally:
        await connector.aclose()
    assert "001192054321" not in str(caught.value)
    assert "*********321" in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"moTa": "no status"}',
        b'{"trangThai": true}',
        b'{"trangThai": false}',
        b'{"trangThai": 7}',
        b'{"trangThai": 4, "maHoSo": "000.00.10.H12-240315-9999"}',
        b'{"trangThai": 4, "maHoSo": 15}',
        b'{"trangThai": 4, "soDangKy": 123}',
    ],
)
async def test_unreadable_answers_are_malformed_reply(config: ConnectorConfig, body: bytes) -> None:
    """JSON without a usable answer (bad or unknown status, other dossier) is MALFORMED_REPLY."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    connector = mocked_connector(config, answer)
    try:
        with pytest.raises(PartnerUnavailable) as caught:
            await connector.deliver(make_delivery(sample_birth_dossier()))
    finally:
        await connector.aclose()
    assert caught.value.fault_code == "MALFORMED_REPLY"


# --- mapping -------------------------------------------------------------------------------


async def test_missing_child_name_fails_before_any_call(
    connector: CivilStatusConnector, sim: httpx.AsyncClient
) -> None:
    """A form without child_full_name raises MappingError naming it, and nothing is sent."""
    dossier = sample_birth_dossier()
    form = {k: v for k, v in dossier.form.items() if k != "child_full_name"}
    dossier = dossier.model_copy(update={"form": form})

    with pytest.raises(MappingError, match=r"form\.child_full_name") as caught:
        await connector.deliver(make_delivery(dossier))
    assert caught.value.error_class == "permanent"
    assert caught.value.fault_code == "FORM_INVALID"
    assert caught.value.mapping == f"{DEFAULT_MAPPING}/birth-registration.out"
    assert caught.value.source_path == "form.child_full_name"
    assert caught.value.target_field == "data/treEm.hoTen"
    assert dossier.code in str(caught.value)
    assert (await stats(sim))["requests"] == 0


async def test_mapping_error_names_the_value(connector: CivilStatusConnector) -> None:
    """A gender outside the code list is a MappingError quoting the field and the value."""
    dossier = sample_birth_dossier()
    dossier = dossier.model_copy(update={"form": {**dossier.form, "child_gender": "unknown"}})

    with pytest.raises(MappingError) as caught:
        await connector.deliver(make_delivery(dossier))
    assert caught.value.fault_code == "FORM_INVALID"
    assert caught.value.source_path == "form.child_gender"
    assert caught.value.value == "'unknown'"
    assert "form.child_gender" in str(caught.value)


async def test_mapping_error_masks_a_mistyped_identity_number(
    connector: CivilStatusConnector,
) -> None:
    """A 13-digit mother's CCCD, refused by the XSD, appears only masked in the error."""
    dossier = sample_birth_dossier()
    form = {**dossier.form, "mother_identity_number": "0011920543210"}
    dossier = dossier.model_copy(update={"form": form})

    with pytest.raises(MappingError) as caught:
        await connector.deliver(make_delivery(dossier))
    message = str(caught.value)
    assert "soDinhDanh" in message
    assert "0011920543210" not in message
    assert "**********210" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


# --- the simulator on its own --------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HOSTILE_XML))
async def test_hostile_xml_is_refused_by_simulator(sim: httpx.AsyncClient, name: str) -> None:
    """Hostile XML posted straight to the simulator gets HTTP 400 with trangThai 0."""
    hostile = HOSTILE_XML[name].decode("utf-8")
    response = await sim.post(REGISTER, json=register_body(hostile))
    assert response.status_code == 400
    answer = response.json()
    assert answer["trangThai"] == 0
    assert "XML" in answer["moTa"]
    assert "root:" not in response.text
    assert (await stats(sim))["applied"] == 0


async def test_invalid_json_is_refused_by_simulator(sim: httpx.AsyncClient) -> None:
    """A body that is not JSON gets HTTP 400 with trangThai 0, not a framework error page."""
    response = await sim.post(REGISTER, content=b"maHoSo=1")
    assert response.status_code == 400
    assert response.json()["trangThai"] == 0


async def test_status_lookup(connector: CivilStatusConnector, sim: httpx.AsyncClient) -> None:
    """traTrangThaiHoSo answers 4 with soDangKy for a registered dossier, 404 for an unknown one."""
    dossier = sample_birth_dossier()
    receipt = await connector.deliver(make_delivery(dossier))

    known = await sim.get("/api/hotich/traTrangThaiHoSo", params={"maHoSo": dossier.code})
    assert known.status_code == 200
    assert known.json()["trangThai"] == 4
    assert known.json()["soDangKy"] == receipt.partner_reference

    unknown = await sim.get("/api/hotich/traTrangThaiHoSo", params={"maHoSo": "không-có"})
    assert unknown.status_code == 404
    assert unknown.json()["trangThai"] == 0


async def test_change_feed_lists_the_day(
    connector: CivilStatusConnector, sim: httpx.AsyncClient
) -> None:
    """dsHoSoDangKy lists the dossiers registered on the given day and no other."""
    dossiers = [sample_birth_dossier(sequence=n) for n in (1, 2)]
    for dossier in dossiers:
        await connector.deliver(make_delivery(dossier))
    today = datetime.now(VN_TZ).strftime("%Y%m%d")

    listed = (await sim.get("/api/hotich/dsHoSoDangKy", params={"ngayCapNhat": today})).json()
    assert listed["tongSo"] == 2
    assert [item["maHoSo"] for item in listed["danhSach"]] == [d.code for d in dossiers]

    other = (await sim.get("/api/hotich/dsHoSoDangKy", params={"ngayCapNhat": "20000101"})).json()
    assert other["tongSo"] == 0


async def test_change_feed_items_map_to_status_changes(
    connector: CivilStatusConnector, sim: httpx.AsyncClient, catalog: MappingCatalog
) -> None:
    """Each dsHoSoDangKy item maps through change-feed.in to the PROCESSED status change."""
    dossier = sample_birth_dossier()
    receipt = await connector.deliver(make_delivery(dossier))
    today = datetime.now(VN_TZ).strftime("%Y%m%d")
    listed = (await sim.get("/api/hotich/dsHoSoDangKy", params={"ngayCapNhat": today})).json()

    feed = catalog.get(f"{DEFAULT_MAPPING}/change-feed.in")
    (item,) = listed["danhSach"]
    change = feed.to_canonical(item, {"agency": "000.00.00.G12"})
    assert isinstance(change, StatusChange)
    assert change.dossier_code == dossier.code
    assert change.status is DossierStatus.PROCESSED
    assert change.partner_reference == receipt.partner_reference
    assert change.officer is not None
    assert receipt.sent_at - timedelta(seconds=1) <= change.changed_at <= receipt.answered_at


async def test_reset_clears_faults_and_counters(
    connector: CivilStatusConnector, sim: httpx.AsyncClient
) -> None:
    """POST /_sim/reset switches every fault off and zeroes the counters."""
    await connector.deliver(make_delivery(sample_birth_dossier()))
    await set_faults(sim, error_rate=1.0)
    await sim.post("/_sim/reset")

    assert (await sim.get("/_sim/faults")).json()["error_rate"] == 0
    assert await stats(sim) == {"applied": 0, "duplicates": 0, "requests": 0, "applied_codes": []}


async def test_fault_switches_are_validated(sim: httpx.AsyncClient) -> None:
    """An error_rate outside 0..1 or an unknown switch is refused with 422."""
    assert (await sim.post("/_sim/faults", json={"error_rate": 1.5})).status_code == 422
    assert (await sim.post("/_sim/faults", json={"explode": True})).status_code == 422
