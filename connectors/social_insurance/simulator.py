"""A stand-in for Social Security's child health-insurance card system, for tests and demos.

It speaks the gateway's protocol: a session login (``{username, password}`` with a ``dstcode``
header), then ``capTheTreEm`` and ``traCuuHoSo`` calls that carry the session in their JSON
body; every answer carries ``error_code`` (0 for success, 100 for a refused session). It issues
each dossier's card at most once, and can be made slow, flaky or hostile, and made to expire its
sessions, through ``/_sim/``::

    BUS_SOCIAL_INSURANCE_PASSWORD=... python -m connectors.social_insurance.simulator --port 8103
    curl -X POST localhost:8103/_sim/faults -d '{"session_max_calls": 3}'
    curl -X POST localhost:8103/_sim/expire-sessions
    curl localhost:8103/_sim/stats
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from bus.testing import (
    DossierFaultSwitches,
    GatewayRefusal,
    RegisterState,
    SessionFaultSwitches,
    SessionState,
    add_session_login,
    applied_answer,
    dossier_fault_answer,
    gateway_error,
    optional_text,
    read_gateway_payload,
    required_text,
    run_session_simulator,
    session_checked,
    simulator_app,
)
from bus.testing import GatewayCode as Code
from connectors.social_insurance.wire import (
    CARD_REQUEST_PATH,
    DEMO_PASSWORD,
    LOGIN_PATH,
    LOOKUP_PATH,
    PASSWORD_ENV,
)
from contracts import VN_TZ

__all__ = [
    "DEMO_PASSWORD",
    "PASSWORD_ENV",
    "CardIssue",
    "SimulatorFaults",
    "SimulatorState",
    "create_simulator_app",
    "main",
]

MAX_REQUEST_BYTES: Final = 2_000_000
"""Requests larger than this are refused with HTTP 413, before they are parsed."""

_ISSUED: Final = "03"
_CCCD_RE: Final = re.compile(r"\d{12}", re.ASCII)
_PROVINCE_RE: Final = re.compile(r"\d{2}", re.ASCII)
_DISTRICT_RE: Final = re.compile(r"\d{3}", re.ASCII)
_COMMUNE_RE: Final = re.compile(r"\d{5}", re.ASCII)
_CARD_AGE_YEARS: Final = 6


class SimulatorFaults(SessionFaultSwitches, DossierFaultSwitches):
    """The failure switches in force; posting to ``/_sim/faults`` replaces all of them.

    The sick-partner switches apply to the login as well as to the calls: a sick gateway is
    sick for both. ``reject_all`` answers ``error_code`` 500 DATA_INCORRECT with HTTP 200.
    """


@dataclass(frozen=True, slots=True)
class CardIssue:
    """One child's health-insurance card, as Social Security's register holds it."""

    dossier_code: str
    insurance_number: str
    child_full_name: str
    commune: str
    issued_on: date
    valid_from: date
    valid_until: date

    def answer(self) -> dict[str, Any]:
        """The body the partner answers for this card."""
        return {
            "error_code": 0,
            "message": "Thành công",
            "maHoSo": self.dossier_code,
            "trangThai": _ISSUED,
            "maSoBHXH": self.insurance_number,
            "ngayCapThe": self.issued_on.strftime("%Y%m%d"),
            "hanTheTu": self.valid_from.strftime("%Y%m%d"),
            "hanTheDen": self.valid_until.strftime("%Y%m%d"),
            "ghiChu": (
                "Đã cấp thẻ BHYT cho trẻ em dưới 6 tuổi; nơi đăng ký KCB ban đầu: "
                f"Trạm y tế xã {self.commune}"
            ),
        }


@dataclass(kw_only=True)
class SimulatorState(SessionState[SimulatorFaults], RegisterState[SimulatorFaults, CardIssue]):
    """The simulator's account, sessions, register and counters; safe to share between threads.

    ``stats()``: calls received, cards issued, duplicates, logins, refused sessions.
    """

    faults: SimulatorFaults = field(default_factory=SimulatorFaults)

    def issue(
        self, *, dossier_code: str, child: str, born: date, province: str, commune: str
    ) -> tuple[CardIssue, bool]:
        """Issue the dossier's card once; return it and whether it had been issued before."""

        def make() -> CardIssue:
            issued_on = self.clock().astimezone(VN_TZ).date()
            number = self.next_number((province, issued_on.year))
            return CardIssue(
                dossier_code=dossier_code,
                # 10 digits, province first: the shape of a social-insurance number.
                insurance_number=f"{province}{issued_on:%y}{number:06d}",
                child_full_name=child,
                commune=commune,
                issued_on=issued_on,
                valid_from=born,
                valid_until=_years_later(born, _CARD_AGE_YEARS) - timedelta(days=1),
            )

        return self.apply_once(dossier_code, make)


def _years_later(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February into a common year: the birthday falls on 1 March
        return date(day.year + years, 3, 1)


def _day(value: str, path: str) -> date:
    try:
        return datetime.strptime(value, "%Y%m%d").date()
    except ValueError as exc:
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, f"{path} phải có dạng yyyyMMdd") from exc


def _read_card_request(payload: dict[str, Any]) -> dict[str, Any]:
    """Check a ``capTheTreEm`` body as the card system would; return what it keeps."""
    code = required_text(payload, "maHoSo")
    child = required_text(payload, "hoTen")
    province = required_text(payload, "maTinh")
    commune = required_text(payload, "maXa")
    for path in ("soGiayKhaiSinh", "nguoiGiamHo.hoTen"):
        required_text(payload, path)
    if len(code) > 100:
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, "Mã hồ sơ quá dài")
    if _PROVINCE_RE.fullmatch(province) is None:
        raise GatewayRefusal(Code.PROVINCE_ID_INCORRECT, f"Mã tỉnh không hợp lệ: {province}")
    district = optional_text(payload, "maHuyen")
    if district is not None and _DISTRICT_RE.fullmatch(district) is None:
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, "maHuyen phải gồm 3 chữ số")
    if _COMMUNE_RE.fullmatch(commune) is None:
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, "maXa phải gồm 5 chữ số")
    if required_text(payload, "loaiNgaySinh") != "0":
        raise GatewayRefusal(Code.DATA_INCORRECT, "Ngày sinh của trẻ phải đầy đủ ngày, tháng, năm")
    born = _day(required_text(payload, "ngaySinh"), "ngaySinh")
    requested = _day(required_text(payload, "ngayDeNghi"), "ngayDeNghi")
    if required_text(payload, "gioiTinh") not in {"1", "2", "3"}:
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, "gioiTinh phải là 1, 2 hoặc 3")
    number = optional_text(payload, "nguoiGiamHo.soDinhDanh")
    if number is not None and _CCCD_RE.fullmatch(number) is None:
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, "nguoiGiamHo.soDinhDanh phải gồm 12 chữ số")
    if not born <= requested < _years_later(born, _CARD_AGE_YEARS):
        raise GatewayRefusal(Code.DATA_INCORRECT, "Trẻ không thuộc đối tượng trẻ em dưới 6 tuổi")
    return {
        "dossier_code": code,
        "child": child,
        "born": born,
        "province": province,
        "commune": commune,
    }


def create_simulator_app(state: SimulatorState) -> FastAPI:
    """A FastAPI app that behaves like Social Security's card system; ``app.state.simulator``."""
    sim = state
    app = simulator_app(
        sim,
        title="Social Security card system simulator (cấp thẻ BHYT trẻ em)",
        description="A stand-in for Social Security's child health-insurance card system.",
    )

    async def read_payload(request: Request) -> dict[str, Any] | Response:
        return await read_gateway_payload(request, sim, limit=MAX_REQUEST_BYTES)

    add_session_login(app, sim, path=LOGIN_PATH, read_payload=read_payload)
    read_call = session_checked(read_payload, sim)

    @app.post(CARD_REQUEST_PATH, tags=["BHYT"])
    async def request_card(request: Request) -> Response:
        """capTheTreEm: issue a child's card; a repeated maHoSo gets the first answer back."""
        sim.record_request(request)
        payload = await read_call(request)
        if isinstance(payload, Response):
            return payload
        try:
            fields = _read_card_request(payload)
        except GatewayRefusal as refusal:
            return refusal.response()
        refused = dossier_fault_answer(sim.current_faults(), fields["dossier_code"])
        if refused is not None:
            return refused
        card, existed = sim.issue(**fields)
        return applied_answer(card.answer(), existed)

    @app.post(LOOKUP_PATH, tags=["BHYT"])
    async def lookup(request: Request) -> Response:
        """traCuuHoSo: the card of one dossier, error_code 201 when none was issued."""
        payload = await read_call(request)
        if isinstance(payload, Response):
            return payload
        code = payload.get("maHoSo")
        if not isinstance(code, str) or not code:
            return gateway_error(Code.RECORD_UNCOMPLETE, "Thiếu thông tin bắt buộc: maHoSo")
        card = sim.lookup(code)
        if card is None:
            return gateway_error(Code.RECORD_NOT_FOUND, "Không tìm thấy hồ sơ")
        return JSONResponse(card.answer())

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the simulator: ``python -m connectors.social_insurance.simulator --port 8103``."""
    run_session_simulator(
        lambda account: create_simulator_app(SimulatorState(**account)),
        port=8103,
        doc=__doc__,
        argv=argv,
        password_env=PASSWORD_ENV,
        demo_password=DEMO_PASSWORD,
    )


if __name__ == "__main__":
    main()
