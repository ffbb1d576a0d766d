"""The residence connector: Public Security's residence software, in both national bundles.

Birth bundle, step 2 (the default operation): register a newborn's permanent residence,
``POST /api/cutru/dangKyThuongTru``, with the birth certificate number civil status issued.
Death bundle, step 2 (``remove_permanent_residence``): remove the deceased's permanent
residence, ``POST /api/cutru/xoaDangKyThuongTru``, with the death extract number. One call per
delivery, made idempotent by the dossier code (``maHoSo``) on the partner's side and by
``Idempotency-Key``. The requests and the answer are translated by the declarative mappings
under ``mappings/residence/``; HTTP, X-Road headers and error classification are
:mod:`bus.rest`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Final

import httpx

from bus.connector import ConnectorConfig, Delivery, DeliveryReceipt
from bus.mapping import ConnectorMappings, MappingCatalog
from bus.rest import RestClient
from connectors.linkage_step import (
    BIRTH_CERTIFICATE_KEY,
    DEATH_CERTIFICATE_KEY,
    StepCall,
    deliver_step,
    for_operation,
)
from connectors.residence.wire import REGISTER_PATH, REMOVAL_PATH, REMOVE_PERMANENT_RESIDENCE
from contracts import StatusChange

__all__ = [
    "BIRTH_CERTIFICATE_KEY",
    "DEATH_CERTIFICATE_KEY",
    "DEFAULT_MAPPING",
    "REGISTER_PATH",
    "REMOVAL_PATH",
    "REMOVE_PERMANENT_RESIDENCE",
    "ResidenceConnector",
]

DEFAULT_MAPPING: Final = "residence/1.0"
"""The mappings used when ``connector.toml`` names none (partner/version under mappings/)."""

_REGISTRATION: Final = "registration.out"
_REMOVAL: Final = "removal.out"
# One answer for both: the software answers a registration and a removal alike (ketQua).
_ANSWER: Final = "answer.in"
_STATUS_FIELD: Final = "ketQua"


class ResidenceConnector:
    """Registers newborns' and removes the deceased's permanent residence (đăng ký / xóa
    đăng ký thường trú) in the residence software."""

    default_config: ClassVar[Path] = Path(__file__).with_name("connector.toml")
    #: Module whose ``main()`` serves a stand-in partner; ``bus run`` starts it for the demo.
    simulator_module: ClassVar[str] = "connectors.residence.simulator"
    #: The linkage operations it serves besides its default one (the newborn's registration).
    operations: ClassVar[frozenset[str]] = frozenset({REMOVE_PERMANENT_RESIDENCE})

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
        answer = mappings.expect(_ANSWER, direction="inbound", contract=StatusChange)
        self._calls: dict[str | None, StepCall] = {
            None: StepCall(
                path=REGISTER_PATH,
                request=mappings.get(_REGISTRATION),
                answer=answer,
                passed_key=BIRTH_CERTIFICATE_KEY,
                passed_field="congDan.soGiayKhaiSinh",
                status_field=_STATUS_FIELD,
            ),
            REMOVE_PERMANENT_RESIDENCE: StepCall(
                path=REMOVAL_PATH,
                request=mappings.get(_REMOVAL),
                answer=answer,
                passed_key=DEATH_CERTIFICATE_KEY,
                passed_field="khaiTu.soTrichLuc",
                status_field=_STATUS_FIELD,
            ),
        }
        self._client = RestClient(config, transport=transport, environ=environ)

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        """Register or remove the permanent residence the step asks for.

        Raises PartnerUnavailable or PartnerRejected on the partner's failure, MappingError
        (before any call) on a form it cannot translate, InvalidMessage on an operation it
        does not have.
        """
        call = for_operation(delivery, self._calls, connector=self.config.id)
        return await deliver_step(self._client, delivery, call)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()
