"""The judicial-records connector: pulls dossier statuses from the judicial-records software.

The software (phần mềm quản lý lý lịch tư pháp) cannot push. It keeps a list of new status
records and forgets one only when told: the bus lists the records updated since a day
(``GET /api/lltp/dsTrangThaiHoSo``, dates dd/MM/yyyy, paged after the last record number read),
applies them, then marks each one fetched (``POST /api/lltp/danhDauHsThanhCong``). The generic
:class:`bus.poller.Poller` drives it; the records are read and named back by the declarative
mappings under ``mappings/judicial_records/``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Final

import httpx
import orjson

from bus.connector import ConnectorConfig
from bus.errors import MappingError, PartnerRejected, PartnerUnavailable
from bus.mapping import ConnectorMappings, MappingCatalog, SpecError
from bus.poller import Page, PartnerRecord, ReadRecord, record_key
from bus.security.outbound import partner_hooks, signed_partner_calls
from contracts import VN_TZ, StatusChange

__all__ = [
    "ACKNOWLEDGE_PATH",
    "DEFAULT_MAPPING",
    "LIST_PATH",
    "LOOKBACK",
    "JudicialRecordsConnector",
]

LIST_PATH: Final = "/api/lltp/dsTrangThaiHoSo"
ACKNOWLEDGE_PATH: Final = "/api/lltp/danhDauHsThanhCong"

DEFAULT_MAPPING: Final = "judicial_records/1.0"
"""The mappings used when ``connector.toml`` names none (partner/version under mappings/)."""

LOOKBACK: Final = timedelta(days=1)
"""How far before a window the list is asked from. The software dates a record to the day and
may list it some time after midnight; the list holds only unacknowledged records, so asking one
day more costs little and catches a status set late on the day before."""

_RECORD: Final = "status-record.in"
_ACKNOWLEDGEMENT: Final = "acknowledge.out"
_DAY: Final = "%d/%m/%Y"
_MAX_MESSAGE: Final = 500
# 408 and 429 say "not now", not "never": retried like a 5xx.
_RETRYABLE_4XX: Final = frozenset({408, 429})

_log = logging.getLogger(__name__)


class _MalformedAnswer(ValueError):
    """Internal: the answer is not the JSON the protocol promises."""


class _PartnerRefusal(Exception):
    """Internal: the partner answered ``maLoi`` other than 0."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class JudicialRecordsConnector:
    """Pulls judicial-records statuses (a :class:`bus.poller.PollingSource`)."""

    default_config: ClassVar[Path] = Path(__file__).with_name("connector.toml")
    #: Module whose ``main()`` serves a stand-in partner; ``bus run`` starts it for the demo.
    simulator_module: ClassVar[str] = "connectors.judicial_records.simulator"

    def __init__(
        self,
        config: ConnectorConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        catalog: MappingCatalog | None = None,
    ) -> None:
        self.config = config
        mappings = ConnectorMappings.of(config.mapping, DEFAULT_MAPPING, catalog)
        self.record_mapping = mappings.get(_RECORD)
        self._acknowledgement = mappings.get(_ACKNOWLEDGEMENT)
        for message in (self.record_mapping, self._acknowledgement):
            if message.contract is not StatusChange:
                raise SpecError(f"{message.ref} must map the status-change contract")
        self._client = httpx.AsyncClient(
            base_url=str(config.endpoint),
            timeout=httpx.Timeout(config.timeout_seconds),
            transport=transport,
            headers={"Accept": "application/json"},
            follow_redirects=False,
            # The trace context on every call, and the signatures when [signing] asks for them.
            event_hooks=partner_hooks(signed_partner_calls(config)),
        )

    async def fetch(
        self,
        window_start: datetime,
        window_end: datetime,
        cursor: str | None,
        page_size: int,
    ) -> Page:
        """One page of unacknowledged records dated in the window (widened by LOOKBACK).

        The cursor is the number (``stt``) of the last record read: acknowledging records
        already read removes them from the list without moving the unread ones.
        """
        params = {
            "tuNgay": _day(window_start - LOOKBACK),
            "denNgay": _day(window_end),
            "sauStt": cursor or "0",
            "soBanGhi": str(page_size),
        }
        with _translate_partner_errors("list of new statuses"):
            response = await self._client.get(LIST_PATH, params=params)
            response.raise_for_status()
            answer = _read_answer(response.content)
            items = answer.get("data")
            if not isinstance(items, list):
                raise _MalformedAnswer("'data' is not a list of records")
            last = max((_record_number(item) for item in items), default=None)
        more = answer.get("conTiep")
        if not isinstance(more, bool):
            more = len(items) >= page_size
        return Page(
            records=[_partner_record(item) for item in items],
            next_cursor=str(last) if more and last is not None else None,
        )

    async def acknowledge(self, records: Sequence[ReadRecord]) -> None:
        """Mark the records fetched (danhDauHsThanhCong), all in one call."""
        marks: list[dict[str, Any]] = []
        for record in records:
            try:
                marks.append(
                    self._acknowledgement.apply(
                        record.change.model_dump(mode="json", exclude_none=True)
                    )
                )
            except MappingError as exc:
                # Cannot happen for a record status-record.in read (its codes map back), but a
                # record that cannot be named to the partner must not hold up the others.
                _log.error(
                    "judicial records: record %s not acknowledged: %s", record.record.key, exc
                )
        if not marks:
            return
        content = orjson.dumps({"danhSach": marks})
        with _translate_partner_errors(f"acknowledgement of {len(marks)} record(s)"):
            response = await self._client.post(
                ACKNOWLEDGE_PATH,
                content=content,
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
            response.raise_for_status()
            _read_answer(response.content)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()


def _day(moment: datetime) -> str:
    return moment.astimezone(VN_TZ).strftime(_DAY)


def _record_number(item: Any) -> int:
    """A record's ``stt``, the key of the list's order; without it the list cannot be paged."""
    number = item.get("stt") if isinstance(item, dict) else None
    if isinstance(number, bool) or not isinstance(number, int | str):
        raise _MalformedAnswer("a record has no number (stt)")
    try:
        return int(number)
    except ValueError:
        raise _MalformedAnswer(f"a record's number (stt) is not a number: {number!r}") from None


def _partner_record(item: dict[str, Any]) -> PartnerRecord:
    code, status, day = item.get("maHoSo"), item.get("trangThai"), item.get("ngayCapNhat")
    return PartnerRecord(
        key=record_key(code, status, day),
        dossier_code=code if isinstance(code, str) else "",
        body=item,
        size=len(orjson.dumps(item)),
    )


def _read_answer(raw: bytes) -> dict[str, Any]:
    """The JSON answer; ``maLoi`` other than 0 is a refusal."""
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _MalformedAnswer(f"not JSON: {_excerpt(raw)}") from exc
    if not isinstance(answer, dict):
        raise _MalformedAnswer("the answer is not a JSON object")
    code = answer.get("maLoi", 0)
    if code not in (0, "0"):
        raise _PartnerRefusal(str(code), str(answer.get("moTa") or "no reason given"))
    return answer


def _excerpt(raw: bytes) -> str:
    return raw[:_MAX_MESSAGE].decode("utf-8", errors="replace")


def _partner_message(raw: bytes) -> str:
    """The partner's own reason (``moTa``) in an error answer, else the start of the body."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _excerpt(raw)
    if isinstance(body, dict) and body.get("moTa"):
        return f"maLoi {body.get('maLoi')}: {str(body['moTa'])[:_MAX_MESSAGE]}"
    return _excerpt(raw)


@contextlib.contextmanager
def _translate_partner_errors(what: str) -> Iterator[None]:
    """The one place where httpx errors and bad answers become bus errors."""
    where = f"judicial records, {what}"
    try:
        yield
    except httpx.TimeoutException as exc:
        raise PartnerUnavailable(
            f"{where}: no answer in time ({type(exc).__name__})", fault_code="PARTNER_TIMEOUT"
        ) from exc
    except httpx.TransportError as exc:
        raise PartnerUnavailable(
            f"{where}: connection failed ({type(exc).__name__}: {exc})",
            fault_code="PARTNER_UNREACHABLE",
        ) from exc
    except httpx.HTTPStatusError as exc:
        code = exc.response.status_code
        message = f"{where}: HTTP {code}: {_partner_message(exc.response.content)}"
        if 400 <= code < 500 and code not in _RETRYABLE_4XX:
            raise PartnerRejected(message, fault_code=f"HTTP_{code}") from exc
        raise PartnerUnavailable(message, fault_code=f"HTTP_{code}") from exc
    except _MalformedAnswer as exc:
        # An answer outside the protocol is the partner's fault and may pass: tried again.
        raise PartnerUnavailable(
            f"{where}: unreadable answer: {exc}", fault_code="MALFORMED_REPLY"
        ) from exc
    except _PartnerRefusal as exc:
        raise PartnerRejected(
            f"{where}: refused: maLoi {exc.code}: {exc.message[:_MAX_MESSAGE]}",
            fault_code=f"MA_LOI_{exc.code[:20]}",
        ) from exc
