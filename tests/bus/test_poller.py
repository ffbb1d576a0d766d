"""The generic poller on SQLite and PostgreSQL, against a pull-then-acknowledge partner in memory.

The partner lists its unacknowledged records by the time they appeared, pages after the last
record number read, and forgets a record once acknowledged, like the judicial-records software.
Records are read with the shipped judicial-records mapping.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bus import events
from bus.connector import ConnectorConfig, PollSettings
from bus.errors import PartnerRejected, PartnerUnavailable
from bus.ingest import Submission, build_ingest_request
from bus.mapping import MappingCatalog
from bus.poller import (
    Page,
    PartnerRecord,
    Poller,
    PollingSource,
    ReadRecord,
    record_key,
    split_windows,
)
from bus.store.database import create_engine, writer
from bus.store.ingest import write_ingest_batch
from bus.store.migrate import upgrade_async
from bus.store.polls import PollPosition, load_position, save_position
from bus.store.schema import dossiers, hops, outbox, processed_messages
from contracts import VN_TZ, EventEnvelope, sample_birth_dossier

CATALOG = MappingCatalog.load(partners=("judicial_records",))
RECORD_MAPPING = CATALOG.get("judicial_records/1.0/status-record.in")
JUSTICE = "000.00.22.H12"
CONFIG = ConnectorConfig(
    id="judicial_records",
    kind="poller",
    agency=JUSTICE,
    title="Judicial records (test)",
    endpoint="http://127.0.0.1:9",  # type: ignore[arg-type]
    mapping="judicial_records/1.0",
)
EXCHANGE = "t.events"
NOW = datetime(2024, 4, 20, 10, 0, tzinfo=VN_TZ)
UNKNOWN_DOSSIER = "000.00.10.H12-240402-0099"


class Crash(Exception):
    """Stands for the process dying: nothing after the point where it is raised happens."""


@dataclass
class Listed:
    """One record of the fake partner's list."""

    number: int
    key: str
    body: dict[str, Any]
    #: When the record appeared in the list: what the fake's time windows select on.
    at: datetime
    acknowledged: bool = False


class FakePartner:
    """A pull-then-acknowledge partner in memory that satisfies PollingSource."""

    def __init__(self, *, lookback: timedelta = timedelta(0)) -> None:
        self.config = CONFIG
        self.record_mapping = RECORD_MAPPING
        self.lookback = lookback
        self.records: list[Listed] = []
        self.fetches: list[tuple[datetime, datetime, str | None]] = []
        self.acknowledged: list[str] = []
        self.acknowledge_calls = 0
        self.crash_on_acknowledge: set[int] = set()
        self.refuse_acknowledgements = False
        self.fail_fetch: Callable[[datetime, datetime, str | None], Exception | None] = (
            lambda start, end, cursor: None
        )
        self.repeat_cursor = False

    def add(
        self, code: str, status: int | str, day: date, at: datetime | None = None, **fields: Any
    ) -> str:
        """Append a record dated ``day`` that appears in the list at ``at`` (default: an hour
        before NOW)."""
        body = {
            "maHoSo": code,
            "trangThai": status,
            "ngayCapNhat": day.strftime("%d/%m/%Y"),
            **fields,
        }
        key = record_key(code, status, body["ngayCapNhat"])
        moment = at or NOW - timedelta(hours=1)
        self.records.append(Listed(len(self.records) + 1, key, body, moment))
        return key

    @property
    def pending(self) -> list[str]:
        """Keys of the records not acknowledged yet."""
        return [r.key for r in self.records if not r.acknowledged]

    async def fetch(
        self, window_start: datetime, window_end: datetime, cursor: str | None, page_size: int
    ) -> Page:
        self.fetches.append((window_start, window_end, cursor))
        error = self.fail_fetch(window_start, window_end, cursor)
        if error is not None:
            raise error
        after = int(cursor or 0)
        matching = [
            r
            for r in self.records
            if not r.acknowledged
            and r.number > after
            and window_start - self.lookback <= r.at <= window_end
        ]
        page = matching[:page_size]
        records = [PartnerRecord(r.key, r.body["maHoSo"], r.body, 50) for r in page]
        if self.repeat_cursor:
            return Page(records, cursor or "0")
        more = len(matching) > page_size
        return Page(records, str(page[-1].number) if more else None)

    async def acknowledge(self, records: Sequence[ReadRecord]) -> None:
        self.acknowledge_calls += 1
        if self.acknowledge_calls in self.crash_on_acknowledge:
            raise Crash(f"died before acknowledgement {self.acknowledge_calls}")
        if self.refuse_acknowledgements:
            raise PartnerRejected("201 RECORD_NOT_FOUND", fault_code="MA_LOI_201")
        keys = {read.record.key for read in records}
        for record in self.records:
            if record.key in keys:
                record.acknowledged = True
        self.acknowledged.extend(read.record.key for read in records)

    async def aclose(self) -> None:
        pass


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated, empty store."""
    await upgrade_async(database_url)
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def ingest(engine: AsyncEngine, count: int) -> list[str]:
    """Accept ``count`` sample dossiers (status 1, sequence 1); returns their codes."""
    requests = [
        build_ingest_request(
            sample_birth_dossier(sequence=i),
            Submission(received_at=NOW, request_bytes=100),
            events_exchange=EXCHANGE,
        )
        for i in range(1, count + 1)
    ]
    await write_ingest_batch(writer(engine), requests)
    return [request.code for request in requests]


def poller(
    engine: AsyncEngine,
    partner: PollingSource,
    *,
    clock: datetime = NOW,
    start: datetime | None = NOW - timedelta(hours=6),
    window_days: float | None = None,
    page_size: int = 100,
) -> Poller:
    """A poller as a worker runs it (a fresh one stands for a restarted process)."""
    settings = PollSettings(
        interval_seconds=0.01, window_days=window_days, page_size=page_size, start=start
    )
    return Poller(partner, engine, exchange=EXCHANGE, settings=settings, clock=lambda: clock)


async def state(engine: AsyncEngine, code: str) -> tuple[int, int]:
    """A dossier's status and sequence."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(dossiers.c.status, dossiers.c.sequence).where(dossiers.c.code == code)
            )
        ).one()
    return row.status, row.sequence


async def poll_hops(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Every poll hop, in the order written."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.select(hops).where(hops.c.kind == "poll").order_by(hops.c.id)
        )
        return [dict(row._mapping) for row in rows]


async def status_events(engine: AsyncEngine) -> list[tuple[str, EventEnvelope]]:
    """The status events in the outbox (routing key, event), in commit order."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.select(outbox.c.routing_key, outbox.c.payload)
            .where(outbox.c.routing_key.like("dossier.status.%"))
            .order_by(outbox.c.id)
        )
        return [(row.routing_key, events.decode(row.payload)) for row in rows]


async def dedup_records(engine: AsyncEngine) -> int:
    """How many dedup records the store holds."""
    async with engine.connect() as connection:
        count = await connection.execute(sa.select(sa.func.count()).select_from(processed_messages))
        return int(count.scalar_one())


# -- windows ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "days", "expected"),
    [
        (84, 1.0, [24, 24, 24, 12]),
        (48, 1.0, [24, 24]),
        (30, None, [30]),
        (10, 5.0, [10]),
        (0, 1.0, []),
    ],
)
def test_time_since_the_watermark_splits_into_windows_of_window_days(
    hours: int, days: float | None, expected: list[int]
) -> None:
    """The windows cover the time from the watermark to now, end to end, none longer than
    window_days (one window when none is set)."""
    windows = split_windows(NOW - timedelta(hours=hours), NOW, days)
    assert [(end - start) / timedelta(hours=1) for start, end in windows] == expected
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    assert not windows or (windows[0][0], windows[-1][1]) == (NOW - timedelta(hours=hours), NOW)


async def test_a_poll_asks_the_partner_window_by_window(engine: AsyncEngine) -> None:
    """A poll 3.5 days behind asks the partner four windows of at most one day, in order, and
    ends with its watermark at now."""
    partner = FakePartner()
    start = NOW - timedelta(days=3, hours=12)
    report = await poller(engine, partner, start=start, window_days=1).poll_once()
    windows = [(s, e) for s, e, _ in partner.fetches]
    assert windows == split_windows(start, NOW, 1)
    assert len(windows) == report.windows == 4
    assert await load_position(engine, CONFIG.id) == PollPosition(NOW)


async def test_the_first_poll_fixes_where_polling_starts(engine: AsyncEngine) -> None:
    """Without a configured start the first poll records now as its watermark and reads
    nothing; the next poll reads from there, so a restart in between skips no time."""
    partner = FakePartner()
    first = poller(engine, partner, start=None, clock=NOW)
    await first.poll_once()
    assert partner.fetches == []
    assert await load_position(engine, CONFIG.id) == PollPosition(NOW)
    later = NOW + timedelta(minutes=5)
    await poller(engine, partner, start=None, clock=later).poll_once()
    assert [(s, e) for s, e, _ in partner.fetches] == [(NOW, later)]


# -- applying records ---------------------------------------------------------------------------


async def test_polled_records_move_dossiers_and_emit_status_events(engine: AsyncEngine) -> None:
    """Each record moves its dossier to the mapped status with the next sequence, writes a
    poll hop from the partner agency and an outbox status event, and is acknowledged."""
    [code] = await ingest(engine, 1)
    partner = FakePartner()
    key = partner.add(code, 4, date(2024, 4, 19), nguoiXuLy="Lê Thị Hồng", soPhieu="12/2024/LLTP")
    report = await poller(engine, partner).poll_once()

    assert report.outcomes == {"applied": 1}
    assert partner.acknowledged == [key]
    assert await state(engine, code) == (9, 2)
    [hop] = await poll_hops(engine)
    assert (hop["message_id"], hop["sender"], hop["recipient"], hop["outcome"]) == (
        key,
        JUSTICE,
        "bus",
        "applied",
    )
    assert hop["mapping_version"] == "judicial_records/1.0/status-record.in"
    assert hop["sent_at"] == datetime(2024, 4, 19, tzinfo=VN_TZ)
    [(routing_key, event)] = await status_events(engine)
    assert routing_key == "dossier.status.9.000.00.10.H12"
    assert (event.subject, event.source, event.dossierseq) == (code, JUSTICE, 2)
    assert event.data["previous_status"] == 1 and event.data["officer"] == "Lê Thị Hồng"


async def test_a_status_event_belongs_to_its_dossier_linkage_run(engine: AsyncEngine) -> None:
    """A polled status event has no causing bus event: it carries the id of the event that
    accepted the dossier as correlation id, and the mapping that read the record."""
    [code] = await ingest(engine, 1)
    async with engine.connect() as connection:
        accepted = (
            await connection.execute(
                sa.select(dossiers.c.accepted_event_id).where(dossiers.c.code == code)
            )
        ).scalar_one()
    partner = FakePartner()
    partner.add(code, 3, date(2024, 4, 19))
    await poller(engine, partner).poll_once()
    [(_, event)] = await status_events(engine)
    assert (event.correlationid, event.causationid) == (accepted, None)
    assert event.mappingid == "judicial_records/1.0/status-record.in"
    assert event.traceparent is not None
    [hop] = await poll_hops(engine)
    assert hop["correlation_id"] == accepted


async def test_a_record_about_an_unknown_dossier_is_recorded_without_state(
    engine: AsyncEngine,
) -> None:
    """A record about a dossier the store does not hold is a hop with outcome unknown_dossier,
    emits no event, and is acknowledged."""
    partner = FakePartner()
    key = partner.add(UNKNOWN_DOSSIER, 3, date(2024, 4, 19))
    report = await poller(engine, partner).poll_once()
    assert report.outcomes == {"unknown_dossier": 1}
    assert [h["outcome"] for h in await poll_hops(engine)] == ["unknown_dossier"]
    assert await status_events(engine) == []
    assert partner.acknowledged == [key]


@pytest.mark.parametrize(
    ("newer", "older"),
    [
        ((5, date(2024, 4, 15)), (3, date(2024, 4, 3))),  # older day
        ((4, date(2024, 4, 12)), (3, date(2024, 4, 12))),  # same day, less advanced
    ],
    ids=["older-day", "same-day-less-advanced"],
)
async def test_a_stale_status_never_overwrites_a_newer_one(
    engine: AsyncEngine, newer: tuple[int, date], older: tuple[int, date]
) -> None:
    """A record listed after a newer one was applied is recorded as stale (hop, dedup record,
    acknowledgement) without moving the dossier back; a later, newer record still applies."""
    [code] = await ingest(engine, 1)
    partner = FakePartner()
    partner.add(code, *newer, at=NOW - timedelta(hours=2))
    await poller(engine, partner, clock=NOW).poll_once()
    moved = await state(engine, code)

    stale_key = partner.add(code, *older, at=NOW + timedelta(minutes=1))
    report = await poller(engine, partner, clock=NOW + timedelta(minutes=2)).poll_once()
    assert report.outcomes == {"stale": 1}
    assert await state(engine, code) == moved
    assert len(await status_events(engine)) == 1
    assert stale_key in partner.acknowledged

    partner.add(code, 5, date(2024, 4, 16), at=NOW + timedelta(minutes=3))
    await poller(engine, partner, clock=NOW + timedelta(minutes=4)).poll_once()
    assert await state(engine, code) == (10, 3)
    assert [h["outcome"] for h in await poll_hops(engine)] == ["applied", "stale", "applied"]


async def test_one_dossier_changes_in_one_page_apply_in_the_partner_date_order(
    engine: AsyncEngine,
) -> None:
    """Records of one dossier listed out of order in one page are applied oldest first, so the
    dossier ends at the newest status and its events are numbered in date order."""
    [code] = await ingest(engine, 1)
    partner = FakePartner()
    partner.add(code, 5, date(2024, 4, 15))
    partner.add(code, 3, date(2024, 4, 3))
    partner.add(code, 4, date(2024, 4, 12))
    await poller(engine, partner).poll_once()
    assert await state(engine, code) == (10, 4)
    assert [(e.dossierseq, e.data["status"]) for _, e in await status_events(engine)] == [
        (2, 4),
        (3, 9),
        (4, 10),
    ]


async def test_an_unreadable_record_is_parked_with_its_reason_and_the_others_apply(
    engine: AsyncEngine,
) -> None:
    """A record the mapping cannot read is a parked hop with fault MAPPING_ERROR and the
    mapping's reason, is left unacknowledged for the partner to list again (filed once), and
    neither blocks the records around it nor the watermark."""
    first, second = await ingest(engine, 2)
    partner = FakePartner(lookback=timedelta(days=1))
    good_keys = [partner.add(first, 3, date(2024, 4, 19))]
    bad_key = partner.add(second, 2, date(2024, 4, 19))
    good_keys.append(partner.add(second, 3, date(2024, 4, 19)))

    report = await poller(engine, partner).poll_once()
    assert report.outcomes == {"applied": 2, "parked": 1}
    assert partner.acknowledged == good_keys
    assert partner.pending == [bad_key]
    assert await state(engine, first) == (4, 2) and await state(engine, second) == (4, 2)
    parked = [h for h in await poll_hops(engine) if h["outcome"] == "parked"]
    assert [(h["message_id"], h["dossier_code"], h["fault_code"]) for h in parked] == [
        (bad_key, second, "MAPPING_ERROR")
    ]
    assert "status-record.in: cannot map trangThai → status" in parked[0]["fault_detail"]
    assert "value 2" in parked[0]["fault_detail"]
    assert await load_position(engine, CONFIG.id) == PollPosition(NOW)

    again = await poller(engine, partner, clock=NOW + timedelta(minutes=1)).poll_once()
    assert again.outcomes == {"still_parked": 1}
    assert len(await poll_hops(engine)) == 3
    assert await dedup_records(engine) == 2


async def test_a_record_dated_ahead_of_the_bus_waits_until_its_date_has_come(
    engine: AsyncEngine,
) -> None:
    """A record the partner dated a month ahead (a wrong clock) is parked DATED_IN_FUTURE and
    left unacknowledged, so it cannot make the true changes after it look stale; listed again
    once its date has come, it applies."""
    [code] = await ingest(engine, 1)
    before = await state(engine, code)
    partner = FakePartner(lookback=timedelta(days=1))
    ahead = partner.add(code, 3, (NOW + timedelta(days=30)).date())

    report = await poller(engine, partner).poll_once()
    assert report.outcomes == {"parked": 1}
    assert partner.pending == [ahead] and partner.acknowledged == []
    assert await state(engine, code) == before
    [parked] = [h for h in await poll_hops(engine) if h["outcome"] == "parked"]
    assert (
        parked["fault_code"] == "DATED_IN_FUTURE"
        and "after the bus's time" in (parked["fault_detail"])
    )

    later = await poller(engine, partner, clock=NOW + timedelta(days=31)).poll_once()
    assert later.outcomes == {"applied": 1}
    assert partner.acknowledged == [ahead]


# -- crashes, restarts and failures -------------------------------------------------------------


@pytest.mark.parametrize("crash_at", [1, 2], ids=["first-page", "last-page"])
async def test_a_crash_between_commit_and_acknowledgement_applies_once_and_acknowledges_later(
    engine: AsyncEngine, crash_at: int
) -> None:
    """When the process dies after a page is committed and before it is acknowledged, the
    restarted poller lists those records again, applies nothing twice, and acknowledges them."""
    codes = await ingest(engine, 3)
    partner = FakePartner()
    keys = [partner.add(code, 3, date(2024, 4, 19)) for code in codes]
    partner.crash_on_acknowledge = {crash_at}
    with pytest.raises(Crash):
        await poller(engine, partner, page_size=2).poll_once()
    crashed = keys[:2] if crash_at == 1 else keys[2:]
    committed = codes[:2] if crash_at == 1 else codes
    assert partner.pending == (keys if crash_at == 1 else crashed)
    assert [await state(engine, code) for code in committed] == [(4, 2)] * len(committed)

    report = await poller(engine, partner, page_size=2).poll_once()
    assert partner.pending == []
    assert sorted(partner.acknowledged) == sorted(keys)
    assert report.outcomes["duplicate"] == len(crashed)
    assert [await state(engine, code) for code in codes] == [(4, 2)] * 3
    assert len(await status_events(engine)) == 3
    assert [h["outcome"] for h in await poll_hops(engine)] == ["applied"] * 3
    assert await load_position(engine, CONFIG.id) == PollPosition(NOW)


async def test_the_cursor_is_committed_with_each_page_and_a_restart_resumes_from_it(
    engine: AsyncEngine,
) -> None:
    """A poll that fails on its third page leaves the cursor after the second committed page;
    a restarted poller resumes there, then reads the window once more from its start before it
    moves the watermark, and every record is applied exactly once."""
    codes = await ingest(engine, 5)
    partner = FakePartner()
    keys = [partner.add(code, 3, date(2024, 4, 19)) for code in codes]
    partner.fail_fetch = lambda start, end, cursor: (
        PartnerUnavailable("503", fault_code="HTTP_503") if cursor == "4" else None
    )
    with pytest.raises(PartnerUnavailable):
        await poller(engine, partner, page_size=2).poll_once()
    window_start = NOW - timedelta(hours=6)
    assert await load_position(engine, CONFIG.id) == PollPosition(window_start, "4")
    assert partner.acknowledged == keys[:4]

    partner.fail_fetch = lambda start, end, cursor: None
    partner.fetches.clear()
    await poller(engine, partner, page_size=2).poll_once()
    assert [cursor for _, _, cursor in partner.fetches] == ["4", None]
    assert partner.acknowledged == keys
    assert await dedup_records(engine) == 5
    assert len(await status_events(engine)) == 5
    assert await load_position(engine, CONFIG.id) == PollPosition(NOW)


async def test_a_restart_resumes_from_the_watermark_with_nothing_skipped_or_duplicated(
    engine: AsyncEngine,
) -> None:
    """Records spread over four days, read a day at a time: a poll that fails in the third
    window keeps the first two; the restarted poller starts at the watermark, asks for no
    earlier window, and every record is applied and acknowledged exactly once."""
    codes = await ingest(engine, 8)
    partner = FakePartner()
    start = datetime(2024, 4, 16, tzinfo=VN_TZ)
    keys = [
        partner.add(
            code, 3, (start + timedelta(hours=12 * i)).date(), start + timedelta(hours=12 * i + 1)
        )
        for i, code in enumerate(codes)
    ]
    third = start + timedelta(days=2)
    partner.fail_fetch = lambda window_start, end, cursor: (
        PartnerUnavailable("timeout", fault_code="PARTNER_TIMEOUT")
        if window_start >= third
        else None
    )
    with pytest.raises(PartnerUnavailable):
        await poller(engine, partner, start=start, window_days=1).poll_once()
    assert await load_position(engine, CONFIG.id) == PollPosition(third)
    assert partner.acknowledged == keys[:4]

    partner.fail_fetch = lambda window_start, end, cursor: None
    partner.fetches.clear()
    await poller(engine, partner, start=start, window_days=1).poll_once()
    assert partner.fetches[0][0] == third
    assert all(window_start >= third for window_start, _, _ in partner.fetches)
    assert partner.acknowledged == keys
    assert [h["message_id"] for h in await poll_hops(engine)] == keys
    assert [e.subject for _, e in await status_events(engine)] == codes
    assert [await state(engine, code) for code in codes] == [(4, 2)] * 8


async def test_a_partner_failure_keeps_the_position_and_backs_off(engine: AsyncEngine) -> None:
    """While the partner keeps failing, the poller retries every interval with a growing pause
    (doubled per failure, at most eight intervals) and its watermark stays where it was."""
    partner = FakePartner()
    third_attempt = asyncio.Event()

    def refuse(start: datetime, end: datetime, cursor: str | None) -> Exception:
        if len(partner.fetches) >= 3:
            third_attempt.set()
        return PartnerUnavailable("connection refused", fault_code="PARTNER_UNREACHABLE")

    partner.fail_fetch = refuse
    running = poller(engine, partner)
    running.start()
    try:
        await asyncio.wait_for(third_attempt.wait(), timeout=10)
    finally:
        await running.stop()
    assert running.failures >= 2
    assert await load_position(engine, CONFIG.id) == PollPosition(NOW - timedelta(hours=6))
    delays = []
    for failures in (0, 1, 2, 3, 4, 10):
        running.failures = failures
        delays.append(round(running.next_delay() / running.settings.interval_seconds))
    assert delays == [1, 1, 2, 4, 8, 8]


async def test_a_refused_acknowledgement_does_not_stop_the_poll(engine: AsyncEngine) -> None:
    """When the partner refuses an acknowledgement the records stay applied, the refusal is
    counted, and the watermark still moves on."""
    [code] = await ingest(engine, 1)
    partner = FakePartner()
    partner.add(code, 3, date(2024, 4, 19))
    partner.refuse_acknowledgements = True
    report = await poller(engine, partner).poll_once()
    assert (report.outcomes, report.refused_acknowledgements) == ({"applied": 1}, 1)
    assert await state(engine, code) == (4, 2)
    assert await load_position(engine, CONFIG.id) == PollPosition(NOW)


async def test_a_partner_repeating_its_cursor_cannot_loop_forever(engine: AsyncEngine) -> None:
    """A source that answers the cursor it was given as the next one is a transient failure
    (CURSOR_STUCK), not an endless loop."""
    partner = FakePartner()
    partner.repeat_cursor = True
    with pytest.raises(PartnerUnavailable) as caught:
        await poller(engine, partner).poll_once()
    assert caught.value.fault_code == "CURSOR_STUCK"


async def test_a_watermark_never_moves_back(engine: AsyncEngine) -> None:
    """A slower replica committing an older position cannot rewind the watermark."""
    await save_position(writer(engine), CONFIG.id, PollPosition(NOW, "7"))
    await save_position(writer(engine), CONFIG.id, PollPosition(NOW - timedelta(days=1), "2"))
    assert await load_position(engine, CONFIG.id) == PollPosition(NOW, "7")
    await save_position(writer(engine), CONFIG.id, PollPosition(NOW, "9"))
    assert await load_position(engine, CONFIG.id) == PollPosition(NOW, "9")


def test_a_long_record_key_is_hashed_to_fit_the_dedup_record() -> None:
    """Record keys up to 64 characters are kept readable; longer ones become their SHA-256."""
    short = record_key("000.00.10.H12-240402-0007", 4, "12/04/2024")
    assert short == "000.00.10.H12-240402-0007|4|12/04/2024"
    long = record_key("x" * 70, 4)
    assert len(long) == 64 and long != record_key("x" * 71, 4)
