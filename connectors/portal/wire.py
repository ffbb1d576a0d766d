"""The portal's event API, as the connector and its simulator both speak it."""

from __future__ import annotations

from typing import Final

__all__ = ["CLOUDEVENTS_JSON", "DEMO_TOKEN", "EVENTS_PATH", "LOOKUP_PATH", "TOKEN_ENV"]

EVENTS_PATH: Final = "/api/events"
"""Where the portal takes events: CloudEvents' HTTP binding, structured or binary mode."""

LOOKUP_PATH: Final = "/api/tra-cuu/{code}"
"""A citizen's look-up of one dossier."""

CLOUDEVENTS_JSON: Final = "application/cloudevents+json"

TOKEN_ENV: Final = "BUS_PORTAL_TOKEN"
"""The environment variable both the connector and the simulator read the API token from."""

DEMO_TOKEN: Final = "demo-only-portal-token"
"""What the simulator accepts, and ``bus run`` hands the workers, when ``TOKEN_ENV`` is not
set: a demo on one laptop, never a deployment."""
