"""A stand-in for the provincial public-service portal, for tests and demos.

It takes the bus's status events the way a portal built on any CloudEvents SDK would (HTTP
binding, structured or binary mode, read here with the official ``cloudevents`` SDK), keeps
each dossier's latest status for citizens' look-ups, takes every event id once, and ignores an
event older than the status it shows. It can be made slow, flaky or hostile through ``/_sim/``::

    BUS_PORTAL_TOKEN=... python -m connectors.portal.simulator --host 127.0.0.1 --port 8107
    curl -X POST localhost:8107/_sim/faults -d '{"error_rate": 0.3}'
    curl localhost:8107/api/tra-cuu/000.00.10.H12-261120-0001
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from bus.testing import (
    FaultSwitches,
    SickAnswers,
    TokenState,
    demo_secret,
    read_capped_body,
    run_simulator,
    sick_answer,
    simulator_app,
)
from connectors.portal.wire import DEMO_TOKEN, EVENTS_PATH, LOOKUP_PATH, TOKEN_ENV
from contracts import EVENT_DOSSIER_STATUS_CHANGED

__all__ = [
    "PortalDossier",
    "SimulatorState",
    "create_simulator_app",
    "main",
]

MAX_EVENT_BYTES: Final = 1_000_000

BUSY: Final = SickAnswers(
    busy=lambda: JSONResponse({"message": "Cổng dịch vụ công đang bảo trì"}, status_code=503)
)


@dataclass(frozen=True, slots=True)
class Step:
    """One status a dossier went through, as the portal shows it."""

    sequence: int
    status: int
    agency: str
    changed_at: str
    event_id: str


@dataclass(slots=True)
class PortalDossier:
    """What a citizen sees of one dossier: its latest status and the way there."""

    code: str
    status: int
    sequence: int
    steps: list[Step] = field(default_factory=list)


@dataclass(kw_only=True)
class SimulatorState(TokenState[FaultSwitches]):
    """The portal's memory: dossiers by code, event ids taken, and why events were set aside."""

    faults: FaultSwitches = field(default_factory=FaultSwitches)
    token: str = field(default=DEMO_TOKEN, repr=False)
    dossiers: dict[str, PortalDossier] = field(default_factory=dict)
    event_ids: set[str] = field(default_factory=set)
    applied: int = 0
    duplicates: int = 0
    #: Events older than the status already shown: a bus must never send them.
    stale: int = 0

    def take(self, event_id: str, code: str, sequence: int, step: Step) -> str:
        """Apply one event; says whether it was ``applied``, a ``duplicate`` or ``stale``."""
        with self.lock:
            if event_id in self.event_ids:
                self.duplicates += 1
                return "duplicate"
            self.event_ids.add(event_id)
            dossier = self.dossiers.get(code)
            if dossier is not None and sequence <= dossier.sequence:
                self.stale += 1
                return "stale"
            if dossier is None:
                dossier = self.dossiers[code] = PortalDossier(code, step.status, sequence)
            dossier.status, dossier.sequence = step.status, sequence
            dossier.steps.append(step)
            self.applied += 1
            return "applied"

    def lookup(self, code: str) -> PortalDossier | None:
        """A dossier as the portal shows it, if it has heard of it."""
        with self.lock:
            return self.dossiers.get(code)

    def counters(self) -> dict[str, Any]:
        return {
            **super().counters(),
            "applied": self.applied,
            "duplicates": self.duplicates,
            "stale": self.stale,
            "dossiers": len(self.dossiers),
        }

    def forget(self) -> None:
        super().forget()
        self.dossiers.clear()
        self.event_ids.clear()
        self.applied = self.duplicates = self.stale = 0


def _refusal(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status_code)


def create_simulator_app(state: SimulatorState | None = None) -> FastAPI:
    """The portal simulator's app; ``state`` is its memory (a fresh one by default)."""
    state = state if state is not None else SimulatorState()
    app = simulator_app(
        state,
        title="Provincial public-service portal (simulator)",
        description="Takes the bus's status events as CloudEvents over HTTP.",
    )

    @app.post(EVENTS_PATH)
    async def take_event(request: Request) -> Response:
        state.record_request(request)
        if not state.authorized(request):
            return _refusal(401, "Sai hoặc thiếu mã truy cập")
        raw = await read_capped_body(request, MAX_EVENT_BYTES)
        if raw is None:
            return _refusal(413, "Sự kiện quá lớn")
        if (sick := await sick_answer(request, state, BUSY)) is not None:
            return sick
        if state.current_faults().reject_all:
            return _refusal(422, "Cổng không nhận sự kiện này")
        try:
            event = from_http(HTTPMessage(dict(request.headers.items()), raw), JSONFormat())
        except Exception as exc:  # the SDK raises several types for unreadable events
            return _refusal(400, f"Không đọc được sự kiện CloudEvents: {exc}")
        if event.get_type() != EVENT_DOSSIER_STATUS_CHANGED:
            return _refusal(422, f"Cổng không nhận sự kiện loại {event.get_type()}")
        data: Any = event.get_data()
        sequence = event.get_extension("dossierseq")
        code = event.get_subject()
        if not isinstance(data, dict) or not isinstance(sequence, int) or not code:
            return _refusal(422, "Thiếu mã hồ sơ, số thứ tự hoặc trạng thái")
        step = Step(
            sequence=sequence,
            status=int(data.get("status", 0)),
            agency=str(data.get("agency", "")),
            changed_at=str(data.get("changed_at", "")),
            event_id=event.get_id(),
        )
        outcome = state.take(event.get_id(), code, sequence, step)
        return JSONResponse({"ketQua": outcome, "maHoSo": code})

    @app.get(LOOKUP_PATH)
    async def look_up(code: str) -> Response:
        dossier = state.lookup(code)
        if dossier is None:
            return _refusal(404, f"Không tìm thấy hồ sơ {code}")
        return JSONResponse(
            {
                "maHoSo": dossier.code,
                "trangThai": dossier.status,
                "lichSu": [
                    {
                        "thuTu": s.sequence,
                        "trangThai": s.status,
                        "donVi": s.agency,
                        "thoiDiem": s.changed_at,
                    }
                    for s in dossier.steps
                ],
            }
        )

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the simulator: ``python -m connectors.portal.simulator --port 8107``."""
    run_simulator(
        lambda args: create_simulator_app(
            SimulatorState(token=demo_secret(TOKEN_ENV, DEMO_TOKEN, what="token"), seed=args.seed)
        ),
        port=8107,
        doc=__doc__,
        argv=argv,
    )


if __name__ == "__main__":
    main()
