"""A stand-in for Public Security's residence software, for tests and demos.

It speaks the partner's protocol (``dangKyThuongTru`` for a newborn, ``xoaDangKyThuongTru`` for
a deceased, ``traCuuHoSo``) the gateway way (every answer carries ``error_code``, 0 for
success), acts on each dossier at most once, and can be made slow, flaky or hostile through
``/_sim/``::

    python -m connectors.residence.simulator --host 127.0.0.1 --port 8102
    curl -X POST localhost:8102/_sim/faults -d '{"error_rate": 0.3}'
    curl localhost:8102/_sim/stats

With ``ask_supplement`` on, it asks for a supplement (``ketQua`` BO_SUNG) instead of acting on a
new dossier, and holds it until the supplement is brought, as an officer would::

    curl -X POST localhost:8102/_sim/faults -d '{"ask_supplement": true}'
    curl -X POST localhost:8102/_sim/supplements/000.00.10.H12-261122-0001 \
         -d '{"push_to": "http://127.0.0.1:8000/v1/inbound/residence"}'

The second call acts on the held dossier and pushes the outcome to ``push_to``, the way the
residence software reports a decision made after the call was answered.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from bus.testing import (
    DossierFaultSwitches,
    GatewayRefusal,
    RegisterState,
    SickAnswers,
    answer_dossier_act,
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
from connectors.residence.wire import LOOKUP_PATH, REGISTER_PATH, REMOVAL_PATH
from contracts import VN_TZ

__all__ = [
    "HeldDossier",
    "Registration",
    "Removal",
    "SimulatorFaults",
    "SimulatorState",
    "SupplementBrought",
    "create_simulator_app",
    "main",
]

MAX_REQUEST_BYTES: Final = 2_000_000
"""Requests larger than this are refused with HTTP 413, before they are parsed."""

_REGISTERED: Final = "DA_DANG_KY"
_REMOVED: Final = "DA_XOA"
_SUPPLEMENT: Final = "BO_SUNG"
_SUPPLEMENT_REASON: Final = "Đề nghị bổ sung văn bản đồng ý của chủ hộ"
# Law on Residence 2020, art. 24(1)(a): the residence of a person who has died is removed.
_REASON_DEATH: Final = "CHET"
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

    ask_supplement: bool = Field(
        default=False,
        description="Answer each new dossier ketQua BO_SUNG (supplement needed), unapplied, and "
        "hold it until POST /_sim/supplements/{maHoSo} brings the supplement",
    )


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


@dataclass(frozen=True, slots=True)
class Removal:
    """One deceased's permanent residence removed, as the residence database holds it."""

    dossier_code: str
    household_number: str
    agency: str
    full_name: str
    death_extract_number: str
    removed_at: datetime

    def answer(self) -> dict[str, Any]:
        """The body the partner answers for this removal."""
        return {
            "error_code": 0,
            "message": "Thành công",
            "maHoSo": self.dossier_code,
            "ketQua": _REMOVED,
            "soHoKhau": self.household_number,
            "thoiGian": self.removed_at.strftime("%Y%m%d%H%M%S"),
            "lyDo": f"Đã xóa đăng ký thường trú của công dân {self.full_name} (đã chết)",
        }


Act = Registration | Removal
"""What the residence software did for one dossier."""


@dataclass(frozen=True, slots=True)
class HeldDossier:
    """A dossier the officer asked a supplement for: the act waits until it is brought."""

    dossier_code: str
    asked_at: datetime
    #: Acts on the dossier once the supplement is there (the call's checked fields bound).
    act: Callable[[], tuple[Act, bool]]

    def answer(self) -> dict[str, Any]:
        """The body the partner answers while it waits: BO_SUNG with what is missing."""
        return {
            "error_code": 0,
            "message": "Thành công",
            "maHoSo": self.dossier_code,
            "ketQua": _SUPPLEMENT,
            "soHoKhau": None,
            "thoiGian": self.asked_at.strftime("%Y%m%d%H%M%S"),
            "lyDo": _SUPPLEMENT_REASON,
        }


class SupplementBrought(BaseModel):
    """The body of ``POST /_sim/supplements/{maHoSo}``: where to push the outcome, if anywhere."""

    model_config = ConfigDict(extra="forbid")

    push_to: str | None = Field(
        default=None,
        description="URL the outcome is pushed to as JSON (the bus's /v1/inbound/residence)",
    )
    push_headers: dict[str, str] = Field(
        default_factory=dict,
        max_length=8,
        description="Headers of the push: the residence software's credentials at the bus",
    )


@dataclass(kw_only=True)
class SimulatorState(RegisterState[SimulatorFaults, Act]):
    """The simulator's in-memory register and counters; safe to share between threads."""

    faults: SimulatorFaults = field(default_factory=SimulatorFaults)
    #: Dossiers waiting for the citizen's supplement, by code.
    held: dict[str, HeldDossier] = field(default_factory=dict)

    @property
    def last_xroad(self) -> dict[str, str]:
        """The X-Road headers of the last registration call, as received."""
        last = self.last_request
        return {} if last is None else last.headers_starting("x-road-")

    def register(
        self, *, dossier_code: str, agency: str, province: str, child: str, head: str
    ) -> tuple[Act, bool]:
        """Register the dossier once; return what was done for it and whether it existed."""

        def make() -> Registration:
            registered_at = self.clock().astimezone(VN_TZ)
            return Registration(
                dossier_code=dossier_code,
                household_number=self._household_number(province, registered_at),
                agency=agency,
                child_full_name=child,
                household_head=head,
                registered_at=registered_at,
            )

        return self.apply_once(dossier_code, make)

    def remove(
        self, *, dossier_code: str, agency: str, province: str, deceased: str, extract: str
    ) -> tuple[Act, bool]:
        """Remove the deceased's residence once; return what was done and whether it existed."""

        def make() -> Removal:
            removed_at = self.clock().astimezone(VN_TZ)
            return Removal(
                dossier_code=dossier_code,
                # The household the deceased belonged to; invented, in the register's shape.
                household_number=self._household_number(province, removed_at),
                agency=agency,
                full_name=deceased,
                death_extract_number=extract,
                removed_at=removed_at,
            )

        return self.apply_once(dossier_code, make)

    def hold(self, dossier_code: str, act: Callable[[], tuple[Act, bool]]) -> HeldDossier:
        """Ask a supplement for the dossier instead of acting; a repeat gets the same request."""
        with self.lock:
            held = self.held.get(dossier_code)
            if held is None:
                held = HeldDossier(dossier_code, self.clock().astimezone(VN_TZ), act)
                self.held[dossier_code] = held
            return held

    def bring_supplement(self, dossier_code: str) -> tuple[Act, bool] | None:
        """The supplement arrived: act on the held dossier once; None when none is held."""
        with self.lock:
            held = self.held.pop(dossier_code, None)
        return None if held is None else held.act()

    def counters(self) -> dict[str, Any]:
        """The register's counters, with the dossiers waiting for a supplement."""
        return {**super().counters(), "held": sorted(self.held)}

    def forget(self) -> None:
        """Forget every record, number and held dossier."""
        super().forget()
        self.held.clear()

    def _household_number(self, province: str, moment: datetime) -> str:
        """14 digits: province, year, sequence (the shape of the register's numbers)."""
        return f"{province}{moment:%y}{self.next_number((province, moment.year)):010d}"


def _read_common(payload: dict[str, Any], procedure: str, procedure_name: str) -> dict[str, str]:
    """What every call carries, checked: dossier, receiving agency, residence, procedure kind."""
    code = required_text(payload, "maHoSo")
    agency = required_text(payload, "maDonViTiepNhan")
    province = required_text(payload, "noiThuongTru.maTinh")
    commune = required_text(payload, "noiThuongTru.maXa")
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
    if optional_text(payload, "loaiThuTuc") != procedure:
        raise GatewayRefusal(
            Code.DATA_INCORRECT, f"loaiThuTuc phải là {procedure} ({procedure_name})"
        )
    _check_day(payload, "ngayTiepNhan", "%Y%m%d%H%M%S", "yyyyMMddHHmmss")
    return {"dossier_code": code, "agency": agency, "province": province}


def _check_day(payload: dict[str, Any], path: str, shape: str, text: str) -> date:
    """The date at ``path``, refused with 302 DATA_TYPE_INVALID unless it has ``shape``."""
    try:
        return datetime.strptime(required_text(payload, path), shape).date()
    except ValueError as exc:
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, f"{path} phải có dạng {text}") from exc


def _check_person(payload: dict[str, Any], identity_paths: tuple[str, ...]) -> None:
    """The citizen's gender code and every identity number given, as the register stores them."""
    gender = payload["congDan"].get("gioiTinh")
    if isinstance(gender, bool) or gender not in (1, 2):
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, "congDan.gioiTinh phải là 1 (nam) hoặc 2 (nữ)")
    for path in identity_paths:
        number = optional_text(payload, path)
        if number is not None and _CCCD_RE.fullmatch(number) is None:
            raise GatewayRefusal(Code.DATA_TYPE_INVALID, f"{path} phải gồm 12 chữ số")


def _read_registration(raw: bytes) -> dict[str, str]:
    """Check a ``dangKyThuongTru`` body as the residence software would; return what it keeps."""
    payload = read_json_object(raw)
    child = required_text(payload, "congDan.hoTen")
    head = required_text(payload, "chuHo.hoTen")
    for path in ("nguoiDangKy.hoTen", "congDan.soGiayKhaiSinh", "congDan.noiSinh"):
        required_text(payload, path)
    common = _read_common(payload, "DKTT", "đăng ký thường trú")
    _check_day(payload, "congDan.ngaySinh", "%d/%m/%Y", "dd/MM/yyyy")
    _check_person(payload, ("nguoiDangKy.soDinhDanh", "chuHo.soDinhDanh"))
    return {**common, "child": child, "head": head}


def _read_removal(raw: bytes) -> dict[str, str]:
    """Check a ``xoaDangKyThuongTru`` body as the residence software would; return what it keeps.

    The deceased is found by the identity number, so it is required; the removal needs the
    death extract, and a death after the day the dossier was received is refused.
    """
    payload = read_json_object(raw)
    deceased = required_text(payload, "congDan.hoTen")
    required_text(payload, "congDan.soDinhDanh")
    extract = required_text(payload, "khaiTu.soTrichLuc")
    for path in ("nguoiDeNghi.hoTen", "nguoiDeNghi.quanHe"):
        required_text(payload, path)
    common = _read_common(payload, "XDKTT", "xóa đăng ký thường trú")
    if optional_text(payload, "lyDoXoa") != _REASON_DEATH:
        raise GatewayRefusal(Code.DATA_INCORRECT, "lyDoXoa phải là CHET (người đã chết)")
    born = _check_day(payload, "congDan.ngaySinh", "%d/%m/%Y", "dd/MM/yyyy")
    died = _check_day(payload, "khaiTu.ngayChet", "%d/%m/%Y", "dd/MM/yyyy")
    received = _check_day(payload, "ngayTiepNhan", "%Y%m%d%H%M%S", "yyyyMMddHHmmss")
    if not born <= died <= received:
        raise GatewayRefusal(Code.DATA_INCORRECT, "Ngày chết không hợp lệ")
    _check_person(payload, ("congDan.soDinhDanh", "nguoiDeNghi.soDinhDanh"))
    return {**common, "deceased": deceased, "extract": extract}


def create_simulator_app(state: SimulatorState | None = None) -> FastAPI:
    """A FastAPI app that behaves like the residence software; ``app.state.simulator``."""
    sim = state if state is not None else SimulatorState()
    app = simulator_app(
        sim,
        title="Residence software simulator (phần mềm quản lý cư trú)",
        description="A stand-in for Public Security's residence software.",
    )

    async def act_once(
        request: Request,
        read: Callable[[bytes], dict[str, str]],
        act: Callable[..., tuple[Act, bool]],
        kind: type[Act],
    ) -> Response:
        """One call that acts on a dossier: read and check it, then act once (or answer again)."""
        sim.record_request(request)
        raw = await read_capped_body(request, MAX_REQUEST_BYTES)
        if raw is None:
            return gateway_error(Code.DATA_INCORRECT, "Dữ liệu gửi lên quá lớn", 413)
        sick = await sick_answer(request, sim, _SICK)
        if sick is not None:
            return sick
        faults = sim.current_faults()

        def act_or_hold(**fields: str) -> tuple[Act | HeldDossier, bool]:
            code = fields["dossier_code"]
            if code in sim.held or (faults.ask_supplement and sim.lookup(code) is None):
                return sim.hold(code, lambda: act(**fields)), False
            return act(**fields)

        return answer_dossier_act(faults, read, raw, act_or_hold, (kind, HeldDossier))

    @app.post(REGISTER_PATH, tags=["cư trú"])
    async def register(request: Request) -> Response:
        """dangKyThuongTru: register a newborn; a repeated maHoSo gets the first answer back."""
        return await act_once(request, _read_registration, sim.register, Registration)

    @app.post(REMOVAL_PATH, tags=["cư trú"])
    async def remove(request: Request) -> Response:
        """xoaDangKyThuongTru: remove a deceased's residence; a repeat gets the first answer."""
        return await act_once(request, _read_removal, sim.remove, Removal)

    @app.post("/_sim/supplements/{dossier_code}", tags=["simulator"])
    async def bring_supplement(
        dossier_code: str, brought: SupplementBrought | None = None
    ) -> Response:
        """The citizen brought the supplement: act on the held dossier, push the outcome."""
        done = sim.bring_supplement(dossier_code)
        if done is None:
            missing = f"no dossier {dossier_code} waits for a supplement"
            return JSONResponse({"detail": missing}, 404)
        body = done[0].answer()
        pushed: int | None = None
        if brought is not None and brought.push_to:
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.post(brought.push_to, json=body, headers=brought.push_headers)
                pushed = answer.status_code
        return JSONResponse({"answer": body, "pushed": pushed})

    @app.get(LOOKUP_PATH, tags=["cư trú"])
    async def lookup(request: Request, maHoSo: str | None = None) -> Response:
        """traCuuHoSo: what was done for one dossier, error_code 201 when unknown."""
        sick = await sick_answer(request, sim, _SICK)
        if sick is not None:
            return sick
        if not maHoSo:
            return gateway_error(Code.RECORD_UNCOMPLETE, "Thiếu tham số maHoSo")
        record: Act | HeldDossier | None = sim.lookup(maHoSo) or sim.held.get(maHoSo)
        if record is None:
            return gateway_error(Code.RECORD_NOT_FOUND, "Không tìm thấy hồ sơ")
        return JSONResponse(record.answer())

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
