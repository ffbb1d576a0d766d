"""The civil-status connector (SOAP) against its simulator over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree
from zeep.exceptions import Fault, TransportError

from bus.connector import Connector, ConnectorConfig, Delivery, DeliveryReceipt
from bus.errors import InvalidMessage, MappingError, PartnerRejected, PartnerUnavailable
from bus.mapping import MappingCatalog, SpecError
from bus.soap import XROAD_NAMESPACE, SoapClient
from bus.testing import (
    HOSTILE_XML,
    SOAP11_ENVELOPE,
    SOAP12_ENVELOPE,
    SoapRequest,
    read_soap_request,
    serve_app,
    soap_answer,
    soap_fault,
)
from bus.xmlsafe import UnsafeXml, parse_xml
from connectors.civil_status import (
    DEATH_REGISTRATION,
    DEFAULT_MAPPING,
    CivilStatusConnector,
    SimulatorState,
    create_simulator_app,
)
from connectors.civil_status.simulator import NAMESPACE, SOAP_PATH, WSDL_PATH
from contracts import (
    DOSSIER_DATASCHEMA,
    EVENT_DOSSIER_SUBMITTED,
    VN_TZ,
    Dossier,
    DossierStatus,
    EventEnvelope,
    StatusChange,
    sample_birth_dossier,
    sample_death_dossier,
)
from tests.connectors.helpers import set_faults, stats
from tests.connectors.linkage_steps import BUNDLES, step_delivery

PORTS = {"1.1": "HoTichSoap", "1.2": "HoTichSoap12"}
ANSWER_FIELDS = ("trangThai", "maHoSo", "soDangKy", "ngayDangKy", "moTa", "daTonTai")
WSDL_SOAP = "{http://schemas.xmlsoap.org/wsdl/soap/}address"
WSDL_SOAP12 = "{http://schemas.xmlsoap.org/wsdl/soap12/}address"


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


def soap_request(
    fields: dict[str, str], *, version: str = "1.1", operation: str = "dangKyHoTich"
) -> bytes:
    """A raw SOAP request to the simulator, for what the connector would never send."""
    envelope = SOAP11_ENVELOPE if version == "1.1" else SOAP12_ENVELOPE
    inner = "".join(f"<h:{name}>{value}</h:{name}>" for name, value in fields.items())
    return (
        f'<s:Envelope xmlns:s="{envelope}"><s:Body><h:{operation} xmlns:h="{NAMESPACE}">'
        f"{inner}</h:{operation}></s:Body></s:Envelope>"
    ).encode()


def register_fields(data: str, code: str = "000.00.10.H12-240315-0001") -> dict[str, str]:
    """dangKyHoTich elements around an arbitrary, already escaped ``data`` payload."""
    return {
        "maDonVi": "000.00.10.H12",
        "module": "KS",
        "maHoSo": code,
        "ngayTiepNhan": "20240315090000",
        "data": data,
    }


def escaped(text: str | bytes) -> str:
    """Text escaped for an XML element's content."""
    raw = text.decode("utf-8") if isinstance(text, bytes) else text
    return raw.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def answer_envelope(body: dict[str, Any], version: str = "1.1") -> bytes:
    """The SOAP answer of dangKyHoTich with ``body``'s fields, in the WSDL's order."""
    element = etree.Element(f"{{{NAMESPACE}}}dangKyHoTichResponse", nsmap={"h": NAMESPACE})
    for name in ANSWER_FIELDS:
        if name in body:
            etree.SubElement(element, f"{{{NAMESPACE}}}{name}").text = str(body[name])
    return soap_answer(version, element)  # type: ignore[arg-type]


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


def with_port(config: ConnectorConfig, version: str) -> ConnectorConfig:
    """``config`` calling the WSDL's SOAP 1.1 or SOAP 1.2 port."""
    assert config.soap is not None
    soap = config.soap.model_copy(update={"port": PORTS[version]})
    return config.model_copy(update={"soap": soap})


@pytest.fixture(params=["1.1", "1.2"])
def config(request: pytest.FixtureRequest, base_url: str) -> ConnectorConfig:
    """The shipped connector.toml, pointed at the simulator, once per SOAP version."""
    shipped = ConnectorConfig.from_file(CivilStatusConnector.default_config, endpoint=base_url)
    return with_port(shipped, request.param)


@pytest.fixture
async def connector(
    config: ConnectorConfig, catalog: MappingCatalog
) -> AsyncIterator[CivilStatusConnector]:
    """A connector talking to the simulator."""
    instance = CivilStatusConnector(config, catalog=catalog)
    yield instance
    await instance.aclose()


def mocked_connector(
    config: ConnectorConfig, handler: Callable[[httpx.Request], httpx.Response]
) -> CivilStatusConnector:
    """A connector whose HTTP calls are answered by ``handler`` instead of the network."""
    return CivilStatusConnector(config, transport=httpx.MockTransport(handler))


async def deliver_answered(
    config: ConnectorConfig, answer_body: dict[str, Any] | bytes, status_code: int = 200
) -> DeliveryReceipt:
    """Deliver the sample dossier to a partner that answers ``answer_body``: a dangKyHoTich
    answer with these fields, in the request's SOAP version, or these very bytes."""

    def answer(request: httpx.Request) -> httpx.Response:
        content = (
            answer_envelope(answer_body, sent_call(request).version)
            if isinstance(answer_body, dict)
            else answer_body
        )
        return httpx.Response(status_code, content=content, headers={"Content-Type": "text/xml"})

    connector = mocked_connector(config, answer)
    try:
        return await connector.deliver(make_delivery(sample_birth_dossier()))
    finally:
        await connector.aclose()


def sent_call(request: httpx.Request) -> SoapRequest:
    """The SOAP call the connector sent, read like the partner reads it."""
    return read_soap_request(request.content, request.headers.get("content-type"))


# --- configuration -------------------------------------------------------------------------


def test_entry_point_resolves_to_connector() -> None:
    """The lienthong_bus.connectors entry point civil_status loads CivilStatusConnector."""
    (entry,) = entry_points(group="lienthong_bus.connectors", name="civil_status")
    assert entry.load() is CivilStatusConnector


def test_public_names_resolve() -> None:
    """Every name in connectors.civil_status.__all__ can be imported from the package."""
    import connectors.civil_status as package

    assert sorted(package.__all__) == sorted(
        [
            "DEATH_REGISTRATION",
            "DEFAULT_MAPPING",
            "CivilStatusConnector",
            "SimulatorState",
            "create_simulator_app",
        ]
    )
    for name in package.__all__:
        assert getattr(package, name) is not None


def test_shipped_config_reads() -> None:
    """The shipped connector.toml is a SOAP connector of hotich.wsdl for procedure 1.001193."""
    config = ConnectorConfig.from_file(CivilStatusConnector.default_config)
    assert config.id == "civil_status"
    assert config.kind == "soap"
    assert config.procedures == ("1.001193",)
    assert config.concurrency == 8
    assert str(config.endpoint) == "http://127.0.0.1:8101/"
    assert config.soap is not None
    assert (config.soap.wsdl, config.soap.operation) == (
        "civil_status/hotich.wsdl",
        "dangKyHoTich",
    )
    assert config.xroad is not None and config.xroad.service.endswith("/dangKyHoTich")


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
    assert receipt.extra == {"partner_status": "4"}
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


async def test_sent_envelope_carries_the_arguments_and_the_xroad_headers(
    config: ConnectorConfig,
) -> None:
    """The call is dangKyHoTich with the mapped elements, <hoSoKhaiSinh> text and X-Road headers."""
    dossier = sample_birth_dossier(received_at=datetime(2024, 3, 15, 16, 30, 5, tzinfo=VN_TZ))
    delivery = make_delivery(dossier, message_id="msg-42")
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {"trangThai": 4, "soDangKy": "KS/2024/000009"}
        return httpx.Response(200, content=answer_envelope(body, sent_call(request).version))

    connector = mocked_connector(config, answer)
    try:
        receipt = await connector.deliver(delivery)
    finally:
        await connector.aclose()

    (request,) = seen
    assert request.url.path == SOAP_PATH
    call = sent_call(request)
    assert call.name == "dangKyHoTich"
    assert etree.QName(call.operation).namespace == NAMESPACE
    assert call.field("maDonVi") == "000.00.10.H12"
    assert call.field("module") == "KS"
    assert call.field("maHoSo") == dossier.code
    assert call.field("ngayTiepNhan") == "20240315163005"
    assert receipt.request_size == len(request.content)
    assert receipt.partner_reference == "KS/2024/000009"

    issue = call.header(XROAD_NAMESPACE, "issue")
    message_id = call.header(XROAD_NAMESPACE, "id")
    assert issue is not None and issue.text == dossier.code
    assert message_id is not None and message_id.text == "msg-42"

    root = parse_xml((call.field("data") or "").encode("utf-8"))
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
    sent: list[SoapRequest] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(sent_call(request))
        return httpx.Response(200, content=answer_envelope({"trangThai": 4}, sent[0].version))

    connector = mocked_connector(config, answer)
    try:
        await connector.deliver(make_delivery(dossier))
    finally:
        await connector.aclose()
    root = parse_xml((sent[0].field("data") or "").encode("utf-8"))
    assert root.find("cha") is None


async def test_simulator_registers_the_child_it_was_sent(
    connector: CivilStatusConnector, state: SimulatorState
) -> None:
    """The simulator reads the child's name from the XML the connector sent in the envelope."""
    dossier = sample_birth_dossier()
    await connector.deliver(make_delivery(dossier))
    registration = state.lookup(dossier.code)
    assert registration is not None
    assert registration.full_name == "Nguyễn Thị Bình"
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
    answer = {"trangThai": 2, "moTa": "Bổ sung bản sao CCCD 001192054321 của mẹ"}
    receipt = await deliver_answered(config, answer)
    assert receipt.status is DossierStatus.SUPPLEMENT_REQUESTED
    assert receipt.note == "Bổ sung bản sao CCCD *********321 của mẹ"


# --- failure switches ----------------------------------------------------------------------


async def test_error_rate_is_a_server_fault_and_transient(
    connector: CivilStatusConnector, sim: httpx.AsyncClient
) -> None:
    """error_rate answers a soap:Server (1.2: Receiver) fault: PartnerUnavailable, not applied."""
    await set_faults(sim, error_rate=1.0)
    with pytest.raises(PartnerUnavailable) as caught:
        await connector.deliver(make_delivery(sample_birth_dossier()))
    assert caught.value.fault_code in {"SOAP_Server", "SOAP_Receiver"}
    assert caught.value.error_class == "transient"
    assert "Hệ thống đang bận" in str(caught.value)
    assert isinstance(caught.value.__cause__, Fault)
    assert (await stats(sim))["applied"] == 0


async def test_client_fault_is_permanent(
    connector: CivilStatusConnector, sim: httpx.AsyncClient
) -> None:
    """client_fault answers a soap:Client (1.2: Sender) fault: PartnerRejected, not applied."""
    await set_faults(sim, client_fault=True)
    with pytest.raises(PartnerRejected) as caught:
        await connector.deliver(make_delivery(sample_birth_dossier()))
    assert caught.value.fault_code in {"SOAP_Client", "SOAP_Sender"}
    assert caught.value.error_class == "permanent"
    assert isinstance(caught.value.__cause__, Fault)
    assert (await stats(sim))["applied"] == 0


async def test_failing_dossier_is_http_503_and_transient(
    connector: CivilStatusConnector, sim: httpx.AsyncClient
) -> None:
    """A dossier listed in failing_dossiers gets HTTP 503: PartnerUnavailable HTTP_503."""
    poison = sample_birth_dossier(sequence=9000)
    await set_faults(sim, failing_dossiers=[poison.code])
    with pytest.raises(PartnerUnavailable) as caught:
        await connector.deliver(make_delivery(poison))
    assert caught.value.fault_code == "HTTP_503"
    assert isinstance(caught.value.__cause__, TransportError)
    good = await connector.deliver(make_delivery(sample_birth_dossier(sequence=1)))
    assert good.status is DossierStatus.PROCESSED
    assert (await stats(sim))["applied_codes"] == [sample_birth_dossier(sequence=1).code]


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
    """reject_all answers trangThai 0 with HTTP 200: PartnerRejected with the partner's reason."""
    await set_faults(sim, reject_all=True)
    with pytest.raises(PartnerRejected, match="Hồ sơ bị từ chối") as caught:
        await connector.deliver(make_delivery(sample_birth_dossier()))
    assert caught.value.fault_code == "TRANG_THAI_0"
    assert caught.value.error_class == "permanent"
    assert (await stats(sim))["applied"] == 0


async def test_garbage_answer_is_malformed_reply(
    connector: CivilStatusConnector, sim: httpx.AsyncClient
) -> None:
    """malformed answers an HTML error page with HTTP 200: PartnerUnavailable MALFORMED_REPLY."""
    await set_faults(sim, malformed=True)
    with pytest.raises(PartnerUnavailable) as caught:
        await connector.deliver(make_delivery(sample_birth_dossier()))
    assert caught.value.fault_code == "MALFORMED_REPLY"
    assert isinstance(caught.value.__cause__, UnsafeXml)


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
    [(404, PartnerRejected), (401, PartnerRejected), (429, PartnerUnavailable)],
)
async def test_http_errors_are_classified(
    config: ConnectorConfig, status_code: int, expected: type[Exception]
) -> None:
    """An HTTP 4xx from a gateway is PartnerRejected, except 429 which is transient."""
    with pytest.raises(expected, match="Mã đơn vị sai") as caught:
        await deliver_answered(config, "Mã đơn vị sai".encode(), status_code)
    assert getattr(caught.value, "fault_code", None) == f"HTTP_{status_code}"


async def test_refusal_text_never_leaks_an_identity_number(config: ConnectorConfig) -> None:
    """A CCCD echoed in a refusal's moTa is masked in the PartnerRejected message."""
    answer = {"trangThai": 0, "moTa": "CCCD 001192054321 không khớp"}
    with pytest.raises(PartnerRejected) as caught:
        await deliver_answered(config, answer)
    assert caught.value.fault_code == "TRANG_THAI_0"
    assert "001192054321" not in str(caught.value)
    assert "*********321" in str(caught.value)


async def test_fault_text_never_leaks_an_identity_number(config: ConnectorConfig) -> None:
    """A CCCD the partner echoes in a SOAP fault string is masked in the bus error."""

    def answer(request: httpx.Request) -> httpx.Response:
        version = sent_call(request).version
        content, status_code = soap_fault(
            version, sender=True, reason="CCCD 001192054321 không khớp với CSDL dân cư"
        )
        return httpx.Response(status_code, content=content, headers={"Content-Type": "text/xml"})

    connector = mocked_connector(config, answer)
    try:
        with pytest.raises(PartnerRejected) as caught:
            await connector.deliver(make_delivery(sample_birth_dossier()))
    finally:
        await connector.aclose()
    assert "001192054321" not in str(caught.value)
    assert "*********321" in str(caught.value)


@pytest.mark.parametrize(
    "answer",
    [
        {"maHoSo": "000.00.10.H12-240315-0001"},
        {"trangThai": 7},
        {"trangThai": "abc"},
        {"trangThai": 4, "maHoSo": "000.00.10.H12-240315-9999"},
    ],
)
async def test_unreadable_answers_are_malformed_reply(
    config: ConnectorConfig, answer: dict[str, Any]
) -> None:
    """An answer without a usable status, or about another dossier, is MALFORMED_REPLY."""
    with pytest.raises(PartnerUnavailable) as caught:
        await deliver_answered(config, answer)
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
@pytest.mark.parametrize(
    ("content_type", "status_code", "code"),
    [
        ("text/xml; charset=utf-8", 500, "soap:Client"),
        ("application/soap+xml; charset=utf-8", 400, "soap:Sender"),
    ],
)
async def test_hostile_envelope_gets_a_client_fault(
    sim: httpx.AsyncClient, name: str, content_type: str, status_code: int, code: str
) -> None:
    """A hostile XML request gets a Client/Sender SOAP fault with the binding's HTTP status."""
    response = await sim.post(
        SOAP_PATH, content=HOSTILE_XML[name], headers={"Content-Type": content_type}
    )
    assert response.status_code == status_code
    assert response.headers["content-type"].startswith(content_type.split(";")[0])
    fault = parse_xml(response.content)
    assert code in response.text
    assert "XML" in (fault.findtext(".//faultstring") or "".join(fault.itertext()))
    assert "root:" not in response.text
    assert (await stats(sim))["applied"] == 0


@pytest.mark.parametrize("name", sorted(HOSTILE_XML))
async def test_hostile_data_document_gets_a_client_fault(sim: httpx.AsyncClient, name: str) -> None:
    """Hostile XML carried as the data text is refused with a soap:Client fault, not applied."""
    body = soap_request(register_fields(escaped(HOSTILE_XML[name])))
    response = await sim.post(SOAP_PATH, content=body, headers={"Content-Type": "text/xml"})
    assert response.status_code == 500
    assert "soap:Client" in response.text
    assert "Dữ liệu XML không hợp lệ" in response.text
    assert "root:" not in response.text
    assert (await stats(sim))["applied"] == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"maHoSo=1", "Dữ liệu XML không hợp lệ"),
        (soap_request({"maHoSo": "1"}), "Thiếu trường bắt buộc"),
        (soap_request({"x": "1"}, operation="xoaHoSo"), "Không có thao tác xoaHoSo"),
    ],
)
async def test_invalid_requests_get_a_client_fault(
    sim: httpx.AsyncClient, body: bytes, reason: str
) -> None:
    """Not XML, a missing element or an unknown operation gets a soap:Client fault, not a page."""
    response = await sim.post(SOAP_PATH, content=body, headers={"Content-Type": "text/xml"})
    assert response.status_code == 500
    assert "soap:Client" in response.text
    assert reason in response.text
    assert (await stats(sim))["requests"] == 1


async def test_oversized_request_is_413(sim: httpx.AsyncClient) -> None:
    """A request above MAX_REQUEST_BYTES is refused with HTTP 413 before it is parsed."""
    body = soap_request(register_fields("x" * 2_100_000))
    response = await sim.post(SOAP_PATH, content=body, headers={"Content-Type": "text/xml"})
    assert response.status_code == 413
    assert (await stats(sim))["applied"] == 0


async def test_wsdl_is_served_with_the_simulators_address(
    sim: httpx.AsyncClient, base_url: str
) -> None:
    """GET /hotich?wsdl serves the contract's WSDL with both addresses pointing at the simulator."""
    response = await sim.get(SOAP_PATH, params={"wsdl": ""})
    assert response.status_code == 200
    served = parse_xml(response.content)
    addresses = [element.get("location") for element in served.iter(WSDL_SOAP, WSDL_SOAP12)]
    assert addresses == [f"{base_url}{SOAP_PATH}"] * 2
    contract = parse_xml(WSDL_PATH.read_bytes())
    for element in contract.iter(WSDL_SOAP, WSDL_SOAP12):
        element.set("location", f"{base_url}{SOAP_PATH}")
    assert etree.tostring(served) == etree.tostring(contract)
    assert (await sim.get(SOAP_PATH)).status_code == 404


async def test_status_lookup_over_soap_and_rest(
    connector: CivilStatusConnector, config: ConnectorConfig, sim: httpx.AsyncClient
) -> None:
    """traTrangThaiHoSo answers 4 with soDangKy for a registered dossier, 0 for an unknown one."""
    dossier = sample_birth_dossier()
    receipt = await connector.deliver(make_delivery(dossier))

    async with SoapClient(config) as client:
        known = await client.call({"maHoSo": dossier.code}, operation="traTrangThaiHoSo")
        unknown = await client.call({"maHoSo": "không-có"}, operation="traTrangThaiHoSo")
    assert known.body["trangThai"] == 4
    assert known.body["soDangKy"] == receipt.partner_reference
    assert unknown.body["trangThai"] == 0

    rest = await sim.get("/api/hotich/traTrangThaiHoSo", params={"maHoSo": dossier.code})
    assert rest.status_code == 200
    assert rest.json()["soDangKy"] == receipt.partner_reference
    missing = await sim.get("/api/hotich/traTrangThaiHoSo", params={"maHoSo": "không-có"})
    assert missing.status_code == 404
    assert missing.json()["trangThai"] == 0


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
    await set_faults(sim, error_rate=1.0, client_fault=True)
    await sim.post("/_sim/reset")

    faults = (await sim.get("/_sim/faults")).json()
    assert (faults["error_rate"], faults["client_fault"]) == (0, False)
    assert await stats(sim) == {"applied": 0, "duplicates": 0, "requests": 0, "applied_codes": []}


async def test_fault_switches_are_validated(sim: httpx.AsyncClient) -> None:
    """An error_rate outside 0..1 or an unknown switch is refused with 422."""
    assert (await sim.post("/_sim/faults", json={"error_rate": 1.5})).status_code == 422
    assert (await sim.post("/_sim/faults", json={"explode": True})).status_code == 422


def test_simulator_runs_as_a_module() -> None:
    """python -m connectors.civil_status.simulator --host --port --log-level serves its WSDL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "connectors.civil_status.simulator"]
    args = ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen([*command, *args], cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}{SOAP_PATH}?wsdl", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert response.status_code == 200
        assert f"http://127.0.0.1:{port}{SOAP_PATH}" in response.text
    finally:
        process.terminate()
        process.wait(10)


# --- the death bundle: death registration (khai tử, module KT) -------------------------------


def death_registration(dossier: Dossier | None = None, *, attempt: int = 1) -> Delivery:
    """The death bundle's first step for ``dossier`` (default: the sample death dossier)."""
    return step_delivery(dossier or sample_death_dossier(), "death_registration", attempt=attempt)


def test_operations_cover_the_bundles() -> None:
    """Every step the shipped bundles give civil status names its default or a listed one."""
    assert CivilStatusConnector.operations == frozenset({DEATH_REGISTRATION})
    asked = {
        step.operation
        for bundle in BUNDLES.values()
        for step in bundle.steps
        if step.connector == "civil_status"
    }
    assert asked == {None, DEATH_REGISTRATION}


async def test_birth_step_keeps_the_birth_registration(connector: CivilStatusConnector) -> None:
    """The birth bundle's step, which names no operation, registers a birth as before."""
    delivery = step_delivery(sample_birth_dossier(), "birth_registration", bundle=BUNDLES["birth"])
    receipt = await connector.deliver(delivery)
    assert receipt.mapping_version == f"{DEFAULT_MAPPING}/birth-registration.out"
    assert receipt.partner_reference is not None and receipt.partner_reference.startswith("KS/")


async def test_death_is_registered(
    connector: CivilStatusConnector, sim: httpx.AsyncClient, state: SimulatorState
) -> None:
    """death_registration: PROCESSED, the death extract number (soDangKy, KT/…) as reference."""
    dossier = sample_death_dossier()
    receipt = await connector.deliver(death_registration(dossier))

    assert receipt.status is DossierStatus.PROCESSED
    year = datetime.now(VN_TZ).year
    assert receipt.partner_reference == f"KT/{year}/000001"
    assert receipt.mapping_version == f"{DEFAULT_MAPPING}/death-registration.out"
    assert receipt.note == "Đã đăng ký khai tử"
    assert receipt.extra == {"partner_status": "4"}
    assert await stats(sim) == {
        "applied": 1,
        "duplicates": 0,
        "requests": 1,
        "applied_codes": [dossier.code],
    }
    registration = state.lookup(dossier.code)
    assert registration is not None
    assert (registration.module, registration.full_name) == ("KT", "Trần Văn Đức")


async def test_births_and_deaths_are_numbered_in_their_own_books(
    connector: CivilStatusConnector,
) -> None:
    """The first death of the year is KT/…/000001 even after births were registered."""
    births = [sample_birth_dossier(sequence=n) for n in (1, 2)]
    for dossier in births:
        await connector.deliver(make_delivery(dossier))
    receipt = await connector.deliver(death_registration(sample_death_dossier(sequence=3)))
    assert receipt.partner_reference is not None
    assert receipt.partner_reference.startswith("KT/")
    assert receipt.partner_reference.endswith("/000001")


async def test_death_envelope_carries_module_kt_and_the_death_document(
    config: ConnectorConfig,
) -> None:
    """dangKyHoTich with module KT and, in data, the <hoSoKhaiTu> document of the form."""
    dossier = sample_death_dossier()
    seen: list[SoapRequest] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(sent_call(request))
        body = {"trangThai": 4, "soDangKy": "KT/2024/000009"}
        return httpx.Response(200, content=answer_envelope(body, seen[0].version))

    connector = mocked_connector(config, answer)
    try:
        receipt = await connector.deliver(death_registration(dossier))
    finally:
        await connector.aclose()
    (call,) = seen
    assert call.name == "dangKyHoTich"
    assert (call.field("module"), call.field("maHoSo")) == ("KT", dossier.code)
    root = parse_xml((call.field("data") or "").encode("utf-8"))
    assert root.tag == "hoSoKhaiTu"
    assert root.findtext("nguoiChet/soDinhDanh") == dossier.form["deceased_identity_number"]
    assert root.findtext("nguoiChet/noiCuTru/maXa") == "00001"
    assert root.findtext("khaiTu/ngayChet") == "12/03/2024"
    assert root.findtext("nguoiYeuCau/quanHe") == "Con"
    assert receipt.partner_reference == "KT/2024/000009"


async def test_same_death_twice_is_registered_once(
    connector: CivilStatusConnector, sim: httpx.AsyncClient
) -> None:
    """Delivering the same death step twice registers once and answers the same number."""
    first = await connector.deliver(death_registration())
    second = await connector.deliver(death_registration(attempt=2))
    assert second.partner_reference == first.partner_reference
    assert second.extra["already_registered"] == "true"
    counters = await stats(sim)
    assert (counters["applied"], counters["duplicates"], counters["requests"]) == (1, 1, 2)


@pytest.mark.parametrize(
    ("switches", "error", "fault_codes"),
    [
        pytest.param(
            {"error_rate": 1.0}, PartnerUnavailable, {"SOAP_Server", "SOAP_Receiver"}, id="busy"
        ),
        pytest.param({"malformed": True}, PartnerUnavailable, {"MALFORMED_REPLY"}, id="malformed"),
        pytest.param(
            {"hang": True, "hang_seconds": 5}, PartnerUnavailable, {"PARTNER_TIMEOUT"}, id="hang"
        ),
        pytest.param({"reject_all": True}, PartnerRejected, {"TRANG_THAI_0"}, id="refusal"),
        pytest.param(
            {"client_fault": True}, PartnerRejected, {"SOAP_Client", "SOAP_Sender"}, id="client"
        ),
    ],
)
async def test_death_registration_failures_are_classified(
    config: ConnectorConfig,
    sim: httpx.AsyncClient,
    switches: dict[str, Any],
    error: type[Exception],
    fault_codes: set[str],
) -> None:
    """A busy, garbled, hanging or refusing register fails the step as its kind and registers
    nothing; a well register takes the retry."""
    connector = CivilStatusConnector(config.model_copy(update={"timeout_seconds": 1.0}))
    try:
        await set_faults(sim, **switches)
        with pytest.raises(error) as caught:
            await connector.deliver(death_registration())
        assert getattr(caught.value, "fault_code", None) in fault_codes
        assert (await stats(sim))["applied"] == 0

        await set_faults(sim)
        receipt = await connector.deliver(death_registration(attempt=2))
    finally:
        await connector.aclose()
    assert receipt.status is DossierStatus.PROCESSED
    assert (await stats(sim))["applied"] == 1


async def test_slow_register_still_registers_the_death(
    connector: CivilStatusConnector, sim: httpx.AsyncClient
) -> None:
    """A register that answers after 150 ms, within the timeout, registers the death."""
    await set_faults(sim, latency_ms=150)
    receipt = await connector.deliver(death_registration())
    assert receipt.status is DossierStatus.PROCESSED
    assert (receipt.answered_at - receipt.sent_at).total_seconds() >= 0.15


async def test_failing_death_dossier_is_http_503(
    connector: CivilStatusConnector, sim: httpx.AsyncClient
) -> None:
    """A death dossier in failing_dossiers gets HTTP 503 (transient) and is not registered."""
    dossier = sample_death_dossier(sequence=9001)
    await set_faults(sim, failing_dossiers=[dossier.code])
    with pytest.raises(PartnerUnavailable) as caught:
        await connector.deliver(death_registration(dossier))
    assert caught.value.fault_code == "HTTP_503"
    assert (await stats(sim))["applied"] == 0


async def test_death_form_without_identity_fails_before_any_call(
    connector: CivilStatusConnector, sim: httpx.AsyncClient
) -> None:
    """A death form without the deceased's identity number is FORM_INVALID; nothing is sent."""
    dossier = sample_death_dossier()
    form = {k: v for k, v in dossier.form.items() if k != "deceased_identity_number"}
    dossier = dossier.model_copy(update={"form": form})
    with pytest.raises(MappingError) as caught:
        await connector.deliver(death_registration(dossier))
    assert caught.value.fault_code == "FORM_INVALID"
    assert caught.value.error_class == "permanent"
    assert caught.value.mapping == f"{DEFAULT_MAPPING}/death-registration.out"
    assert caught.value.source_path == "form.deceased_identity_number"
    assert caught.value.target_field == "data/nguoiChet.soDinhDanh"
    assert (await stats(sim))["requests"] == 0


async def test_death_form_error_masks_a_mistyped_identity_number(
    connector: CivilStatusConnector,
) -> None:
    """An 11-digit identity number, refused by the XSD, appears only masked in the error."""
    dossier = sample_death_dossier()
    form = {**dossier.form, "deceased_identity_number": "00104800987"}
    dossier = dossier.model_copy(update={"form": form})
    with pytest.raises(MappingError) as caught:
        await connector.deliver(death_registration(dossier))
    assert caught.value.fault_code == "FORM_INVALID"
    assert "00104800987" not in str(caught.value)
    assert "********987" in str(caught.value)


async def test_unknown_operation_is_permanent(
    connector: CivilStatusConnector, sim: httpx.AsyncClient
) -> None:
    """An operation civil status does not have is InvalidMessage naming its own; nothing sent."""
    delivery = step_delivery(sample_death_dossier(), "death_registration", operation="marriage")
    with pytest.raises(InvalidMessage, match=DEATH_REGISTRATION) as caught:
        await connector.deliver(delivery)
    assert caught.value.fault_code == "UNSUPPORTED_OPERATION"
    assert caught.value.error_class == "permanent"
    assert (await stats(sim))["requests"] == 0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"khaiTu/ngayChet": "16/03/2024"}, "không sau ngày tiếp nhận"),
        ({"khaiTu/ngayChet": "2024-03-12"}, "dd/MM/yyyy"),
        ({"nguoiChet/soDinhDanh": ""}, "Thiếu thông tin bắt buộc: nguoiChet/soDinhDanh"),
    ],
)
async def test_simulator_checks_the_death_document(
    sim: httpx.AsyncClient, catalog: MappingCatalog, change: dict[str, str], reason: str
) -> None:
    """A death after the receipt, a foreign date or no identity number: a soap:Client fault."""
    mapping = catalog.get(f"{DEFAULT_MAPPING}/death-registration.out")
    fields = mapping.apply(sample_death_dossier().model_dump(mode="json"))
    document = etree.fromstring(fields["data"].encode("utf-8"))
    for path, text in change.items():
        element = document.find(path)
        assert element is not None
        element.text = text
    fields["data"] = escaped(etree.tostring(document, encoding="unicode"))
    response = await sim.post(
        SOAP_PATH, content=soap_request(fields), headers={"Content-Type": "text/xml"}
    )
    assert response.status_code == 500
    assert "soap:Client" in response.text
    assert reason in response.text
    assert (await stats(sim))["applied"] == 0


async def test_module_and_document_must_agree(
    sim: httpx.AsyncClient, catalog: MappingCatalog
) -> None:
    """Module KT with a birth document, or an unknown module, is refused with a Client fault."""
    mapping = catalog.get(f"{DEFAULT_MAPPING}/birth-registration.out")
    birth = escaped(mapping.apply(sample_birth_dossier().model_dump(mode="json"))["data"])
    for module, reason in (("KT", "Phần tử gốc phải là hoSoKhaiTu"), ("KH", "Module KH")):
        fields = {**register_fields(birth), "module": module}
        response = await sim.post(
            SOAP_PATH, content=soap_request(fields), headers={"Content-Type": "text/xml"}
        )
        assert response.status_code == 500
        assert reason in response.text
    assert (await stats(sim))["applied"] == 0
