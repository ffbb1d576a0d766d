"""A stand-in for the provincial one-stop system's linkage API, for tests and demos.

It takes progress records the gateway way (every answer carries ``error_code``, 0 for success),
keeps each dossier's steps as the one-stop desk would show them, takes the same step once, and
can be made slow, flaky or hostile through ``/_sim/``::

    BUS_ONE_STOP_TOKEN=... python -m connectors.one_stop.simulator --host 127.0.0.1 --port 8106
    curl -X POST localhost:8106/_sim/faults -d '{"error_rate": 0.3}'
    curl localhost:8106/api/lienthong/hoSo/000.00.10.H12-261120-0001
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from bus.testing import (
    FaultSwitches,
    GatewayCode,
    GatewayRefusal,
    SickAnswers,
    TokenState,
    demo_secret,
    gateway_error,
    read_capped_body,
    read_json_object,
    required_text,
    run_simulator,
    sick_answer,
    simulator_app,
)
from connectors.one_stop.wire import DEMO_TOKEN, LOOKUP_PATH, PROGRESS_PATH, TOKEN_ENV

__all__ = ["ProgressStep", "SimulatorState", "create_simulator_app", "main"]

MAX_REQUEST_BYTES: Final = 1_000_000

BUSY: Final = SickAnswers(
    busy=lambda: JSONResponse({"message": "Hệ thống một cửa đang bận"}, status_code=503)
)


@dataclass(frozen=True, slots=True)
class ProgressStep:
    """One step of a dossier as the one-stop desk shows it."""

    status: int
    agency: str
    at: str
    content: str | None


@dataclass(kw_only=True)
class SimulatorState(TokenState[FaultSwitches]):
    """The one-stop system's memory: each dossier's steps, in the order they arrived."""

    faults: FaultSwitches = field(default_factory=FaultSwitches)
    token: str = field(default=DEMO_TOKEN, repr=False)
    progress: dict[str, list[ProgressStep]] = field(default_factory=dict)
    applied: int = 0
    duplicates: int = 0

    def record(self, code: str, step: ProgressStep) -> bool:
        """Add a step; False when the dossier already has this very step (a repeat)."""
        with self.lock:
            steps = self.progress.setdefault(code, [])
            if step in steps:
                self.duplicates += 1
                return False
            steps.append(step)
            self.applied += 1
            return True

    def steps_of(self, code: str) -> list[ProgressStep]:
        """A dossier's steps so far."""
        with self.lock:
            return list(self.progress.get(code, ()))

    def counters(self) -> dict[str, Any]:
        return {
            **super().counters(),
            "applied": self.applied,
            "duplicates": self.duplicates,
            "dossiers": len(self.progress),
        }

    def forget(self) -> None:
        super().forget()
        self.progress.clear()
        self.applied = self.duplicates = 0


def _records(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``data`` list of a call: one or more records, each an object."""
    records = payload.get("data")
    if not isinstance(records, list) or not records:
        raise GatewayRefusal(GatewayCode.RECORD_UNCOMPLETE, "Thiếu danh sách data")
    if not all(isinstance(record, dict) for record in records):
        raise GatewayRefusal(GatewayCode.DATA_TYPE_INVALID, "data phải là danh sách đối tượng")
    return records


def _step(record: dict[str, Any]) -> tuple[str, ProgressStep]:
    """The dossier code and step of one CapNhatTienDoHoSoMC record, checked like the gateway."""
    code = required_text(record, "MaHoSo")
    status = record.get("TrangThai")
    if not isinstance(status, int) or not 1 <= status <= 10:
        raise GatewayRefusal(GatewayCode.DATA_INCORRECT, "TrangThai phải là số từ 1 đến 10")
    at = required_text(record, "ThoiDiemXuLy")
    if len(at) != 14 or not at.isdigit():
        raise GatewayRefusal(GatewayCode.DATA_TYPE_INVALID, "ThoiDiemXuLy phải là yyyyMMddHHmmss")
    content = record.get("NoiDungXuLy")
    return code, ProgressStep(status, "", at, content if isinstance(content, str) else None)


def create_simulator_app(state: SimulatorState | None = None) -> FastAPI:
    """The one-stop simulator's app; ``state`` is its memory (a fresh one by default)."""
    state = state if state is not None else SimulatorState()
    app = simulator_app(
        state,
        title="Provincial one-stop system (simulator)",
        description="Takes the progress of dossiers from the other agencies' systems.",
    )

    @app.post(PROGRESS_PATH)
    async def update_progress(request: Request) -> Response:
        state.record_request(request)
        if not state.authorized(request):
            return gateway_error(GatewayCode.AUTHEN_ERROR, "Sai mã truy cập", status_code=401)
        raw = await read_capped_body(request, MAX_REQUEST_BYTES)
        if raw is None:
            return gateway_error(GatewayCode.DATA_INCORRECT, "Dữ liệu quá lớn", status_code=413)
        if (sick := await sick_answer(request, state, BUSY)) is not None:
            return sick
        if state.current_faults().reject_all:
            return gateway_error(GatewayCode.DATA_INCORRECT, "Hồ sơ không hợp lệ")
        try:
            payload = read_json_object(raw)
            agency = required_text(payload, "madonvi")
            steps = [_step(record) for record in _records(payload)]
        except GatewayRefusal as refusal:
            return refusal.response()
        for code, step in steps:
            state.record(code, ProgressStep(step.status, agency, step.at, step.content))
        return JSONResponse({"error_code": 0, "message": "Thành công"})

    @app.get(LOOKUP_PATH)
    async def look_up(code: str) -> Response:
        steps = state.steps_of(code)
        if not steps:
            return gateway_error(GatewayCode.RECORD_NOT_FOUND, f"Không tìm thấy hồ sơ {code}")
        return JSONResponse(
            {
                "error_code": 0,
                "MaHoSo": code,
                "TrangThai": steps[-1].status,
                "TienDo": [
                    {"TrangThai": s.status, "DonViXuLy": s.agency, "ThoiDiemXuLy": s.at}
                    for s in steps
                ],
            }
        )

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the simulator: ``python -m connectors.one_stop.simulator --port 8106``."""
    run_simulator(
        lambda args: create_simulator_app(
            SimulatorState(token=demo_secret(TOKEN_ENV, DEMO_TOKEN, what="token"), seed=args.seed)
        ),
        port=8106,
        doc=__doc__,
        argv=argv,
    )


if __name__ == "__main__":
    main()
