"""The civil-status connector: registers births and deaths in the Ministry of Justice's software.

Step 1 of both national bundles: a birth (the default operation, procedure 1.001193, module KS)
or a death (``death_registration``, procedure 1.007073, module KT). Whatever the module, one
SOAP call per delivery, ``dangKyHoTich`` of ``contracts/partners/civil_status/hotich.wsdl``,
made through the generic SOAP kit (:mod:`bus.soap`), which also translates every SOAP, HTTP and
XML failure into a bus error. The call is idempotent by the dossier code (``maHoSo``) on the
partner's side; with ``[xroad]`` configured, the X-Road ``id`` header carries the delivery's
message id and ``issue`` the dossier code. The arguments and the answer are translated by the
declarative mappings under ``mappings/civil_status/``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Final, cast

import httpx

from bus.connector import ConnectorConfig, Delivery, DeliveryReceipt
from bus.errors import MappingError, PartnerRejected, PartnerUnavailable
from bus.mapping import ConnectorMappings, MappingCatalog, MessageMapping, SpecError
from bus.soap import SoapClient, SoapReply
from connectors.civil_status.wire import MalformedAnswer, PartnerAnswer, read_answer
from connectors.linkage_step import for_operation
from contracts import Dossier, StatusChange, mask_personal_numbers

__all__ = ["DEATH_REGISTRATION", "DEFAULT_MAPPING", "CivilStatusConnector"]

DEFAULT_MAPPING: Final = "civil_status/1.0"
"""The mappings used when ``connector.toml`` names none (partner/version under mappings/)."""

DEATH_REGISTRATION: Final = "death_registration"
"""The linkage operation (death bundle, step 1) that registers a death (khai tử)."""

# Each operation is one request mapping of the same SOAP operation: the mapping sets the module
# (KS, KT) and builds the module's XML document. The answer is read alike for both.
_REQUESTS: Final[Mapping[str | None, str]] = {
    None: "birth-registration.out",
    DEATH_REGISTRATION: "death-registration.out",
}
_ANSWER: Final = "registration-answer.in"

_log = logging.getLogger(__name__)


class _PartnerRefusal(Exception):
    """Internal: the partner answered ``trangThai`` 0."""

    def __init__(self, answer: PartnerAnswer) -> None:
        super().__init__(answer.message or "refused without a reason")
        self.answer = answer


class CivilStatusConnector:
    """Delivers birth- and death-registration dossiers to the civil-status software."""

    default_config: ClassVar[Path] = Path(__file__).with_name("connector.toml")
    #: Module whose ``main()`` serves a stand-in partner; ``bus run`` starts it for the demo.
    simulator_module: ClassVar[str] = "connectors.civil_status.simulator"
    #: The linkage operations it serves besides its default one (birth registration).
    operations: ClassVar[frozenset[str]] = frozenset({DEATH_REGISTRATION})

    def __init__(
        self,
        config: ConnectorConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        catalog: MappingCatalog | None = None,
    ) -> None:
        self.config = config
        mappings = ConnectorMappings.of(config.mapping, DEFAULT_MAPPING, catalog)
        self._requests = {operation: mappings.get(name) for operation, name in _REQUESTS.items()}
        self._answer = mappings.get(_ANSWER)
        if self._answer.contract is not StatusChange:
            raise SpecError(f"{self._answer.ref} must map to the status-change contract")
        # One client per connector, shared by the deliveries in flight; partner text in its
        # errors (fault strings, error pages) is masked like the answers' moTa.
        self._soap = SoapClient(config, transport=transport, redact=mask_personal_numbers)

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        """Register the birth or the death the delivery asks for.

        Raises PartnerUnavailable or PartnerRejected on the partner's failure, InvalidMessage
        on an operation it does not have. The form is mapped before any network call, so a
        MappingError never reaches the partner.
        """
        request = for_operation(delivery, self._requests, connector=self.config.id)
        dossier = delivery.require_dossier()
        arguments = self._encode_request(request, dossier)
        reply = await self._soap.call(arguments, issue=dossier.code, message_id=delivery.message_id)
        with _classify_answer(dossier.code):
            answer = read_answer(reply.body)
            if answer.refused:
                raise _PartnerRefusal(answer)
            change = self._decode_answer(answer, dossier.code, reply.answered_at)
        _log.info(
            "civil status answered dossier %s (message %s, attempt %d, module %s): trangThai %s%s",
            dossier.code,
            delivery.message_id,
            delivery.attempt,
            arguments.get("module"),
            answer.partner_status,
            " (already registered)" if answer.already_registered else "",
        )
        return _receipt(request, reply, answer, change)

    @staticmethod
    def _encode_request(request: MessageMapping, dossier: Dossier) -> dict[str, Any]:
        """The ``dangKyHoTich`` arguments; a form the mapping cannot translate is FORM_INVALID."""
        try:
            return request.apply(dossier.model_dump(mode="json"))
        except MappingError as exc:
            # Raised afresh, without the engine's error attached: an XSD message quotes the value
            # it refused, and a mistyped identity number must not reach a log whole.
            raise MappingError(
                f"dossier {dossier.code}: {mask_personal_numbers(exc.message)}",
                fault_code="FORM_INVALID",
                mapping=exc.mapping,
                source_path=exc.source_path,
                target_field=exc.target_field,
                value=exc.value,
            ) from None

    def _decode_answer(
        self, answer: PartnerAnswer, dossier_code: str, answered_at: datetime
    ) -> StatusChange:
        """The answer as a status change; a MappingError here means an unreadable answer."""
        if answer.dossier_code not in (None, dossier_code):
            raise MalformedAnswer(
                f"answer is about dossier {answer.dossier_code}, not {dossier_code}"
            )
        # The partner may leave out maHoSo: the answer is then about the dossier it was sent.
        source = {**answer.body, "maHoSo": dossier_code}
        context = {"agency": self.config.agency, "answered_at": answered_at}
        return cast(StatusChange, self._answer.to_canonical(source, context))

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._soap.aclose()


def _receipt(
    request: MessageMapping, reply: SoapReply, answer: PartnerAnswer, change: StatusChange
) -> DeliveryReceipt:
    """The receipt of an answered registration, the partner's own status kept beside ours."""
    extra = {"partner_status": answer.partner_status}
    if answer.already_registered:
        extra["already_registered"] = "true"
    return DeliveryReceipt(
        status=change.status,
        sent_at=reply.sent_at,
        answered_at=reply.answered_at,
        changed_at=change.changed_at,
        partner_reference=change.partner_reference,
        note=None if change.note is None else mask_personal_numbers(change.note),
        request_size=reply.request_size,
        response_size=reply.response_size,
        mapping_version=request.ref,
        extra=extra,
    )


@contextlib.contextmanager
def _classify_answer(dossier_code: str) -> Iterator[None]:
    """What the partner said, once the SOAP exchange itself succeeded: a refusal or nonsense."""
    where = f"civil status, dossier {dossier_code}"
    try:
        yield
    except (MalformedAnswer, MappingError) as exc:
        # An answer outside the protocol (an unknown trangThai, another dossier's answer) is
        # the partner's fault and may pass: retried, then parked.
        raise PartnerUnavailable(
            f"{where}: unreadable answer: {exc}", fault_code="MALFORMED_REPLY"
        ) from exc
    except _PartnerRefusal as exc:
        raise PartnerRejected(f"{where}: refused: {exc}", fault_code="TRANG_THAI_0") from exc
