"""A stand-in for Public Security's residence software, for tests and demos.

It speaks the partner's protocol (``dangKyThuongTru``, ``traCuuHoSo``) the gateway way (every
answer carries ``error_code``, 0 for success), registers each dossier at most once, and can be
made slow, flaky or hostile through ``/_sim/``::

    python -m connectors.residence.simulator --host 127.0.0.1 --port 8102
    curl -X POST localhost:8102/_sim/faults -d '{"error_rate": 0.3}'
    curl localhost:8102/_sim/stats
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from bus.testing import (
    DossierFaultSwitches,
    GatewayRefusal,
    RegisterState,
    SickAnswers,
    applied_answer,
    dossier_fault_answer,
    gateway_error,
    optional_text,
    read_capped_body,
    read_json_object,
    required_text,
    run_simulator,
    sick_answer,
    simulator_app,
)
from bus.testing import GatewayCode as Code
from contracts import VN_TZ

__all__ = ["Registration", "SimulatorFaults", "SimulatorState", "create_simulator_app", "main"]

MAX_REQUEST_BYTES: Final = 2_000_000
"""Requests larger than this are refused with HTTP 413, before they are parsed."""

REGISTER_PATH: Final = "/api/cutru/dangKyThuongTru"
LOOKUP_PATH: Final = "/api/cutru/traCuuHoSo"

_REGISTERED: Final = "DA_DANG_KY"
_AGENCY_RE: Final = re.compile(r"\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}", re.ASCII)
_CCCD_RE: Final = re.compile(r"\d{12}", re.ASCII)
_PROVINCE_RE: Final = re.compile(r"\d{2}", re.ASCII)
_COMMUNE_RE: Final = re.compile(r"\d{5}", re.ASCII)
_SICK: Final = SickAnswers(
    busy=lambda: JSONResponse({"message": "Hệ thống đang bận, vui lòng thử lại sau"}, 503),
    timed_out=lambda: JSONResponse({"message": "Hết thời gian xử lý"}, 504),
)


class SimulatorFaults(DossierFaultSwitches):
    """The failure switches in force; posting to ``/_sim/faults`` replaces all of them.

    ``reject_all`` answers ``error_code`` 500 DATA_INCORRECT with HTTP 200.
    """


@dataclass(frozen=True, slots=True)
class Registration:
    """One newborn registered for permanent residence, as the residence database holds it."""

    dossier_code: str
    household_number: str
    agency: str
    child_full_name: str
    household_head: str
    registered_at: datetime

    def answer(self) -> dict[str, Any]:
        """The body the partner answers for this registration."""
        return {
            "error_code": 0,
            "message": "Thành công",
            "maHoSo": self.dossier_code,
            "ketQua": _REGISTERED,
            "soHoKhau": self.household_number,
            "thoiGian": self.registered_at.strftime("%Y%m%d%H%M%S"),
            "lyDo": f"Đã đăng ký thường trú cho trẻ tại hộ có chủ hộ {self.household_head}",
        }


@dataclass(kw_only=True)
class SimulatorState(RegisterState[SimulatorFaults, Registration]):
    """The simulator's in-memory register and counters; safe to share between threads."""

    faults: SimulatorFaults = field(default_factory=SimulatorFaults)

    @property
    def last_xroad(self) -> dict[str, str]:
        """The X-Road headers of the last registration call, as received."""
        last = self.last_request
        return {} if last is None else last.headers_starting("x-road-")

    def register(
        self, *, dossier_code: str, agency: str, province: str, child: str, head: str
    ) -> tuple[Registration, bool]:
        """Register the dossier once; return its registration and whether it already existed."""

        def make() -> Registration:
            registered_at = self.clock().astimezone(VN_TZ)
            number = self.next_number((province, registered_at.year))
            return Registration(
                dossier_code=dossier_code,
                # 14 digits: province, year, sequence (the shape of the register's numbers).
                household_number=f"{province}{registered_at:%y}{number:010d}",
                agency=agency,
                child_full_name=child,
                household_head=head,
                registered_at=registered_at,
            )

        return self.apply_once(dossier_code, make)


def _read_registration(raw: bytes) -> dict[str, str]:
    """Check a ``dangKyThuongTru`` body as the residence software would; return what it keeps."""
    payload = read_json_object(raw)
    code = required_text(payload, "maHoSo")
    agency = required_text(payload, "maDonViTiepNhan")
    child = required_text(payload, "congDan.hoTen")
    head = required_text(payload, "chuHo.hoTen")
    province = required_text(payload, "noiThuongTru.maTinh")
    commune = required_text(payload, "noiThuongTru.maXa")
    for path in ("nguoiDangKy.hoTen", "congDan.soGiayKhaiSinh", "congDan.noiSinh"):
        required_text(payload, path)
    if len(code) > 100:
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, "Mã hồ sơ quá dài")
    if _AGENCY_RE.fullmatch(agency) is None:
        raise GatewayRefusal(
            Code.AGENCY_ID_INCORRECT, f"Mã đơn vị tiếp nhận không hợp lệ: {agency}"
        )
    if _PROVINCE_RE.fullmatch(province) is None:
        raise GatewayRefusal(Code.PROVINCE_ID_INCORRECT, f"Mã tỉnh không hợp lệ: {province}")
    if _COMMUNE_RE.fullmatch(commune) is None:
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, "noiThuongTru.maXa phải gồm 5 chữ số")
    if optional_text(payload, "loaiThuTuc") != "DKTT":
        raise GatewayRefusal(Code.DATA_INCORRECT, "loaiThuTuc phải là DKTT (đăng ký thường trú)")
    for path, shape, text in (
        ("congDan.ngaySinh", "%d/%m/%Y", "dd/MM/yyyy"),
        ("ngayTiepNhan", "%Y%m%d%H%M%S", "yyyyMMddHHmmss"),
    ):
        try:
            datetime.strptime(required_text(payload, path), shape)
        except ValueError as exc:
            raise GatewayRefusal(Code.DATA_TYPE_INVALID, f"{path} phải có dạng {text}") from exc
    gender = payload["congDan"].get("gioiTinh")
    if isinstance(gender, bool) or gender not in (1, 2):
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, "congDan.gioiTinh phải là 1 (nam) hoặc 2 (nữ)")
    for path in ("nguoiDangKy.soDinhDanh", "chuHo.soDinhDanh"):
        number = optional_text(payload, path)
        if number is not None and _CCCD_RE.fullmatch(number) is None:
            raise GatewayRefusal(Code.DATA_TYPE_INVALID, f"{path} phải gồm 12 chữ số")
    return {
        "dossier_code": code,
        "agency": agency,
        "province": province,
        "child": child,
        "head": head,
    }


def create_simulator_app(state: SimulatorState | None = None) -> FastAPI:
    """A FastAPI app that behaves like the residence software; ``app.state.simulator``."""
    sim = state if state is not None else SimulatorState()
    app = simulator_app(
        sim,
        title="Residence software simulator (phần mềm quản lý cư trú)",
        description="A stand-in for Public Security's residence software.",
    )

    @app.post(REGISTER_PATH, tags=["cư trú"])
    async def register(request: Request) -> Response:
        """dangKyThuongTru: register a newborn; a repeated maHoSo gets the first answer back."""
        sim.record_request(request)
        raw = await read_capped_body(request, MAX_REQUEST_BYTES)
        if raw is None:
            return gateway_error(Code.DATA_INCORRECT, "Dữ liệu gửi lên quá lớn", 413)
        sick = await sick_answer(request, sim, _SICK)
        if sick is not None:
            return sick
        try:
            fields = _read_registration(raw)
        except GatewayRefusal as refusal:
            return refusal.response()
        refused = dossier_fault_answer(sim.current_faults(), fields["dossier_code"])
        if refused is not None:
            return refused
        registration, existed = sim.register(**fields)
        return applied_answer(registration.answer(), existed)

    @app.get(LOOKUP_PATH, tags=["cư trú"])
    async def lookup(request: Request, maHoSo: str | None = None) -> Response:
        """traCuuHoSo: the registration of one dossier, error_code 201 when unknown."""
        sick = await sick_answer(request, sim, _SICK)
        if sick is not None:
            return sick
        if not maHoSo:
            return gateway_error(Code.RECORD_UNCOMPLETE, "Thiếu tham số maHoSo")
        registration = sim.lookup(maHoSo)
        if registration is None:
            return gateway_error(Code.RECORD_NOT_FOUND, "Không tìm thấy hồ sơ")
        return JSONResponse(registration.answer())

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the simulator: ``python -m connectors.residence.simulator --port 8102``."""
    run_simulator(
        lambda args: create_simulator_app(SimulatorState(seed=args.seed)),
        port=8102,
        doc=__doc__,
        argv=argv,
    )


if __name__ == "__main__":
    main()
