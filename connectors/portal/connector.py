"""The portal connector: hands every status event to the provincial public-service portal.

Citizens look their dossiers up on the portal, so it must hear of each status change once and
in order. The event travels unchanged, CloudEvents' HTTP binding in structured mode (the body is
the same JSON as on the broker), so the portal reads it with any CloudEvents SDK and the
contract it relies on is the bus's own (contracts/asyncapi.yaml), not a mapping. The bus
delivers a dossier's events in sequence and never an older one after a newer one
(:mod:`bus.worker`); the event id is the ``Idempotency-Key`` for a portal that deduplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import httpx

from bus import events
from bus.connector import ConnectorConfig, Delivery, DeliveryReceipt
from bus.rest import RestClient
from connectors.portal.wire import CLOUDEVENTS_JSON, DEMO_TOKEN, EVENTS_PATH, TOKEN_ENV

__all__ = ["EVENTS_PATH", "PortalConnector"]

_log = logging.getLogger(__name__)


class PortalConnector:
    """Posts each status event to the portal as a structured-mode CloudEvent."""

    default_config: ClassVar[Path] = Path(__file__).with_name("connector.toml")
    #: Module whose ``main()`` serves a stand-in partner; ``bus run`` starts it for the demo.
    simulator_module: ClassVar[str] = "connectors.portal.simulator"
    #: What ``bus run`` sets, when unset, for the workers and the simulator alike.
    demo_environment: ClassVar[Mapping[str, str]] = {TOKEN_ENV: DEMO_TOKEN}

    def __init__(
        self,
        config: ConnectorConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        # The portal answers plain HTTP statuses, with no gateway error_code field.
        self._client = RestClient(config, gateway_field=None, transport=transport, environ=environ)

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        """Post one status event; raise PartnerUnavailable or PartnerRejected on failure."""
        change = delivery.require_change()
        reply = await self._client.request(
            "POST",
            EVENTS_PATH,
            content=events.encode(delivery.event),
            headers={"Content-Type": CLOUDEVENTS_JSON, "Idempotency-Key": delivery.message_id},
            issue=change.dossier_code,
        )
        _log.info(
            "portal took dossier %s status %d (event %s, sequence %d)",
            change.dossier_code,
            change.status,
            delivery.message_id,
            delivery.event.dossierseq,
        )
        # The portal only takes note: the dossier's status is the agency's, not the portal's.
        return DeliveryReceipt(
            status=None,
            sent_at=reply.sent_at,
            answered_at=reply.answered_at,
            request_size=reply.request_size,
            response_size=reply.response_size,
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()
