"""Portal connector: the provincial public-service portal hears of every status change.

The simulator's names are imported on first use, so loading the connector (the entry point
``lienthong_bus.connectors: portal``) does not import FastAPI, and
``python -m connectors.portal.simulator`` runs without a double import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from connectors.portal.connector import EVENTS_PATH, PortalConnector

if TYPE_CHECKING:
    from connectors.portal.simulator import SimulatorState, create_simulator_app

__all__ = ["EVENTS_PATH", "PortalConnector", "SimulatorState", "create_simulator_app"]

_LAZY = frozenset({"SimulatorState", "create_simulator_app"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("connectors.portal.simulator"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
