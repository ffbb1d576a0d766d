"""Residence connector: permanent residence, registered or removed, in Public Security's software.

The simulator's names are imported on first use, so loading the connector (the entry point
``lienthong_bus.connectors: residence``) does not import FastAPI, and
``python -m connectors.residence.simulator`` runs without a double import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from connectors.residence.connector import (
    DEFAULT_MAPPING,
    REGISTER_PATH,
    REMOVAL_PATH,
    REMOVE_PERMANENT_RESIDENCE,
    ResidenceConnector,
)

if TYPE_CHECKING:
    from connectors.residence.simulator import SimulatorState, create_simulator_app

__all__ = [
    "DEFAULT_MAPPING",
    "REGISTER_PATH",
    "REMOVAL_PATH",
    "REMOVE_PERMANENT_RESIDENCE",
    "ResidenceConnector",
    "SimulatorState",
    "create_simulator_app",
]

_LAZY = frozenset({"SimulatorState", "create_simulator_app"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("connectors.residence.simulator"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
