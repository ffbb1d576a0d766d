"""The social-insurance connector: Social Security's gateway, in both national bundles.

Birth bundle, step 3 (the default operation): a newborn's health-insurance card,
``POST /api/bhyt/capTheTreEm``, with the birth certificate number civil status issued. Death
bundle, step 3 (``funeral_allowance``): the funeral allowance of a deceased participant or
pensioner, ``POST /api/bhxh/giaiQuyetTroCapMaiTang``, with the death extract number.

The gateway wants a session: :mod:`bus.rest` logs in with the configured account (password from
the environment), posts the session in every call's JSON body and logs in again, once, when the
gateway says it has expired. One call per delivery, made idempotent by the dossier code
(``maHoSo``) on the partner's side and by ``Idempotency-Key``. The requests and the answers are
translated by the declarative mappings under ``mappings/social_insurance/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Final

import httpx

from bus.connector import ConnectorConfig, Delivery, DeliveryReceipt
from bus.mapping import ConnectorMappings, MappingCatalog
from bus.rest import RestClient, SessionOptions
from connectors.linkage_step import (
    BIRTH_CERTIFICATE_KEY,
    DEATH_CERTIFICATE_KEY,
    StepCall,
    deliver_step,
    for_operation,
)
from connectors.social_insurance.wire import (
    CARD_REQUEST_PATH,
    DEMO_PASSWORD,
    FUNERAL_ALLOWANCE,
    FUNERAL_ALLOWANCE_PATH,
    PASSWORD_ENV,
)
from contracts import StatusChange

__all__ = [
    "BIRTH_CERTIFICATE_KEY",
    "CARD_REQUEST_PATH",
    "DEATH_CERTIFICATE_KEY",
    "DEFAULT_MAPPING",
    "FUNERAL_ALLOWANCE",
    "FUNERAL_ALLOWANCE_PATH",
    "SocialInsuranceConnector",
]

DEFAULT_MAPPING: Final = "social_insurance/1.0"
"""The mappings used when ``connector.toml`` names none (partner/version under mappings/)."""

_CARD_REQUEST: Final = "card-request.out"
_CARD_ANSWER: Final = "card-answer.in"
_ALLOWANCE_REQUEST: Final = "funeral-allowance.out"
_ALLOWANCE_ANSWER: Final = "funeral-allowance-answer.in"
_STATUS_FIELD: Final = "trangThai"


class SocialInsuranceConnector:
    """Asks Social Security for a child's health-insurance card (cấp thẻ BHYT trẻ em) or a
    deceased's funeral allowance (trợ cấp mai táng)."""

    default_config: ClassVar[Path] = Path(__file__).with_name("connector.toml")
    #: Module whose ``main()`` serves a stand-in partner; ``bus run`` starts it for the demo.
    simulator_module: ClassVar[str] = "connectors.social_insurance.simulator"
    #: What ``bus run`` sets, when unset, for the workers and the simulator alike: the demo
    #: account the simulator accepts (see :data:`.wire.DEMO_PASSWORD`).
    demo_environment: ClassVar[Mapping[str, str]] = {PASSWORD_ENV: DEMO_PASSWORD}
    #: The linkage operations it serves besides its default one (the child's card).
    operations: ClassVar[frozenset[str]] = frozenset({FUNERAL_ALLOWANCE})

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
        self._calls: dict[str | None, StepCall] = {
            None: StepCall(
                path=CARD_REQUEST_PATH,
                request=mappings.get(_CARD_REQUEST),
                answer=mappings.expect(_CARD_ANSWER, direction="inbound", contract=StatusChange),
                passed_key=BIRTH_CERTIFICATE_KEY,
                passed_field="soGiayKhaiSinh",
                status_field=_STATUS_FIELD,
            ),
            FUNERAL_ALLOWANCE: StepCall(
                path=FUNERAL_ALLOWANCE_PATH,
                request=mappings.get(_ALLOWANCE_REQUEST),
                answer=mappings.expect(
                    _ALLOWANCE_ANSWER, direction="inbound", contract=StatusChange
                ),
                passed_key=DEATH_CERTIFICATE_KEY,
                passed_field="soTrichLucKhaiTu",
                status_field=_STATUS_FIELD,
            ),
        }
        # The session travels in the JSON body as "session", the DVCQG way (the defaults).
        self._client = RestClient(
            config, session=SessionOptions(), transport=transport, environ=environ
        )

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        """Request the child's card or the funeral allowance the step asks for.

        Raises PartnerUnavailable or PartnerRejected on the partner's failure, MappingError
        (before any call or login) on a form it cannot translate, InvalidMessage on an
        operation it does not have.
        """
        call = for_operation(delivery, self._calls, connector=self.config.id)
        return await deliver_step(self._client, delivery, call)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()
