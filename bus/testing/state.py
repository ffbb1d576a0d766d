"""A partner simulator's memory: its switches, seeded draws, counters and records, under one lock.

A simulator serves requests on its own event loop (often in a background thread, see
:func:`bus.testing.serve_app`) while a test reads its counters from another thread. So every
read and write goes through one lock, and nothing awaits while holding it: the counters stay
exact under any mix of concurrent requests and test threads.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Generic, TypeVar

from starlette.requests import Request

from bus.testing.switches import FaultSwitches
from contracts import VN_TZ

__all__ = [
    "MAX_RECORDED_REQUESTS",
    "PartnerState",
    "RecordedRequest",
    "RegisterState",
    "vn_now",
]

F = TypeVar("F", bound=FaultSwitches)
R = TypeVar("R")

MAX_RECORDED_REQUESTS: Final = 100
"""How many of the latest requests a simulator keeps (older ones are forgotten)."""


def vn_now() -> datetime:
    """Now, in Asia/Ho_Chi_Minh: the default clock of every simulator."""
    return datetime.now(VN_TZ)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One call as the simulator received it: line and headers, not the body (it may be big)."""

    method: str
    path: str
    query: str
    #: Header names in lower case; a repeated header keeps its last value.
    headers: Mapping[str, str]
    received_at: datetime

    def headers_starting(self, prefix: str) -> dict[str, str]:
        """The headers whose name starts with ``prefix`` (any case), e.g. ``"x-road-"``."""
        start = prefix.lower()
        return {name: value for name, value in self.headers.items() if name.startswith(start)}


@dataclass(kw_only=True)
class PartnerState(Generic[F]):
    """What every simulator keeps: the switches in force, seeded draws, the calls it received.

    Subclass it (as a ``@dataclass(kw_only=True)``) for a partner's own records, redeclaring
    ``faults`` with its default switches; guard your own fields with ``lock``, and extend
    :meth:`counters` and :meth:`forget` so that ``/_sim/stats`` and ``/_sim/reset`` cover them.
    """

    faults: F
    #: Seed of the error-rate draws, so that a flaky run can be repeated.
    seed: int | None = None
    clock: Callable[[], datetime] = vn_now
    #: Calls counted by :meth:`record_request` (the partner's main operation, typically).
    requests: int = 0
    recorded: deque[RecordedRequest] = field(
        default_factory=lambda: deque(maxlen=MAX_RECORDED_REQUESTS), repr=False
    )
    #: Held for every read and write of the state; never held across an ``await``.
    lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )
    #: The seeded random draws (reseeded by :meth:`reset`); use it with ``lock`` held.
    rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def record_request(self, request: Request) -> RecordedRequest:
        """Count one call, whatever its outcome, and keep its line and headers."""
        recorded = RecordedRequest(
            method=request.method,
            path=request.url.path,
            query=request.url.query,
            headers=dict(request.headers.items()),
            received_at=self.clock(),
        )
        with self.lock:
            self.requests += 1
            self.recorded.append(recorded)
        return recorded

    @property
    def last_request(self) -> RecordedRequest | None:
        """The latest call :meth:`record_request` kept, if any."""
        with self.lock:
            return self.recorded[-1] if self.recorded else None

    def set_faults(self, faults: F) -> None:
        """Replace the failure switches."""
        with self.lock:
            self.faults = faults

    def current_faults(self) -> F:
        """The failure switches in force."""
        with self.lock:
            return self.faults

    def draw_error(self, rate: float) -> bool:
        """Whether this call is one of the ``rate`` share that fails."""
        with self.lock:
            return self.rng.random() < rate

    def stats(self) -> dict[str, Any]:
        """Exact counters (what ``GET /_sim/stats`` answers)."""
        with self.lock:
            return self.counters()

    def reset(self) -> None:
        """Switch every fault off, zero the counters and forget every record."""
        with self.lock:
            self.faults = type(self.faults)()
            self.requests = 0
            self.recorded.clear()
            self.rng = random.Random(self.seed)
            self.forget()

    def counters(self) -> dict[str, Any]:
        """The counters :meth:`stats` answers; called with ``lock`` held. Extend in subclasses."""
        return {"requests": self.requests}

    def forget(self) -> None:
        """Forget the subclass's own records; called with ``lock`` held by :meth:`reset`."""


@dataclass(kw_only=True)
class RegisterState(PartnerState[F], Generic[F, R]):
    """The memory of a partner that acts on each dossier at most once, keyed by dossier code.

    :meth:`apply_once` keeps the first record made for a dossier and answers it again to every
    repeat, counting it as a duplicate: the partner side of exactly-once effect. ``stats()``
    says ``applied``, ``duplicates``, ``requests`` and ``applied_codes`` (in order).
    """

    records: dict[str, R] = field(default_factory=dict)
    applied_codes: list[str] = field(default_factory=list)
    applied: int = 0
    duplicates: int = 0
    _numbers: dict[Hashable, int] = field(default_factory=dict, init=False, repr=False)

    def apply_once(self, dossier_code: str, make: Callable[[], R]) -> tuple[R, bool]:
        """The dossier's record, made by ``make`` the first time; and whether it existed.

        ``make`` runs with ``lock`` held: it may read ``clock`` and call :meth:`next_number`,
        but nothing that takes the lock.
        """
        with self.lock:
            existing = self.records.get(dossier_code)
            if existing is not None:
                self.duplicates += 1
                return existing, True
            record = make()
            self.records[dossier_code] = record
            self.applied_codes.append(dossier_code)
            self.applied += 1
            return record, False

    def next_number(self, series: Hashable) -> int:
        """The next number (1, 2, …) of ``series``, e.g. a year; call it from ``make``."""
        number = self._numbers.get(series, 0) + 1
        self._numbers[series] = number
        return number

    def lookup(self, dossier_code: str) -> R | None:
        """The record of a dossier, if the partner has acted on it."""
        with self.lock:
            return self.records.get(dossier_code)

    def counters(self) -> dict[str, Any]:
        """Calls received, dossiers applied, duplicates answered, and the codes applied."""
        return {
            "applied": self.applied,
            "duplicates": self.duplicates,
            "requests": self.requests,
            "applied_codes": list(self.applied_codes),
        }

    def forget(self) -> None:
        """Forget every record and number."""
        self.records.clear()
        self.applied_codes.clear()
        self._numbers.clear()
        self.applied = self.duplicates = 0
