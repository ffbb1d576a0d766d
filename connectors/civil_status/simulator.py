"""A stand-in for the Ministry of Justice's civil-status software, for tests and demos.

It speaks the partner's protocol: the SOAP service of ``contracts/partners/civil_status/
hotich.wsdl`` at ``POST /hotich`` (``dangKyHoTich`` of a birth, module KS, or of a death, module
KT; ``traTrangThaiHoSo``; SOAP 1.1 or 1.2, answered in the request's version; the WSDL at
``GET /hotich?wsdl``), plus the REST change feed ``dsHoSoDangKy``. It registers each dossier at
most once, reads every request with the hardened
parser, and can be made slow, flaky or hostile through ``/_sim/``::

    python -m connectors.civil_status.simulator --host 127.0.0.1 --port 8101
    curl -X POST localhost:8101/_sim/faults -d '{"error_rate": 0.3}'
    curl localhost:8101/_sim/stats
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from lxml import etree

import contracts
from bus.testing import (
    RegisterState,
    SickAnswers,
    SoapFaultSwitches,
    SoapRequest,
    SoapService,
    SoapVersion,
    add_soap_service,
    run_simulator,
    sick_answer,
    simulator_app,
    soap_answer_response,
    soap_element,
    soap_fault_response,
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

_MODULE_BIRTH: Final = "KS"
_MODULE_DEATH: Final = "KT"
_REGISTERED: Final = 4
# What the register says once it has registered a dossier of each module.
_REGISTERED_TEXT: Final = {
    _MODULE_BIRTH: "Đã đăng ký khai sinh",
    _MODULE_DEATH: "Đã đăng ký khai tử",
}
# Who signs the certificates in the simulated commune (an invented name).
_SIGNING_OFFICER: Final = "Phạm Thị Hạnh"
_AGENCY_RE: Final = re.compile(r"\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}", re.ASCII)
_CCCD_RE: Final = re.compile(r"\d{12}", re.ASCII)
# The answer's elements in the order of the WSDL's KetQuaHoSo sequence.
_ANSWER_FIELDS: Final = ("trangThai", "maHoSo", "soDangKy", "ngayDangKy", "moTa", "daTonTai")
# The REST routes answer a sick partner's calls in the register's JSON dialect.
_REST_SICK: Final = SickAnswers(
    busy=lambda: _refusal("Hệ thống đang bận, vui lòng thử lại sau", 503),
    timed_out=lambda: _refusal("Hết thời gian xử lý", 504),
)


class SimulatorFaults(SoapFaultSwitches):
    """The failure switches in force; posting to ``/_sim/faults`` replaces all of them.

    ``reject_all`` answers ``trangThai`` 0 with HTTP 200; ``error_rate`` is a ``soap:Server``
    fault (HTTP 500) on the SOAP service and HTTP 503 on the REST routes.
    """


@dataclass(frozen=True, slots=True)
class Registration:
    """One registered birth (module KS) or death (KT), as the civil-status register holds it.

    ``registration_number`` is the birth-certificate number, or the death extract number (số
    trích lục khai tử); ``full_name`` the newborn's, or the deceased's.
    """

    dossier_code: str
    registration_number: str
    agency: str
    module: str
    received_at: str
    registered_at: datetime
    full_name: str

    def answer(self) -> dict[str, Any]:
        """The body the partner answers for this registration."""
        return {
            "trangThai": _REGISTERED,
            "maHoSo": self.dossier_code,
            "soDangKy": self.registration_number,
            "ngayDangKy": self.registered_at.strftime("%d/%m/%Y"),
            "moTa": _REGISTERED_TEXT[self.module],
        }


@dataclass(kw_only=True)
class SimulatorState(RegisterState[SimulatorFaults, Registration]):
    """The simulator's in-memory register and counters; safe to share between threads."""

    faults: SimulatorFaults = field(default_factory=SimulatorFaults)

    def register(
        self, *, dossier_code: str, agency: str, module: str, received_at: str, full_name: str
    ) -> tuple[Registration, bool]:
        """Register the dossier once; return its registration and whether it already existed."""

        def make() -> Registration:
            registered_at = self.clock().astimezone(VN_TZ)
            # Each module keeps its own register book, numbered from 1 every year.
            number = self.next_number((module, registered_at.year))
            return Registration(
                dossier_code=dossier_code,
                registration_number=f"{module}/{registered_at.year}/{number:06d}",
                agency=agency,
                module=module,
                received_at=received_at,
                registered_at=registered_at,
                full_name=full_name,
            )

        return self.apply_once(dossier_code, make)

    def registered_on(self, day: date, module: str | None = None) -> list[Registration]:
        """Registrations made on ``day`` (local time), oldest first."""
        with self.lock:
            return [
                registration
                for registration in self.records.values()
                if registration.registered_at.date() == day
                and (module is None or registration.module == module)
            ]


class _Refusal(Exception):
    """Internal: the request is refused with a soap:Client (1.2: Sender) fault."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _soap(version: SoapVersion, body: dict[str, Any], operation: str) -> Response:
    """``<dangKyHoTichResponse>`` (or ``traTrangThaiHoSoResponse``) with the answer's fields."""
    element = soap_element(
        NAMESPACE, f"{operation}Response", body, order=_ANSWER_FIELDS, prefix="ht"
    )
    return soap_answer_response(version, element)


def _refusal(message: str, status_code: int, dossier_code: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"trangThai": 0, "moTa": message}
    if dossier_code is not None:
        body["maHoSo"] = dossier_code
    return JSONResponse(body, status_code=status_code)


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
    if fields["module"] not in _RECORD_READERS:
        raise _Refusal(f"Module {fields['module']} chưa được hỗ trợ")
    if len(fields["maHoSo"]) > 100:
        raise _Refusal("Mã hồ sơ quá dài")
    try:
        datetime.strptime(fields["ngayTiepNhan"], "%Y%m%d%H%M%S")
    except ValueError as exc:
        raise _Refusal("ngayTiepNhan phải có dạng yyyyMMddHHmmss") from exc
    return fields


def _read_document(data: str, root_tag: str, required: tuple[str, ...]) -> etree._Element:
    """The ``data`` XML document, read with the hardened parser; its root and required paths."""
    try:
        root = parse_xml(data.encode("utf-8"))
    except UnsafeXml as exc:
        raise _Refusal(f"Dữ liệu XML không hợp lệ: {exc}") from exc
    if root.tag != root_tag:
        raise _Refusal(f"Phần tử gốc phải là {root_tag}, không phải {root.tag}")
    for path in required:
        if not (root.findtext(path) or "").strip():
            raise _Refusal(f"Thiếu thông tin bắt buộc: {path}")
    return root


def _day(root: etree._Element, path: str) -> date:
    """The dd/MM/yyyy date at ``path``."""
    try:
        return datetime.strptime(root.findtext(path) or "", "%d/%m/%Y").date()
    except ValueError as exc:
        raise _Refusal(f"{path} phải có dạng dd/MM/yyyy") from exc


def _check_person(root: etree._Element, gender_path: str, identity_paths: tuple[str, ...]) -> None:
    """A gender code and the identity numbers given, as the register stores them."""
    if root.findtext(gender_path) not in {"1", "2"}:
        raise _Refusal(f"{gender_path} phải là 1 (nam) hoặc 2 (nữ)")
    for path in identity_paths:
        number = root.findtext(path)
        if number is not None and _CCCD_RE.fullmatch(number) is None:
            raise _Refusal(f"{path} phải gồm 12 chữ số")


def _read_birth_record(data: str, received_on: date) -> str:
    """Check the ``<hoSoKhaiSinh>`` XML as the register would; return the child's name."""
    required = ("treEm/hoTen", "treEm/ngaySinh", "treEm/gioiTinh", "treEm/noiSinh", "me/hoTen")
    root = _read_document(data, "hoSoKhaiSinh", (*required, "nguoiYeuCau/hoTen"))
    _day(root, "treEm/ngaySinh")
    _check_person(
        root, "treEm/gioiTinh", ("me/soDinhDanh", "cha/soDinhDanh", "nguoiYeuCau/soDinhDanh")
    )
    return (root.findtext("treEm/hoTen") or "").strip()


def _read_death_record(data: str, received_on: date) -> str:
    """Check the ``<hoSoKhaiTu>`` XML as the register would; return the deceased's name.

    A death is recorded against the person, so the identity number is required; and it
    cannot be dated before the birth, nor after the day the dossier was received.
    """
    required = (
        "nguoiChet/hoTen",
        "nguoiChet/ngaySinh",
        "nguoiChet/gioiTinh",
        "nguoiChet/soDinhDanh",
        "nguoiChet/noiCuTru/maTinh",
        "nguoiChet/noiCuTru/maXa",
        "khaiTu/ngayChet",
        "khaiTu/noiChet",
        "nguoiYeuCau/hoTen",
        "nguoiYeuCau/quanHe",
    )
    root = _read_document(data, "hoSoKhaiTu", required)
    if not _day(root, "nguoiChet/ngaySinh") <= _day(root, "khaiTu/ngayChet") <= received_on:
        raise _Refusal("khaiTu/ngayChet phải sau ngày sinh và không sau ngày tiếp nhận")
    _check_person(root, "nguoiChet/gioiTinh", ("nguoiChet/soDinhDanh", "nguoiYeuCau/soDinhDanh"))
    return (root.findtext("nguoiChet/hoTen") or "").strip()


# What the register reads in ``data`` for each module: the module's document, checked.
_RECORD_READERS: Final = {_MODULE_BIRTH: _read_birth_record, _MODULE_DEATH: _read_death_record}


def _read_record(fields: dict[str, str]) -> str:
    """The ``data`` document of the request's module, checked; the registered person's name."""
    received_on = datetime.strptime(fields["ngayTiepNhan"], "%Y%m%d%H%M%S").date()
    return _RECORD_READERS[fields["module"]](fields["data"], received_on)


def create_simulator_app(state: SimulatorState | None = None) -> FastAPI:
    """A FastAPI app that behaves like the civil-status software; ``app.state.simulator``."""
    sim = state if state is not None else SimulatorState()
    app = simulator_app(
        sim,
        title="Civil-status software simulator (phần mềm hộ tịch)",
        description="A stand-in for the Ministry of Justice's civil-status software (SOAP).",
    )

    def register(call: SoapRequest) -> Response:
        """dangKyHoTich: register a dossier; a repeated maHoSo gets the first answer back."""
        try:
            fields = _read_register_request(call)
            full_name = _read_record(fields)
        except _Refusal as refusal:
            return soap_fault_response(call.version, refusal.message, sender=True)
        faults = sim.current_faults()
        if fields["maHoSo"] in faults.failing_dossiers:
            # A record the service chokes on, behind a gateway that answers for it.
            reason = "Lỗi xử lý hồ sơ, vui lòng thử lại sau"
            return soap_fault_response(call.version, reason, sender=False, status_code=503)
        if faults.reject_all:
            refused = {"trangThai": 0, "maHoSo": fields["maHoSo"], "moTa": "Hồ sơ bị từ chối"}
            return _soap(call.version, refused, call.name)
        registration, existed = sim.register(
            dossier_code=fields["maHoSo"],
            agency=fields["maDonVi"],
            module=fields["module"],
            received_at=fields["ngayTiepNhan"],
            full_name=full_name,
        )
        body = registration.answer()
        if existed:
            body["daTonTai"] = True
        return _soap(call.version, body, call.name)

    def lookup(call: SoapRequest) -> Response:
        """traTrangThaiHoSo: the status of one dossier; trangThai 0 when it is unknown."""
        code = (call.field("maHoSo") or "").strip()
        if not code:
            return soap_fault_response(call.version, "Thiếu trường bắt buộc: maHoSo", sender=True)
        registration = sim.lookup(code)
        if registration is None:
            unknown = {"trangThai": 0, "maHoSo": code, "moTa": "Không tìm thấy hồ sơ"}
            return _soap(call.version, unknown, call.name)
        return _soap(call.version, registration.answer(), call.name)

    service = SoapService(
        path=SOAP_PATH,
        namespace=NAMESPACE,
        wsdl=WSDL_PATH,
        operations={"dangKyHoTich": register, "traTrangThaiHoSo": lookup},
        max_request_bytes=MAX_REQUEST_BYTES,
    )
    add_soap_service(app, sim, service, tag="hộ tịch")

    @app.get("/api/hotich/traTrangThaiHoSo", tags=["hộ tịch (REST)"])
    async def status(request: Request, maHoSo: str | None = None) -> Response:
        """traTrangThaiHoSo over REST: one dossier, trangThai 0 with 404 when unknown."""
        sick = await sick_answer(request, sim, _REST_SICK)
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
        sick = await sick_answer(request, sim, _REST_SICK)
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

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the simulator: ``python -m connectors.civil_status.simulator --port 8101``."""
    run_simulator(
        lambda args: create_simulator_app(SimulatorState(seed=args.seed)),
        port=8101,
        doc=__doc__,
        argv=argv,
    )


if __name__ == "__main__":
    main()
