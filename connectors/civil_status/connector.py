"""The civil-status connector: registers births in the Ministry of Justice's civil-status software.

One call per delivery, ``POST /api/hotich/dangKyHoTich``, made idempotent by the dossier code
(``maHoSo``) on the partner's side and by ``Idempotency-Key`` for gateways that honour it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import ClassVar, Final

import httpx

from bus.connector import ConnectorConfig, Delivery, DeliveryReceipt
from bus.errors import PartnerRejected, PartnerUnavailable
from connectors.civil_status.wire import (
    MAPPING_VERSION,
    MalformedAnswer,
    PartnerAnswer,
    build_request,
    encode_request,
    parse_answer,
    partner_message,
)
from contracts import VN_TZ

__all__ = ["REGISTER_PATH", "CivilStatusConnector"]

REGISTER_PATH: Final = "/api/hotich/dangKyHoTich"

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
        self, config: ConnectorConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
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
        content = encode_request(build_request(dossier))
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
            answer = parse_answer(response.content)
            if answer.refused:
                raise _PartnerRefusal(answer)
            if answer.dossier_code not in (None, dossier.code):
                raise MalformedAnswer(
                    f"answer is about dossier {answer.dossier_code}, not {dossier.code}"
                )
        _log.info(
            "civil status answered dossier %s (message %s, attempt %d): trangThai %d%s",
            dossier.code,
            delivery.message_id,
            delivery.attempt,
            answer.partner_status,
            " (already registered)" if answer.already_registered else "",
        )
        extra = {"partner_status": str(answer.partner_status)}
        if answer.already_registered:
            extra["already_registered"] = "true"
        return DeliveryReceipt(
            status=answer.dossier_status,
            sent_at=sent_at,
            answered_at=answered_at,
            partner_reference=answer.registration_number,
            note=answer.message,
            request_size=len(content),
            response_size=len(response.content),
            mapping_version=MAPPING_VERSION,
            extra=extra,
        )

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
    except MalformedAnswer as exc:
        raise PartnerUnavailable(
            f"{where}: unreadable answer: {exc}", fault_code="MALFORMED_REPLY"
        ) from exc
    except _PartnerRefusal as exc:
        raise PartnerRejected(f"{where}: refused: {exc}", fault_code="TRANG_THAI_0") from exc
