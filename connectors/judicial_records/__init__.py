"""Judicial-records connector: dossier statuses pulled from the judicial-records software.

The simulator's names are imported on first use, so loading the connector (the entry point
``lienthong_bus.connectors: judicial_records``) does not import FastAPI, and
``python -m connectors.judicial_records.simulator`` runs without a double import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from connectors.judicial_records.connector import DEFAULT_MAPPING, JudicialRecordsConnector

if TYPE_CHECKING:
    from connectors.judicial_records.simulator import SimulatorState, create_simulator_app

__all__ = ["DEFAULT_MAPPING", "JudicialRecordsConnector", "SimulatorState", "create_simulator_app"]

_LAZY = frozenset({"SimulatorState", "create_simulator_app"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("connectors.judicial_records.simulator"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
