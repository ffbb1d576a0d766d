"""A stand-in for Public Security's residence software, for tests and demos.

It speaks the partner's protocol (``dangKyThuongTru``, ``traCuuHoSo``) the gateway way (every
answer carries ``error_code``, 0 for success), registers each dossier at most once, and can be
made slow, flaky or hostile through ``/_sim/``::

    python -m connectors.residence.simulator --host 127.0.0.1 --port 8102
    curl -X POST localhost:8102/_sim/faults -d '{"error_rate": 0.3}'
    curl localhost:8102/_sim/stats
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

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
_DISCONNECT_POLL_SECONDS: Final = 0.05

# Gateway error codes this partner answers (bus.rest.GATEWAY_ERRORS).
_RECORD_UNCOMPLETE: Final = 200
_RECORD_NOT_FOUND: Final = 201
_DATA_TYPE_INVALID: Final = 302
_AGENCY_ID_INCORRECT: Final = 106
_PROVINCE_ID_INCORRECT: Final = 108
_DATA_INCORRECT: Final = 500


class SimulatorFaults(BaseModel):
    """The failure switches in force; posting to ``/_sim/faults`` replaces all of them."""

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
    #: The X-Road headers of the last registration call, as received.
    last_xroad: dict[str, str] = field(default_factory=dict)
    _last_number: dict[tuple[str, int], int] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def count_request(self, xroad: dict[str, str]) -> None:
        """Count one ``dangKyThuongTru`` call, whatever its outcome, and keep its X-Road headers."""
        with self._lock:
            self.requests += 1
            self.last_xroad = xroad

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
        self, *, dossier_code: str, agency: str, province: str, child: str, head: str
    ) -> tuple[Registration, bool]:
        """Register the dossier once; return its registration and whether it already existed."""
        with self._lock:
            existing = self.registrations.get(dossier_code)
            if existing is not None:
                self.duplicates += 1
                return existing, True
            registered_at = self.clock().astimezone(VN_TZ)
            key = (province, registered_at.year)
            number = self._last_number.get(key, 0) + 1
            self._last_number[key] = number
            registration = Registration(
                dossier_code=dossier_code,
                # 14 digits: province, year, sequence (the shape of the register's numbers).
                household_number=f"{province}{registered_at:%y}{number:010d}",
                agency=agency,
                child_full_name=child,
                household_head=head,
                registered_at=registered_at,
            )
            self.registrations[dossier_code] = registration
            self.applied_codes.append(dossier_code)
            self.applied += 1
            return registration, False

    def lookup(self, dossier_code: str) -> Registration | None:
        """The registration of a dossier, if it was registered."""
        with self._lock:
            return self.registrations.get(dossier_code)

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
            self.last_xroad = {}
            self.requests = self.applied = self.duplicates = 0
            self._random = random.Random(self.seed)


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


def _read_registration(raw: bytes) -> dict[str, str]:
    """Check a ``dangKyThuongTru`` body as the residence software would; return what it keeps."""
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _Refusal(_DATA_TYPE_INVALID, "Dữ liệu gửi lên không phải JSON hợp lệ") from exc
    if not isinstance(payload, dict):
        raise _Refusal(_DATA_TYPE_INVALID, "Dữ liệu gửi lên phải là một đối tượng JSON")
    code = _required(payload, "maHoSo")
    agency = _required(payload, "maDonViTiepNhan")
    child = _required(payload, "congDan.hoTen")
    head = _required(payload, "chuHo.hoTen")
    province = _required(payload, "noiThuongTru.maTinh")
    commune = _required(payload, "noiThuongTru.maXa")
    for path in ("nguoiDangKy.hoTen", "congDan.soGiayKhaiSinh", "congDan.noiSinh"):
        _required(payload, path)
    if len(code) > 100:
        raise _Refusal(_DATA_TYPE_INVALID, "Mã hồ sơ quá dài")
    if _AGENCY_RE.fullmatch(agency) is None:
        raise _Refusal(_AGENCY_ID_INCORRECT, f"Mã đơn vị tiếp nhận không hợp lệ: {agency}")
    if _PROVINCE_RE.fullmatch(province) is None:
        raise _Refusal(_PROVINCE_ID_INCORRECT, f"Mã tỉnh không hợp lệ: {province}")
    if _COMMUNE_RE.fullmatch(commune) is None:
        raise _Refusal(_DATA_TYPE_INVALID, "noiThuongTru.maXa phải gồm 5 chữ số")
    if _optional(payload, "loaiThuTuc") != "DKTT":
        raise _Refusal(_DATA_INCORRECT, "loaiThuTuc phải là DKTT (đăng ký thường trú)")
    for path, shape, text in (
        ("congDan.ngaySinh", "%d/%m/%Y", "dd/MM/yyyy"),
        ("ngayTiepNhan", "%Y%m%d%H%M%S", "yyyyMMddHHmmss"),
    ):
        try:
            datetime.strptime(_required(payload, path), shape)
        except ValueError as exc:
            raise _Refusal(_DATA_TYPE_INVALID, f"{path} phải có dạng {text}") from exc
    gender = payload["congDan"].get("gioiTinh")
    if isinstance(gender, bool) or gender not in (1, 2):
        raise _Refusal(_DATA_TYPE_INVALID, "congDan.gioiTinh phải là 1 (nam) hoặc 2 (nữ)")
    for path in ("nguoiDangKy.soDinhDanh", "chuHo.soDinhDanh"):
        number = _optional(payload, path)
        if number is not None and _CCCD_RE.fullmatch(number) is None:
            raise _Refusal(_DATA_TYPE_INVALID, f"{path} phải gồm 12 chữ số")
    return {"code": code, "agency": agency, "province": province, "child": child, "head": head}


def create_simulator_app(state: SimulatorState | None = None) -> FastAPI:
    """A FastAPI app that behaves like the residence software; ``app.state.simulator``."""
    sim = state if state is not None else SimulatorState()
    app = FastAPI(
        title="Residence software simulator (phần mềm quản lý cư trú)",
        description="A stand-in for Public Security's residence software.",
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

    @app.post(REGISTER_PATH, tags=["cư trú"])
    async def register(request: Request) -> Response:
        """dangKyThuongTru: register a newborn; a repeated maHoSo gets the first answer back."""
        sim.count_request(
            {k: v for k, v in request.headers.items() if k.lower().startswith("x-road-")}
        )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
            return _error(_DATA_INCORRECT, "Dữ liệu gửi lên quá lớn", 413)
        raw = await request.body()
        if len(raw) > MAX_REQUEST_BYTES:
            return _error(_DATA_INCORRECT, "Dữ liệu gửi lên quá lớn", 413)
        sick = await partner_faults(request)
        if sick is not None:
            return sick
        try:
            fields = _read_registration(raw)
        except _Refusal as refusal:
            return _error(refusal.code, refusal.message)
        faults = sim.current_faults()
        if fields["code"] in faults.failing_dossiers:
            return JSONResponse({"message": "Lỗi xử lý hồ sơ, vui lòng thử lại sau"}, 503)
        if faults.reject_all:
            return _error(_DATA_INCORRECT, "Dữ liệu không chính xác: hồ sơ bị từ chối")
        registration, existed = sim.register(
            dossier_code=fields["code"],
            agency=fields["agency"],
            province=fields["province"],
            child=fields["child"],
            head=fields["head"],
        )
        body = registration.answer()
        if existed:
            body["daTonTai"] = True
        return JSONResponse(body)

    @app.get(LOOKUP_PATH, tags=["cư trú"])
    async def lookup(request: Request, maHoSo: str | None = None) -> Response:
        """traCuuHoSo: the registration of one dossier, error_code 201 when unknown."""
        sick = await partner_faults(request)
        if sick is not None:
            return sick
        if not maHoSo:
            return _error(_RECORD_UNCOMPLETE, "Thiếu tham số maHoSo")
        registration = sim.lookup(maHoSo)
        if registration is None:
            return _error(_RECORD_NOT_FOUND, "Không tìm thấy hồ sơ")
        return JSONResponse(registration.answer())

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
    """Serve the simulator: ``python -m connectors.residence.simulator --port 8102``."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8102, help="port to listen on")
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
