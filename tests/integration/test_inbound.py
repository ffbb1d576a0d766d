"""Partners push in their own format to ``/v1/inbound/{connector}`` and are answered in it.

A pushed status change is committed once, with its hop and its ``dossier.status_changed`` event,
never moves a dossier back, and is answered with the partner's codes (DVCQG-style JSON, or the
WSDL's SOAP answer and faults). A pushed DVCQG dossier takes the ingest road of
``POST /v1/dossiers``. Hostile XML and unreadable pushes are refused before any mapping, and a
refused push leaves nothing in the store. Everything runs against the real API on loopback, a
real store and the real broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import aio_pika
import httpx
import orjson
import pytest
import sqlalchemy as sa
import zeep
from lxml import etree
from sqlalchemy.ext.asyncio import AsyncEngine
from zeep.exceptions import Fault
from zeep.transports import AsyncTransport

from bus.api.app import create_app
from bus.connector import ConnectorConfig
from bus.poller import record_key
from bus.registry import ConnectorRegistry, RegisteredConnector
from bus.settings import Settings
from bus.store.database import create_engine
from bus.store.schema import dossiers, hops, outbox, processed_messages
from bus.testing import HOSTILE_XML, SOAP11_ENVELOPE, SOAP12_ENVELOPE, serve_app
from contracts import VN_TZ, sample_birth_dossier_json
from tests.conftest import AUTH, make_settings
from tests.integration.conftest import Simulator
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.broker

HOTICH = "urn:vn:lienthong:hotich:1.0"
AGENCY = "000.00.10.H12"
PROBLEM_JSON = "application/problem+json"
SoapVersion = Literal["1.1", "1.2"]

# A connector of the tests alone: a one-stop system that pushes dossiers the DVCQG way
# ({service, madonvi, data: [...]}) and their progress, by JSON, and progress also as XML.
ONE_STOP = ConnectorConfig.model_validate(
    {
        "id": "one_stop_test",
        "agency": "000.00.00.H12",
        "title": "Hệ thống một cửa điện tử (test)",
        "endpoint": "http://127.0.0.1:9",
        "inbound": [
            {
                "message": "dossier-sync",
                "mapping": "dvcqg/1.0",
                "format": "json",
                "produces": "dossier",
                "when": {"service": "DongBoHoSoMC"},
                "record": "data",
                "context_from": {"receiving_agency": "madonvi"},
            },
            {
                "message": "progress",
                "mapping": "dvcqg/1.0",
                "format": "json",
                "produces": "status-change",
                "when": {"service": "CapNhatTienDoHoSoMC"},
                "record": "data",
            },
            {
                "message": "progress",
                "mapping": "dvcqg/1.0",
                "format": "xml",
                "operation": "CapNhatTienDoHoSoMC",
                "produces": "status-change",
            },
        ],
    }
)


# Declares that the residence answer (a status change) makes dossiers: caught on first use.
MISCONFIGURED = ConnectorConfig.model_validate(
    {
        "id": "misconfigured_test",
        "agency": "000.00.00.H12",
        "title": "A connector whose inbound table contradicts its mapping",
        "endpoint": "http://127.0.0.1:9",
        "inbound": [
            {
                "message": "answer",
                "mapping": "residence/1.0",
                "format": "json",
                "produces": "dossier",
            }
        ],
    }
)

# Store-agnostic refusals run once, on SQLite; whatever commits runs on both stores.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class PushOnly:
    """A connector whose partner only pushes: the bus never delivers to it."""

    default_config = Path(__file__)

    def __init__(self, config: ConnectorConfig) -> None:
        self.config = config

    async def deliver(self, delivery: object) -> object:
        raise AssertionError("a push-only connector is never delivered to")

    async def aclose(self) -> None:
        return None


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def settings(
    namespace: str, database_url: str, simulator: Simulator, broker_cleanup: list[str]
) -> Settings:
    """A test bus on SQLite and on PostgreSQL in turn."""
    broker_cleanup.extend([ONE_STOP.id, MISCONFIGURED.id])
    return make_settings(
        namespace, database_url, connector_endpoints={"civil_status": simulator.url}
    )


@pytest.fixture
def api(settings: Settings) -> Iterator[str]:
    """The API with the installed connectors plus the test's one-stop connector."""
    registry = ConnectorRegistry.discover(settings.connector_endpoints)
    for config in (ONE_STOP, MISCONFIGURED):
        registry.register(RegisteredConnector(PushOnly, config))  # type: ignore[arg-type]
    with serve_app(create_app(settings, registry=registry), lifespan="on") as url:
        yield url


@dataclass
class Store:
    """A view on the test bus's store."""

    engine: AsyncEngine

    async def count(self, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
        """Rows of ``table`` matching ``where``."""
        async with self.engine.connect() as connection:
            found = await connection.scalar(
                sa.select(sa.func.count()).select_from(table).where(*where)
            )
        return int(found or 0)

    async def totals(self) -> dict[str, int]:
        """Rows per table: what a refused push must not change."""
        tables = {"dossiers": dossiers, "hops": hops, "outbox": outbox, "dedup": processed_messages}
        return {name: await self.count(table) for name, table in tables.items()}

    async def dossier(self, code: str) -> sa.Row[Any]:
        """The dossier's row."""
        async with self.engine.connect() as connection:
            result = await connection.execute(sa.select(dossiers).where(dossiers.c.code == code))
            return result.one()

    async def status_events(self, code: str) -> int:
        """``dossier.status_changed`` events in the outbox for the dossier."""
        return await self.count(
            outbox, outbox.c.dossier_code == code, outbox.c.routing_key.like("dossier.status.%")
        )

    async def receive_hops(self, code: str) -> list[sa.Row[Any]]:
        """The dossier's ``receive`` hops, oldest first."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                sa.select(hops)
                .where(hops.c.dossier_code == code, hops.c.kind == "receive")
                .order_by(hops.c.id)
            )
            return list(rows)


@pytest.fixture
async def store(settings: Settings, api: str) -> AsyncIterator[Store]:
    """The store the API writes (migrated by its start-up)."""
    engine = create_engine(settings.database_url)
    yield Store(engine)
    await engine.dispose()


# --- helpers -----------------------------------------------------------------------------------


async def seed(client: httpx.AsyncClient, sequence: int) -> str:
    """Submit a sample birth dossier through the canonical API; its code."""
    answer = await client.post("/v1/dossiers", json=sample_birth_dossier_json(sequence=sequence))
    assert answer.status_code == 202, answer.text
    code: str = answer.json()["dossier_code"]
    return code


def code_of(sequence: int) -> str:
    """The code of the sample dossier with this sequence."""
    return f"{AGENCY}-240315-{sequence:04d}"


def soap_push(version: SoapVersion, **fields: object) -> tuple[bytes, dict[str, str]]:
    """A capNhatTrangThaiHoSo request as the civil-status software sends it, and its headers."""
    namespace = SOAP11_ENVELOPE if version == "1.1" else SOAP12_ENVELOPE
    envelope = etree.Element(f"{{{namespace}}}Envelope", nsmap={"soap": namespace})
    body = etree.SubElement(envelope, f"{{{namespace}}}Body")
    request = etree.SubElement(body, f"{{{HOTICH}}}capNhatTrangThaiHoSo", nsmap={"h": HOTICH})
    for name, value in fields.items():
        etree.SubElement(request, f"{{{HOTICH}}}{name}").text = str(value)
    media = "text/xml" if version == "1.1" else "application/soap+xml"
    content = etree.tostring(envelope, xml_declaration=True, encoding="utf-8")
    return content, {"content-type": f"{media}; charset=utf-8"}


async def push_soap(
    client: httpx.AsyncClient, version: SoapVersion, **fields: object
) -> httpx.Response:
    """POST a civil-status change over SOAP."""
    content, headers = soap_push(version, **fields)
    return await client.post("/v1/inbound/civil_status", content=content, headers=headers)


def soap_result(answer: httpx.Response, element: str) -> dict[str, str]:
    """maLoi and moTa of the SOAP answer's ``element`` (the response, or a fault's ``loi``)."""
    root = etree.fromstring(answer.content)
    found = root.find(f".//{{{HOTICH}}}{element}")
    assert found is not None, answer.text
    return {etree.QName(child).localname: child.text or "" for child in found}


def is_fault(answer: httpx.Response, version: SoapVersion) -> bool:
    """Whether the answer is a SOAP fault of ``version``."""
    namespace = SOAP11_ENVELOPE if version == "1.1" else SOAP12_ENVELOPE
    return etree.fromstring(answer.content).find(f".//{{{namespace}}}Fault") is not None


def assert_problem(answer: httpx.Response, status: int, kind: str) -> None:
    """The bus's own problem document (before any partner convention applies)."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert answer.json()["type"] == f"urn:lienthong:problem:{kind}"


def dossier_sync(sequence: int, **changes: object) -> dict[str, Any]:
    """A DongBoHoSoMC call of the one-stop system with one dossier (no attachments)."""
    record: dict[str, Any] = {
        "MaHoSo": code_of(sequence),
        "MaTTHC": "1.001193",
        "TenTTHC": "Đăng ký khai sinh",
        "KenhThucHien": 2,
        "SoBienNhan": f"BN-240315-{sequence:04d}",
        "ChuHoSo": "Nguyễn Văn An",
        "LoaiDoiTuong": 1,
        "MaDoiTuong": "001090012345",
        "TrichYeuHoSo": "Đăng ký khai sinh cho cháu Nguyễn Thị Bình",
        "NgayTiepNhan": "20240315090000",
        "TrangThaiHoSo": 1,
        "DonViXuLy": AGENCY,
        **changes,
    }
    return {"session": "s-1", "madonvi": AGENCY, "service": "DongBoHoSoMC", "data": [record]}


# --- status changes: SOAP ----------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.1", "1.2"])
async def test_a_soap_push_moves_the_dossier_once_and_announces_it(
    client: httpx.AsyncClient,
    store: Store,
    portal_queue: aio_pika.abc.AbstractQueue,
    version: SoapVersion,
) -> None:
    """A civil-status SOAP push applies once however often it is sent, and one event goes out."""
    code = await seed(client, 1)
    change = {
        "maHoSo": code,
        "trangThai": 4,
        "ngayCapNhat": "20240315100000",
        "soDangKy": "KS/2024/000123",
        "nguoiKy": "Phạm Thị Hạnh",
    }
    first = await push_soap(client, version, **change)
    assert first.status_code == 200, first.text
    media = "text/xml" if version == "1.1" else "application/soap+xml"
    assert first.headers["content-type"].startswith(media)
    assert soap_result(first, "capNhatTrangThaiHoSoResponse")["maLoi"] == "0"

    for _ in range(2):
        again = await push_soap(client, version, **change)
        assert again.status_code == 200
        result = soap_result(again, "capNhatTrangThaiHoSoResponse")
        assert result["maLoi"] == "0" and "received before" in result["moTa"]

    row = await store.dossier(code)
    assert (row.status, row.sequence, row.partner_reference) == (9, 2, "KS/2024/000123")
    assert await store.status_events(code) == 1
    [hop] = await store.receive_hops(code)
    assert (hop.sender, hop.recipient, hop.outcome) == ("civil_status", "bus", "applied")
    assert hop.mapping_version == "civil_status/1.0/change-feed.in"
    assert hop.request_bytes > 0 and hop.received_at is not None and hop.sent_at is not None
    assert hop.message_id == record_key(code, "4", "20240315100000")

    message = await wait_for(lambda: portal_queue.get(fail=False))
    await message.ack()
    event = orjson.loads(message.body)
    assert event["type"] == "vn.lienthong.dossier.status_changed"
    assert (event["subject"], event["data"]["status"], event["dossierseq"]) == (code, 9, 2)
    assert event["mappingid"] == "civil_status/1.0/change-feed.in"
    await asyncio.sleep(0.3)
    assert await portal_queue.get(fail=False) is None, "the repeated pushes were announced"

    view = (await client.get(f"/v1/dossiers/{code}")).json()
    kinds = [(h["kind"], h["sender"], h["outcome"]) for h in view["history"]]
    assert ("receive", "civil_status", "applied") in kinds


async def test_a_stale_push_does_not_move_the_dossier_back(
    client: httpx.AsyncClient, store: Store
) -> None:
    """A change the partner dated before the applied one is recorded, answered, not applied."""
    code = await seed(client, 2)
    registered = await push_soap(
        client, "1.1", maHoSo=code, trangThai=4, ngayCapNhat="20240315100000"
    )
    assert soap_result(registered, "capNhatTrangThaiHoSoResponse")["maLoi"] == "0"
    older = await push_soap(client, "1.1", maHoSo=code, trangThai=3, ngayCapNhat="20240315093000")
    assert older.status_code == 200
    result = soap_result(older, "capNhatTrangThaiHoSoResponse")
    assert result["maLoi"] == "0" and "not applied" in result["moTa"]

    row = await store.dossier(code)
    assert (row.status, row.sequence) == (9, 2)
    assert await store.status_events(code) == 1
    assert [h.outcome for h in await store.receive_hops(code)] == ["applied", "stale"]


async def test_a_push_for_an_unknown_dossier_is_not_found_and_applies_once_it_arrives(
    client: httpx.AsyncClient, store: Store
) -> None:
    """RECORD_NOT_FOUND leaves no trace, so the partner's retry applies once the dossier exists."""
    code = code_of(3)
    before = await store.totals()
    answer = await push_soap(client, "1.1", maHoSo=code, trangThai=1, ngayCapNhat="20240315093000")
    assert answer.status_code == 500 and is_fault(answer, "1.1")
    assert soap_result(answer, "loi")["maLoi"] == "201"
    assert await store.totals() == before

    await seed(client, 3)
    retried = await push_soap(client, "1.1", maHoSo=code, trangThai=1, ngayCapNhat="20240315093000")
    assert soap_result(retried, "capNhatTrangThaiHoSoResponse")["maLoi"] == "0"
    assert (await store.dossier(code)).status == 2


async def test_a_push_dated_ahead_of_the_bus_is_refused(
    client: httpx.AsyncClient, store: Store
) -> None:
    """A change dated in 2099 (a wrong clock) would make every true change after it look stale:
    it is a Client fault naming the date, and nothing moves; the true change then applies."""
    code = await seed(client, 14)
    before = await store.totals()
    ahead = await push_soap(client, "1.1", maHoSo=code, trangThai=4, ngayCapNhat="20990101000000")
    assert ahead.status_code == 500 and is_fault(ahead, "1.1")
    assert "2099-01-01" in soap_result(ahead, "loi")["moTa"]
    assert await store.totals() == before
    now = datetime.now(VN_TZ).strftime("%Y%m%d%H%M%S")
    applied = await push_soap(client, "1.1", maHoSo=code, trangThai=4, ngayCapNhat=now)
    assert soap_result(applied, "capNhatTrangThaiHoSoResponse")["maLoi"] == "0"
    assert (await store.dossier(code)).status == 9


@pytest.mark.parametrize("version", ["1.1", "1.2"])
async def test_a_soap_push_with_an_unknown_status_is_a_fault(
    client: httpx.AsyncClient, store: Store, version: SoapVersion
) -> None:
    """An unknown trangThai is a Client/Sender fault with DATA_INCORRECT, and nothing moves."""
    code = await seed(client, 4)
    before = await store.totals()
    answer = await push_soap(
        client, version, maHoSo=code, trangThai=7, ngayCapNhat="20240315100000"
    )
    assert answer.status_code == (500 if version == "1.1" else 400)
    assert is_fault(answer, version)
    fault = soap_result(answer, "loi")
    assert fault["maLoi"] == "500" and "trangThai" in fault["moTa"]
    assert b"Client" in answer.content if version == "1.1" else b"Sender" in answer.content
    assert await store.totals() == before
    assert (await store.dossier(code)).status == 1


# --- status changes: JSON ----------------------------------------------------------------------


async def test_a_json_push_of_a_residence_answer_is_answered_dvcqg_style(
    client: httpx.AsyncClient, store: Store
) -> None:
    """The residence software's pushed answer applies once; answers carry error_code 0."""
    code = await seed(client, 5)
    body = {
        "maHoSo": code,
        "ketQua": "DA_DANG_KY",
        "thoiGian": "20240316141500",
        "soHoKhau": "HK-0012345",
    }
    first = await client.post("/v1/inbound/residence", json=body)
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert first.json()["error_code"] == 0
    repeat = await client.post("/v1/inbound/residence", json=body)
    assert repeat.json() == {"error_code": 0, "message": repeat.json()["message"]}
    assert "received before" in repeat.json()["message"]

    row = await store.dossier(code)
    assert (row.status, row.sequence, row.partner_reference) == (9, 2, "HK-0012345")
    assert await store.status_events(code) == 1
    [hop] = await store.receive_hops(code)
    assert (hop.sender, hop.mapping_version) == ("residence", "residence/1.0/answer.in")


async def test_a_json_push_of_a_judicial_record_shares_the_pollers_dedup_key(
    client: httpx.AsyncClient, store: Store
) -> None:
    """A pushed judicial status record is keyed as the poller keys it, so polled again it is a
    duplicate; later records move the dossier on."""
    code = await seed(client, 6)
    record = {"maHoSo": code, "trangThai": 3, "ngayCapNhat": "16/03/2024", "nguoiXuLy": "Lê Văn Tư"}
    answer = await client.post("/v1/inbound/judicial_records", json=record)
    assert answer.json()["error_code"] == 0
    ready = {**record, "trangThai": 4, "ngayCapNhat": "18/03/2024", "soPhieu": "LLTP-2024-01"}
    assert (await client.post("/v1/inbound/judicial_records", json=ready)).json()["error_code"] == 0

    row = await store.dossier(code)
    assert (row.status, row.sequence, row.partner_reference) == (9, 3, "LLTP-2024-01")
    assert await store.status_events(code) == 2
    # The poller's key for the same record: maHoSo|trangThai|ngayCapNhat, same consumer.
    polled_key = record_key(code, 3, "16/03/2024")
    assert (
        await store.count(
            processed_messages,
            processed_messages.c.consumer == "judicial_records",
            processed_messages.c.message_id == polled_key,
        )
        == 1
    )


async def test_a_json_push_with_an_unknown_code_is_data_incorrect(
    client: httpx.AsyncClient, store: Store
) -> None:
    """A value outside the partner's code list is refused with 500 DATA_INCORRECT, nothing kept."""
    code = await seed(client, 7)
    before = await store.totals()
    body = {"maHoSo": code, "ketQua": "KHONG_RO", "thoiGian": "20240316141500"}
    answer = await client.post("/v1/inbound/residence", json=body)
    assert answer.status_code == 422
    assert answer.json()["error_code"] == 500
    assert "ketQua" in answer.json()["message"]
    assert await store.totals() == before


async def test_a_json_push_for_an_unknown_dossier_is_record_not_found(
    client: httpx.AsyncClient, store: Store
) -> None:
    """A change of a dossier the bus does not hold gets 201 RECORD_NOT_FOUND, nothing kept."""
    before = await store.totals()
    body = {"maHoSo": code_of(8), "ketQua": "DA_TIEP_NHAN", "thoiGian": "20240316141500"}
    answer = await client.post("/v1/inbound/residence", json=body)
    assert answer.status_code == 404
    assert answer.json()["error_code"] == 201
    assert await store.totals() == before


# --- dossiers ----------------------------------------------------------------------------------


async def test_a_dossier_pushed_the_dvcqg_way_is_ingested_once(
    client: httpx.AsyncClient, store: Store
) -> None:
    """DongBoHoSoMC goes through the ingest road: committed with its event, a repeat changes
    nothing, and its progress pushed the same way moves it."""
    payload = dossier_sync(9)
    code = code_of(9)
    first = await client.post("/v1/inbound/one_stop_test", json=payload)
    assert first.status_code == 200, first.text
    assert first.json() == {"error_code": 0, "message": f"dossier {code} accepted"}
    repeat = await client.post("/v1/inbound/one_stop_test", json=payload)
    assert repeat.json()["error_code"] == 0 and "accepted before" in repeat.json()["message"]

    assert await store.count(dossiers) == 1
    submitted = outbox.c.routing_key.like("dossier.submitted.%")
    assert await store.count(outbox, submitted) == 1
    [hop] = await store.receive_hops(code)
    assert (hop.sender, hop.outcome) == ("one_stop_test", "accepted")
    assert hop.mapping_version == "dvcqg/1.0/dossier-sync.in"
    view = (await client.get(f"/v1/dossiers/{code}")).json()
    assert view["state"]["receiving_agency"] == AGENCY
    assert view["dossier"]["applicant"]["full_name"] == "Nguyễn Văn An"

    progress = {
        "service": "CapNhatTienDoHoSoMC",
        "data": {"MaHoSo": code, "TrangThai": 2, "ThoiDiemXuLy": "20240315093000"},
    }
    moved = await client.post("/v1/inbound/one_stop_test", json=progress)
    assert moved.json()["error_code"] == 0, moved.text
    assert (await store.dossier(code)).status == 2

    step = (
        f"<CapNhatTienDoHoSoMC><MaHoSo>{code}</MaHoSo><TrangThai>4</TrangThai>"
        "<ThoiDiemXuLy>20240315110000</ThoiDiemXuLy></CapNhatTienDoHoSoMC>"
    )
    as_xml = await client.post(
        "/v1/inbound/one_stop_test",
        content=step.encode(),
        headers={"content-type": "application/xml"},
    )
    assert as_xml.status_code == 200
    assert etree.fromstring(as_xml.content).findtext("maLoi") == "0"
    assert (await store.dossier(code)).status == 4


async def test_the_shipped_one_stop_connector_takes_its_dossiers_pushed_the_dvcqg_way(
    client: httpx.AsyncClient, store: Store
) -> None:
    """connectors/one_stop declares DongBoHoSoMC pushes: accepted once, answered error_code 0."""
    code = code_of(11)
    first = await client.post("/v1/inbound/one_stop", json=dossier_sync(11))
    assert first.status_code == 200, first.text
    assert first.json()["error_code"] == 0
    repeat = await client.post("/v1/inbound/one_stop", json=dossier_sync(11))
    assert repeat.json()["error_code"] == 0
    assert await store.count(dossiers) == 1
    [hop] = await store.receive_hops(code)
    assert (hop.sender, hop.mapping_version) == ("one_stop", "dvcqg/1.0/dossier-sync.in")

    progress = {"service": "CapNhatTienDoHoSoMC", "data": {"MaHoSo": code, "TrangThai": 2}}
    refused = await client.post("/v1/inbound/one_stop", json=progress)
    assert refused.json()["error_code"] == 302  # it pushes dossiers, not progress


async def test_a_pushed_dossier_the_contract_refuses_is_data_incorrect(
    client: httpx.AsyncClient, store: Store
) -> None:
    """DVCQG carries no checksums; an attachment without one breaks the contract: refused."""
    attachment = {"TepDinhKemId": "TL-1", "TenTepDinhKem": "Giấy chứng sinh"}
    answer = await client.post(
        "/v1/inbound/one_stop_test", json=dossier_sync(10, TaiLieuNop=[attachment])
    )
    assert answer.status_code == 422
    assert answer.json()["error_code"] == 500 and "sha256" in answer.json()["message"]
    assert await store.totals() == {"dossiers": 0, "hops": 0, "outbox": 0, "dedup": 0}


async def test_a_json_push_that_is_none_of_the_messages_is_data_type_invalid(
    client: httpx.AsyncClient, store: Store
) -> None:
    """A service the connector does not take gets 302 DATA_TYPE_INVALID."""
    answer = await client.post("/v1/inbound/one_stop_test", json={"service": "LayThuTuc"})
    assert answer.status_code == 400 and answer.json()["error_code"] == 302
    assert await store.totals() == {"dossiers": 0, "hops": 0, "outbox": 0, "dedup": 0}


# --- WSDL and zeep -----------------------------------------------------------------------------


async def test_the_wsdl_points_at_the_bus_and_a_zeep_client_can_call_it(
    api: str, client: httpx.AsyncClient, store: Store
) -> None:
    """?wsdl serves a valid WSDL whose address is the bus; zeep calls it in SOAP 1.1 and 1.2."""
    served = await client.get("/v1/inbound/civil_status?wsdl")
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/xml")
    addresses = etree.fromstring(served.content).xpath("//*[local-name()='address']/@location")
    assert addresses == [f"{api}/v1/inbound/civil_status"] * 2

    code = await seed(client, 11)
    async with httpx.AsyncClient(timeout=10, headers=AUTH) as http:
        with httpx.Client(timeout=10, headers=AUTH) as loader:
            transport = AsyncTransport(client=http, wsdl_client=loader)
            # zeep replaces both clients' headers with its own: the credentials go back in.
            loader.headers.update(AUTH)
            http.headers.update(AUTH)
            soap = zeep.AsyncClient(f"{api}/v1/inbound/civil_status?wsdl", transport=transport)
            operations = soap.wsdl.services["LienThongHoTichService"].ports
            assert set(operations) == {"LienThongHoTichSoap", "LienThongHoTichSoap12"}

            answer = await soap.service.capNhatTrangThaiHoSo(
                maHoSo=code, trangThai=1, ngayCapNhat="20240315093000"
            )
            assert answer.maLoi == 0
            soap12 = soap.bind("LienThongHoTichService", "LienThongHoTichSoap12")
            answer = await soap12.capNhatTrangThaiHoSo(
                maHoSo=code, trangThai=4, ngayCapNhat="20240315100000", soDangKy="KS/2024/9"
            )
            assert answer.maLoi == 0
            with pytest.raises(Fault) as refused:
                await soap.service.capNhatTrangThaiHoSo(
                    maHoSo=code_of(12), trangThai=4, ngayCapNhat="20240315100000"
                )
    assert "no dossier" in refused.value.message
    assert "201" in etree.tostring(refused.value.detail).decode()
    assert (await store.dossier(code)).status == 9


@sqlite_only
async def test_the_description_lists_what_a_connector_accepts(client: httpx.AsyncClient) -> None:
    """Without ?wsdl the route says what the partner may push; a JSON partner has no WSDL."""
    described = (await client.get("/v1/inbound/civil_status")).json()
    assert described["accepts"][0]["mapping"] == "civil_status/1.0/change-feed.in"
    assert described["wsdl"].endswith("/v1/inbound/civil_status?wsdl")
    for connector in ("residence", "judicial_records", "one_stop_test"):
        assert (await client.get(f"/v1/inbound/{connector}")).status_code == 200
    assert_problem(await client.get("/v1/inbound/residence?wsdl"), 404, "not-found")


# --- refusals before any partner convention ----------------------------------------------------


@sqlite_only
async def test_an_unknown_connector_is_a_404_problem(client: httpx.AsyncClient) -> None:
    """No connector by that id: the bus's own 404 problem document."""
    assert_problem(await client.post("/v1/inbound/no_such_partner", json={}), 404, "not-found")
    assert_problem(await client.get("/v1/inbound/no_such_partner?wsdl"), 404, "not-found")


@sqlite_only
async def test_a_connector_without_inbound_messages_is_a_404_problem(
    client: httpx.AsyncClient, store: Store
) -> None:
    """A connector that declares no [[inbound]] takes no pushes, and says which ones do."""
    answer = await client.post("/v1/inbound/social_insurance", json={"maHoSo": code_of(1)})
    assert_problem(answer, 404, "no-inbound")
    assert "civil_status" in answer.json()["detail"]
    assert await store.totals() == {"dossiers": 0, "hops": 0, "outbox": 0, "dedup": 0}


# --- hostile and unreadable input --------------------------------------------------------------


@sqlite_only
@pytest.mark.parametrize("name", sorted(HOSTILE_XML))
@pytest.mark.parametrize(
    ("connector", "content_type", "status"),
    [
        pytest.param("civil_status", "text/xml", 400, id="soap11"),
        pytest.param("civil_status", "application/soap+xml", 400, id="soap12"),
        pytest.param("one_stop_test", "application/xml", 400, id="xml"),
        pytest.param("residence", "application/xml", 415, id="json-partner"),
    ],
)
async def test_hostile_xml_is_refused_before_mapping(
    client: httpx.AsyncClient,
    store: Store,
    name: str,
    connector: str,
    content_type: str,
    status: int,
) -> None:
    """Every classic XML attack gets a 4xx in the partner's style, and nothing is stored."""
    answer = await client.post(
        f"/v1/inbound/{connector}",
        content=HOSTILE_XML[name],
        headers={"content-type": content_type},
    )
    assert answer.status_code == status, answer.text
    if connector == "civil_status":
        version: SoapVersion = "1.2" if content_type == "application/soap+xml" else "1.1"
        assert is_fault(answer, version)
        assert soap_result(answer, "loi")["maLoi"] == "302"
        assert "refused" in soap_result(answer, "loi")["moTa"]
    elif connector == "one_stop_test":
        assert etree.fromstring(answer.content).findtext("maLoi") == "302"
    else:
        assert answer.json()["error_code"] == 302
    assert b"root:" not in answer.content  # no file content leaked into the answer
    assert await store.totals() == {"dossiers": 0, "hops": 0, "outbox": 0, "dedup": 0}


@sqlite_only
@pytest.mark.parametrize(
    ("connector", "content", "content_type", "status"),
    [
        pytest.param("residence", b"maHoSo=1", "text/plain", 415, id="json-partner-text"),
        pytest.param("residence", b"", None, 415, id="no-content-type"),
        pytest.param("civil_status", b"{}", "application/json", 415, id="soap-partner-json"),
        pytest.param("residence", b"", "application/json", 400, id="empty"),
        pytest.param("residence", b'{"maHoSo": ', "application/json", 400, id="broken-json"),
        pytest.param("residence", b"[1, 2]", "application/json", 400, id="json-array"),
        pytest.param("residence", b"[" * 40 + b"]" * 40, "application/json", 400, id="deep"),
        pytest.param(
            "residence", b"{" + b" " * 1_100_000 + b"}", "application/json", 413, id="too-large"
        ),
        pytest.param("civil_status", b"<a><b>", "text/xml", 400, id="broken-xml"),
        pytest.param("civil_status", b"<hoSo/>", "text/xml", 400, id="not-an-envelope"),
    ],
)
async def test_unreadable_pushes_are_data_type_invalid(
    client: httpx.AsyncClient,
    store: Store,
    connector: str,
    content: bytes,
    content_type: str | None,
    status: int,
) -> None:
    """Wrong media type, broken syntax, too deep or too large: 302 DATA_TYPE_INVALID with the
    HTTP status that says why, and nothing stored."""
    headers = {} if content_type is None else {"content-type": content_type}
    answer = await client.post(f"/v1/inbound/{connector}", content=content, headers=headers)
    assert answer.status_code == status, answer.text
    if connector == "civil_status":
        assert is_fault(answer, "1.1") and soap_result(answer, "loi")["maLoi"] == "302"
    else:
        assert answer.json()["error_code"] == 302
    assert await store.totals() == {"dossiers": 0, "hops": 0, "outbox": 0, "dedup": 0}


@sqlite_only
async def test_a_soap_operation_the_wsdl_does_not_offer_is_refused(
    client: httpx.AsyncClient, store: Store
) -> None:
    """A well-formed envelope calling another operation is a fault naming what is offered."""
    content, headers = soap_push("1.2", maHoSo=code_of(1))
    content = content.replace(b"capNhatTrangThaiHoSo", b"xoaHoSo")
    answer = await client.post("/v1/inbound/civil_status", content=content, headers=headers)
    assert answer.status_code == 400 and is_fault(answer, "1.2")
    assert "capNhatTrangThaiHoSo" in soap_result(answer, "loi")["moTa"]
    assert await store.totals() == {"dossiers": 0, "hops": 0, "outbox": 0, "dedup": 0}


@sqlite_only
async def test_an_inbound_table_that_contradicts_its_mapping_is_a_500_problem(
    client: httpx.AsyncClient, store: Store
) -> None:
    """A message declared to produce dossiers whose mapping makes status changes is refused as
    the bus's misconfiguration, naming both, and nothing is mapped or stored."""
    answer = await client.post("/v1/inbound/misconfigured_test", json={"maHoSo": code_of(1)})
    assert_problem(answer, 500, "configuration")
    assert "residence/1.0/answer.in" in answer.json()["detail"]
    assert await store.totals() == {"dossiers": 0, "hops": 0, "outbox": 0, "dedup": 0}
