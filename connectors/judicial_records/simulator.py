"""A stand-in for the judicial-records software (lý lịch tư pháp), for tests and demos.

It keeps a list of status records, each numbered (``stt``) in the order it appeared. Records
appear over time (``--appear-every`` seconds: dossiers going through 3 processing, 4 result
ready, 5 result returned) or when posted to ``/_sim/records``. The list answers the records not
yet acknowledged whose day (``ngayCapNhat``, dd/MM/yyyy) lies in ``[tuNgay, denNgay]``, after
record ``sauStt``, at most ``soBanGhi`` of them; ``danhDauHsThanhCong`` marks listed records
fetched, and only those are never listed again. Failure switches live under ``/_sim/``::

    python -m connectors.judicial_records.simulator --host 127.0.0.1 --port 8104
    curl -X POST localhost:8104/_sim/records -H 'content-type: application/json' \\
         -d '[{"maHoSo": "000.00.10.H12-240402-0007", "trangThai": 3, "ngayCapNhat": "03/04/2024"}]'
    curl -X POST localhost:8104/_sim/faults -H 'content-type: application/json' \\
         -d '{"error_rate": 0.3}'
    curl localhost:8104/_sim/stats
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bus.testing import (
    FaultSwitches,
    PartnerState,
    SickAnswers,
    read_capped_body,
    run_simulator,
    sick_answer,
    simulator_app,
)
from connectors.judicial_records.connector import ACKNOWLEDGE_PATH, LIST_PATH
from contracts import VN_TZ, make_dossier_code

__all__ = [
    "NewRecord",
    "SimulatorFaults",
    "SimulatorState",
    "StatusRecord",
    "create_simulator_app",
    "main",
]

MAX_REQUEST_BYTES: Final = 1_000_000
"""Requests larger than this are refused with HTTP 413, before they are parsed."""

MAX_PAGE: Final = 1000
"""The most records one list call may ask for."""

_DAY: Final = "%d/%m/%Y"
_MAX_CATCH_UP: Final = 100
# What the simulated Department of Justice writes at each step (invented names).
_STEPS: Final[dict[int, str]] = {
    3: "Đã gửi văn bản tra cứu thông tin lý lịch tư pháp đến Công an tỉnh",
    4: "Đã cấp Phiếu lý lịch tư pháp, chuyển Bộ phận Một cửa trả kết quả",
    5: "Đã trả Phiếu lý lịch tư pháp cho người yêu cầu",
}
_OFFICERS: Final = ("Lê Thị Hồng", "Vũ Minh Tuấn", "Trần Thu Yến")


class SimulatorFaults(FaultSwitches):
    """The failure switches in force; posting to ``/_sim/faults`` replaces all of them.

    ``reject_all`` answers every call ``maLoi`` 100 (AUTHEN_ERROR) with HTTP 200.
    """

    drop_acknowledgements: bool = Field(
        default=False,
        description="Answer danhDauHsThanhCong with HTTP 503 and mark nothing (lists still work)",
    )


class NewRecord(BaseModel):
    """A status record posted to ``/_sim/records`` (the software's own fields)."""

    model_config = ConfigDict(extra="forbid")

    maHoSo: str = Field(max_length=100)
    trangThai: int | str = Field(description="3 processing, 4 result ready, 5 result returned")
    ngayCapNhat: str | None = Field(
        default=None, description="dd/MM/yyyy; default: today (Asia/Ho_Chi_Minh)"
    )
    nguoiXuLy: str | None = None
    ghiChu: str | None = None
    soPhieu: str | None = None

    @field_validator("ngayCapNhat")
    @classmethod
    def _day_first(cls, value: str | None) -> str | None:
        if value is not None:
            _read_day(value, "ngayCapNhat")
        return value

    @property
    def day(self) -> date | None:
        """``ngayCapNhat`` as a date, when given."""
        return None if self.ngayCapNhat is None else _read_day(self.ngayCapNhat, "ngayCapNhat")


@dataclass
class StatusRecord:
    """One record of the software's status list."""

    number: int
    dossier_code: str
    status: int | str
    day: date
    officer: str | None = None
    note: str | None = None
    certificate: str | None = None
    listed: int = 0
    acknowledged: bool = False

    def item(self) -> dict[str, Any]:
        """The record as the list answers it."""
        return {
            "stt": self.number,
            "maHoSo": self.dossier_code,
            "trangThai": self.status,
            "ngayCapNhat": self.day.strftime(_DAY),
            "nguoiXuLy": self.officer,
            "ghiChu": self.note,
            "soPhieu": self.certificate,
        }


@dataclass(kw_only=True)
class SimulatorState(PartnerState[SimulatorFaults]):
    """The simulator's status list and counters; safe to share between threads."""

    faults: SimulatorFaults = field(default_factory=SimulatorFaults)
    #: A new record appears this often (None: only posted records).
    appear_every_seconds: float | None = None
    #: Receiving agency of the dossiers the generated records are about.
    agency: str = "000.00.10.H12"
    records: list[StatusRecord] = field(default_factory=list)
    list_calls: int = 0
    listed: int = 0
    acknowledge_calls: int = 0
    acknowledged: int = 0
    _next_appearance: datetime | None = field(default=None, repr=False)
    _in_progress: dict[str, int] = field(default_factory=dict, repr=False)
    _generated: int = field(default=0, repr=False)

    def add(
        self,
        dossier_code: str,
        status: int | str,
        day: date | None = None,
        *,
        officer: str | None = None,
        note: str | None = None,
        certificate: str | None = None,
    ) -> StatusRecord:
        """Append a record to the list (dated today unless ``day`` says otherwise)."""
        with self.lock:
            return self._add(dossier_code, status, day, officer, note, certificate)

    def _add(
        self,
        dossier_code: str,
        status: int | str,
        day: date | None,
        officer: str | None,
        note: str | None,
        certificate: str | None,
    ) -> StatusRecord:
        record = StatusRecord(
            number=len(self.records) + 1,
            dossier_code=dossier_code,
            status=status,
            day=day or self.clock().astimezone(VN_TZ).date(),
            officer=officer,
            note=note,
            certificate=certificate,
        )
        self.records.append(record)
        return record

    def page(
        self, since: date, until: date | None, after: int, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Unacknowledged records dated in ``[since, until]`` numbered above ``after``."""
        with self.lock:
            self._appear()
            self.list_calls += 1
            matching = [
                record
                for record in self.records
                if not record.acknowledged
                and record.number > after
                and since <= record.day
                and (until is None or record.day <= until)
            ]
            chosen = matching[:limit]
            for record in chosen:
                record.listed += 1
            self.listed += len(chosen)
            return [record.item() for record in chosen], len(matching) > limit

    def acknowledge(self, marks: list[tuple[str, str]]) -> int:
        """Mark listed records fetched by (maHoSo, trangThai); returns how many were marked."""
        wanted = set(marks)
        with self.lock:
            self.acknowledge_calls += 1
            marked = 0
            for record in self.records:
                key = (record.dossier_code, str(record.status))
                if key in wanted and record.listed and not record.acknowledged:
                    record.acknowledged = True
                    marked += 1
            self.acknowledged += marked
            return marked

    def counters(self) -> dict[str, Any]:
        """Exact counters: records held, listed (with repeats), acknowledged, still pending."""
        self._appear()
        return {
            "records": len(self.records),
            "list_calls": self.list_calls,
            "listed": self.listed,
            "acknowledge_calls": self.acknowledge_calls,
            "acknowledged": self.acknowledged,
            "pending": sum(1 for record in self.records if not record.acknowledged),
            "listed_more_than_once": sum(1 for r in self.records if r.listed > 1),
        }

    def snapshot(self) -> list[dict[str, Any]]:
        """Every record with its state (listed how often, acknowledged or not)."""
        with self.lock:
            self._appear()
            return [
                {**record.item(), "daLietKe": record.listed, "daDanhDau": record.acknowledged}
                for record in self.records
            ]

    def forget(self) -> None:
        """Forget every record and counter."""
        self.records.clear()
        self.list_calls = self.listed = self.acknowledge_calls = self.acknowledged = 0
        self._next_appearance = None
        self._in_progress.clear()
        self._generated = 0

    def _appear(self) -> None:
        """Add the records due by now (called under the lock)."""
        if self.appear_every_seconds is None:
            return
        now = self.clock()
        step = timedelta(seconds=self.appear_every_seconds)
        if self._next_appearance is None:
            self._next_appearance = now
        for _ in range(_MAX_CATCH_UP):
            if self._next_appearance > now:
                break
            self._next_appearance += step
            self._step_a_dossier(now)

    def _step_a_dossier(self, now: datetime) -> None:
        """A dossier enters the software (status 3) or moves one step further (4, then 5)."""
        if self._in_progress and self.rng.random() < 0.6:
            code = self.rng.choice(sorted(self._in_progress))
            status = self._in_progress[code] + 1
        else:
            self._generated += 1
            day = now.astimezone(VN_TZ).date()
            code = make_dossier_code(self.agency, day, self._generated % 9999 + 1)
            status = 3
        if status >= 5:
            self._in_progress.pop(code, None)
        else:
            self._in_progress[code] = status
        certificate = f"{int(code[-4:])}/{now.year}/LLTP" if status >= 4 else None
        self._add(code, status, None, self.rng.choice(_OFFICERS), _STEPS[status], certificate)


def _answer(code: int, message: str, status_code: int = 200, **extra: Any) -> JSONResponse:
    return JSONResponse({"maLoi": code, "moTa": message, **extra}, status_code=status_code)


def _invalid(message: str) -> JSONResponse:
    return _answer(302, f"DATA_TYPE_INVALID: {message}", 400)


_SICK: Final = SickAnswers(
    busy=lambda: _answer(500, "Hệ thống đang bận, vui lòng thử lại sau", 503),
    timed_out=lambda: _answer(504, "Hết thời gian xử lý", 504),
)


async def _sick_answer(request: Request, sim: SimulatorState) -> Response | None:
    """The sick-partner answer this call gets, if the switches say so."""
    sick = await sick_answer(request, sim, _SICK)
    if sick is None and sim.current_faults().reject_all:
        return _answer(100, "AUTHEN_ERROR: tài khoản không có quyền truy cập")
    return sick


def _read_day(value: str | None, name: str) -> date:
    try:
        return datetime.strptime(value or "", _DAY).date()
    except ValueError:
        raise ValueError(f"{name} phải có dạng dd/MM/yyyy") from None


def _read_int(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise ValueError(f"{name} phải là số nguyên từ {low} đến {high}")
    return int(value)


def _read_marks(raw: bytes) -> list[tuple[str, str]]:
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"dữ liệu gửi lên không phải JSON hợp lệ: {exc}") from exc
    items = payload.get("danhSach") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not items:
        raise ValueError("danhSach phải là một danh sách không rỗng")
    marks = []
    for item in items:
        if not isinstance(item, dict):
            raise ValueError("mỗi phần tử của danhSach phải là một đối tượng")
        code, status = item.get("maHoSo"), item.get("trangThai")
        if (
            not isinstance(code, str)
            or isinstance(status, bool)
            or not isinstance(status, int | str)
        ):
            raise ValueError("mỗi phần tử phải có maHoSo và trangThai")
        marks.append((code, str(status)))
    return marks


def create_simulator_app(state: SimulatorState | None = None) -> FastAPI:
    """A FastAPI app that behaves like the judicial-records software; ``app.state.simulator``."""
    sim = state if state is not None else SimulatorState()
    app = simulator_app(
        sim,
        title="Judicial-records software simulator (lý lịch tư pháp)",
        description="A stand-in for the Department of Justice's judicial-records software.",
    )

    @app.get(LIST_PATH, tags=["lý lịch tư pháp"])
    async def status_list(request: Request) -> Response:
        """dsTrangThaiHoSo: unacknowledged status records dated tuNgay..denNgay, after sauStt."""
        sick = await _sick_answer(request, sim)
        if sick is not None:
            return sick
        query = request.query_params
        try:
            since = _read_day(query.get("tuNgay"), "tuNgay")
            until = _read_day(query["denNgay"], "denNgay") if "denNgay" in query else None
            after = _read_int(query.get("sauStt"), "sauStt", 0, 0, 10**12)
            limit = _read_int(query.get("soBanGhi"), "soBanGhi", 100, 1, MAX_PAGE)
        except ValueError as exc:
            return _invalid(str(exc))
        items, more = sim.page(since, until, after, limit)
        return _answer(0, "Thành công", data=items, conTiep=more)

    @app.post(ACKNOWLEDGE_PATH, tags=["lý lịch tư pháp"])
    async def acknowledge(request: Request) -> Response:
        """danhDauHsThanhCong: mark listed records fetched, so they are not listed again."""
        raw = await read_capped_body(request, MAX_REQUEST_BYTES)
        if raw is None:
            return _answer(500, "DATA_INCORRECT: dữ liệu gửi lên quá lớn", 413)
        sick = await _sick_answer(request, sim)
        if sick is not None:
            return sick
        if sim.current_faults().drop_acknowledgements:
            return _answer(500, "Hệ thống đang bận, vui lòng thử lại sau", 503)
        try:
            marks = _read_marks(raw)
        except ValueError as exc:
            return _invalid(str(exc))
        return _answer(0, "Thành công", soBanGhi=sim.acknowledge(marks))

    @app.post("/_sim/records", tags=["simulator"])
    async def add_records(records: list[NewRecord]) -> list[dict[str, Any]]:
        """Append records to the list, in order; answers them with their numbers."""
        added = []
        for new in records:
            record = sim.add(
                new.maHoSo,
                new.trangThai,
                new.day,
                officer=new.nguoiXuLy,
                note=new.ghiChu,
                certificate=new.soPhieu,
            )
            added.append(record.item())
        return added

    @app.get("/_sim/records", tags=["simulator"])
    async def records() -> list[dict[str, Any]]:
        """Every record, with how often it was listed and whether it was acknowledged."""
        return sim.snapshot()

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the simulator: ``python -m connectors.judicial_records.simulator --port 8104``."""

    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--appear-every",
            type=float,
            default=20.0,
            help="seconds between new status records (0: only records posted to /_sim/records)",
        )

    run_simulator(
        lambda args: create_simulator_app(
            SimulatorState(seed=args.seed, appear_every_seconds=args.appear_every or None)
        ),
        port=8104,
        doc=__doc__,
        argv=argv,
        options=options,
        # The bus polls every interval: a line per call drowns everything else unless asked for.
        access_log_levels=frozenset({"debug", "trace"}),
    )


if __name__ == "__main__":
    main()
