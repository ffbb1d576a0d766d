"""A stand-in for the Ministry of Justice's civil-status software, for tests and demos.

It speaks the partner's protocol: the SOAP service of ``contracts/partners/civil_status/
hotich.wsdl`` at ``POST /hotich`` (``dangKyHoTich``, ``traTrangThaiHoSo``; SOAP 1.1 or 1.2,
answered in the request's version; the WSDL at ``GET /hotich?wsdl``), plus the REST change feed
``dsHoSoDangKy``. It registers each dossier at most once, reads every request with the hardened
parser, and can be made slow, flaky or hostile through ``/_sim/``::

    python -m connectors.civil_status.simulator --host 127.0.0.1 --port 8101
    curl -X POST localhost:8101/_sim/faults -d '{"error_rate": 0.3}'
    curl localhost:8101/_sim/stats
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field

import contracts
from bus.testing import (
    SoapRequest,
    SoapRequestError,
    read_soap_request,
    soap_answer,
    soap_fault,
    soap_media_type,
)
from bus.xmlsafe import UnsafeXml, parse_xml
from contracts import VN_TZ

__all__ = ["Registration", "SimulatorFaults", "SimulatorState", "create_simulator_app", "main"]

MAX_REQUEST_BYTES: Final = 2_000_000
"""Requests larger than this are refused with HTTP 413, before they are parsed."""

SOAP_PATH: Final = "/hotich"
"""Where the SOAP service answers (POST) and serves its WSDL (GET ?wsdl)."""

NAMESPACE: Final = "urn:vn:moj:hotich:1.0"
"""Target namespace of the WSDL's operations and answers."""

WSDL_PATH: Final = (
    Path(contracts.__file__).resolve().parent / "partners" / "civil_status" / "hotich.wsdl"
)

SoapVersion = Literal["1.1", "1.2"]

_MODULE_BIRTH: Final = "KS"
_REGISTERED: Final = 4
_REGISTERED_TEXT: Final = "Đã đăng ký khai sinh"
# Who signs the certificates in the simulated commune (an invented name).
_SIGNING_OFFICER: Final = "Phạm Thị Hạnh"
_AGENCY_RE: Final = re.compile(r"\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}", re.ASCII)
_CCCD_RE: Final = re.compile(r"\d{12}", re.ASCII)
_DISCONNECT_POLL_SECONDS: Final = 0.05
# The answer's elements in the order of the WSDL's KetQuaHoSo sequence.
_ANSWER_FIELDS: Final = ("trangThai", "maHoSo", "soDangKy", "ngayDangKy", "moTa", "daTonTai")
_ADDRESS_TAGS: Final = (
    "{http://schemas.xmlsoap.org/wsdl/soap/}address",
    "{http://schemas.xmlsoap.org/wsdl/soap12/}address",
)
_GARBAGE: Final = "<html><body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body></html>"


class SimulatorFaults(BaseModel):
    """The failure switches in force; posting to ``/_sim/faults`` replaces all of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: int = Field(default=0, ge=0, le=600_000, description="Delay before answering")
    error_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of calls answered with a soap:Server fault (HTTP 500), unapplied",
    )
    reject_all: bool = Field(default=False, description="Answer trangThai 0 with HTTP 200")
    malformed: bool = Field(default=False, description="Answer HTTP 200 with an HTML error page")
    client_fault: bool = Field(
        default=False, description="Answer a soap:Client fault (1.2: Sender), unapplied"
    )
    hang: bool = Field(
        default=False, description="Answer nothing until the client gives up (or hang_seconds)"
    )
    hang_seconds: float = Field(
        default=330.0, gt=0, le=3600, description="Longest hang; above any connector timeout"
    )
    failing_dossiers: frozenset[str] = Field(
        default=frozenset(),
        max_length=10_000,
        description="Dossier codes always answered HTTP 503, unapplied: a record it chokes on",
    )


@dataclass(frozen=True, slots=True)
class Registration:
    """One registered birth, as the civil-status register holds it."""

    dossier_code: str
    registration_number: str
    agency: str
    module: str
    received_at: str
    registered_at: datetime
    child_full_name: str

    def answer(self) -> dict[str, Any]:
        """The body the partner answers for this registration."""
        return {
            "trangThai": _REGISTERED,
            "maHoSo": self.dossier_code,
            "soDangKy": self.registration_number,
            "ngayDangKy": self.registered_at.strftime("%d/%m/%Y"),
            "moTa": _REGISTERED_TEXT,
        }


def _now() -> datetime:
    return datetime.now(VN_TZ)


@dataclass
class SimulatorState:
    """The simulator's in-memory register and counters; safe to share between threads.

    Every read and write goes through one lock and never awaits while holding it, so the
    counters stay exact under any mix of concurrent requests and test threads.
    """

    seed: int | None = None
    clock: Callable[[], datetime] = _now
    faults: SimulatorFaults = field(default_factory=SimulatorFaults)
    registrations: dict[str, Registration] = field(default_factory=dict)
    applied_codes: list[str] = field(default_factory=list)
    requests: int = 0
    applied: int = 0
    duplicates: int = 0
    _last_number: dict[int, int] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def count_request(self) -> None:
        """Count one call of the SOAP service, whatever its outcome."""
        with self._lock:
            self.requests += 1

    def set_faults(self, faults: SimulatorFaults) -> None:
        """Replace the failure switches."""
        with self._lock:
            self.faults = faults

    def current_faults(self) -> SimulatorFaults:
        """The failure switches in force."""
        with self._lock:
            return self.faults

    def draw_error(self, rate: float) -> bool:
        """Whether this call is one of the ``rate`` share that fails."""
        with self._lock:
            return self._random.random() < rate

    def register(
        self, *, dossier_code: str, agency: str, module: str, received_at: str, child: str
    ) -> tuple[Registration, bool]:
        """Register the dossier once; return its registration and whether it already existed."""
        with self._lock:
            existing = self.registrations.get(dossier_code)
            if existing is not None:
                self.duplicates += 1
                return existing, True
            registered_at = self.clock().astimezone(VN_TZ)
            year = registered_at.year
            number = self._last_number.get(year, 0) + 1
            self._last_number[year] = number
            registration = Registration(
                dossier_code=dossier_code,
                registration_number=f"{module}/{year}/{number:06d}",
                agency=agency,
                module=module,
                received_at=received_at,
                registered_at=registered_at,
                child_full_name=child,
            )
            self.registrations[dossier_code] = registration
            self.applied_codes.append(dossier_code)
            self.applied += 1
            return registration, False

    def lookup(self, dossier_code: str) -> Registration | None:
        """The registration of a dossier, if it was registered."""
        with self._lock:
            return self.registrations.get(dossier_code)

    def registered_on(self, day: date, module: str | None = None) -> list[Registration]:
        """Registrations made on ``day`` (local time), oldest first."""
        with self._lock:
            return [
                registration
                for registration in self.registrations.values()
                if registration.registered_at.date() == day
                and (module is None or registration.module == module)
            ]

    def stats(self) -> dict[str, Any]:
        """Exact counters: calls received, dossiers applied, duplicates answered."""
        with self._lock:
            return {
                "applied": self.applied,
                "duplicates": self.duplicates,
                "requests": self.requests,
                "applied_codes": list(self.applied_codes),
            }

    def reset(self) -> None:
        """Forget every registration, counter and fault."""
        with self._lock:
            self.faults = SimulatorFaults()
            self.registrations.clear()
            self.applied_codes.clear()
            self._last_number.clear()
            self.requests = self.applied = self.duplicates = 0
            self._random = random.Random(self.seed)


class _Refusal(Exception):
    """Internal: the request is refused with a soap:Client (1.2: Sender) fault."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _answer_element(body: dict[str, Any], operation: str) -> etree._Element:
    """``<dangKyHoTichResponse>`` (or ``traTrangThaiHoSoResponse``) with the answer's fields."""
    element = etree.Element(f"{{{NAMESPACE}}}{operation}Response", nsmap={"ht": NAMESPACE})
    for name in _ANSWER_FIELDS:  # the WSDL's sequence: order matters to a strict reader
        value = body.get(name)
        if value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        etree.SubElement(element, f"{{{NAMESPACE}}}{name}").text = text
    return element


def _soap(version: SoapVersion, body: dict[str, Any], operation: str) -> Response:
    return Response(
        soap_answer(version, _answer_element(body, operation)),
        media_type=soap_media_type(version),
    )


def _fault(version: SoapVersion, reason: str, *, sender: bool) -> Response:
    content, status_code = soap_fault(version, sender=sender, reason=reason)
    return Response(content, status_code=status_code, media_type=soap_media_type(version))


def _refusal(message: str, status_code: int, dossier_code: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"trangThai": 0, "moTa": message}
    if dossier_code is not None:
        body["maHoSo"] = dossier_code
    return JSONResponse(body, status_code=status_code)


async def _suffer_delays(request: Request, faults: SimulatorFaults) -> bool:
    """Apply latency and hang; return False when the call hung (the caller answers 504)."""
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)
    if not faults.hang:
        return True
    # Hang like a stuck server, but stop once the client has given up so shutdown is quick.
    deadline = time.monotonic() + faults.hang_seconds
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            break
        await asyncio.sleep(_DISCONNECT_POLL_SECONDS)
    return False


def _read_register_request(call: SoapRequest) -> dict[str, str]:
    """The ``dangKyHoTich`` elements, checked as the register checks them."""
    fields: dict[str, str] = {}
    for name in ("maDonVi", "module", "maHoSo", "ngayTiepNhan", "data"):
        value = call.field(name)
        if value is None or not value.strip():
            raise _Refusal(f"Thiếu trường bắt buộc: {name}")
        fields[name] = value.strip() if name != "data" else value
    if _AGENCY_RE.fullmatch(fields["maDonVi"]) is None:
        raise _Refusal(f"Mã đơn vị không hợp lệ: {fields['maDonVi']}")
    if fields["module"] != _MODULE_BIRTH:
        raise _Refusal(f"Module {fields['module']} chưa được hỗ trợ")
    if len(fields["maHoSo"]) > 100:
        raise _Refusal("Mã hồ sơ quá dài")
    try:
        datetime.strptime(fields["ngayTiepNhan"], "%Y%m%d%H%M%S")
    except ValueError as exc:
        raise _Refusal("ngayTiepNhan phải có dạng yyyyMMddHHmmss") from exc
    return fields


def _read_birth_record(data: str) -> str:
    """Check the ``<hoSoKhaiSinh>`` XML as the register would; return the child's name."""
    try:
        root = parse_xml(data.encode("utf-8"))
    except UnsafeXml as exc:
        raise _Refusal(f"Dữ liệu XML không hợp lệ: {exc}") from exc
    if root.tag != "hoSoKhaiSinh":
        raise _Refusal(f"Phần tử gốc phải là hoSoKhaiSinh, không phải {root.tag}")
    for path in ("treEm/hoTen", "treEm/ngaySinh", "treEm/gioiTinh", "treEm/noiSinh", "me/hoTen"):
        if not (root.findtext(path) or "").strip():
            raise _Refusal(f"Thiếu thông tin bắt buộc: {path}")
    if not (root.findtext("nguoiYeuCau/hoTen") or "").strip():
        raise _Refusal("Thiếu thông tin bắt buộc: nguoiYeuCau/hoTen")
    try:
        datetime.strptime(root.findtext("treEm/ngaySinh") or "", "%d/%m/%Y")
    except ValueError as exc:
        raise _Refusal("treEm/ngaySinh phải có dạng dd/MM/yyyy") from exc
    if root.findtext("treEm/gioiTinh") not in {"1", "2"}:
        raise _Refusal("treEm/gioiTinh phải là 1 (nam) hoặc 2 (nữ)")
    for path in ("me/soDinhDanh", "cha/soDinhDanh", "nguoiYeuCau/soDinhDanh"):
        number = root.findtext(path)
        if number is not None and _CCCD_RE.fullmatch(number) is None:
            raise _Refusal(f"{path} phải gồm 12 chữ số")
    return (root.findtext("treEm/hoTen") or "").strip()


def _wsdl_for(base_url: str) -> bytes:
    """The partner's WSDL with every soap:address pointing at this simulator."""
    root = parse_xml(WSDL_PATH.read_bytes())
    for address in root.iter(*_ADDRESS_TAGS):
        address.set("location", f"{base_url.rstrip('/')}{SOAP_PATH}")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def create_simulator_app(state: SimulatorState | None = None) -> FastAPI:
    """A FastAPI app that behaves like the civil-status software; ``app.state.simulator``."""
    sim = state if state is not None else SimulatorState()
    app = FastAPI(
        title="Civil-status software simulator (phần mềm hộ tịch)",
        description="A stand-in for the Ministry of Justice's civil-status software (SOAP).",
    )
    app.state.simulator = sim

    async def sick_answer(request: Request, version: SoapVersion) -> Response | None:
        """The sick-partner answer this SOAP call gets, if the switches say so."""
        faults = sim.current_faults()
        if not await _suffer_delays(request, faults):
            return Response(status_code=504)
        if faults.error_rate and sim.draw_error(faults.error_rate):
            return _fault(version, "Hệ thống đang bận, vui lòng thử lại sau", sender=False)
        if faults.malformed:
            # nginx's own error page: <hr> is never closed, so it is not even XML.
            return Response(_GARBAGE, media_type="text/html")
        if faults.client_fault:
            return _fault(version, "Yêu cầu không hợp lệ", sender=True)
        return None

    def register(call: SoapRequest) -> Response:
        """dangKyHoTich: register a dossier; a repeated maHoSo gets the first answer back."""
        try:
            fields = _read_register_request(call)
            child = _read_birth_record(fields["data"])
        except _Refusal as refusal:
            return _fault(call.version, refusal.message, sender=True)
        faults = sim.current_faults()
        if fields["maHoSo"] in faults.failing_dossiers:
            # A record the service chokes on, behind a gateway that answers for it.
            content, _ = soap_fault(
                call.version, sender=False, reason="Lỗi xử lý hồ sơ, vui lòng thử lại sau"
            )
            return Response(content, status_code=503, media_type=soap_media_type(call.version))
        if faults.reject_all:
            refused = {"trangThai": 0, "maHoSo": fields["maHoSo"], "moTa": "Hồ sơ bị từ chối"}
            return _soap(call.version, refused, call.name)
        registration, existed = sim.register(
            dossier_code=fields["maHoSo"],
            agency=fields["maDonVi"],
            module=fields["module"],
            received_at=fields["ngayTiepNhan"],
            child=child,
        )
        body = registration.answer()
        if existed:
            body["daTonTai"] = True
        return _soap(call.version, body, call.name)

    def lookup(call: SoapRequest) -> Response:
        """traTrangThaiHoSo: the status of one dossier; trangThai 0 when it is unknown."""
        code = (call.field("maHoSo") or "").strip()
        if not code:
            return _fault(call.version, "Thiếu trường bắt buộc: maHoSo", sender=True)
        registration = sim.lookup(code)
        if registration is None:
            unknown = {"trangThai": 0, "maHoSo": code, "moTa": "Không tìm thấy hồ sơ"}
            return _soap(call.version, unknown, call.name)
        return _soap(call.version, registration.answer(), call.name)

    operations = {"dangKyHoTich": register, "traTrangThaiHoSo": lookup}

    async def rest_sick_answer(request: Request) -> Response | None:
        """The sick-partner answer a REST call gets, if the switches say so."""
        faults = sim.current_faults()
        if not await _suffer_delays(request, faults):
            return _refusal("Hết thời gian xử lý", 504)
        if faults.error_rate and sim.draw_error(faults.error_rate):
            return _refusal("Hệ thống đang bận, vui lòng thử lại sau", 503)
        if faults.malformed:
            return Response(_GARBAGE, media_type="text/html")
        return None

    @app.post(SOAP_PATH, tags=["hộ tịch"])
    async def soap_endpoint(request: Request) -> Response:
        """The SOAP 1.1/1.2 service: dangKyHoTich and traTrangThaiHoSo (see ?wsdl)."""
        sim.count_request()
        content_type = request.headers.get("content-type")
        guess: SoapVersion = (
            "1.2" if (content_type or "").startswith("application/soap+xml") else "1.1"
        )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
            content, _ = soap_fault(guess, sender=True, reason="Dữ liệu gửi lên quá lớn")
            return Response(content, status_code=413, media_type=soap_media_type(guess))
        raw = await request.body()
        if len(raw) > MAX_REQUEST_BYTES:
            content, _ = soap_fault(guess, sender=True, reason="Dữ liệu gửi lên quá lớn")
            return Response(content, status_code=413, media_type=soap_media_type(guess))
        try:
            call = read_soap_request(raw, content_type)
        except SoapRequestError as exc:
            return _fault(exc.version, f"Dữ liệu XML không hợp lệ: {exc}", sender=True)
        handler = operations.get(call.name)
        if handler is None or etree.QName(call.operation).namespace != NAMESPACE:
            return _fault(call.version, f"Không có thao tác {call.name}", sender=True)
        sick = await sick_answer(request, call.version)
        if sick is not None:
            return sick
        return handler(call)

    @app.get(SOAP_PATH, tags=["hộ tịch"])
    async def wsdl(request: Request) -> Response:
        """GET /hotich?wsdl: the service's WSDL, its address rewritten to this simulator."""
        if "wsdl" not in request.query_params:
            return Response("Add ?wsdl for the service description.", status_code=404)
        return Response(_wsdl_for(str(request.base_url)), media_type="text/xml")

    @app.get("/api/hotich/traTrangThaiHoSo", tags=["hộ tịch (REST)"])
    async def status(request: Request, maHoSo: str | None = None) -> Response:
        """traTrangThaiHoSo over REST: one dossier, trangThai 0 with 404 when unknown."""
        sick = await rest_sick_answer(request)
        if sick is not None:
            return sick
        if not maHoSo:
            return _refusal("Thiếu tham số maHoSo", 400)
        registration = sim.lookup(maHoSo)
        if registration is None:
            return _refusal("Không tìm thấy hồ sơ", 404, maHoSo)
        return JSONResponse(registration.answer())

    @app.get("/api/hotich/dsHoSoDangKy", tags=["hộ tịch (REST)"])
    async def registered_list(
        request: Request, ngayCapNhat: str | None = None, module: str | None = None
    ) -> Response:
        """dsHoSoDangKy: dossiers registered on ngayCapNhat (yyyyMMdd), the change feed."""
        sick = await rest_sick_answer(request)
        if sick is not None:
            return sick
        try:
            day = datetime.strptime(ngayCapNhat or "", "%Y%m%d").date()
        except ValueError:
            return _refusal("ngayCapNhat phải có dạng yyyyMMdd", 400)
        items = [
            {
                "maHoSo": registration.dossier_code,
                "soDangKy": registration.registration_number,
                "maDonVi": registration.agency,
                "module": registration.module,
                "trangThai": _REGISTERED,
                "ngayCapNhat": registration.registered_at.strftime("%Y%m%d%H%M%S"),
                "ngayDangKy": registration.registered_at.strftime("%d/%m/%Y"),
                "nguoiKy": _SIGNING_OFFICER,
            }
            for registration in sim.registered_on(day, module)
        ]
        return JSONResponse({"ngayCapNhat": ngayCapNhat, "tongSo": len(items), "danhSach": items})

    @app.post("/_sim/faults", tags=["simulator"])
    async def set_faults(faults: SimulatorFaults) -> SimulatorFaults:
        """Replace the failure switches; fields left out are switched off."""
        sim.set_faults(faults)
        return faults

    @app.get("/_sim/faults", tags=["simulator"])
    async def get_faults() -> SimulatorFaults:
        """The failure switches in force."""
        return sim.current_faults()

    @app.post("/_sim/reset", tags=["simulator"])
    async def reset() -> dict[str, Any]:
        """Forget every registration, counter and fault."""
        sim.reset()
        return sim.stats()

    @app.get("/_sim/stats", tags=["simulator"])
    async def stats() -> dict[str, Any]:
        """Exact counters, to prove nothing was lost or applied twice."""
        return sim.stats()

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the simulator: ``python -m connectors.civil_status.simulator --port 8101``."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8101, help="port to listen on")
    parser.add_argument("--seed", type=int, default=None, help="seed of the error_rate draws")
    parser.add_argument("--log-level", default="info", help="uvicorn log level")
    args = parser.parse_args(argv)
    app = create_simulator_app(SimulatorState(seed=args.seed))
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        # One line per partner call drowns everything else unless asked for.
        access_log=args.log_level in {"debug", "trace", "info"},
    )


if __name__ == "__main__":
    main()
