"""Civil-status connector: birth and death registration in the Ministry of Justice's software.

The simulator's names are imported on first use, so loading the connector (the entry point
``lienthong_bus.connectors: civil_status``) does not import FastAPI, and
``python -m connectors.civil_status.simulator`` runs without a double import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from connectors.civil_status.connector import (
    DEATH_REGISTRATION,
    DEFAULT_MAPPING,
    CivilStatusConnector,
)

if TYPE_CHECKING:
    from connectors.civil_status.simulator import SimulatorState, create_simulator_app

__all__ = [
    "DEATH_REGISTRATION",
    "DEFAULT_MAPPING",
    "CivilStatusConnector",
    "SimulatorState",
    "create_simulator_app",
]

_LAZY = frozenset({"SimulatorState", "create_simulator_app"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("connectors.civil_status.simulator"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
