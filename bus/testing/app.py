"""A simulator's app and process: the ``/_sim/`` control routes, and ``main()`` served by uvicorn.

Every simulator answers the same control surface, so tests, ``bus run`` and an operator's curl
drive any partner alike:

==========================  ===============================================================
``POST /_sim/faults``       replace the failure switches (a switch left out is off; 422 for an
                            unknown switch or a value out of range)
``GET /_sim/faults``        the switches in force
``POST /_sim/reset``        switches off, counters zeroed, records forgotten; answers the stats
``GET /_sim/stats``         exact counters (``bus run`` waits for this route before going on)
==========================  ===============================================================
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI

from bus.testing.state import PartnerState
from bus.testing.switches import FaultSwitches

__all__ = ["ACCESS_LOG_LEVELS", "admin_router", "run_simulator", "simulator_app"]

ACCESS_LOG_LEVELS = frozenset({"debug", "trace", "info"})
"""Log levels at which a simulator logs one line per call (below them, it drowns the rest)."""


def admin_router(state: PartnerState[Any]) -> APIRouter:
    """The ``/_sim/`` control routes of ``state``, validated against its own switches' model."""
    switches = type(state.current_faults())
    router = APIRouter(prefix="/_sim", tags=["simulator"])

    async def set_faults(faults: FaultSwitches) -> FaultSwitches:
        """Replace the failure switches; fields left out are switched off."""
        state.set_faults(faults)
        return faults

    async def get_faults() -> FaultSwitches:
        """The failure switches in force."""
        faults: FaultSwitches = state.current_faults()
        return faults

    # FastAPI validates the body and documents it from the annotations: give it the partner's
    # own switches, so that its extra switches are accepted and a misspelt one is refused.
    set_faults.__annotations__.update({"faults": switches, "return": switches})
    get_faults.__annotations__["return"] = switches

    async def reset() -> dict[str, Any]:
        """Switch every fault off and forget every record and counter."""
        state.reset()
        return state.stats()

    async def stats() -> dict[str, Any]:
        """Exact counters, to prove nothing was lost or applied twice."""
        return state.stats()

    router.add_api_route("/faults", set_faults, methods=["POST"])
    router.add_api_route("/faults", get_faults, methods=["GET"])
    router.add_api_route("/reset", reset, methods=["POST"])
    router.add_api_route("/stats", stats, methods=["GET"])
    return router


def simulator_app(state: PartnerState[Any], *, title: str, description: str) -> FastAPI:
    """A FastAPI app with the ``/_sim/`` routes of ``state``, also at ``app.state.simulator``.

    Add the partner's own routes to it; they read and change ``state``.
    """
    app = FastAPI(title=title, description=description)
    app.state.simulator = state
    app.include_router(admin_router(state))
    return app


def run_simulator(
    build: Callable[[argparse.Namespace], Any],
    *,
    port: int,
    doc: str | None,
    argv: Sequence[str] | None = None,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
    access_log_levels: frozenset[str] = ACCESS_LOG_LEVELS,
) -> None:
    """Parse ``--host``, ``--port``, ``--seed``, ``--log-level`` (and ``options``), then serve.

    ``build`` makes the ASGI app from the parsed arguments; ``doc`` (the module's docstring)
    gives the help text its first line. This is what ``bus run`` starts, as
    ``python -m <simulator_module> --host <host> --port <port>``.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=port, help="port to listen on")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random draws")
    parser.add_argument("--log-level", default="info", help="uvicorn log level")
    if options is not None:
        options(parser)
    args = parser.parse_args(argv)
    uvicorn.run(
        build(args),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.log_level in access_log_levels,
    )
