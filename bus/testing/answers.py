"""How a sick partner answers: late, never, busy, garbled; and how it refuses an oversized call.

The switches say *whether* (:mod:`bus.testing.switches`); a :class:`SickAnswers` says *how*, in
the partner's own dialect (a JSON gateway answers ``{"message": ...}`` with 503, a SOAP service
a ``soap:Server`` fault), so that a connector meets exactly what the real system sends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from bus.testing.state import PartnerState
from bus.testing.switches import FaultSwitches

__all__ = [
    "BROKEN_PAGE",
    "SickAnswers",
    "broken_page",
    "gateway_timeout",
    "read_capped_body",
    "sick_answer",
    "suffer_delays",
]

BROKEN_PAGE: Final = "<html><body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body></html>"
"""A reverse proxy's error page, served with HTTP 200. ``<hr>`` is never closed, so it is
neither JSON nor well-formed XML: whatever protocol the connector expects, it cannot read it."""

_DISCONNECT_POLL_SECONDS: Final = 0.05


def broken_page() -> Response:
    """:data:`BROKEN_PAGE` with HTTP 200, as a misconfigured gateway answers."""
    return Response(BROKEN_PAGE, media_type="text/html")


def gateway_timeout() -> Response:
    """An empty HTTP 504, what a gateway answers once the partner behind it hung."""
    return Response(status_code=504)


@dataclass(frozen=True, slots=True)
class SickAnswers:
    """What a partner answers, in its own dialect, when its switches make it sick."""

    #: The answer to a call drawn by ``error_rate`` (e.g. HTTP 503 with the partner's message).
    busy: Callable[[], Response]
    #: The answer once a ``hang`` ends (the client has usually given up by then).
    timed_out: Callable[[], Response] = gateway_timeout
    #: The answer while ``malformed`` is on.
    malformed: Callable[[], Response] = broken_page


async def suffer_delays(request: Request, faults: FaultSwitches) -> bool:
    """Apply ``latency_ms`` and ``hang``; False when the call hung (answer it as timed out)."""
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


async def sick_answer(
    request: Request, state: PartnerState[Any], answers: SickAnswers
) -> Response | None:
    """The sick-partner answer this call gets, if the switches say so; else None.

    In order: latency, hang (``answers.timed_out``), a drawn ``error_rate`` (``answers.busy``),
    ``malformed``. A call answered here has not been applied.
    """
    faults = state.current_faults()
    if not await suffer_delays(request, faults):
        return answers.timed_out()
    if faults.error_rate and state.draw_error(faults.error_rate):
        return answers.busy()
    if faults.malformed:
        return answers.malformed()
    return None


async def read_capped_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is larger than ``limit`` bytes (answer it 413).

    A declared ``Content-Length`` above the limit is refused before anything is read.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    raw = await request.body()
    return raw if len(raw) <= limit else None
