"""Social-insurance connector: a newborn's card, or a funeral allowance, from Social Security.

The simulator's names are imported on first use, so loading the connector (the entry point
``lienthong_bus.connectors: social_insurance``) does not import FastAPI, and
``python -m connectors.social_insurance.simulator`` runs without a double import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from connectors.social_insurance.connector import (
    CARD_REQUEST_PATH,
    DEFAULT_MAPPING,
    FUNERAL_ALLOWANCE,
    FUNERAL_ALLOWANCE_PATH,
    SocialInsuranceConnector,
)

if TYPE_CHECKING:
    from connectors.social_insurance.simulator import SimulatorState, create_simulator_app

__all__ = [
    "CARD_REQUEST_PATH",
    "DEFAULT_MAPPING",
    "FUNERAL_ALLOWANCE",
    "FUNERAL_ALLOWANCE_PATH",
    "SimulatorState",
    "SocialInsuranceConnector",
    "create_simulator_app",
]

_LAZY = frozenset({"SimulatorState", "create_simulator_app"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("connectors.social_insurance.simulator"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
