"""Pulling from partners that cannot push: read their lists window by window, commit, then ack.

Some partner systems only answer questions. The judicial-records software keeps a list of new
status records and forgets one only when told (pull-then-acknowledge); business registration
answers paged queries over a time window of at most five days. A connector for such a partner
(``kind = "poller"``) implements :class:`PollingSource`, and a :class:`Poller` runs it every
``[poll] interval_seconds``:

1. read the committed position: the watermark (where the window being read starts) and the
   partner's cursor inside that window;
2. split the time from the watermark to now into windows of at most ``[poll] window_days``;
3. fetch each window page by page, and map every record inbound with the connector's mapping
   (one record → one ``StatusChange``);
4. per page, commit in ONE transaction, per record, the dedup record (connector + the record's
   stable key), the ``poll`` hop, the dossier's new status (forward only) and the
   ``dossier.status_changed`` event in the outbox, together with the advanced position;
5. only after that commit, acknowledge the page's records to the partner.

Why nothing is skipped or applied twice:

- A record listed again (the process stopped between commit and acknowledgement, an
  acknowledgement failed, two workers poll the same partner) finds its dedup record and changes
  nothing; it is acknowledged again, which is what the partner was waiting for.
- The watermark passes a window only after a pass over the whole window, from its start, in
  which every acknowledgement was answered (a refusal is logged and does not hold the window
  back: the records are applied). A pass resumed from a saved cursor is therefore
  followed by one more pass from the window's start: records committed before the cursor whose
  acknowledgement was lost are listed again there (for a pull-then-acknowledge partner that pass
  lists only what is still unacknowledged, so it is cheap).
- A source must page so that acknowledging records it has returned does not move unread
  records behind the cursor (keyset paging, or offsets that account for acknowledged records).
- Partner failures stop the poll where it is: what was committed stays, the position is not
  advanced further, and the poller tries again after a back-off (the interval, doubled per
  consecutive failure up to eight times).

A record the mapping cannot read is recorded as a ``poll`` hop with outcome ``parked``, fault
``MAPPING_ERROR`` and the mapping's precise reason, once, and is **not acknowledged**: the
partner keeps listing it, so once the mapping is fixed (and the workers restarted) the next
poll applies it, with nothing to replay by hand and nothing lost. It never blocks the records
around it or the watermark; while it stays unreadable, each listing costs one look-up in the
transaction log and writes nothing. The poller asks for it only while its windows cover it (for
judicial records: its day and the next): to apply it after a later fix, move the connector's
watermark back in ``poll_cursors`` (the dedup record keeps everything else harmless).

A readable record is acknowledged whatever became of it: applied, already applied, stale (older
than the dossier's current state: recorded, not applied) or about a dossier this bus does not
know (outcome ``unknown_dossier``: recorded, no state).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncEngine

from bus import events
from bus.connector import ConnectorConfig, PollSettings
from bus.errors import BusError, MappingError, PartnerRejected, PartnerUnavailable
from bus.logs import about
from bus.mapping import MessageMapping
from bus.security.outbound import recording_signatures
from bus.store.database import writer
from bus.store.deliveries import StatusTransition
from bus.store.polls import (
    POLL_HOP,
    PolledEntry,
    PollPosition,
    commit_polled,
    dated_in_future,
    load_position,
    save_position,
)
from bus.tasks import cancel_and_wait
from contracts import StatusChange

if TYPE_CHECKING:
    from bus.linkage.engine import LinkageEngine
    from bus.runtime import Runtime

__all__ = [
    "Page",
    "PartnerRecord",
    "PollReport",
    "Poller",
    "PollingSource",
    "ReadRecord",
    "record_key",
    "run_pollers",
    "split_windows",
]

log = logging.getLogger(__name__)

MAX_KEY_LENGTH: Final = 64
"""Longest record key stored as it is; longer ones are stored as their SHA-256."""

MAX_BACKOFF_FACTOR: Final = 8
"""After consecutive failures the pause grows to at most this many intervals."""

_MAX_DETAIL: Final = 2000
#: The fault code of a listed record its partner dated too far ahead (bus.store.polls).
DATED_IN_FUTURE: Final = "DATED_IN_FUTURE"


@dataclass(frozen=True, slots=True)
class PartnerRecord:
    """One record as the partner listed it, before any mapping."""

    #: Stable across listings, e.g. dossier code + partner status + update time: the dedup key.
    key: str
    #: The dossier the record is about, as the partner wrote it (files an unreadable record).
    dossier_code: str
    #: The record itself, as the connector's mapping reads it.
    body: Mapping[str, Any]
    #: Its size on the wire, for the transaction log.
    size: int = 0


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a partner's list."""

    records: Sequence[PartnerRecord]
    #: Where the next page starts; ``None`` when this page ends the window.
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class ReadRecord:
    """A partner record and the status change the mapping read from it: what is acknowledged."""

    record: PartnerRecord
    change: StatusChange


@runtime_checkable
class PollingSource(Protocol):
    """An adapter to a partner the bus pulls from (a connector of kind ``poller``).

    Both coroutines raise :class:`bus.errors.PartnerUnavailable` when the partner may answer
    later and :class:`bus.errors.PartnerRejected` when it refuses the request itself. A source
    never touches the store: what a record means is the mapping's job, what is done with it the
    poller's.
    """

    config: ConnectorConfig
    #: The inbound mapping that reads one record into a ``StatusChange``.
    record_mapping: MessageMapping

    async def fetch(
        self,
        window_start: datetime,
        window_end: datetime,
        cursor: str | None,
        page_size: int,
    ) -> Page:
        """One page of the records the partner dates in ``[window_start, window_end]``.

        ``cursor`` is ``None`` for the first page, else a ``next_cursor`` this source returned.
        """
        ...

    async def acknowledge(self, records: Sequence[ReadRecord]) -> None:
        """Tell the partner these records are applied, so it stops listing them.

        A partner without acknowledgement implements this as a no-op.
        """
        ...

    async def aclose(self) -> None:
        """Release network resources."""
        ...


def record_key(*parts: object) -> str:
    """A stable record key from the fields that identify a record at the partner.

    ``record_key("000.00.10.H12-240402-0007", 4, "12/04/2024")`` is
    ``"000.00.10.H12-240402-0007|4|12/04/2024"``; a key longer than 64 characters is replaced
    by its SHA-256, so that it fits the dedup record.
    """
    return _stored_key("|".join("" if part is None else str(part) for part in parts))


def _stored_key(key: str) -> str:
    if len(key) <= MAX_KEY_LENGTH:
        return key
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def split_windows(
    since: datetime, until: datetime, days: float | None
) -> list[tuple[datetime, datetime]]:
    """The windows covering ``[since, until]``, each at most ``days`` long (``None``: one)."""
    if until <= since:
        return []
    if days is None:
        return [(since, until)]
    step = timedelta(days=days)
    windows: list[tuple[datetime, datetime]] = []
    start = since
    while start < until:
        end = min(start + step, until)
        windows.append((start, end))
        start = end
    return windows


@dataclass
class PollReport:
    """What one poll did."""

    windows: int = 0
    pages: int = 0
    #: Records by outcome: applied, duplicate, stale, unknown_dossier, parked, still_parked.
    outcomes: Counter[str] = field(default_factory=Counter)
    acknowledged: int = 0
    #: Records whose acknowledgement the partner refused (applied all the same).
    refused_acknowledgements: int = 0


def _now() -> datetime:
    return datetime.now(UTC)


class Poller:
    """Runs one :class:`PollingSource` every interval (see the module's documentation)."""

    def __init__(
        self,
        source: PollingSource,
        engine: AsyncEngine,
        *,
        exchange: str,
        settings: PollSettings | None = None,
        clock: Callable[[], datetime] = _now,
        on_applied: Callable[[], None] | None = None,
        linkage: LinkageEngine | None = None,
    ) -> None:
        """``engine`` is the store; ``exchange`` the events exchange that status events go to.

        ``settings`` default to the connector's ``[poll]`` section; ``on_applied`` is called after
        a commit that moved a dossier (the outbox relay's wake-up, in a bus process);
        ``linkage`` moves the runs of dossiers in a linkage bundle.
        """
        self.source = source
        self.connector_id = source.config.id
        self.settings = settings or source.config.poll or PollSettings()
        self.totals = PollReport()
        #: Consecutive failed polls (0 after a poll that completed).
        self.failures = 0
        self._engine = engine
        self._writer = writer(engine)
        self._exchange = exchange
        self._clock = clock
        self._on_applied = on_applied
        self._linkage = linkage
        self._mapping = source.record_mapping
        self._context = {"agency": source.config.agency}
        self._task: asyncio.Task[None] | None = None

    # -- one poll ---------------------------------------------------------------------------

    async def poll_once(self) -> PollReport:
        """Read every window from the watermark to now; raises what the partner raised."""
        report = PollReport()
        try:
            now = self._clock()
            position = await load_position(self._engine, self.connector_id)
            if position is None:
                position = PollPosition(self.settings.start or now)
                # Fixed before anything is read, so a restart cannot move the start past a gap.
                await save_position(self._writer, self.connector_id, position)
            windows = split_windows(position.watermark, now, self.settings.window_days)
            for start, end in windows:
                cursor = position.cursor if start == position.watermark else None
                await self._read_window(start, end, cursor, report)
                report.windows += 1
        finally:
            self._add_to_totals(report)
        return report

    async def _read_window(
        self, start: datetime, end: datetime, cursor: str | None, report: PollReport
    ) -> None:
        """Read one window; the watermark passes it once all it listed is acknowledged."""
        resumed = cursor is not None
        finished = await self._read_pass(start, end, cursor, may_finish=not resumed, report=report)
        if resumed:
            # Records committed before the saved cursor may have lost their acknowledgement
            # (the process stopped in between): read the window once more from its start.
            finished = await self._read_pass(start, end, None, may_finish=True, report=report)
        if not finished:
            await save_position(self._writer, self.connector_id, PollPosition(end))

    async def _read_pass(
        self,
        start: datetime,
        end: datetime,
        cursor: str | None,
        *,
        may_finish: bool,
        report: PollReport,
    ) -> bool:
        """Read the window from ``cursor`` to its end; says whether it committed the window's end.

        The last page moves the watermark itself when nothing on it awaits acknowledgement and
        the pass started at the window's start (``may_finish``); otherwise the caller does it.
        """
        while True:
            with recording_signatures() as signed:
                page = await self.source.fetch(start, end, cursor, self.settings.page_size)
            received_at = datetime.now(UTC)
            report.pages += 1
            if page.next_cursor is not None and page.next_cursor == cursor:
                raise PartnerUnavailable(
                    f"{self.connector_id}: the partner's list did not advance past cursor "
                    f"{cursor!r}",
                    fault_code="CURSOR_STUCK",
                )
            entries, readable = self._read_page(page.records, received_at, self._clock(), signed)
            last = page.next_cursor is None
            finished = last and may_finish and not readable
            if finished:
                position = PollPosition(end)
            else:
                # After the last page, stay on it: a restart re-reads it (harmlessly) and ends
                # the window only once its acknowledgements are known to be done.
                position = PollPosition(start, cursor if last else page.next_cursor)
            outcomes = await commit_polled(
                self._writer,
                entries,
                self._status_event_row,
                connector_id=self.connector_id,
                position=position,
                linkage=self._linkage,
            )
            report.outcomes.update(outcomes)
            for entry, outcome in zip(entries, outcomes, strict=True):
                if outcome == "parked":
                    log.warning(
                        "%s: record %s cannot be read; parked, not acknowledged: %s",
                        self.connector_id,
                        entry.record_key,
                        entry.hop_row["fault_detail"],
                    )
            if "applied" in outcomes and self._on_applied is not None:
                self._on_applied()
            if readable:
                await self._acknowledge(readable, report)
            if last:
                return finished
            cursor = page.next_cursor

    async def _acknowledge(self, readable: Sequence[ReadRecord], report: PollReport) -> None:
        """Acknowledge committed records; a refusal is logged, not retried (they are applied)."""
        try:
            await self.source.acknowledge(readable)
        except PartnerRejected as exc:
            # The effect is committed: the partner refusing to forget the records is worth an
            # operator's look, but must not stop the records after them.
            report.refused_acknowledgements += len(readable)
            log.error(
                "%s: the partner refused to acknowledge %d record(s) (%s): %s",
                self.connector_id,
                len(readable),
                exc.fault_code,
                exc.message,
            )
            return
        report.acknowledged += len(readable)

    def _read_page(
        self,
        records: Sequence[PartnerRecord],
        received_at: datetime,
        now: datetime,
        signed: Sequence[Mapping[str, Any]] = (),
    ) -> tuple[list[PolledEntry], list[ReadRecord]]:
        """Map each record; an unreadable one, or one dated after ``now`` (the poller's clock)
        by more than the tolerance, becomes a parked entry; the others go on. ``signed``: the
        page's signed exchanges, kept with each record's hop as the evidence it came with."""
        entries: list[PolledEntry] = []
        readable: list[ReadRecord] = []
        for record in records:
            key = _stored_key(record.key)
            hop = self._hop(key, record, received_at, signed)
            try:
                with about(dossier=record.dossier_code, message_id=key):
                    change = self._read(record)
            except MappingError as exc:
                hop.update(fault_code=exc.fault_code, fault_detail=exc.message[:_MAX_DETAIL])
                entries.append(PolledEntry(self.connector_id, key, hop, None))
                continue
            hop["dossier_code"] = change.dossier_code
            if dated_in_future(change, now):
                # Parked and not acknowledged: the partner lists it again, and it applies once
                # its date has come (or its clock is fixed).
                hop.update(
                    fault_code=DATED_IN_FUTURE,
                    fault_detail=f"dated {change.changed_at.isoformat()}, after the bus's time",
                )
                entries.append(PolledEntry(self.connector_id, key, hop, None))
                continue
            entries.append(PolledEntry(self.connector_id, key, hop, change))
            readable.append(ReadRecord(record, change))
        return entries, readable

    def _read(self, record: PartnerRecord) -> StatusChange:
        """The record as a status change, or a MappingError saying why not."""
        ref = self._mapping.ref
        try:
            change = self._mapping.to_canonical(record.body, self._context)
        except MappingError:
            raise
        except Exception as exc:  # the engine choked on this record: park it, keep the others
            log.exception("%s: mapping %s failed on record %s", self.connector_id, ref, record.key)
            raise MappingError(
                f"{ref}: cannot read the record: {type(exc).__name__}: {exc}", mapping=ref
            ) from exc
        if not isinstance(change, StatusChange):
            raise MappingError(f"{ref} does not map to the status-change contract", mapping=ref)
        return change

    def _hop(
        self,
        key: str,
        record: PartnerRecord,
        received_at: datetime,
        signed: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        return {
            "message_id": key,
            "dossier_code": (record.dossier_code or "?")[:40],
            # Replaced by the dossier's linkage run when the bus knows the dossier.
            "correlation_id": key,
            "kind": POLL_HOP,
            "sender": self.source.config.agency,
            "recipient": "bus",
            "received_at": received_at,
            # The partner's date of the record, set when the mapping could read it.
            "sent_at": None,
            "answered_at": None,
            "request_bytes": 0,
            "response_bytes": record.size,
            "fault_code": None,
            "fault_detail": None,
            "mapping_version": self._mapping.ref,
            "attempt": 1,
            "signatures": list(signed) or None,
        }

    def _status_event_row(
        self, change: StatusChange, transition: StatusTransition
    ) -> dict[str, Any]:
        return events.status_outbox_row(
            change,
            sequence=transition.sequence,
            receiving_agency=transition.receiving_agency,
            exchange=self._exchange,
            correlation_id=transition.accepted_event_id,
            mapping=self._mapping.ref,
        )

    def _add_to_totals(self, report: PollReport) -> None:
        totals = self.totals
        totals.windows += report.windows
        totals.pages += report.pages
        totals.outcomes.update(report.outcomes)
        totals.acknowledged += report.acknowledged
        totals.refused_acknowledgements += report.refused_acknowledgements

    # -- running ----------------------------------------------------------------------------

    def next_delay(self) -> float:
        """Seconds until the next poll: the interval, doubled per consecutive failure (capped)."""
        factor = 2 ** max(self.failures - 1, 0) if self.failures else 1
        return float(self.settings.interval_seconds * min(factor, MAX_BACKOFF_FACTOR))

    async def run(self) -> None:
        """Poll every interval until cancelled; failures are logged and backed off."""
        while True:
            try:
                report = await self.poll_once()
            except BusError as exc:
                self.failures += 1
                log.log(
                    logging.WARNING if exc.transient else logging.ERROR,
                    "%s: poll failed (%s, %s), next try in %.0fs: %s",
                    self.connector_id,
                    exc.fault_code,
                    exc.error_class,
                    self.next_delay(),
                    exc.message,
                )
            except Exception:
                self.failures += 1
                log.exception(
                    "%s: poll failed, next try in %.0fs", self.connector_id, self.next_delay()
                )
            else:
                self.failures = 0
                if set(report.outcomes) - {"still_parked"} or report.refused_acknowledgements:
                    log.info(
                        "%s: polled %d page(s): %s; %d acknowledged",
                        self.connector_id,
                        report.pages,
                        dict(report.outcomes),
                        report.acknowledged,
                    )
            await asyncio.sleep(self.next_delay())

    def start(self) -> None:
        """Start polling in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"poller:{self.connector_id}")

    async def stop(self) -> None:
        """Stop polling (a poll in progress is abandoned: it is safe) and close the source."""
        await cancel_and_wait(self._task)
        self._task = None
        await self.source.aclose()


async def run_pollers(runtime: Runtime, connector_ids: Sequence[str] = ()) -> list[Poller]:
    """Start a poller per connector of kind ``poller`` (among ``connector_ids``, default all)."""
    ids = list(connector_ids) or runtime.registry.ids
    pollers: list[Poller] = []
    for connector_id in ids:
        registered = runtime.registry.get(connector_id)
        if registered.config.kind != "poller":
            continue
        source = registered.build()
        if not isinstance(source, PollingSource):
            await source.aclose()
            raise TypeError(
                f"connector {connector_id!r} is of kind 'poller' but does not implement "
                "bus.poller.PollingSource"
            )
        poller = Poller(
            source,
            runtime.engine,
            exchange=runtime.names.events,
            on_applied=runtime.relay.wake,
            linkage=runtime.linkage,
        )
        poller.start()
        log.info("polling %s every %ss", connector_id, poller.settings.interval_seconds)
        pollers.append(poller)
    return pollers
