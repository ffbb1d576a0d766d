"""Social Security's card gateway, as the connector and its simulator both speak it.

The names live here once so that the connector (which must not import the simulator, nor
FastAPI with it), the simulator and ``bus run`` cannot drift apart.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CARD_REQUEST_PATH",
    "DEMO_PASSWORD",
    "FUNERAL_ALLOWANCE",
    "FUNERAL_ALLOWANCE_PATH",
    "LOGIN_PATH",
    "LOOKUP_PATH",
    "PASSWORD_ENV",
]

LOGIN_PATH: Final = "/api/auth/login"
"""``{username, password}`` with the ``dstcode`` header; answers ``{error_code: 0, session}``."""

CARD_REQUEST_PATH: Final = "/api/bhyt/capTheTreEm"
"""``capTheTreEm``: a child's health-insurance card, once per dossier code (``maHoSo``)."""

FUNERAL_ALLOWANCE_PATH: Final = "/api/bhxh/giaiQuyetTroCapMaiTang"
"""``giaiQuyetTroCapMaiTang``: settle a deceased's funeral allowance, once per dossier code."""

LOOKUP_PATH: Final = "/api/bhyt/traCuuHoSo"
"""``traCuuHoSo``: what was decided for one dossier (a card, or a funeral allowance)."""

FUNERAL_ALLOWANCE: Final = "funeral_allowance"
"""The linkage operation (death bundle, step 3) that :data:`FUNERAL_ALLOWANCE_PATH` serves."""

PASSWORD_ENV: Final = "BUS_SOCIAL_INSURANCE_PASSWORD"
"""The environment variable both the connector and the simulator read the password from."""

DEMO_PASSWORD: Final = "demo-only-password"
"""What the simulator accepts, and ``bus run`` hands the workers, when ``PASSWORD_ENV`` is
not set: a demo on one laptop, never a deployment."""
