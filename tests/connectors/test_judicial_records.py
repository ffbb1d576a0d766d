"""The judicial-records connector and poller against its simulator over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import entry_points

import aio_pika
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bus import events
from bus.connector import ConnectorConfig, PollSettings
from bus.errors import PartnerRejected, PartnerUnavailable
from bus.ingest import Submission, build_ingest_request
from bus.poller import PartnerRecord, Poller, PollingSource, ReadRecord, run_pollers
from bus.registry import ConnectorRegistry, RegisteredConnector
from bus.runtime import Runtime
from bus.store import outbox as outbox_store
from bus.store.database import create_engine, writer
from bus.store.ingest import write_ingest_batch
from bus.store.migrate import upgrade_async
from bus.store.schema import dossiers, hops, outbox
from bus.testing import serve_app
from bus.worker import run_workers
from connectors.judicial_records import (
    JudicialRecordsConnector,
    SimulatorState,
    create_simulator_app,
)
from contracts import VN_TZ, DossierStatus, EventEnvelope, StatusChange, sample_birth_dossier
from tests.conftest import AMQP_URL, make_settings
from tests.connectors.helpers import set_faults

EXCHANGE = "t.events"
TODAY = datetime.now(VN_TZ).date()
UNKNOWN_DOSSIER = "000.00.10.H12-240402-0099"


@pytest.fixture(scope="module")
def state() -> SimulatorState:
    """One simulated status list for the module; reset before every test."""
    return SimulatorState(seed=11)


@pytest.fixture(scope="module")
def base_url(state: SimulatorState) -> Iterator[str]:
    """The simulator, served over HTTP on a free loopback port."""
    with serve_app(create_simulator_app(state)) as url:
        yield url


@pytest.fixture(autouse=True)
def _fresh_simulator(state: SimulatorState) -> None:
    """Every test starts with an empty list and no faults."""
    state.reset()


@pytest.fixture
def config(base_url: str) -> ConnectorConfig:
    """The shipped connector.toml, pointed at the simulator."""
    return ConnectorConfig.from_file(JudicialRecordsConnector.default_config, endpoint=base_url)


@pytest.fixture
async def connector(config: ConnectorConfig) -> AsyncIterator[JudicialRecordsConnector]:
    """A connector talking to the simulator."""
    instance = JudicialRecordsConnector(config)
    yield instance
    await instance.aclose()


@pytest.fixture
async def engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated, empty store."""
    await upgrade_async(sqlite_url)
    engine = create_engine(sqlite_url)
    yield engine
    await engine.dispose()


async def ingest(engine: AsyncEngine, count: int) -> list[str]:
    """Accept ``count`` sample dossiers into the store; returns their codes."""
    requests = [
        build_ingest_request(
            sample_birth_dossier(sequence=i),
            Submission(received_at=datetime.now(UTC), request_bytes=100),
            events_exchange=EXCHANGE,
        )
        for i in range(1, count + 1)
    ]
    await write_ingest_batch(writer(engine), requests)
    return [request.code for request in requests]


def poller(engine: AsyncEngine, connector: JudicialRecordsConnector, page_size: int = 2) -> Poller:
    """A poller that starts an hour back, as a worker runs one."""
    settings = PollSettings(
        interval_seconds=0.1,
        window_days=7,
        page_size=page_size,
        start=datetime.now(UTC) - timedelta(hours=1),
    )
    return Poller(connector, engine, exchange=EXCHANGE, settings=settings)


async def status_events(engine: AsyncEngine) -> list[EventEnvelope]:
    """The status events in the outbox, in commit order."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.select(outbox.c.payload)
            .where(outbox.c.routing_key.like("dossier.status.%"))
            .order_by(outbox.c.id)
        )
        return [events.decode(row.payload) for row in rows]


def read(connector: JudicialRecordsConnector, record: PartnerRecord) -> ReadRecord:
    """A listed record with the status change the connector's mapping reads from it."""
    change = connector.record_mapping.to_canonical(record.body, {"agency": connector.config.agency})
    assert isinstance(change, StatusChange)
    return ReadRecord(record, change)


async def fetch_all(connector: JudicialRecordsConnector, page_size: int = 100) -> list[ReadRecord]:
    """Every record of the last hour's window, read through the mapping."""
    now = datetime.now(UTC)
    page = await connector.fetch(now - timedelta(hours=1), now, None, page_size)
    return [read(connector, record) for record in page.records]


# -- configuration ------------------------------------------------------------------------------


def test_entry_point_resolves_to_connector() -> None:
    """The lienthong_bus.connectors entry point judicial_records loads JudicialRecordsConnector."""
    (entry,) = entry_points(group="lienthong_bus.connectors", name="judicial_records")
    assert entry.load() is JudicialRecordsConnector


def test_shipped_config_is_a_poller_of_the_judicial_software() -> None:
    """The shipped connector.toml is a poller with no procedures, its mapping and [poll]."""
    config = ConnectorConfig.from_file(JudicialRecordsConnector.default_config)
    assert (config.id, config.kind, config.procedures) == ("judicial_records", "poller", ())
    assert config.mapping == "judicial_records/1.0"
    assert str(config.endpoint) == "http://127.0.0.1:8104/"
    assert config.poll == PollSettings(interval_seconds=30, window_days=7, page_size=100)


async def test_connector_is_a_polling_source_reading_status_records(
    connector: JudicialRecordsConnector,
) -> None:
    """Built from its config alone, the connector is a PollingSource whose record mapping is
    judicial_records/1.0/status-record.in."""
    assert isinstance(connector, PollingSource)
    assert connector.record_mapping.ref == "judicial_records/1.0/status-record.in"


# -- the flow -----------------------------------------------------------------------------------


async def test_records_flow_into_status_events_in_the_outbox(
    connector: JudicialRecordsConnector, state: SimulatorState, engine: AsyncEngine
) -> None:
    """Listed records become status events in the outbox, dossiers move, every readable record
    is acknowledged, and an unreadable one stays listed, parked once."""
    first, second, third = await ingest(engine, 3)
    state.add(first, 3, TODAY, officer="Lê Thị Hồng")
    state.add(first, 4, TODAY, certificate="15/2024/LLTP")
    state.add(second, "3", TODAY)
    state.add(UNKNOWN_DOSSIER, 3, TODAY)
    state.add(third, 2, TODAY)

    report = await poller(engine, connector).poll_once()

    assert report.outcomes == {"applied": 3, "unknown_dossier": 1, "parked": 1}
    assert [(e.subject, e.data["status"], e.dossierseq) for e in await status_events(engine)] == [
        (first, 4, 2),
        (first, 9, 3),
        (second, 4, 2),
    ]
    async with engine.connect() as connection:
        moved = {
            row.code: row.partner_reference
            for row in await connection.execute(
                sa.select(dossiers.c.code, dossiers.c.partner_reference)
            )
        }
        outcomes = (
            (
                await connection.execute(
                    sa.select(hops.c.outcome).where(hops.c.kind == "poll").order_by(hops.c.id)
                )
            )
            .scalars()
            .all()
        )
    assert moved[first] == "15/2024/LLTP"
    assert sorted(outcomes) == ["applied", "applied", "applied", "parked", "unknown_dossier"]
    assert state.stats()["acknowledged"] == 4
    assert [r["maHoSo"] for r in state.snapshot() if not r["daDanhDau"]] == [third]

    again = await poller(engine, connector).poll_once()
    assert again.outcomes == {"still_parked": 1}
    assert len(await status_events(engine)) == 3


async def test_an_unacknowledged_record_is_listed_again_and_applied_once(
    connector: JudicialRecordsConnector,
    state: SimulatorState,
    engine: AsyncEngine,
    sim: httpx.AsyncClient,
) -> None:
    """When the acknowledgement fails after the commit, the records stay listed; the next poll
    lists them again, applies nothing twice, and acknowledges them."""
    codes = await ingest(engine, 3)
    for code in codes:
        state.add(code, 3, TODAY)
    await set_faults(sim, drop_acknowledgements=True)
    with pytest.raises(PartnerUnavailable) as caught:
        await poller(engine, connector).poll_once()
    assert caught.value.fault_code == "HTTP_503"
    assert state.stats()["pending"] == 3
    assert len(await status_events(engine)) == 2  # the first page was committed

    await set_faults(sim)
    report = await poller(engine, connector).poll_once()
    assert report.outcomes == {"applied": 1, "duplicate": 2}
    assert state.stats()["pending"] == 0
    assert [e.subject for e in await status_events(engine)] == codes


# -- the wire -----------------------------------------------------------------------------------


async def test_the_list_is_asked_by_day_first_dates_with_a_day_of_lookback(
    connector: JudicialRecordsConnector, state: SimulatorState
) -> None:
    """A window from 3 April 10:00 to 4 April 09:00 asks tuNgay=02/04/2024 and
    denNgay=04/04/2024: records of 2 and 4 April are listed, not those of 1 or 5 April, nor
    of 4 February."""
    for day in (date(2024, 4, 1), date(2024, 4, 2), date(2024, 4, 4), date(2024, 2, 4)):
        state.add(f"000.00.10.H12-240401-{day.day:02d}{day.month:02d}", 3, day)
    state.add("000.00.10.H12-240401-0505", 3, date(2024, 4, 5))
    start = datetime(2024, 4, 3, 10, tzinfo=VN_TZ)
    page = await connector.fetch(start, start + timedelta(hours=23), None, 100)
    assert [r.body["ngayCapNhat"] for r in page.records] == ["02/04/2024", "04/04/2024"]
    assert page.next_cursor is None


async def test_pages_follow_record_numbers_so_acknowledging_moves_nothing_unread(
    connector: JudicialRecordsConnector, state: SimulatorState
) -> None:
    """Paging continues after the last record number read, so acknowledging the first page
    does not shift the unread records past the cursor."""
    for sequence in range(1, 6):
        state.add(f"000.00.10.H12-240402-{sequence:04d}", 3, TODAY)
    now = datetime.now(UTC)
    first = await connector.fetch(now - timedelta(hours=1), now, None, 2)
    await connector.acknowledge([read(connector, record) for record in first.records])
    second = await connector.fetch(now - timedelta(hours=1), now, first.next_cursor, 2)
    third = await connector.fetch(now - timedelta(hours=1), now, second.next_cursor, 2)
    numbers = [[r.body["stt"] for r in p.records] for p in (first, second, third)]
    assert numbers == [[1, 2], [3, 4], [5]]
    assert (first.next_cursor, second.next_cursor, third.next_cursor) == ("2", "4", None)


async def test_the_acknowledgement_names_each_record_by_dossier_and_judicial_status(
    connector: JudicialRecordsConnector, state: SimulatorState
) -> None:
    """danhDauHsThanhCong carries maHoSo and the software's own trangThai (4 for a processed
    dossier), so exactly the records read are marked and no longer listed."""
    state.add("000.00.10.H12-240402-0007", 4, TODAY)
    state.add("000.00.10.H12-240402-0008", 5, TODAY)
    read = await fetch_all(connector)
    assert [r.change.status for r in read] == [
        DossierStatus.PROCESSED,
        DossierStatus.RESULT_RETURNED,
    ]
    await connector.acknowledge(read[:1])
    assert [(r["maHoSo"], r["trangThai"], r["daDanhDau"]) for r in state.snapshot()] == [
        ("000.00.10.H12-240402-0007", 4, True),
        ("000.00.10.H12-240402-0008", 5, False),
    ]
    assert [r.record.body["stt"] for r in await fetch_all(connector)] == [2]


# -- failure switches ---------------------------------------------------------------------------


async def test_server_error_is_transient(
    connector: JudicialRecordsConnector, sim: httpx.AsyncClient
) -> None:
    """An HTTP 503 from the partner is PartnerUnavailable HTTP_503, for the list and for the
    acknowledgement."""
    await set_faults(sim, error_rate=1.0)
    now = datetime.now(UTC)
    with pytest.raises(PartnerUnavailable) as listing:
        await connector.fetch(now - timedelta(hours=1), now, None, 10)
    change = StatusChange(
        dossier_code="000.00.10.H12-240402-0007",
        status=DossierStatus.PROCESSING,
        changed_at=now,
        agency="000.00.22.H12",
    )
    record = ReadRecord(PartnerRecord("k", change.dossier_code, {}), change)
    with pytest.raises(PartnerUnavailable) as acknowledging:
        await connector.acknowledge([record])
    assert (listing.value.fault_code, acknowledging.value.fault_code) == ("HTTP_503", "HTTP_503")
    assert isinstance(listing.value.__cause__, httpx.HTTPStatusError)


async def test_garbage_answer_is_malformed_reply(
    connector: JudicialRecordsConnector, sim: httpx.AsyncClient
) -> None:
    """A non-JSON answer is PartnerUnavailable with fault code MALFORMED_REPLY."""
    await set_faults(sim, malformed=True)
    now = datetime.now(UTC)
    with pytest.raises(PartnerUnavailable) as caught:
        await connector.fetch(now - timedelta(hours=1), now, None, 10)
    assert caught.value.fault_code == "MALFORMED_REPLY"


async def test_hang_times_out_as_transient(config: ConnectorConfig, sim: httpx.AsyncClient) -> None:
    """A partner that never answers is PartnerUnavailable PARTNER_TIMEOUT after the timeout."""
    await set_faults(sim, hang=True)
    connector = JudicialRecordsConnector(config.model_copy(update={"timeout_seconds": 0.3}))
    now = datetime.now(UTC)
    started = time.monotonic()
    try:
        with pytest.raises(PartnerUnavailable) as caught:
            await connector.fetch(now - timedelta(hours=1), now, None, 10)
    finally:
        await connector.aclose()
    assert time.monotonic() - started < 5
    assert caught.value.fault_code == "PARTNER_TIMEOUT"
    assert isinstance(caught.value.__cause__, httpx.TimeoutException)


async def test_latency_below_timeout_still_lists(
    connector: JudicialRecordsConnector, state: SimulatorState, sim: httpx.AsyncClient
) -> None:
    """A slow partner that answers within the timeout lists its records normally."""
    state.add("000.00.10.H12-240402-0007", 3, TODAY)
    await set_faults(sim, latency_ms=150)
    started = time.monotonic()
    read = await fetch_all(connector)
    assert time.monotonic() - started >= 0.15
    assert [r.record.dossier_code for r in read] == ["000.00.10.H12-240402-0007"]


async def test_refusal_is_permanent_with_the_partner_code(
    connector: JudicialRecordsConnector, sim: httpx.AsyncClient
) -> None:
    """maLoi 100 (AUTHEN_ERROR) with HTTP 200 is PartnerRejected MA_LOI_100 with its reason."""
    await set_faults(sim, reject_all=True)
    now = datetime.now(UTC)
    with pytest.raises(PartnerRejected, match="AUTHEN_ERROR") as caught:
        await connector.fetch(now - timedelta(hours=1), now, None, 10)
    assert caught.value.fault_code == "MA_LOI_100"


async def test_a_refused_query_is_permanent(connector: JudicialRecordsConnector) -> None:
    """A query the partner refuses with HTTP 400 (a page larger than it serves) is
    PartnerRejected HTTP_400 quoting the partner's maLoi."""
    now = datetime.now(UTC)
    with pytest.raises(PartnerRejected, match="maLoi 302") as caught:
        await connector.fetch(now - timedelta(hours=1), now, None, 5000)
    assert caught.value.fault_code == "HTTP_400"


async def test_connection_refused_is_transient(config: ConnectorConfig) -> None:
    """A partner that refuses the connection is PartnerUnavailable PARTNER_UNREACHABLE."""
    with serve_app(create_simulator_app()) as url:
        pass  # the port is free again once the server has stopped
    connector = JudicialRecordsConnector(config.model_copy(update={"endpoint": url}))
    now = datetime.now(UTC)
    try:
        with pytest.raises(PartnerUnavailable) as caught:
            await connector.fetch(now - timedelta(hours=1), now, None, 10)
    finally:
        await connector.aclose()
    assert caught.value.fault_code == "PARTNER_UNREACHABLE"


# -- the simulator ------------------------------------------------------------------------------


async def test_records_posted_to_the_simulator_are_listed_and_counted(
    sim: httpx.AsyncClient, connector: JudicialRecordsConnector
) -> None:
    """Records posted to /_sim/records are listed with their numbers; /_sim/stats counts the
    listings and acknowledgements exactly; a day that is not dd/MM/yyyy is refused."""
    posted = await sim.post(
        "/_sim/records",
        json=[
            {"maHoSo": "000.00.10.H12-240402-0007", "trangThai": 3},
            {"maHoSo": "000.00.10.H12-240402-0008", "trangThai": 4, "soPhieu": "1/2024/LLTP"},
        ],
    )
    assert [item["stt"] for item in posted.json()] == [1, 2]
    read = await fetch_all(connector)
    await connector.acknowledge(read[:1])
    await fetch_all(connector)
    stats = (await sim.get("/_sim/stats")).json()
    assert (stats["listed"], stats["acknowledged"], stats["pending"]) == (3, 1, 1)
    refused = await sim.post(
        "/_sim/records",
        json=[{"maHoSo": "000.00.10.H12-240402-0009", "trangThai": 3, "ngayCapNhat": "2024-04-02"}],
    )
    assert refused.status_code == 422


def test_records_appear_over_time_and_read_as_status_changes() -> None:
    """With appear_every_seconds, records appear as time passes, each dossier going 3, 4, 5,
    and every one of them maps to a status change."""
    moment = [datetime(2024, 4, 3, 8, tzinfo=VN_TZ)]
    state = SimulatorState(seed=3, appear_every_seconds=60, clock=lambda: moment[0])
    assert len(state.page(date(2024, 4, 3), None, 0, 100)[0]) == 1
    moment[0] += timedelta(minutes=30)
    items, _ = state.page(date(2024, 4, 3), None, 0, 1000)
    assert len(items) == 31
    mapping = JudicialRecordsConnector(
        ConnectorConfig.from_file(JudicialRecordsConnector.default_config)
    ).record_mapping
    steps: dict[str, list[int]] = {}
    for item in items:
        change = mapping.to_canonical(item, {"agency": "000.00.22.H12"})
        assert isinstance(change, StatusChange)
        steps.setdefault(item["maHoSo"], []).append(item["trangThai"])
    assert all(seen == [3, 4, 5][: len(seen)] for seen in steps.values())


# -- in a worker --------------------------------------------------------------------------------


@pytest.mark.broker
async def test_a_worker_polls_the_partner_and_publishes_status_events(
    namespace: str,
    sqlite_url: str,
    broker_cleanup: list[str],
    base_url: str,
    state: SimulatorState,
) -> None:
    """In a worker the poller runs for connectors of kind poller (no queue consumer is started
    for them), and a listed record reaches a portal as a published status event."""
    broker_cleanup.append("judicial_records")
    config = ConnectorConfig.from_file(JudicialRecordsConnector.default_config, endpoint=base_url)
    config = config.model_copy(
        update={
            "poll": PollSettings(interval_seconds=0.1, start=datetime.now(UTC) - timedelta(hours=1))
        }
    )
    registry = ConnectorRegistry([RegisteredConnector(JudicialRecordsConnector, config)])
    await upgrade_async(sqlite_url)
    engine = create_engine(sqlite_url)
    try:
        [code] = await ingest(engine, 1)
        # The dossier's own submitted event went out long ago.
        async with engine.connect() as connection:
            ids = (await connection.execute(sa.select(outbox.c.event_id))).scalars().all()
        await outbox_store.mark_sent(writer(engine), ids)
    finally:
        await engine.dispose()
    state.add(code, 4, TODAY, certificate="7/2024/LLTP")

    runtime = await Runtime.open(
        make_settings(namespace, sqlite_url), name="test-poller", registry=registry
    )
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(runtime.names.events, routing_key="dossier.status.#")
        workers = await run_workers(runtime)
        pollers = await run_pollers(runtime)
        try:
            message = None
            deadline = time.monotonic() + 15
            while message is None and time.monotonic() < deadline:
                message = await queue.get(fail=False)
                await asyncio.sleep(0 if message else 0.05)
        finally:
            for poller_ in pollers:
                await poller_.stop()
        assert (workers, [p.connector_id for p in pollers]) == ([], ["judicial_records"])
        assert message is not None
        await message.ack()
        event = events.decode(message.body)
        assert (event.subject, event.data["status"], event.source) == (code, 9, config.agency)
        assert message.routing_key == "dossier.status.9.000.00.10.H12"
        assert state.stats()["pending"] == 0
    finally:
        await connection.close()
        await runtime.close()
