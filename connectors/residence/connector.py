"""The residence connector: registers a newborn's permanent residence with Public Security.

Step 2 of the birth linkage bundle. One call per delivery, ``POST /api/cutru/dangKyThuongTru``,
made idempotent by the dossier code (``maHoSo``) on the partner's side and by
``Idempotency-Key``. The request and the answer are translated by the declarative mappings
under ``mappings/residence/``; HTTP, X-Road headers and error classification are
:mod:`bus.rest`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Final

import httpx

from bus.connector import ConnectorConfig, Delivery, DeliveryReceipt
from bus.mapping import ConnectorMappings, MappingCatalog
from bus.rest import (
    RestClient,
)
from connectors.birth_linkage import BIRTH_CERTIFICATE_KEY, deliver_birth_step
from contracts import StatusChange

__all__ = ["BIRTH_CERTIFICATE_KEY", "DEFAULT_MAPPING", "REGISTER_PATH", "ResidenceConnector"]

REGISTER_PATH: Final = "/api/cutru/dangKyThuongTru"

DEFAULT_MAPPING: Final = "residence/1.0"
"""The mappings used when ``connector.toml`` names none (partner/version under mappings/)."""

_REQUEST: Final = "registration.out"
_ANSWER: Final = "answer.in"

_log = logging.getLogger(__name__)


class ResidenceConnector:
    """Delivers birth dossiers to the residence software for the newborn's permanent residence."""

    default_config: ClassVar[Path] = Path(__file__).with_name("connector.toml")
    #: Module whose ``main()`` serves a stand-in partner; ``bus run`` starts it for the demo.
    simulator_module: ClassVar[str] = "connectors.residence.simulator"

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
        self._request = mappings.get(_REQUEST)
        self._answer = mappings.expect(_ANSWER, direction="inbound", contract=StatusChange)
        self._client = RestClient(config, transport=transport, environ=environ)

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        """Register the newborn's residence; raise PartnerUnavailable or PartnerRejected on failure.

        The form is mapped before any network call, so a MappingError never reaches the partner.
        """
        return await deliver_birth_step(
            self._client,
            delivery,
            path=REGISTER_PATH,
            request=self._request,
            answer=self._answer,
            certificate_field="congDan.soGiayKhaiSinh",
            status_field="ketQua",
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()
