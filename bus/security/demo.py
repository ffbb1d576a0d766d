"""The demo profile's clients: made fresh by ``bus run``, printed once, never used elsewhere.

``bus run`` is the only place the bus makes credentials by itself: a client directory of its
own (``var/demo/clients.yaml``), new secrets on every start, so nothing it prints outlives the
demo. ``bus api`` and ``bus worker`` (production) read the directory ``BUS_CLIENTS_FILE`` names
and make nothing: without it, every request is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bus.registry import ConnectorRegistry
from bus.security.clients import (
    ANY,
    AgencyClient,
    ClientDirectory,
    ReadScope,
    hash_secret,
    new_secret,
    save_clients,
)

__all__ = ["DEMO_CLIENTS_FILE", "DEMO_DESK", "DemoClients", "make_demo_clients"]

DEMO_CLIENTS_FILE: Final = Path("var/demo/clients.yaml")
DEMO_DESK: Final = "000.00.10.H12"
"""The one-stop desk the demo's sample dossiers are received at."""
# The national public-service portal (Cổng DVCQG) reads every dossier's progress.
_NATIONAL_PORTAL: Final = "000.00.00.G22"


@dataclass(frozen=True)
class DemoClients:
    """The demo's directory and each client's secret (shown once, by ``bus run``)."""

    path: Path
    secrets: dict[str, str]
    directory: ClientDirectory

    @property
    def one_stop_secret(self) -> str:
        """The secret the demo submits its sample dossiers with."""
        return self.secrets["demo-one-stop"]


def make_demo_clients(registry: ConnectorRegistry, path: Path = DEMO_CLIENTS_FILE) -> DemoClients:
    """Write a fresh demo directory to ``path``: a one-stop system, the national portal, an
    operator, and one client per partner that pushes (its connector's agency, pushing as it)."""
    secrets: dict[str, str] = {}

    def client(client_id: str, **rights: object) -> AgencyClient:
        secrets[client_id] = new_secret()
        return AgencyClient.model_validate(
            {"id": client_id, "secret_sha256": (hash_secret(secrets[client_id]),), **rights}
        )

    clients = [
        client(
            "demo-one-stop",
            name="Hệ thống một cửa điện tử (demo)",
            agency=DEMO_DESK,
            procedures=(ANY,),
            subscribe=(f"dossier.status.*.{DEMO_DESK}", f"dossier.*.{DEMO_DESK}"),
        ),
        client(
            "demo-portal",
            name="Cổng dịch vụ công quốc gia (demo)",
            agency=_NATIONAL_PORTAL,
            read=ReadScope.ALL,
            subscribe=("dossier.status.#",),
        ),
        client(
            "demo-operator",
            name="Vận hành trục liên thông (demo)",
            agency=DEMO_DESK,
            read=ReadScope.ALL,
            subscribe=("#",),
            operator=True,
        ),
    ]
    for connector_id in registry.ids:
        config = registry.get(connector_id).config
        if config.inbound:
            clients.append(
                client(
                    f"demo-partner-{connector_id.replace('_', '-')}",
                    name=f"{config.title} (demo)",
                    agency=config.agency,
                    connectors=(connector_id,),
                )
            )
    directory = ClientDirectory(tuple(clients))
    save_clients(path, directory)
    return DemoClients(path, secrets, directory)
