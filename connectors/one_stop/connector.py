"""The one-stop connector: tells the provincial one-stop system what every agency did.

The one-stop system receives the citizen's dossier and returns the result, so the officers at
its desk must see each step the ministry systems take (civil status registered the birth,
residence registered the newborn, …) as it happens, instead of re-keying it from a phone call.
Each status event becomes one progress record in the national document format
(``CapNhatTienDoHoSoMC``, mapped by ``mappings/dvcqg/``) posted to the system's linkage API on
behalf of the agency that acted; in order per dossier, never an older step after a newer one
(:mod:`bus.worker`). The one-stop system only takes note: no receipt moves a dossier.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Final

import httpx

from bus.connector import ConnectorConfig, Delivery, DeliveryReceipt
from bus.mapping import ConnectorMappings, MappingCatalog
from bus.rest import RestClient
from connectors.one_stop.wire import DEMO_TOKEN, PROGRESS_PATH, TOKEN_ENV
from contracts import StatusChange

__all__ = ["DEFAULT_MAPPING", "OneStopConnector"]

DEFAULT_MAPPING: Final = "dvcqg/1.0"
"""The mappings used when ``connector.toml`` names none (partner/version under mappings/)."""

_PROGRESS: Final = "progress.out"

_log = logging.getLogger(__name__)


class OneStopConnector:
    """Posts each status change of a dossier to the one-stop system as a progress record."""

    default_config: ClassVar[Path] = Path(__file__).with_name("connector.toml")
    #: Module whose ``main()`` serves a stand-in partner; ``bus run`` starts it for the demo.
    simulator_module: ClassVar[str] = "connectors.one_stop.simulator"
    #: What ``bus run`` sets, when unset, for the workers and the simulator alike.
    demo_environment: ClassVar[Mapping[str, str]] = {TOKEN_ENV: DEMO_TOKEN}

    def __init__(
        self,
        config: ConnectorConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        catalog: MappingCatalog | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        mappings = ConnectorMappings.of(config.mapping, DEFAULT_MAPPING, catalog)
        self._progress = mappings.expect(_PROGRESS, direction="outbound", contract=StatusChange)
        self._client = RestClient(config, transport=transport, environ=environ)

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        """Post one progress record; raise PartnerUnavailable or PartnerRejected on failure.

        The record is mapped before any network call, so a MappingError never reaches it.
        """
        change = delivery.require_change()
        step = self._progress.apply(change.model_dump(mode="json"))
        reply = await self._client.request(
            "POST",
            PROGRESS_PATH,
            json={"madonvi": change.agency, "data": [step]},
            headers={"Idempotency-Key": delivery.message_id},
            issue=change.dossier_code,
        )
        _log.info(
            "one-stop system took status %d of dossier %s (event %s, sequence %d)",
            change.status,
            change.dossier_code,
            delivery.message_id,
            delivery.event.dossierseq,
        )
        return DeliveryReceipt(
            status=None,
            sent_at=reply.sent_at,
            answered_at=reply.answered_at,
            request_size=reply.request_size,
            response_size=reply.response_size,
            mapping_version=self._progress.ref,
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()
