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
from typing import Any, ClassVar, Final

import httpx

from bus.connector import ConnectorConfig, Delivery, DeliveryReceipt
from bus.mapping import ConnectorMappings, MappingCatalog, SpecError
from bus.rest import (
    RestClient,
    SessionOptions,
    mask_personal_numbers,
)
from connectors.birth_linkage import BIRTH_CERTIFICATE_KEY, decode_answer, map_birth_request
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
        self._answer = mappings.get(_ANSWER)
        if self._answer.contract is not StatusChange:
            raise SpecError(f"{self._answer.ref} must map to the status-change contract")
        # The session travels in the JSON body as "session", the DVCQG way (the defaults).
        self._client = RestClient(
            config, session=SessionOptions(), transport=transport, environ=environ
        )

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        """Request the child's card; raise PartnerUnavailable or PartnerRejected on failure.

        The form is mapped before any network call, so a MappingError never reaches the partner.
        """
        dossier = delivery.require_dossier()
        body = map_birth_request(self._request, dossier, certificate_field="soGiayKhaiSinh")
        reply = await self._client.request(
            "POST",
            CARD_REQUEST_PATH,
            json=body,
            headers={"Idempotency-Key": delivery.message_id},
            issue=dossier.code,
        )
        change = decode_answer(
            self._answer,
            reply,
            dossier_code=dossier.code,
            agency=self.config.agency,
            where=self._client.where(dossier.code),
        )
        answer: dict[str, Any] = reply.body
        already = answer.get("daTonTai") is True
        _log.info(
            "social insurance answered dossier %s (message %s, attempt %d): trangThai %s%s",
            dossier.code,
            delivery.message_id,
            delivery.attempt,
            answer.get("trangThai"),
            " (already requested)" if already else "",
        )
        extra = {"partner_status": str(answer.get("trangThai"))}
        if already:
            extra["already_registered"] = "true"
        if reply.session_renewed:
            extra["session_renewed"] = "true"
        return DeliveryReceipt(
            status=change.status,
            sent_at=reply.sent_at,
            answered_at=reply.answered_at,
            partner_reference=change.partner_reference,
            note=None if change.note is None else mask_personal_numbers(change.note),
            request_size=reply.request_size,
            response_size=reply.response_size,
            mapping_version=self._request.ref,
            extra=extra,
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()
