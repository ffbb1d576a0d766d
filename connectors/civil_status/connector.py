"""The civil-status connector: registers births in the Ministry of Justice's civil-status software.

One call per delivery, ``POST /api/hotich/dangKyHoTich``, made idempotent by the dossier code
(``maHoSo``) on the partner's side and by ``Idempotency-Key`` for gateways that honour it. The
request and the answer are translated by the declarative mappings under ``mappings/civil_status/``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import ClassVar, Final, cast

import httpx

from bus.connector import ConnectorConfig, Delivery, DeliveryReceipt
from bus.errors import MappingError, PartnerRejected, PartnerUnavailable
from bus.mapping import MappingCatalog, SpecError
from connectors.civil_status.wire import (
    MalformedAnswer,
    PartnerAnswer,
    mask_identity_numbers,
    partner_message,
    read_answer,
)
from contracts import VN_TZ, Dossier, StatusChange

__all__ = ["DEFAULT_MAPPING", "REGISTER_PATH", "CivilStatusConnector"]

REGISTER_PATH: Final = "/api/hotich/dangKyHoTich"

DEFAULT_MAPPING: Final = "civil_status/1.0"
"""The mappings used when ``connector.toml`` names none (partner/version under mappings/)."""

_REQUEST: Final = "birth-registration.out"
_ANSWER: Final = "registration-answer.in"

_log = logging.getLogger(__name__)

# 408 and 429 say "not now", not "never": the delivery is retried like a 5xx.
_RETRYABLE_4XX: Final = frozenset({408, 429})


class _PartnerRefusal(Exception):
    """Internal: the partner answered ``trangThai`` 0 with HTTP 200."""

    def __init__(self, answer: PartnerAnswer) -> None:
        super().__init__(answer.message or "refused without a reason")
        self.answer = answer


class CivilStatusConnector:
    """Delivers birth-registration dossiers (procedure 1.001193) to the civil-status software."""

    default_config: ClassVar[Path] = Path(__file__).with_name("connector.toml")
    #: Module whose ``main()`` serves a stand-in partner; ``bus run`` starts it for the demo.
    simulator_module: ClassVar[str] = "connectors.civil_status.simulator"

    def __init__(
        self,
        config: ConnectorConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        catalog: MappingCatalog | None = None,
    ) -> None:
        self.config = config
        mapping = config.mapping or DEFAULT_MAPPING
        partner = mapping.split("/", 1)[0]
        catalog = catalog if catalog is not None else MappingCatalog.load(partners=(partner,))
        self._request = catalog.get(f"{mapping}/{_REQUEST}")
        self._answer = catalog.get(f"{mapping}/{_ANSWER}")
        if self._answer.contract is not StatusChange:
            raise SpecError(f"{self._answer.ref} must map to the status-change contract")
        # One client per connector: its connection pool is sized to the deliveries in flight.
        self._client = httpx.AsyncClient(
            base_url=str(config.endpoint),
            timeout=httpx.Timeout(config.timeout_seconds),
            limits=httpx.Limits(
                max_connections=config.concurrency,
                max_keepalive_connections=config.concurrency,
            ),
            transport=transport,
            headers={"Accept": "application/json"},
            follow_redirects=False,
        )

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        """Register the dossier's birth; raise PartnerUnavailable or PartnerRejected on failure.

        The form is mapped before any network call, so a MappingError never reaches the partner.
        """
        dossier = delivery.dossier
        content = self._encode_request(dossier)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": delivery.message_id,
            "X-Road-Issue": dossier.code,
        }
        sent_at = datetime.now(VN_TZ)
        with _translate_partner_errors(dossier.code):
            response = await self._client.post(REGISTER_PATH, content=content, headers=headers)
            answered_at = datetime.now(VN_TZ)
            response.raise_for_status()
            answer = read_answer(response.content)
            if answer.refused:
                raise _PartnerRefusal(answer)
            change = self._decode_answer(answer, dossier.code, answered_at)
        _log.info(
            "civil status answered dossier %s (message %s, attempt %d): trangThai %s%s",
            dossier.code,
            delivery.message_id,
            delivery.attempt,
            answer.partner_status,
            " (already registered)" if answer.already_registered else "",
        )
        extra = {"partner_status": answer.partner_status}
        if answer.already_registered:
            extra["already_registered"] = "true"
        return DeliveryReceipt(
            status=change.status,
            sent_at=sent_at,
            answered_at=answered_at,
            partner_reference=change.partner_reference,
            note=None if change.note is None else mask_identity_numbers(change.note),
            request_size=len(content),
            response_size=len(response.content),
            mapping_version=self._request.ref,
            extra=extra,
        )

    def _encode_request(self, dossier: Dossier) -> bytes:
        """The ``dangKyHoTich`` body; a form the mapping cannot translate is FORM_INVALID."""
        try:
            body = self._request.apply(dossier.model_dump(mode="json"))
            return self._request.encode_partner(body)
        except MappingError as exc:
            # Raised afresh, without the engine's error attached: an XSD message quotes the value
            # it refused, and a mistyped identity number must not reach a log whole.
            raise MappingError(
                f"dossier {dossier.code}: {mask_identity_numbers(exc.message)}",
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
        await self._client.aclose()


@contextlib.contextmanager
def _translate_partner_errors(dossier_code: str) -> Iterator[None]:
    """The one place where httpx errors and bad answers become bus errors."""
    where = f"civil status, dossier {dossier_code}"
    try:
        yield
    except httpx.TimeoutException as exc:
        raise PartnerUnavailable(
            f"{where}: no answer in time ({type(exc).__name__})", fault_code="PARTNER_TIMEOUT"
        ) from exc
    except (httpx.ConnectError, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        raise PartnerUnavailable(
            f"{where}: connection failed ({type(exc).__name__}: {exc})",
            fault_code="PARTNER_UNREACHABLE",
        ) from exc
    except httpx.TransportError as exc:
        # The rest (proxy errors, unsupported scheme) also stop this attempt, not the dossier.
        raise PartnerUnavailable(
            f"{where}: transport failed ({type(exc).__name__}: {exc})",
            fault_code="PARTNER_UNREACHABLE",
        ) from exc
    except httpx.HTTPStatusError as exc:
        code = exc.response.status_code
        message = f"{where}: HTTP {code}: {partner_message(exc.response.content)}"
        if 400 <= code < 500 and code not in _RETRYABLE_4XX:
            raise PartnerRejected(message, fault_code=f"HTTP_{code}") from exc
        raise PartnerUnavailable(message, fault_code=f"HTTP_{code}") from exc
    except (MalformedAnswer, MappingError) as exc:
        # An answer outside the protocol (an unknown trangThai, another dossier's answer) is
        # the partner's fault and may pass: retried, then parked.
        raise PartnerUnavailable(
            f"{where}: unreadable answer: {exc}", fault_code="MALFORMED_REPLY"
        ) from exc
    except _PartnerRefusal as exc:
        raise PartnerRejected(f"{where}: refused: {exc}", fault_code="TRANG_THAI_0") from exc
