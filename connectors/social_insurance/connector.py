"""The social-insurance connector: asks Social Security for a newborn's health-insurance card.

Step 3 of the birth linkage bundle. The gateway wants a session: :mod:`bus.rest` logs in with
the configured account (password from the environment), posts the session in every call's JSON
body and logs in again, once, when the gateway says it has expired. One call per delivery,
``POST /api/bhyt/capTheTreEm``, made idempotent by the dossier code (``maHoSo``) on the
partner's side and by ``Idempotency-Key``. The request and the answer are translated by the
declarative mappings under ``mappings/social_insurance/``.
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
    SessionOptions,
)
from connectors.birth_linkage import BIRTH_CERTIFICATE_KEY, deliver_birth_step
from connectors.social_insurance.wire import CARD_REQUEST_PATH, DEMO_PASSWORD, PASSWORD_ENV
from contracts import StatusChange

__all__ = [
    "BIRTH_CERTIFICATE_KEY",
    "CARD_REQUEST_PATH",
    "DEFAULT_MAPPING",
    "SocialInsuranceConnector",
]

DEFAULT_MAPPING: Final = "social_insurance/1.0"
"""The mappings used when ``connector.toml`` names none (partner/version under mappings/)."""

_REQUEST: Final = "card-request.out"
_ANSWER: Final = "card-answer.in"

_log = logging.getLogger(__name__)


class SocialInsuranceConnector:
    """Delivers birth dossiers to Social Security for the child's health-insurance card."""

    default_config: ClassVar[Path] = Path(__file__).with_name("connector.toml")
    #: Module whose ``main()`` serves a stand-in partner; ``bus run`` starts it for the demo.
    simulator_module: ClassVar[str] = "connectors.social_insurance.simulator"
    #: What ``bus run`` sets, when unset, for the workers and the simulator alike: the demo
    #: account the simulator accepts (see :data:`.wire.DEMO_PASSWORD`).
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
        self._request = mappings.get(_REQUEST)
        self._answer = mappings.expect(_ANSWER, direction="inbound", contract=StatusChange)
        # The session travels in the JSON body as "session", the DVCQG way (the defaults).
        self._client = RestClient(
            config, session=SessionOptions(), transport=transport, environ=environ
        )

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        """Request the child's card; raise PartnerUnavailable or PartnerRejected on failure.

        The form is mapped before any network call, so a MappingError never reaches the partner.
        """
        return await deliver_birth_step(
            self._client,
            delivery,
            path=CARD_REQUEST_PATH,
            request=self._request,
            answer=self._answer,
            certificate_field="soGiayKhaiSinh",
            status_field="trangThai",
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()
