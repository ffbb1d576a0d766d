"""The store on SQLite and on PostgreSQL: migrations, ingest, outbox leases, delivery effects."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.ingest import Submission, build_ingest_request
from bus.store import database, replay, statistics
from bus.store import outbox as outbox_store
from bus.store.database import create_engine, writer
from bus.store.deliveries import DeliveryRecord, StatusTransition, commit_deliveries
from bus.store.ingest import IngestConflict, IngestReceipt, write_ingest_batch
from bus.store.migrate import upgrade_async
from bus.store.schema import dossiers, hops, metadata, outbox, outbox_batches
from contracts import DossierStatus, StatusChange, sample_birth_dossier
from tests.conftest import POSTGRES_ADMIN_DSN


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated store, as its writer engine."""
    await upgrade_async(database_url)
    engine = create_engine(database_url)
    yield writer(engine)
    await engine.dispose()


def _request(sequence: int = 1, key: str | None = None, **changes: Any):  # type: ignore[no-untyped-def]
    dossier = sample_birth_dossier(sequence=sequence)
    if changes:
        dossier = dossier.model_copy(update=changes)
    submission = Submission(received_at=datetime.now(UTC), request_bytes=1234, idempotency_key=key)
    return build_ingest_request(dossier, submission, events_exchange="t.events")


async def _count(engine: AsyncEngine, table: sa.Table) -> int:
    async with engine.connect() as connection:
        return int(
            (await connection.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()
        )


async def test_migrations_match_the_declared_schema(engine: AsyncEngine) -> None:
    """After `alembic upgrade head` the database has exactly the tables and columns of schema.py."""

    def diff(connection: sa.Connection) -> list[Any]:
        return compare_metadata(MigrationContext.configure(connection), metadata)

    async with engine.connect() as connection:
        differences = await connection.run_sync(diff)
    assert differences == []


async def test_migrations_can_run_twice(database_url: str, engine: AsyncEngine) -> None:
    """Running the migrations again (every process does at start-up) changes nothing."""
    await upgrade_async(database_url)
    assert await _count(engine, dossiers) == 0


async def test_new_dossier_is_stored_with_its_event_and_hop(engine: AsyncEngine) -> None:
    """One accepted dossier writes one dossier row, one outbox row and one ingest hop."""
    request = _request()
    [receipt] = await write_ingest_batch(engine, [request])
    assert receipt == IngestReceipt(request.code, request.event_id, replayed=False)
    assert (
        await _count(engine, dossiers),
        await _count(engine, outbox),
        await _count(engine, hops),
    ) == (1, 1, 1)


async def test_same_content_again_returns_the_original_answer(engine: AsyncEngine) -> None:
    """Re-sending the same dossier answers with the first event id and stores nothing new."""
    first = _request()
    await write_ingest_batch(engine, [first])
    [again] = await write_ingest_batch(engine, [_request()])
    assert isinstance(again, IngestReceipt)
    assert again.replayed and again.event_id == first.event_id
    assert await _count(engine, outbox) == 1


async def test_same_code_with_other_content_is_a_conflict(engine: AsyncEngine) -> None:
    """A dossier code already accepted with different content is refused, naming the field."""
    await write_ingest_batch(engine, [_request()])
    [result] = await write_ingest_batch(engine, [_request(summary="changed")])
    assert isinstance(result, IngestConflict) and result.field == "code"


async def test_idempotency_key_reused_for_another_dossier_is_a_conflict(
    engine: AsyncEngine,
) -> None:
    """An Idempotency-Key already used for one dossier cannot create another."""
    await write_ingest_batch(engine, [_request(1, key="k-1")])
    [result] = await write_ingest_batch(engine, [_request(2, key="k-1")])
    assert isinstance(result, IngestConflict) and result.field == "Idempotency-Key"


async def test_duplicates_inside_one_batch_are_stored_once(engine: AsyncEngine) -> None:
    """Two identical requests committed in the same batch create one dossier and one event."""
    a, b = _request(7, key="same"), _request(7, key="same")
    results = await write_ingest_batch(engine, [a, b])
    assert [r.replayed for r in results if isinstance(r, IngestReceipt)] == [False, True]
    assert await _count(engine, outbox) == 1


async def test_a_batch_commits_many_dossiers_at_once(engine: AsyncEngine) -> None:
    """A batch of 200 distinct dossiers is committed whole."""
    results = await write_ingest_batch(engine, [_request(i) for i in range(1, 201)])
    assert all(isinstance(r, IngestReceipt) and not r.replayed for r in results)
    assert await _count(engine, dossiers) == 200


async def test_outbox_rows_are_claimed_by_one_relay_only(engine: AsyncEngine) -> None:
    """Two relays claiming at once never get the same row."""
    await write_ingest_batch(engine, [_request(i) for i in range(1, 51)])
    a, b = await asyncio.gather(
        outbox_store.claim(engine, relay_id="a", limit=40, lease_seconds=30),
        outbox_store.claim(engine, relay_id="b", limit=40, lease_seconds=30),
    )
    ids_a, ids_b = {e.event_id for e in a}, {e.event_id for e in b}
    assert not ids_a & ids_b
    assert len(ids_a | ids_b) == 50


async def test_rows_of_a_dead_relay_are_claimed_after_the_lease(engine: AsyncEngine) -> None:
    """A claimed row that was never marked sent is claimable again once its lease ran out."""
    await write_ingest_batch(engine, [_request()])
    [first] = await outbox_store.claim(engine, relay_id="dead", limit=10, lease_seconds=0.2)
    assert await outbox_store.claim(engine, relay_id="other", limit=10, lease_seconds=30) == []
    await asyncio.sleep(0.3)
    [again] = await outbox_store.claim(engine, relay_id="other", limit=10, lease_seconds=30)
    assert again.event_id == first.event_id and again.attempts == 2


async def test_sent_rows_are_not_claimed_again(engine: AsyncEngine) -> None:
    """Marking a row sent takes it out of the outbox's pending set."""
    await write_ingest_batch(engine, [_request()])
    [row] = await outbox_store.claim(engine, relay_id="r", limit=10, lease_seconds=0.01)
    await outbox_store.mark_sent(engine, [row.event_id])
    await asyncio.sleep(0.05)
    assert await outbox_store.claim(engine, relay_id="r", limit=10, lease_seconds=30) == []
    assert (await outbox_store.lag(engine))[0] == 0


async def test_streams_read_events_in_the_order_they_were_marked_sent(engine: AsyncEngine) -> None:
    """Stream order is the order of the relays' commits, not of ids; a place is never moved."""
    receipts = await write_ingest_batch(engine, [_request(i) for i in range(1, 4)])
    a, b, c = (r.event_id for r in receipts if isinstance(r, IngestReceipt))
    await _claim_all(engine)
    assert await replay.position_of(engine, c) is None  # not confirmed yet: not in the stream

    await outbox_store.mark_sent(engine, [c])
    await outbox_store.mark_sent(engine, [b, a])
    await outbox_store.mark_sent(engine, [a])  # a relay that took over the lease
    everything = await _stream(engine, replay.STREAM_START)
    assert [e.event_id for e in everything] == [c, a, b]
    assert await replay.stream_end(engine) == everything[-1].position
    after_c = await replay.position_of(engine, c)
    assert after_c is not None
    assert [e.event_id for e in await _stream(engine, after_c)] == [a, b]


async def test_a_dossiers_later_event_confirmed_first_waits_for_the_earlier_one(
    engine: AsyncEngine,
) -> None:
    """A worker's relay can confirm a status event before the API's relay marks the dossier's
    submitted event: the stream still gives the dossier's events in sequence."""
    [receipt] = await write_ingest_batch(engine, [_request(1)])
    assert isinstance(receipt, IngestReceipt)
    async with engine.begin() as connection:
        await connection.execute(
            outbox.insert().values(
                event_id="status-2",
                dossier_code=receipt.dossier_code,
                exchange="t.events",
                routing_key="dossier.status.9.000.00.10.H12",
                mandatory=False,
                payload=b"{}",
                created_at=datetime.now(UTC),
                attempts=0,
            )
        )
    await _claim_all(engine)

    await outbox_store.mark_sent(engine, ["status-2"])  # the worker's relay, first
    assert await _stream(engine, replay.STREAM_START) == []  # held back: it is not its turn
    await outbox_store.mark_sent(engine, [receipt.event_id])  # the API's relay
    streamed = await _stream(engine, replay.STREAM_START)
    assert [e.event_id for e in streamed] == [receipt.event_id, "status-2"]


async def test_a_relay_commits_its_batch_before_the_next_one_is_numbered(
    engine: AsyncEngine,
) -> None:
    """While one relay's batch is uncommitted, another relay waits to take the next number.

    Otherwise a reader could see batch 2 before batch 1 commits, move past it, and never
    return to the events of batch 1.
    """
    receipts = await write_ingest_batch(engine, [_request(i) for i in range(1, 3)])
    first, second = (r.event_id for r in receipts if isinstance(r, IngestReceipt))
    await _claim_all(engine)
    async with engine.begin() as slow:
        # A relay mid-way through mark_sent: it holds the counter until it commits.
        await slow.execute(
            sa.update(outbox_batches).values(last_batch=outbox_batches.c.last_batch + 1)
        )
        other = asyncio.create_task(outbox_store.mark_sent(engine, [second]))
        await asyncio.sleep(0.3)
        assert not other.done(), "the second relay numbered a batch before the first committed"
        await slow.execute(
            sa.update(outbox)
            .where(outbox.c.event_id == first)
            .values(sent_at=datetime.now(UTC), stream_batch=1)
        )
    await asyncio.wait_for(other, 10)
    assert [e.event_id for e in await _stream(engine, replay.STREAM_START)] == [first, second]


async def _claim_all(engine: AsyncEngine) -> list[outbox_store.PendingEvent]:
    return await outbox_store.claim(engine, relay_id="r", limit=100, lease_seconds=30)


async def _stream(engine: AsyncEngine, after: replay.StreamPosition) -> list[replay.StoredEvent]:
    return await replay.events_after(
        engine, position=after, exchange="t.events", prefixes=[""], limit=100
    )


def _delivery(
    code: str, message_id: str, status: DossierStatus = DossierStatus.PROCESSED
) -> DeliveryRecord:
    now = datetime.now(UTC)
    return DeliveryRecord(
        consumer="civil_status",
        message_id=message_id,
        dossier_code=code,
        hop_row={
            "message_id": message_id,
            "dossier_code": code,
            "correlation_id": "c",
            "kind": "deliver",
            "sender": "bus",
            "recipient": "civil_status",
            "received_at": now,
            "sent_at": now,
            "answered_at": now,
            "request_bytes": 10,
            "response_bytes": 20,
            "fault_code": None,
            "fault_detail": None,
            "mapping_version": "m@1",
            "attempt": 1,
        },
        new_status=status,
        partner_reference="KS/2024/000001",
        agency="000.00.00.G12",
    )


def _status_row(
    record: DeliveryRecord, change: StatusChange, transition: StatusTransition
) -> dict[str, Any]:
    return {
        "event_id": f"status-{record.message_id}-{transition.sequence}",
        "dossier_code": transition.dossier_code,
        "exchange": "t.events",
        "routing_key": f"dossier.status.{int(transition.status)}",
        "mandatory": False,
        "payload": b"{}",
        "created_at": datetime.now(UTC),
        "attempts": 0,
    }


async def test_a_delivery_is_applied_once(engine: AsyncEngine) -> None:
    """The same message committed twice moves the dossier once and emits one status event."""
    request = _request()
    await write_ingest_batch(engine, [request])
    first = await commit_deliveries(engine, [_delivery(request.code, "m-1")], _status_row)
    second = await commit_deliveries(engine, [_delivery(request.code, "m-1")], _status_row)
    assert (first, second) == (["applied"], ["duplicate"])
    async with engine.connect() as connection:
        row = (
            await connection.execute(sa.select(dossiers).where(dossiers.c.code == request.code))
        ).one()
        hop_outcomes = (
            (await connection.execute(sa.select(hops.c.outcome).order_by(hops.c.id)))
            .scalars()
            .all()
        )
    assert (row.status, row.sequence, row.partner_reference) == (9, 2, "KS/2024/000001")
    assert row.finished_at is not None
    assert hop_outcomes == ["accepted", "delivered", "duplicate"]
    assert await _count(engine, outbox) == 2


async def test_two_copies_in_one_batch_apply_once(engine: AsyncEngine) -> None:
    """Two copies of one message in the same batch: one applied, one duplicate."""
    request = _request()
    await write_ingest_batch(engine, [request])
    outcomes = await commit_deliveries(
        engine, [_delivery(request.code, "m-1"), _delivery(request.code, "m-1")], _status_row
    )
    assert outcomes == ["applied", "duplicate"]


async def test_successive_changes_get_increasing_sequence_numbers(engine: AsyncEngine) -> None:
    """Each applied change of one dossier takes the next per-dossier sequence number."""
    request = _request()
    await write_ingest_batch(engine, [request])
    await commit_deliveries(
        engine,
        [
            _delivery(request.code, "m-1", DossierStatus.ACCEPTED),
            _delivery(request.code, "m-2", DossierStatus.PROCESSING),
        ],
        _status_row,
    )
    async with engine.connect() as connection:
        events = (
            (await connection.execute(sa.select(outbox.c.event_id).order_by(outbox.c.id)))
            .scalars()
            .all()
        )
        row = (await connection.execute(sa.select(dossiers.c.status, dossiers.c.sequence))).one()
    assert events[1:] == ["status-m-1-2", "status-m-2-3"]
    assert tuple(row) == (4, 3)


async def _hold_sqlite_write_lock(path: str, seconds: float) -> None:
    """Another process's writer, as SQLite sees it: a connection of its own holding the lock."""

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            time.sleep(seconds)
            other.execute("COMMIT")
        finally:
            other.close()

    await asyncio.to_thread(hold)


@pytest.fixture
async def sqlite_writer(sqlite_url: str) -> AsyncIterator[tuple[AsyncEngine, str]]:
    """A migrated SQLite store's writer engine, and the file another writer would open."""
    await upgrade_async(sqlite_url)
    engine = writer(create_engine(sqlite_url))
    yield engine, sqlite_url.split("///", 1)[1]
    await engine.dispose()


async def test_a_sqlite_writer_waits_for_another_writer_then_goes_on(
    sqlite_writer: tuple[AsyncEngine, str],
) -> None:
    """A writer meeting the lock tries again in short steps until it gets it, not an error."""
    engine, path = sqlite_writer
    holder = asyncio.create_task(_hold_sqlite_write_lock(path, 0.4))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await write_ingest_batch(engine, [_request()])
    waited = time.monotonic() - started
    await holder
    assert waited >= 0.2, "the writer did not wait for the lock"
    assert await _count(engine, dossiers) == 1


async def test_a_sqlite_writer_gives_up_after_the_lock_timeout(
    sqlite_writer: tuple[AsyncEngine, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the timeout the writer fails with SQLite's own "database is locked"."""
    monkeypatch.setattr(database, "_WRITE_LOCK_TIMEOUT", 0.3)
    engine, path = sqlite_writer
    holder = asyncio.create_task(_hold_sqlite_write_lock(path, 1.5))
    await asyncio.sleep(0.1)
    with pytest.raises(sa.exc.OperationalError, match="locked"):
        await write_ingest_batch(engine, [_request()])
    await holder
    assert await _count(engine, dossiers) == 0


async def test_a_relay_with_nothing_to_claim_does_not_wait_for_the_write_lock(
    sqlite_writer: tuple[AsyncEngine, str],
) -> None:
    """Every pending row is leased (handed over): the poll reads, and leaves the lock to writers;
    once a lease runs out, the claim waits for the lock like any writer and takes the row."""
    engine, path = sqlite_writer
    await write_ingest_batch(engine, [_request()])
    [leased] = await outbox_store.claim(engine, relay_id="a", limit=10, lease_seconds=0.6)

    holder = asyncio.create_task(_hold_sqlite_write_lock(path, 1.2))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    assert await outbox_store.claim(engine, relay_id="b", limit=10, lease_seconds=30) == []
    assert time.monotonic() - started < 0.2, "an empty poll waited for the write lock"

    await asyncio.sleep(0.6)  # the lease ran out while the lock is still held
    [again] = await outbox_store.claim(engine, relay_id="b", limit=10, lease_seconds=30)
    assert time.monotonic() - started >= 0.9, "the claim did not wait for the write lock"
    assert (again.event_id, again.attempts) == (leased.event_id, 2)
    await holder


@pytest.mark.postgres
async def test_after_the_server_drops_every_connection_one_batch_fails_then_all_go_on(
    postgres_url: str,
) -> None:
    """No ping before each checkout: the batch that meets a dead connection fails (the API
    answers it 503, a worker's message is redelivered), and the pool is renewed for the rest."""
    await upgrade_async(postgres_url)
    engine = writer(create_engine(postgres_url))
    try:
        # Several pooled connections, all about to be cut.
        await asyncio.gather(*(write_ingest_batch(engine, [_request(i)]) for i in range(1, 4)))
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            cut = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1",
                make_url(postgres_url).database,
            )
        finally:
            await admin.close()
        assert cut >= 1
        with pytest.raises(sa.exc.DBAPIError) as failed:
            await write_ingest_batch(engine, [_request(4)])
        assert failed.value.connection_invalidated
        results = await asyncio.gather(
            *(write_ingest_batch(engine, [_request(i)]) for i in range(4, 8))
        )
        assert all(isinstance(r, IngestReceipt) for [r] in results)
        assert await _count(engine, dossiers) == 7
    finally:
        await engine.dispose()


async def test_the_bus_analyzes_its_busy_tables_only_when_autovacuum_is_off(
    database_url: str,
) -> None:
    """Without autovacuum a PostgreSQL store would never get statistics (and poor plans)."""
    await upgrade_async(database_url)
    engine = create_engine(database_url)
    try:
        if engine.dialect.name != "postgresql":
            assert not await statistics.analyze_needed(engine)
            return
        async with engine.connect() as connection:
            autovacuum = await connection.scalar(sa.text("SELECT current_setting('autovacuum')"))
        assert await statistics.analyze_needed(engine) == (autovacuum == "off")
        await write_ingest_batch(writer(engine), [_request(i) for i in range(1, 4)])
        await statistics.refresh(engine)
        async with engine.connect() as connection:
            analyzed = await connection.scalars(
                sa.text("SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL")
            )
            assert {table.name for table in statistics.BUSY_TABLES} <= set(analyzed)
    finally:
        await engine.dispose()
