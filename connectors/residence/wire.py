"""The residence software's paths and operation names, shared by the connector and the simulator.

The names live here once so that the connector (which must not import the simulator, nor
FastAPI with it) and the simulator cannot drift apart.
"""

from __future__ import annotations

from typing import Final

__all__ = ["LOOKUP_PATH", "REGISTER_PATH", "REMOVAL_PATH", "REMOVE_PERMANENT_RESIDENCE"]

REGISTER_PATH: Final = "/api/cutru/dangKyThuongTru"
"""``dangKyThuongTru``: register a newborn's permanent residence, once per dossier code."""

REMOVAL_PATH: Final = "/api/cutru/xoaDangKyThuongTru"
"""``xoaDangKyThuongTru``: remove a deceased's permanent residence, once per dossier code."""

LOOKUP_PATH: Final = "/api/cutru/traCuuHoSo"
"""``traCuuHoSo``: what the software did for one dossier."""

REMOVE_PERMANENT_RESIDENCE: Final = "remove_permanent_residence"
"""The linkage operation (death bundle, step 2) that :data:`REMOVAL_PATH` serves."""
