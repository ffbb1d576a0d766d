"""The DVCQG connector: keeps the national public-service portal in step with the province.

Every dossier the province accepts is pushed to DVCQG once (``DongBoHoSoMC``, ``isUpdating``
false, on behalf of the receiving agency) and every status change after it is reported as one
progress step (``CapNhatTienDoHoSoMC``, on behalf of the agency that made the change). The
portal only takes note: no receipt moves a dossier's status. The session login, the gateway's
``error_code`` and the translation of failures are :mod:`bus.rest`'s; the bodies are the
declarative mappings under ``mappings/dvcqg/``.

DVCQG keeps the last progress it was sent, so status changes must reach it in order, and all of
them: the worker hands one dossier's events over in turn, retries a failed one in place while
the later ones wait (``keep_order`` in ``connector.toml``), and skips a status event older than
one already delivered. A progress step for a dossier DVCQG does not know yet (``error_code``
201, its sync not landed) is retried, not parked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Final

import httpx

from bus.connector import ConnectorConfig, Delivery, DeliveryReceipt
from bus.errors import PartnerRejected, PartnerUnavailable
from bus.mapping import ConnectorMappings, MappingCatalog, MessageMapping
from bus.rest import RestClient, RestReply, SessionOptions
from connectors.dvcqg.wire import (
    DEMO_PASSWORD,
    DOSSIER_SYNC,
    PASSWORD_ENV,
    PROGRESS,
    SERVICE_PATH,
)
from contracts import Dossier, StatusChange

__all__ = ["DEFAULT_MAPPING", "DvcqgConnector"]

DEFAULT_MAPPING: Final = "dvcqg/1.0"
"""The mappings used when ``connector.toml`` names none (partner/version under mappings/)."""

_DOSSIER_SYNC: Final = "dossier-sync.out"
_PROGRESS: Final = "progress.out"
_NOT_SYNCED: Final = "GATEWAY_201_RECORD_NOT_FOUND"

_log = logging.getLogger(__name__)


class DvcqgConnector:
    """Syncs accepted dossiers to DVCQG and reports each of their status changes in order."""

    default_config: ClassVar[Path] = Path(__file__).with_name("connector.toml")
    #: Module whose ``main()`` serves a stand-in partner; ``bus run`` starts it for the demo.
    simulator_module: ClassVar[str] = "connectors.dvcqg.simulator"
    #: What ``bus run`` sets, when unset, for the workers and the simulator alike: the demo
    #: account the simulator accepts (see :data:`~connectors.dvcqg.wire.DEMO_PASSWORD`).
    demo_environment: ClassVar[Mapping[str, str]] = {PASSWORD_ENV: DEMO_PASSWORD}

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
        self._dossier_sync = mappings.expect(_DOSSIER_SYNC, direction="outbound", contract=Dossier)
        self._progress = mappings.expect(_PROGRESS, direction="outbound", contract=StatusChange)
        # The session travels in the JSON body as "session", the DVCQG way (the defaults).
        self._client = RestClient(
            config, session=SessionOptions(), transport=transport, environ=environ
        )

    @property
    def logins(self) -> int:
        """Session logins made so far."""
        return self._client.logins

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        """Push the dossier or report the status change; raise a classified bus error on failure.

        The body is mapped before any network call, so a MappingError never reaches DVCQG.
        """
        if delivery.change is not None:
            return await self._report_progress(delivery, delivery.change)
        return await self._sync_dossier(delivery, delivery.require_dossier())

    async def _sync_dossier(self, delivery: Delivery, dossier: Dossier) -> DeliveryReceipt:
        record = self._dossier_sync.apply(dossier.model_dump(mode="json"))
        # Always a first sync: the bus sends each accepted dossier once (its redeliveries are
        # deduplicated), and the portal takes a repeat of the same MaHoSo as the same dossier.
        body = {
            "madonvi": dossier.receiving_agency,
            "service": DOSSIER_SYNC,
            "isUpdating": False,
            "data": [record],
        }
        reply = await self._client.request("POST", SERVICE_PATH, json=body, issue=dossier.code)
        return self._receipt(delivery, reply, DOSSIER_SYNC, self._dossier_sync)

    async def _report_progress(self, delivery: Delivery, change: StatusChange) -> DeliveryReceipt:
        step = self._progress.apply(change.model_dump(mode="json"))
        body = {"madonvi": change.agency, "service": PROGRESS, "data": [step]}
        try:
            reply = await self._client.request(
                "POST", SERVICE_PATH, json=body, issue=change.dossier_code
            )
        except PartnerRejected as exc:
            if exc.fault_code != _NOT_SYNCED:
                raise
            # The dossier's DongBoHoSoMC has not landed yet (it may be waiting in a retry
            # tier): a later attempt finds it. Parked only once the retries run out.
            raise PartnerUnavailable(
                f"{exc.message} (DVCQG does not know the dossier yet: its sync may still be "
                "on its way; retried)",
                fault_code=_NOT_SYNCED,
            ) from exc
        return self._receipt(delivery, reply, PROGRESS, self._progress)

    def _receipt(
        self, delivery: Delivery, reply: RestReply, service: str, mapping: MessageMapping
    ) -> DeliveryReceipt:
        _log.info(
            "DVCQG took %s of dossier %s (message %s, attempt %d)",
            service,
            delivery.event.subject,
            delivery.message_id,
            delivery.attempt,
        )
        extra = {"service": service}
        if reply.session_renewed:
            extra["session_renewed"] = "true"
        return DeliveryReceipt(
            # The portal only takes note: it moves no dossier.
            status=None,
            sent_at=reply.sent_at,
            answered_at=reply.answered_at,
            request_size=reply.request_size,
            response_size=reply.response_size,
            mapping_version=mapping.ref,
            extra=extra,
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()
