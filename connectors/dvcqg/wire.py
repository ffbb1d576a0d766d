"""The national portal's sync protocol, as the connector and its simulator both speak it.

DVCQG's sync API is one login and one service endpoint: every call posts
``{session, madonvi, service, ...}`` and the ``service`` field says what it is. The names and
paths live here once so that the connector, the simulator and the tests cannot drift apart.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEMO_PASSWORD",
    "DOSSIER_SYNC",
    "LOGIN_PATH",
    "LOOKUP",
    "PASSWORD_ENV",
    "PROGRESS",
    "SERVICE_PATH",
]

LOGIN_PATH: Final = "/api/client/login"
"""``{username, password}`` with the ``dstcode`` header; answers ``{error_code: 0, session}``."""

SERVICE_PATH: Final = "/api/client/service"
"""Every service call: ``{session, madonvi, service, ...}``."""

DOSSIER_SYNC: Final = "DongBoHoSoMC"
"""Push dossiers: ``isUpdating`` false for a new dossier, true to replace a known one."""

PROGRESS: Final = "CapNhatTienDoHoSoMC"
"""Append one processing step (``TrangThai``) to a known dossier's progress."""

LOOKUP: Final = "TraCuuHoSo"
"""Read one dossier back (``MaHoSo``), with its progress list."""

PASSWORD_ENV: Final = "BUS_DVCQG_PASSWORD"
"""The environment variable both the connector and the simulator read the password from."""

DEMO_PASSWORD: Final = "demo-only-password"
"""What the simulator accepts, and ``bus run`` hands the workers, when ``PASSWORD_ENV`` is
not set: a demo on one laptop, never a deployment."""
