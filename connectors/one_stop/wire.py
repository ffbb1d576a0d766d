"""The one-stop system's linkage API, as the connector and its simulator both speak it."""

from __future__ import annotations

from typing import Final

__all__ = ["DEMO_TOKEN", "LOOKUP_PATH", "PROGRESS_PATH", "TOKEN_ENV"]

PROGRESS_PATH: Final = "/api/lienthong/capNhatTienDo"
"""``{madonvi, data: [CapNhatTienDoHoSoMC record]}``: one step another agency took."""

LOOKUP_PATH: Final = "/api/lienthong/hoSo/{code}"
"""A dossier's progress as the one-stop desk sees it."""

TOKEN_ENV: Final = "BUS_ONE_STOP_TOKEN"
"""The environment variable both the connector and the simulator read the API token from."""

DEMO_TOKEN: Final = "demo-only-one-stop-token"
"""What the simulator accepts, and ``bus run`` hands the workers, when ``TOKEN_ENV`` is not
set: a demo on one laptop, never a deployment."""
