"""A stand-in for Social Security's gateway (child health-insurance cards, funeral allowances).

It speaks the gateway's protocol: a session login (``{username, password}`` with a ``dstcode``
header), then ``capTheTreEm``, ``giaiQuyetTroCapMaiTang`` and ``traCuuHoSo`` calls that carry
the session in their JSON body; every answer carries ``error_code`` (0 for success, 100 for a
refused session). It decides each dossier at most once (a card, or an allowance), and can be
made slow, flaky or hostile, and made to expire its sessions, through ``/_sim/``::

    BUS_SOCIAL_INSURANCE_PASSWORD=... python -m connectors.social_insurance.simulator --port 8103
    curl -X POST localhost:8103/_sim/faults -d '{"session_max_calls": 3}'
    curl -X POST localhost:8103/_sim/expire-sessions
    curl localhost:8103/_sim/stats
"""

from __future__ import annotations

import re
from collections.abc import Callable
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
    answer_dossier_act,
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
    FUNERAL_ALLOWANCE_PATH,
    LOGIN_PATH,
    LOOKUP_PATH,
    PASSWORD_ENV,
)
from contracts import VN_TZ

__all__ = [
    "DEMO_PASSWORD",
    "PASSWORD_ENV",
    "CardIssue",
    "FuneralAllowance",
    "SimulatorFaults",
    "SimulatorState",
    "create_simulator_app",
    "main",
]

MAX_REQUEST_BYTES: Final = 2_000_000
"""Requests larger than this are refused with HTTP 413, before they are parsed."""

_ISSUED: Final = "03"
_GRANTED: Final = "03"
_REFUSED: Final = "05"
_CCCD_RE: Final = re.compile(r"\d{12}", re.ASCII)
_SOCIAL_INSURANCE_RE: Final = re.compile(r"\d{10}", re.ASCII)
_PROVINCE_RE: Final = re.compile(r"\d{2}", re.ASCII)
_DISTRICT_RE: Final = re.compile(r"\d{3}", re.ASCII)
_COMMUNE_RE: Final = re.compile(r"\d{5}", re.ASCII)
_CARD_AGE_YEARS: Final = 6
# Lương cơ sở (the statutory base salary), in đồng, from the day each decree took effect:
# Nghị định 72/2018, 38/2019, 24/2023 and 73/2024.
_BASE_SALARY: Final = (
    (date(2018, 7, 1), 1_390_000),
    (date(2019, 7, 1), 1_490_000),
    (date(2023, 7, 1), 1_800_000),
    (date(2024, 7, 1), 2_340_000),
)
# The funeral allowance is 10 times the base salary of the month of death (Law on Social
# Insurance 2014, art. 66).
_FUNERAL_ALLOWANCE_FACTOR: Final = 10


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


@dataclass(frozen=True, slots=True)
class FuneralAllowance:
    """One decision on a deceased's funeral allowance, as Social Security's register holds it.

    ``decision_number`` is None when the allowance was refused: the deceased had no social
    insurance, so the commune's social-protection support applies instead.
    """

    dossier_code: str
    deceased_full_name: str
    died_on: date
    decided_on: date
    decision_number: str | None
    amount_vnd: int

    def answer(self) -> dict[str, Any]:
        """The body the partner answers for this decision."""
        body: dict[str, Any] = {
            "error_code": 0,
            "message": "Thành công",
            "maHoSo": self.dossier_code,
        }
        if self.decision_number is None:
            return {
                **body,
                "trangThai": _REFUSED,
                "ngayXuLy": self.decided_on.strftime("%Y%m%d"),
                "ghiChu": (
                    "Người đã chết không tham gia bảo hiểm xã hội, không thuộc đối tượng hưởng "
                    "trợ cấp mai táng; đề nghị liên hệ Ủy ban nhân dân cấp xã"
                ),
            }
        amount = f"{self.amount_vnd:,}".replace(",", ".")
        return {
            **body,
            "trangThai": _GRANTED,
            "soQuyetDinh": self.decision_number,
            "ngayQuyetDinh": self.decided_on.strftime("%Y%m%d"),
            "soTien": self.amount_vnd,
            "ghiChu": f"Hưởng trợ cấp mai táng cho {self.deceased_full_name}: {amount} đồng",
        }


Decision = CardIssue | FuneralAllowance
"""What Social Security decided for one dossier."""


def funeral_allowance_amount(died_on: date) -> int:
    """The funeral allowance, in đồng, for a death on ``died_on``."""
    salary = next(
        (amount for start, amount in reversed(_BASE_SALARY) if start <= died_on),
        _BASE_SALARY[0][1],
    )
    return _FUNERAL_ALLOWANCE_FACTOR * salary


@dataclass(kw_only=True)
class SimulatorState(SessionState[SimulatorFaults], RegisterState[SimulatorFaults, Decision]):
    """The simulator's account, sessions, register and counters; safe to share between threads.

    ``stats()``: calls received, dossiers decided, duplicates, logins, refused sessions.
    """

    faults: SimulatorFaults = field(default_factory=SimulatorFaults)

    def issue(
        self, *, dossier_code: str, child: str, born: date, province: str, commune: str
    ) -> tuple[Decision, bool]:
        """Issue the dossier's card once; return the decision and whether it existed before."""

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

    def settle(
        self, *, dossier_code: str, deceased: str, died: date, insured: bool
    ) -> tuple[Decision, bool]:
        """Decide the dossier's funeral allowance once; return it and whether it existed."""

        def make() -> FuneralAllowance:
            decided_on = self.clock().astimezone(VN_TZ).date()
            number = self.next_number(("QĐ", decided_on.year)) if insured else None
            return FuneralAllowance(
                dossier_code=dossier_code,
                deceased_full_name=deceased,
                died_on=died,
                decided_on=decided_on,
                decision_number=None if number is None else f"{number}/QĐ-BHXH",
                amount_vnd=funeral_allowance_amount(died) if insured else 0,
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


def _read_dossier_and_area(payload: dict[str, Any]) -> tuple[str, str, str]:
    """The dossier code and the area (province, commune), checked as the gateway checks them."""
    code = required_text(payload, "maHoSo")
    province = required_text(payload, "maTinh")
    commune = required_text(payload, "maXa")
    if len(code) > 100:
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, "Mã hồ sơ quá dài")
    if _PROVINCE_RE.fullmatch(province) is None:
        raise GatewayRefusal(Code.PROVINCE_ID_INCORRECT, f"Mã tỉnh không hợp lệ: {province}")
    district = optional_text(payload, "maHuyen")
    if district is not None and _DISTRICT_RE.fullmatch(district) is None:
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, "maHuyen phải gồm 3 chữ số")
    if _COMMUNE_RE.fullmatch(commune) is None:
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, "maXa phải gồm 5 chữ số")
    return code, province, commune


def _check_number(payload: dict[str, Any], path: str, pattern: re.Pattern[str], text: str) -> None:
    """An optional personal number at ``path``, refused unless it has ``pattern``'s shape."""
    number = optional_text(payload, path)
    if number is not None and pattern.fullmatch(number) is None:
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, f"{path} phải gồm {text}")


def _read_card_request(payload: dict[str, Any]) -> dict[str, Any]:
    """Check a ``capTheTreEm`` body as the card system would; return what it keeps."""
    child = required_text(payload, "hoTen")
    for path in ("soGiayKhaiSinh", "nguoiGiamHo.hoTen"):
        required_text(payload, path)
    code, province, commune = _read_dossier_and_area(payload)
    if required_text(payload, "loaiNgaySinh") != "0":
        raise GatewayRefusal(Code.DATA_INCORRECT, "Ngày sinh của trẻ phải đầy đủ ngày, tháng, năm")
    born = _day(required_text(payload, "ngaySinh"), "ngaySinh")
    requested = _day(required_text(payload, "ngayDeNghi"), "ngayDeNghi")
    if required_text(payload, "gioiTinh") not in {"1", "2", "3"}:
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, "gioiTinh phải là 1, 2 hoặc 3")
    _check_number(payload, "nguoiGiamHo.soDinhDanh", _CCCD_RE, "12 chữ số")
    if not born <= requested < _years_later(born, _CARD_AGE_YEARS):
        raise GatewayRefusal(Code.DATA_INCORRECT, "Trẻ không thuộc đối tượng trẻ em dưới 6 tuổi")
    return {
        "dossier_code": code,
        "child": child,
        "born": born,
        "province": province,
        "commune": commune,
    }


def _read_allowance_request(payload: dict[str, Any]) -> dict[str, Any]:
    """Check a ``giaiQuyetTroCapMaiTang`` body as the benefits system would; return what it keeps.

    The deceased is found by the identity number, so it is required; the death extract proves
    the death, which cannot come after the request. Without a social-insurance number the
    deceased is taken as never insured: the allowance is refused, not the call.
    """
    deceased = required_text(payload, "hoTen")
    for path in ("soDinhDanh", "soTrichLucKhaiTu", "nguoiHuong.hoTen", "nguoiHuong.quanHe"):
        required_text(payload, path)
    code, _province, _commune = _read_dossier_and_area(payload)
    if required_text(payload, "loaiNgaySinh") not in {"0", "1", "2"}:
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, "loaiNgaySinh phải là 0, 1 hoặc 2")
    if re.fullmatch(r"\d{8}", required_text(payload, "ngaySinh"), re.ASCII) is None:
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, "ngaySinh phải có dạng yyyyMMdd")
    died = _day(required_text(payload, "ngayChet"), "ngayChet")
    requested = _day(required_text(payload, "ngayDeNghi"), "ngayDeNghi")
    if required_text(payload, "gioiTinh") not in {"1", "2", "3"}:
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, "gioiTinh phải là 1, 2 hoặc 3")
    _check_number(payload, "soDinhDanh", _CCCD_RE, "12 chữ số")
    _check_number(payload, "nguoiHuong.soDinhDanh", _CCCD_RE, "12 chữ số")
    _check_number(payload, "maSoBHXH", _SOCIAL_INSURANCE_RE, "10 chữ số")
    if died > requested:
        raise GatewayRefusal(Code.DATA_INCORRECT, "Ngày chết sau ngày đề nghị")
    return {
        "dossier_code": code,
        "deceased": deceased,
        "died": died,
        "insured": optional_text(payload, "maSoBHXH") is not None,
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

    async def decide_once(
        request: Request,
        read: Callable[[dict[str, Any]], dict[str, Any]],
        decide: Callable[..., tuple[Decision, bool]],
        kind: type[Decision],
    ) -> Response:
        """One call that decides a dossier: read and check it, then decide once (or again)."""
        sim.record_request(request)
        payload = await read_call(request)
        if isinstance(payload, Response):
            return payload
        return answer_dossier_act(sim.current_faults(), read, payload, decide, kind)

    @app.post(CARD_REQUEST_PATH, tags=["BHYT"])
    async def request_card(request: Request) -> Response:
        """capTheTreEm: issue a child's card; a repeated maHoSo gets the first answer back."""
        return await decide_once(request, _read_card_request, sim.issue, CardIssue)

    @app.post(FUNERAL_ALLOWANCE_PATH, tags=["BHXH"])
    async def settle_funeral_allowance(request: Request) -> Response:
        """giaiQuyetTroCapMaiTang: decide a funeral allowance; a repeat gets the first answer."""
        return await decide_once(request, _read_allowance_request, sim.settle, FuneralAllowance)

    @app.post(LOOKUP_PATH, tags=["BHYT"])
    async def lookup(request: Request) -> Response:
        """traCuuHoSo: what was decided for one dossier, error_code 201 when nothing was."""
        payload = await read_call(request)
        if isinstance(payload, Response):
            return payload
        code = payload.get("maHoSo")
        if not isinstance(code, str) or not code:
            return gateway_error(Code.RECORD_UNCOMPLETE, "Thiếu thông tin bắt buộc: maHoSo")
        decision = sim.lookup(code)
        if decision is None:
            return gateway_error(Code.RECORD_NOT_FOUND, "Không tìm thấy hồ sơ")
        return JSONResponse(decision.answer())

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
