"""DVCQG connector: dossier sync with the national public-service portal (Cổng DVC quốc gia).

The simulator's names are imported on first use, so loading the connector (the entry point
``lienthong_bus.connectors: dvcqg``) does not import FastAPI, and
``python -m connectors.dvcqg.simulator`` runs without a double import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from connectors.dvcqg.connector import DEFAULT_MAPPING, DvcqgConnector
from connectors.dvcqg.wire import (
    DEMO_PASSWORD,
    DOSSIER_SYNC,
    LOGIN_PATH,
    LOOKUP,
    PASSWORD_ENV,
    PROGRESS,
    SERVICE_PATH,
)

if TYPE_CHECKING:
    from connectors.dvcqg.simulator import SimulatorFaults, SimulatorState, create_simulator_app

__all__ = [
    "DEFAULT_MAPPING",
    "DEMO_PASSWORD",
    "DOSSIER_SYNC",
    "LOGIN_PATH",
    "LOOKUP",
    "PASSWORD_ENV",
    "PROGRESS",
    "SERVICE_PATH",
    "DvcqgConnector",
    "SimulatorFaults",
    "SimulatorState",
    "create_simulator_app",
]

_LAZY = frozenset({"SimulatorFaults", "SimulatorState", "create_simulator_app"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("connectors.dvcqg.simulator"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
