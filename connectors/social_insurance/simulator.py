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

import argparse
import asyncio
import json
import logging
import os
import random
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

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

LOGIN_PATH: Final = "/api/auth/login"
CARD_REQUEST_PATH: Final = "/api/bhyt/capTheTreEm"
LOOKUP_PATH: Final = "/api/bhyt/traCuuHoSo"

PASSWORD_ENV: Final = "BUS_SOCIAL_INSURANCE_PASSWORD"
"""The environment variable both the connector and ``main()`` read the password from."""

DEMO_PASSWORD: Final = "demo-only-password"
"""What ``main()`` accepts when ``PASSWORD_ENV`` is not set (a demo on one laptop)."""

_ISSUED: Final = "03"
_CCCD_RE: Final = re.compile(r"\d{12}", re.ASCII)
_PROVINCE_RE: Final = re.compile(r"\d{2}", re.ASCII)
_DISTRICT_RE: Final = re.compile(r"\d{3}", re.ASCII)
_COMMUNE_RE: Final = re.compile(r"\d{5}", re.ASCII)
_DISCONNECT_POLL_SECONDS: Final = 0.05
_CARD_AGE_YEARS: Final = 6

# Gateway error codes this partner answers (bus.rest.GATEWAY_ERRORS).
_AUTHEN_ERROR: Final = 100
_PROVINCE_ID_INCORRECT: Final = 108
_RECORD_UNCOMPLETE: Final = 200
_RECORD_NOT_FOUND: Final = 201
_DATA_TYPE_INVALID: Final = 302
_DATA_INCORRECT: Final = 500

_log = logging.getLogger(__name__)


class SimulatorFaults(BaseModel):
    """The failure switches in force; posting to ``/_sim/faults`` replaces all of them.

    The sick-partner switches apply to the login as well as to the calls: a sick gateway is
    sick for both.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: int = Field(default=0, ge=0, le=600_000, description="Delay before answering")
    error_rate: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share of calls answered HTTP 503, unapplied"
    )
    reject_all: bool = Field(
        default=False, description="Answer error_code 500 DATA_INCORRECT with HTTP 200"
    )
    malformed: bool = Field(default=False, description="Answer HTTP 200 with non-JSON garbage")
    hang: bool = Field(
        default=False, description="Answer nothing until the client gives up (or hang_seconds)"
    )
    hang_seconds: float = Field(
        default=330.0, gt=0, le=3600, description="Longest hang; above any connector timeout"
    )
    failing_dossiers: frozenset[str] = Field(
        default=frozenset(),
        max_length=10_000,
        description="Dossier codes always answered HTTP 503: a record the partner chokes on",
    )
    session_max_calls: int | None = Field(
        default=None, ge=1, description="A session expires after this many calls"
    )
    session_ttl_seconds: float | None = Field(
        default=None, gt=0, description="A session expires this long after its login"
    )
    expired_as_401: bool = Field(
        default=False,
        description="Refuse an expired session with HTTP 401 instead of error_code 100",
    )


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


@dataclass
class _Session:
    started: float
    calls: int = 0


def _now() -> datetime:
    return datetime.now(VN_TZ)


@dataclass
class SimulatorState:
    """The simulator's accounts, sessions, register and counters; safe to share between threads.

    Every read and write goes through one lock and never awaits while holding it, so the
    counters stay exact under any mix of concurrent requests and test threads.
    """

    password: str
    username: str = "lgsp.h12"
    #: The ``dstcode`` login header the gateway expects (the province); None accepts any.
    dstcode: str | None = "H12"
    seed: int | None = None
    clock: Callable[[], datetime] = _now
    monotonic: Callable[[], float] = time.monotonic
    faults: SimulatorFaults = field(default_factory=SimulatorFaults)
    cards: dict[str, CardIssue] = field(default_factory=dict)
    applied_codes: list[str] = field(default_factory=list)
    requests: int = 0
    applied: int = 0
    duplicates: int = 0
    logins: int = 0
    #: Calls refused because their session was unknown or had expired.
    expired: int = 0
    #: The dstcode header of every login, in order.
    login_dstcodes: list[str | None] = field(default_factory=list)
    _sessions: dict[str, _Session] = field(default_factory=dict, repr=False)
    _last_number: dict[tuple[str, int], int] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def __repr__(self) -> str:
        # The password stays out of reprs, tracebacks and logs.
        return f"SimulatorState(username={self.username!r}, stats={self.stats()!r})"

    def count_request(self) -> None:
        """Count one ``capTheTreEm`` call, whatever its outcome."""
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

    def login(self, username: Any, password: Any, dstcode: str | None) -> str | int:
        """A new session for a good account, else the gateway's error code."""
        with self._lock:
            self.login_dstcodes.append(dstcode)
            if self.dstcode is not None and dstcode != self.dstcode:
                return _PROVINCE_ID_INCORRECT
            good = (
                isinstance(username, str)
                and isinstance(password, str)
                and secrets.compare_digest(username.encode(), self.username.encode())
                and secrets.compare_digest(password.encode(), self.password.encode())
            )
            if not good:
                return _AUTHEN_ERROR
            token = secrets.token_urlsafe(24)
            self._sessions[token] = _Session(started=self.monotonic())
            self.logins += 1
            return token

    def use_session(self, token: Any) -> bool:
        """Count one call on a session; False (and counted as expired) when it is not valid."""
        with self._lock:
            session = self._sessions.get(token) if isinstance(token, str) else None
            faults = self.faults
            if session is not None:
                too_old = (
                    faults.session_ttl_seconds is not None
                    and self.monotonic() - session.started > faults.session_ttl_seconds
                )
                too_used = (
                    faults.session_max_calls is not None
                    and session.calls >= faults.session_max_calls
                )
                if too_old or too_used:
                    del self._sessions[token]
                    session = None
            if session is None:
                self.expired += 1
                return False
            session.calls += 1
            return True

    def expire_sessions(self) -> int:
        """End every session now (as a gateway restart would); return how many there were."""
        with self._lock:
            count = len(self._sessions)
            self._sessions.clear()
            return count

    def issue(
        self, *, dossier_code: str, child: str, born: date, province: str, commune: str
    ) -> tuple[CardIssue, bool]:
        """Issue the dossier's card once; return it and whether it had been issued before."""
        with self._lock:
            existing = self.cards.get(dossier_code)
            if existing is not None:
                self.duplicates += 1
                return existing, True
            issued_on = self.clock().astimezone(VN_TZ).date()
            key = (province, issued_on.year)
            number = self._last_number.get(key, 0) + 1
            self._last_number[key] = number
            card = CardIssue(
                dossier_code=dossier_code,
                # 10 digits, province first: the shape of a social-insurance number.
                insurance_number=f"{province}{issued_on:%y}{number:06d}",
                child_full_name=child,
                commune=commune,
                issued_on=issued_on,
                valid_from=born,
                valid_until=_years_later(born, _CARD_AGE_YEARS) - timedelta(days=1),
            )
            self.cards[dossier_code] = card
            self.applied_codes.append(dossier_code)
            self.applied += 1
            return card, False

    def lookup(self, dossier_code: str) -> CardIssue | None:
        """The card issued for a dossier, if any."""
        with self._lock:
            return self.cards.get(dossier_code)

    def stats(self) -> dict[str, Any]:
        """Exact counters: calls received, cards issued, duplicates, logins, refused sessions."""
        with self._lock:
            return {
                "applied": self.applied,
                "duplicates": self.duplicates,
                "requests": self.requests,
                "applied_codes": list(self.applied_codes),
                "logins": self.logins,
                "expired": self.expired,
            }

    def reset(self) -> None:
        """Forget every card, session, counter and fault (the account stays)."""
        with self._lock:
            self.faults = SimulatorFaults()
            self.cards.clear()
            self.applied_codes.clear()
            self._sessions.clear()
            self._last_number.clear()
            self.login_dstcodes.clear()
            self.requests = self.applied = self.duplicates = self.logins = self.expired = 0
            self._random = random.Random(self.seed)


def _years_later(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February into a common year: the birthday falls on 1 March
        return date(day.year + years, 3, 1)


class _Refusal(Exception):
    """Internal: the request is refused with a gateway error code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _error(code: int, message: str, status_code: int = 200) -> JSONResponse:
    return JSONResponse({"error_code": code, "message": message}, status_code=status_code)


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


def _read_json(raw: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _Refusal(_DATA_TYPE_INVALID, "Dữ liệu gửi lên không phải JSON hợp lệ") from exc
    if not isinstance(payload, dict):
        raise _Refusal(_DATA_TYPE_INVALID, "Dữ liệu gửi lên phải là một đối tượng JSON")
    return payload


def _optional(payload: dict[str, Any], path: str) -> str | None:
    """A text field at a dotted path, None when absent; DATA_TYPE_INVALID when not text."""
    value: Any = payload
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _Refusal(_DATA_TYPE_INVALID, f"{path} phải là chuỗi ký tự")
    return value.strip()


def _required(payload: dict[str, Any], path: str) -> str:
    """A text field at a dotted path; RECORD_UNCOMPLETE when it is missing."""
    value = _optional(payload, path)
    if not value:
        raise _Refusal(_RECORD_UNCOMPLETE, f"Thiếu thông tin bắt buộc: {path}")
    return value


def _day(value: str, path: str) -> date:
    try:
        return datetime.strptime(value, "%Y%m%d").date()
    except ValueError as exc:
        raise _Refusal(_DATA_TYPE_INVALID, f"{path} phải có dạng yyyyMMdd") from exc


def _read_card_request(payload: dict[str, Any]) -> dict[str, Any]:
    """Check a ``capTheTreEm`` body as the card system would; return what it keeps."""
    code = _required(payload, "maHoSo")
    child = _required(payload, "hoTen")
    province = _required(payload, "maTinh")
    commune = _required(payload, "maXa")
    for path in ("soGiayKhaiSinh", "nguoiGiamHo.hoTen"):
        _required(payload, path)
    if len(code) > 100:
        raise _Refusal(_DATA_TYPE_INVALID, "Mã hồ sơ quá dài")
    if _PROVINCE_RE.fullmatch(province) is None:
        raise _Refusal(_PROVINCE_ID_INCORRECT, f"Mã tỉnh không hợp lệ: {province}")
    district = _optional(payload, "maHuyen")
    if district is not None and _DISTRICT_RE.fullmatch(district) is None:
        raise _Refusal(_DATA_TYPE_INVALID, "maHuyen phải gồm 3 chữ số")
    if _COMMUNE_RE.fullmatch(commune) is None:
        raise _Refusal(_DATA_TYPE_INVALID, "maXa phải gồm 5 chữ số")
    if _required(payload, "loaiNgaySinh") != "0":
        raise _Refusal(_DATA_INCORRECT, "Ngày sinh của trẻ phải đầy đủ ngày, tháng, năm")
    born = _day(_required(payload, "ngaySinh"), "ngaySinh")
    requested = _day(_required(payload, "ngayDeNghi"), "ngayDeNghi")
    if _required(payload, "gioiTinh") not in {"1", "2", "3"}:
        raise _Refusal(_DATA_TYPE_INVALID, "gioiTinh phải là 1, 2 hoặc 3")
    number = _optional(payload, "nguoiGiamHo.soDinhDanh")
    if number is not None and _CCCD_RE.fullmatch(number) is None:
        raise _Refusal(_DATA_TYPE_INVALID, "nguoiGiamHo.soDinhDanh phải gồm 12 chữ số")
    if not born <= requested < _years_later(born, _CARD_AGE_YEARS):
        raise _Refusal(_DATA_INCORRECT, "Trẻ không thuộc đối tượng trẻ em dưới 6 tuổi")
    return {"code": code, "child": child, "born": born, "province": province, "commune": commune}


def create_simulator_app(state: SimulatorState) -> FastAPI:
    """A FastAPI app that behaves like Social Security's card system; ``app.state.simulator``."""
    sim = state
    app = FastAPI(
        title="Social Security card system simulator (cấp thẻ BHYT trẻ em)",
        description="A stand-in for Social Security's child health-insurance card system.",
    )
    app.state.simulator = sim

    async def partner_faults(request: Request) -> Response | None:
        """The sick-partner answer this call gets, if the switches say so."""
        faults = sim.current_faults()
        if not await _suffer_delays(request, faults):
            return JSONResponse({"message": "Hết thời gian xử lý"}, status_code=504)
        if faults.error_rate and sim.draw_error(faults.error_rate):
            return JSONResponse({"message": "Hệ thống đang bận, vui lòng thử lại sau"}, 503)
        if faults.malformed:
            return Response(
                "<html><body><h1>502 Bad Gateway</h1>nginx</body></html>",
                media_type="text/html",
            )
        return None

    async def read_body(request: Request) -> bytes | Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
            return _error(_DATA_INCORRECT, "Dữ liệu gửi lên quá lớn", 413)
        raw = await request.body()
        if len(raw) > MAX_REQUEST_BYTES:
            return _error(_DATA_INCORRECT, "Dữ liệu gửi lên quá lớn", 413)
        return raw

    def session_refused() -> Response:
        if sim.current_faults().expired_as_401:
            return _error(_AUTHEN_ERROR, "Session expired", 401)
        return _error(_AUTHEN_ERROR, "Phiên làm việc đã hết hạn, vui lòng đăng nhập lại")

    @app.post(LOGIN_PATH, tags=["xác thực"])
    async def login(request: Request) -> Response:
        """Log in with {username, password} and the dstcode header; answer a session."""
        raw = await read_body(request)
        if isinstance(raw, Response):
            return raw
        sick = await partner_faults(request)
        if sick is not None:
            return sick
        try:
            payload = _read_json(raw)
        except _Refusal as refusal:
            return _error(refusal.code, refusal.message)
        outcome = sim.login(
            payload.get("username"), payload.get("password"), request.headers.get("dstcode")
        )
        if outcome == _PROVINCE_ID_INCORRECT:
            return _error(_PROVINCE_ID_INCORRECT, "Mã tỉnh (dstcode) không hợp lệ")
        if not isinstance(outcome, str):
            return _error(_AUTHEN_ERROR, "Sai tên đăng nhập hoặc mật khẩu")
        return JSONResponse(
            {"error_code": 0, "message": "Đăng nhập thành công", "session": outcome}
        )

    @app.post(CARD_REQUEST_PATH, tags=["BHYT"])
    async def request_card(request: Request) -> Response:
        """capTheTreEm: issue a child's card; a repeated maHoSo gets the first answer back."""
        sim.count_request()
        raw = await read_body(request)
        if isinstance(raw, Response):
            return raw
        sick = await partner_faults(request)
        if sick is not None:
            return sick
        try:
            payload = _read_json(raw)
        except _Refusal as refusal:
            return _error(refusal.code, refusal.message)
        if not sim.use_session(payload.get("session")):
            return session_refused()
        try:
            fields = _read_card_request(payload)
        except _Refusal as refusal:
            return _error(refusal.code, refusal.message)
        faults = sim.current_faults()
        if fields["code"] in faults.failing_dossiers:
            return JSONResponse({"message": "Lỗi xử lý hồ sơ, vui lòng thử lại sau"}, 503)
        if faults.reject_all:
            return _error(_DATA_INCORRECT, "Dữ liệu không chính xác: hồ sơ bị từ chối")
        card, existed = sim.issue(
            dossier_code=fields["code"],
            child=fields["child"],
            born=fields["born"],
            province=fields["province"],
            commune=fields["commune"],
        )
        body = card.answer()
        if existed:
            body["daTonTai"] = True
        return JSONResponse(body)

    @app.post(LOOKUP_PATH, tags=["BHYT"])
    async def lookup(request: Request) -> Response:
        """traCuuHoSo: the card of one dossier, error_code 201 when none was issued."""
        raw = await read_body(request)
        if isinstance(raw, Response):
            return raw
        sick = await partner_faults(request)
        if sick is not None:
            return sick
        try:
            payload = _read_json(raw)
        except _Refusal as refusal:
            return _error(refusal.code, refusal.message)
        if not sim.use_session(payload.get("session")):
            return session_refused()
        code = payload.get("maHoSo")
        if not isinstance(code, str) or not code:
            return _error(_RECORD_UNCOMPLETE, "Thiếu thông tin bắt buộc: maHoSo")
        card = sim.lookup(code)
        if card is None:
            return _error(_RECORD_NOT_FOUND, "Không tìm thấy hồ sơ")
        return JSONResponse(card.answer())

    @app.post("/_sim/faults", tags=["simulator"])
    async def set_faults(faults: SimulatorFaults) -> SimulatorFaults:
        """Replace the failure switches; fields left out are switched off."""
        sim.set_faults(faults)
        return faults

    @app.get("/_sim/faults", tags=["simulator"])
    async def get_faults() -> SimulatorFaults:
        """The failure switches in force."""
        return sim.current_faults()

    @app.post("/_sim/expire-sessions", tags=["simulator"])
    async def expire_sessions() -> dict[str, int]:
        """End every session now, as a gateway restart would."""
        return {"expired_sessions": sim.expire_sessions()}

    @app.post("/_sim/reset", tags=["simulator"])
    async def reset() -> dict[str, Any]:
        """Forget every card, session, counter and fault."""
        sim.reset()
        return sim.stats()

    @app.get("/_sim/stats", tags=["simulator"])
    async def stats() -> dict[str, Any]:
        """Exact counters, to prove nothing was lost or applied twice."""
        return sim.stats()

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the simulator: ``python -m connectors.social_insurance.simulator --port 8103``."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8103, help="port to listen on")
    parser.add_argument("--username", default="lgsp.h12", help="the account it accepts")
    parser.add_argument("--dstcode", default="H12", help="the dstcode login header it expects")
    parser.add_argument("--seed", type=int, default=None, help="seed of the error_rate draws")
    parser.add_argument("--log-level", default="info", help="uvicorn log level")
    args = parser.parse_args(argv)
    # Never a command-line argument: those show in process listings.
    password = os.environ.get(PASSWORD_ENV) or DEMO_PASSWORD
    if password == DEMO_PASSWORD:
        logging.basicConfig(level=logging.INFO)
        _log.warning("%s is not set: accepting the demo password only", PASSWORD_ENV)
    state = SimulatorState(
        password=password, username=args.username, dstcode=args.dstcode, seed=args.seed
    )
    uvicorn.run(
        create_simulator_app(state),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        # One line per partner call drowns everything else unless asked for.
        access_log=args.log_level in {"debug", "trace", "info"},
    )


if __name__ == "__main__":
    main()
