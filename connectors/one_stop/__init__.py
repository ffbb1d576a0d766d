"""One-stop connector: the provincial one-stop system hears what every agency did.

The simulator's names are imported on first use, so loading the connector (the entry point
``lienthong_bus.connectors: one_stop``) does not import FastAPI, and
``python -m connectors.one_stop.simulator`` runs without a double import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from connectors.one_stop.connector import DEFAULT_MAPPING, OneStopConnector

if TYPE_CHECKING:
    from connectors.one_stop.simulator import SimulatorState, create_simulator_app

__all__ = ["DEFAULT_MAPPING", "OneStopConnector", "SimulatorState", "create_simulator_app"]

_LAZY = frozenset({"SimulatorState", "create_simulator_app"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("connectors.one_stop.simulator"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
