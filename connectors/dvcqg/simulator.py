"""A stand-in for the national public-service portal's sync API (DVCQG), for tests and demos.

It speaks the portal's protocol: a session login (``{username, password}`` with a ``dstcode``
header), then one service endpoint whose calls carry ``{session, madonvi, service, ...}`` in
their JSON body; every answer carries ``error_code`` (0 for success, 100 for a refused session,
the gateway's codes for refusals). ``DongBoHoSoMC`` keeps dossiers, ``CapNhatTienDoHoSoMC``
appends progress to a known one, ``TraCuuHoSo`` reads one back with its progress. It can be made
slow, flaky or hostile, and made to expire its sessions, through ``/_sim/``::

    BUS_DVCQG_PASSWORD=... python -m connectors.dvcqg.simulator --port 8105
    curl -X POST localhost:8105/_sim/faults -d '{"error_rate": 0.2, "session_max_calls": 3}'
    curl -X POST localhost:8105/_sim/expire-sessions
    curl localhost:8105/_sim/stats
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from bus.testing import (
    GATEWAY_SICK,
    DossierFaultSwitches,
    GatewayRefusal,
    SessionFaultSwitches,
    SessionState,
    add_session_login,
    dossier_fault_answer,
    gateway_error,
    read_gateway_payload,
    required_text,
    run_session_simulator,
    session_checked,
    simulator_app,
)
from bus.testing import GatewayCode as Code
from connectors.dvcqg.records import read_dossiers, read_steps
from connectors.dvcqg.wire import (
    DEMO_PASSWORD,
    DOSSIER_SYNC,
    LOGIN_PATH,
    LOOKUP,
    PASSWORD_ENV,
    PROGRESS,
    SERVICE_PATH,
)
from contracts import is_agency_code

__all__ = [
    "DEMO_PASSWORD",
    "PASSWORD_ENV",
    "PortalDossier",
    "SimulatorFaults",
    "SimulatorState",
    "create_simulator_app",
    "main",
]

MAX_REQUEST_BYTES: Final = 2_000_000
"""Requests larger than this are refused with HTTP 413, before they are parsed."""


class SimulatorFaults(SessionFaultSwitches, DossierFaultSwitches):
    """The failure switches in force; posting to ``/_sim/faults`` replaces all of them.

    The sick-portal switches apply to the login as well as to the calls: a sick gateway is
    sick for both. ``reject_all`` answers a sync or a progress call ``error_code`` 500.
    """

    error_code: int | None = Field(
        default=None,
        ge=1,
        le=999,
        description="Answer every service call this gateway error_code with HTTP 200, unapplied",
    )


@dataclass
class PortalDossier:
    """One dossier as the portal holds it: the last record synced and every progress step."""

    record: dict[str, Any]
    #: The madonvi of the call that synced it (the receiving agency).
    agency: str
    progress: list[dict[str, Any]] = field(default_factory=list)
    #: Calls with isUpdating true that replaced the record.
    updates: int = 0

    @property
    def status(self) -> int:
        """TrangThaiHoSo: the last progress step's TrangThai, else the synced one."""
        if self.progress:
            return int(self.progress[-1]["TrangThai"])
        return int(self.record["TrangThaiHoSo"])

    def answer(self) -> dict[str, Any]:
        """The body of a ``TraCuuHoSo`` answer for this dossier."""
        return _ok(
            "Thành công",
            data={
                **self.record,
                "TrangThaiHoSo": self.status,
                "DanhSachTienDo": [dict(step) for step in self.progress],
            },
        )


@dataclass(kw_only=True)
class SimulatorState(SessionState[SimulatorFaults]):
    """The portal's account, sessions, dossiers and counters; safe to share between threads."""

    faults: SimulatorFaults = field(default_factory=SimulatorFaults)
    dossiers: dict[str, PortalDossier] = field(default_factory=dict)
    #: Dossier codes in the order of their first sync.
    synced_codes: list[str] = field(default_factory=list)
    synced: int = 0
    updated: int = 0
    #: Progress steps appended.
    steps: int = 0
    #: Syncs of a dossier already held and steps already recorded: taken, not applied again.
    duplicates: int = 0
    #: Calls answered HTTP 503 by the error_rate or failing_dossiers switches.
    unavailable: int = 0

    def count_unavailable(self) -> None:
        """Count one call answered HTTP 503."""
        with self.lock:
            self.unavailable += 1

    def sync(self, agency: str, records: list[dict[str, Any]], *, updating: bool) -> None:
        """DongBoHoSoMC: keep new dossiers, or replace known ones; all or nothing.

        Raises RECORD_NOT_FOUND when an update names a dossier the portal does not hold.
        """
        with self.lock:
            if updating:
                self._require_held(records)
            for record in records:
                code = record["MaHoSo"]
                held = self.dossiers.get(code)
                if held is None:
                    self.dossiers[code] = PortalDossier(record=record, agency=agency)
                    self.synced_codes.append(code)
                    self.synced += 1
                elif updating:
                    held.record = record
                    held.updates += 1
                    self.updated += 1
                else:
                    # The same dossier pushed again as new (a caller repeating a call whose
                    # answer it lost): the portal keeps the one it has.
                    self.duplicates += 1

    def add_progress(self, steps: list[dict[str, Any]]) -> None:
        """CapNhatTienDoHoSoMC: append steps to known dossiers; all or nothing.

        Raises RECORD_NOT_FOUND when a step names a dossier the portal does not hold.
        """
        with self.lock:
            self._require_held(steps)
            for step in steps:
                held = self.dossiers[step["MaHoSo"]]
                if step in held.progress:
                    self.duplicates += 1
                    continue
                held.progress.append(step)
                self.steps += 1

    def _require_held(self, records: list[dict[str, Any]]) -> None:
        """RECORD_NOT_FOUND unless every record names a held dossier; called with ``lock``."""
        unknown = [r["MaHoSo"] for r in records if r["MaHoSo"] not in self.dossiers]
        if unknown:
            raise GatewayRefusal(Code.RECORD_NOT_FOUND, f"Không tìm thấy hồ sơ {unknown[0]}")

    def lookup(self, dossier_code: str) -> PortalDossier | None:
        """The dossier the portal holds under ``dossier_code``, if any (a copy)."""
        with self.lock:
            held = self.dossiers.get(dossier_code)
            if held is None:
                return None
            return PortalDossier(
                record=dict(held.record),
                agency=held.agency,
                progress=[dict(step) for step in held.progress],
                updates=held.updates,
            )

    def counters(self) -> dict[str, Any]:
        """Calls, dossiers synced, steps, duplicates, 503s, logins, refused sessions."""
        return {
            **super().counters(),
            "synced": self.synced,
            "updated": self.updated,
            "steps": self.steps,
            "duplicates": self.duplicates,
            "unavailable": self.unavailable,
            "synced_codes": list(self.synced_codes),
        }

    def forget(self) -> None:
        """Forget every dossier, session and counter (the account stays)."""
        super().forget()
        self.dossiers.clear()
        self.synced_codes.clear()
        self.synced = self.updated = self.steps = self.duplicates = self.unavailable = 0


def _ok(message: str, **extra: Any) -> dict[str, Any]:
    return {"error_code": 0, "message": message, **extra}


def _choked(state: SimulatorState, records: list[dict[str, Any]]) -> Response | None:
    """The answer to a call carrying a dossier the switches choke on or refuse; else None."""
    faults = state.current_faults()
    for record in records:
        refused = dossier_fault_answer(faults, record["MaHoSo"])
        if refused is not None:
            if refused.status_code == 503:  # choked on, not refused: the portal was unavailable
                state.count_unavailable()
            return refused
    return None


def _serve(state: SimulatorState, payload: dict[str, Any]) -> Response:
    """Dispatch one authenticated service call on its ``service`` field."""
    service = required_text(payload, "service")
    agency = required_text(payload, "madonvi")
    if not is_agency_code(agency):
        raise GatewayRefusal(
            Code.AGENCY_ID_INCORRECT, f"Mã đơn vị (madonvi) không hợp lệ: {agency[:40]}"
        )
    if service == DOSSIER_SYNC:
        updating = payload.get("isUpdating")
        if updating is None:
            raise GatewayRefusal(Code.RECORD_UNCOMPLETE, "Thiếu thông tin bắt buộc: isUpdating")
        if not isinstance(updating, bool):
            raise GatewayRefusal(Code.DATA_TYPE_INVALID, "isUpdating phải là true hoặc false")
        records = read_dossiers(payload.get("data"))
        if (choked := _choked(state, records)) is not None:
            return choked
        state.sync(agency, records, updating=updating)
        return JSONResponse(_ok("Đồng bộ hồ sơ thành công", count=len(records)))
    if service == PROGRESS:
        steps = read_steps(payload.get("data"))
        if (choked := _choked(state, steps)) is not None:
            return choked
        state.add_progress(steps)
        return JSONResponse(_ok("Cập nhật tiến độ hồ sơ thành công", count=len(steps)))
    if service == LOOKUP:
        held = state.lookup(required_text(payload, "MaHoSo"))
        if held is None:
            raise GatewayRefusal(Code.RECORD_NOT_FOUND, "Không tìm thấy hồ sơ")
        return JSONResponse(held.answer())
    raise GatewayRefusal(Code.DATA_TYPE_INVALID, f"Dịch vụ không được hỗ trợ: {service[:40]}")


def create_simulator_app(state: SimulatorState) -> FastAPI:
    """A FastAPI app that behaves like DVCQG's sync API; ``app.state.simulator``."""
    app = simulator_app(
        state,
        title="DVCQG sync simulator (Cổng Dịch vụ công quốc gia)",
        description="A stand-in for the national public-service portal's dossier sync API.",
    )

    def busy() -> Response:
        state.count_unavailable()  # counted, so that a test can prove each 503 was retried
        return GATEWAY_SICK.busy()

    sick = replace(GATEWAY_SICK, busy=busy)

    async def read_payload(request: Request) -> dict[str, Any] | Response:
        # DVCQG calls an oversized body a wrong data type, not incorrect data.
        return await read_gateway_payload(
            request, state, limit=MAX_REQUEST_BYTES, answers=sick, too_large=Code.DATA_TYPE_INVALID
        )

    add_session_login(app, state, path=LOGIN_PATH, read_payload=read_payload)
    read_call = session_checked(read_payload, state)

    @app.post(SERVICE_PATH, tags=["dịch vụ"])
    async def service(request: Request) -> Response:
        """DongBoHoSoMC, CapNhatTienDoHoSoMC or TraCuuHoSo, as the body's ``service`` says."""
        state.record_request(request)
        payload = await read_call(request)
        if isinstance(payload, Response):
            return payload
        forced = state.current_faults().error_code
        if forced is not None:
            return gateway_error(forced, "Lỗi do cổng trả về (giả lập)")
        try:
            return _serve(state, payload)
        except GatewayRefusal as refusal:
            return refusal.response()

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the simulator: ``python -m connectors.dvcqg.simulator --port 8105``."""
    run_session_simulator(
        lambda account: create_simulator_app(SimulatorState(**account)),
        port=8105,
        doc=__doc__,
        argv=argv,
        password_env=PASSWORD_ENV,
        demo_password=DEMO_PASSWORD,
    )


if __name__ == "__main__":
    main()
