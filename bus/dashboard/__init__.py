"""The officers' and operators' dashboard: static HTML, JavaScript and CSS served by the bus.

The files hold no data and no secret, so they are public; the page asks for a client's id and
secret, trades them at ``POST /v1/oauth/token`` for a bearer token kept in the tab's
``sessionStorage``, and reads the JSON API with it like any other client. Nothing is built on
the user's machine: the charts are SVG drawn by the page's own script.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["DASHBOARD_PATH", "STATIC_DIR", "DashboardFiles", "dashboard_files"]

DASHBOARD_PATH: Final = "/dashboard"
"""Where the bus serves the dashboard (``/dashboard/``)."""

STATIC_DIR: Final = Path(__file__).parent / "static"

# The page shows dossier data, which is hostile input, and keeps a bearer token in the tab: no
# script may run but the page's own files, and no other site may frame it.
_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Revalidated on each load, so an upgraded bus never runs yesterday's script.
    "Cache-Control": "no-cache",
}


class DashboardFiles(StaticFiles):
    """The dashboard's files, each answer with the page's security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(_HEADERS)
        return response


def dashboard_files() -> DashboardFiles:
    """The ASGI app to mount at :data:`DASHBOARD_PATH` (``index.html`` at its root)."""
    return DashboardFiles(directory=STATIC_DIR, html=True)
