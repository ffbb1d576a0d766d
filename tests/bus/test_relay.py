"""The outbox relay against the real RabbitMQ: confirmed rows are marked, order per dossier."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aio_pika
import pytest
import sqlalchemy as sa
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bus import relay as relay_module
from bus.amqp import Broker, OutgoingMessage
from bus.relay import OutboxRelay
from bus.settings import Settings
from bus.store import outbox as outbox_store
from bus.store.database import create_engine, reader, writer
from bus.store.migrate import upgrade_async
from bus.store.schema import outbox
from bus.topology import Names, declare_topology
from tests.conftest import AMQP_URL, make_settings
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.broker


@pytest.fixture
async def setup(
    namespace: str, sqlite_url: str, broker_cleanup: list[str]
) -> AsyncIterator[tuple[Settings, AsyncEngine, Broker, aio_pika.abc.AbstractQueue]]:
    """A store, a connected broker, and a queue bound to every event of the namespace."""
    settings = make_settings(namespace, sqlite_url)
    await upgrade_async(sqlite_url)
    engine = create_engine(sqlite_url)
    broker = Broker(AMQP_URL, name=f"test@{namespace}")
    await broker.connect()
    await declare_topology(
        broker.channel, Names(namespace), routes=[], retry_delays=(), delivery_limit=3
    )
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(Names(namespace).events, routing_key="dossier.status.#")
    yield settings, writer(engine), broker, queue
    await connection.close()
    await broker.close()
    await engine.dispose()


def _row(
    event_id: str,
    dossier: str,
    *,
    mandatory: bool = False,
    exchange: str = "",  # most tests set it to their own queue's
    routing_key: str | None = None,
) -> dict[str, object]:
    return {
        "event_id": event_id,
        "dossier_code": dossier,
        "exchange": exchange,
        "routing_key": routing_key or f"dossier.status.9.{event_id}",
        "mandatory": mandatory,
        "payload": event_id.encode(),
        "created_at": datetime.now(UTC),
        "attempts": 0,
    }


async def test_the_relay_publishes_rows_and_marks_them_sent(setup) -> None:  # type: ignore[no-untyped-def]
    """Every pending row is published once and marked sent after the broker's confirm."""
    settings, engine, broker, queue = setup
    rows = [_row(f"e{i}", f"d{i % 7}") for i in range(60)]
    for row in rows:
        row["exchange"] = Names(settings.namespace).events
    async with engine.begin() as connection:
        await connection.execute(outbox.insert(), rows)
    relay = OutboxRelay(engine, broker, settings)
    assert await relay.relay_once() == 60
    assert await relay.relay_once() == 0
    received = []
    while (message := await queue.get(fail=False)) is not None:
        received.append(message.body.decode())
        await message.ack()
    assert sorted(received) == sorted(r["event_id"] for r in rows)  # type: ignore[type-var]
    # One dossier's events reach the broker in the order they were committed.
    for dossier in {r["dossier_code"] for r in rows}:
        expected = [r["event_id"] for r in rows if r["dossier_code"] == dossier]
        assert [e for e in received if e in expected] == expected
    async with engine.connect() as connection:
        unsent = (
            await connection.execute(sa.select(sa.func.count()).where(outbox.c.sent_at.is_(None)))
        ).scalar_one()
    assert unsent == 0


async def test_an_unroutable_mandatory_event_stays_in_the_outbox(setup) -> None:  # type: ignore[no-untyped-def]
    """A mandatory event no queue receives is kept with its error, and holds back its dossier."""
    settings, engine, broker, _queue = setup
    lost = _row("lost", "d1", mandatory=True)
    lost["exchange"] = Names(settings.namespace).events
    lost["routing_key"] = "dossier.submitted.nobody"
    after = _row("after", "d1")
    after["exchange"] = Names(settings.namespace).events
    async with engine.begin() as connection:
        await connection.execute(outbox.insert(), [lost, after])
    relay = OutboxRelay(engine, broker, settings)
    assert await relay.relay_once() == 0
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                sa.select(outbox.c.event_id, outbox.c.sent_at, outbox.c.last_error).order_by(
                    outbox.c.id
                )
            )
        ).all()
    assert [(r.event_id, r.sent_at) for r in rows] == [("lost", None), ("after", None)]
    assert "Unroutable" in rows[0].last_error
    assert "held back" in rows[1].last_error


async def _hand_over(
    engine: AsyncEngine, relay: OutboxRelay, rows: list[dict[str, object]]
) -> outbox_store.Handover:
    """Insert ``rows`` leased to ``relay`` the way the API and the workers do, and commit."""
    handover = relay.handover()
    assert handover is not None
    async with engine.begin() as connection:
        await outbox_store.insert_events(connection, rows, handover)
    return handover


async def _unsent(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        found = await connection.scalars(
            sa.select(outbox.c.event_id).where(outbox.c.sent_at.is_(None)).order_by(outbox.c.id)
        )
        return list(found)


async def test_rows_handed_over_are_published_without_being_claimed(setup) -> None:  # type: ignore[no-untyped-def]
    """A writer's committed rows go out from memory; the store's claim never takes them again."""
    settings, engine, broker, queue = setup
    rows = [_row(f"h{i}", f"d{i % 3}") for i in range(20)]
    for row in rows:
        row["exchange"] = Names(settings.namespace).events
    relay = OutboxRelay(engine, broker, settings)
    handover = await _hand_over(engine, relay, rows)
    assert [event.event_id for event in handover.events] == [row["event_id"] for row in rows]
    # Leased to the relay: a claim (this relay's or another's) leaves them alone.
    assert await OutboxRelay(engine, broker, settings).relay_once() == 0
    relay.take(handover)
    assert await relay.relay_handed() == 20
    assert await _unsent(engine) == []
    received = []
    while (message := await queue.get(fail=False)) is not None:
        received.append(message.body.decode())
        await message.ack()
    assert received == [row["event_id"] for row in rows]


async def test_after_a_failed_publish_handed_rows_wait_behind_the_failed_one(setup) -> None:  # type: ignore[no-untyped-def]
    """A dossier's later event does not overtake its earlier one that the broker refused."""
    settings, engine, broker, _queue = setup
    events = Names(settings.namespace).events
    lost = _row(
        "refused", "d1", mandatory=True, exchange=events, routing_key="dossier.submitted.nobody"
    )
    relay = OutboxRelay(engine, broker, settings)
    relay.take(await _hand_over(engine, relay, [lost]))
    assert await relay.relay_handed() == 0
    later = _row("later", "d1", exchange=events)
    relay.take(await _hand_over(engine, relay, [later]))
    assert await relay.relay_handed() == 0  # given back to the store, not published
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                sa.select(outbox.c.event_id, outbox.c.last_error).order_by(outbox.c.id)
            )
        ).all()
    assert [row.event_id for row in rows] == ["refused", "later"]
    assert "Unroutable" in rows[0].last_error
    assert "earlier failed publish" in rows[1].last_error
    assert await _unsent(engine) == ["refused", "later"]


async def test_a_stopping_relay_gives_its_handed_rows_back_to_the_store(setup) -> None:  # type: ignore[no-untyped-def]
    """Rows handed over but not yet published are claimable at once by the next relay."""
    settings, engine, broker, _queue = setup
    rows = [_row(f"s{i}", "d1") for i in range(3)]
    for row in rows:
        row["exchange"] = Names(settings.namespace).events
    relay = OutboxRelay(engine, broker, settings)
    relay.take(await _hand_over(engine, relay, rows))  # never started: nothing publishes them
    await relay.stop()
    assert await OutboxRelay(engine, broker, settings).relay_once() == 3
    assert await _unsent(engine) == []


async def test_a_relay_behind_by_two_batches_leaves_new_rows_to_the_store(setup) -> None:  # type: ignore[no-untyped-def]
    """Memory does not grow with a backlog: past two batches in hand, rows wait unleased."""
    settings, engine, broker, _queue = setup
    rows = [_row(f"b{i}", "d1") for i in range(5)]
    for row in rows:
        row["exchange"] = Names(settings.namespace).events
    relay = OutboxRelay(engine, broker, settings.model_copy(update={"batch_max": 2}))
    relay.take(await _hand_over(engine, relay, rows[:4]))  # not started: the four stay in hand
    assert relay.handover() is None
    async with engine.begin() as connection:
        await outbox_store.insert_events(connection, rows[4:], None)
    relay.take(None)
    # Claimable at once by any relay, unlike the four leased to this one.
    assert await OutboxRelay(engine, broker, settings).relay_once() == 1


async def test_events_go_out_while_the_store_is_too_busy_to_mark_them_sent(
    setup, sqlite_url: str
) -> None:  # type: ignore[no-untyped-def]
    """Marking is not on the events' path: with the store's write lock held elsewhere, handed
    rows still reach the broker, and they are marked sent once the lock is free."""
    settings, engine, broker, queue = setup
    rows = [_row(f"m{i}", f"d{i}") for i in range(9)]
    for row in rows:
        row["exchange"] = Names(settings.namespace).events
    relay = OutboxRelay(engine, broker, settings)
    batches = [await _hand_over(engine, relay, rows[i : i + 3]) for i in (0, 3, 6)]
    relay.start()
    relay.take(batches[0])
    received = [await _next_body(queue) for _ in range(3)]
    later = [str(row["event_id"]) for row in rows[3:]]
    await wait_for(lambda: _unsent_are(engine, later), timeout=10)  # first batch marked
    # Another process's long write transaction: the relay's marks wait for it.
    holder = sqlite3.connect(make_url(sqlite_url).database or "", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        relay.take(batches[1])
        received += [await _next_body(queue) for _ in range(3)]
        relay.take(batches[2])  # published although the batch before is not marked yet
        received += [await _next_body(queue) for _ in range(3)]
        assert received == [row["event_id"] for row in rows]
        assert await _unsent(reader(engine)) == later  # a writer would wait for the lock
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await wait_for(lambda: _unsent_are(engine, []), timeout=10)
    await relay.stop()


async def _next_body(queue: aio_pika.abc.AbstractQueue) -> str:
    [message] = await wait_for(lambda: _one_message(queue), timeout=10)
    await message.ack()
    return str(message.body.decode())


async def _one_message(
    queue: aio_pika.abc.AbstractQueue,
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    message = await queue.get(fail=False)
    return [] if message is None else [message]


async def _unsent_are(engine: AsyncEngine, event_ids: list[str]) -> bool:
    return await _unsent(engine) == event_ids


async def test_handed_rows_go_out_again_once_another_relay_sent_the_failed_one(setup) -> None:  # type: ignore[no-untyped-def]
    """A row given back after a failed publish may be claimed and sent by any relay: the one
    that gave it back learns so from the store and stops holding its handed rows back."""
    settings, engine, broker, queue = setup
    events = Names(settings.namespace).events
    first = _row(
        "first", "d1", mandatory=True, exchange=events, routing_key="dossier.submitted.nobody-yet"
    )
    relay = OutboxRelay(engine, broker, settings)
    relay.take(await _hand_over(engine, relay, [first]))
    assert await relay.relay_handed() == 0  # unroutable: given back, due again in a second

    await queue.bind(events, routing_key="dossier.submitted.#")  # now somebody listens
    other = OutboxRelay(engine, broker, settings)
    await wait_for(other.relay_once, timeout=10)  # claims and sends it once it is due
    later = _row("later", "d1", exchange=events)
    relay.take(await _hand_over(engine, relay, [later]))
    assert await relay.relay_handed() == 1  # not given back to wait behind "first"
    assert await _unsent(engine) == []
    assert [await _next_body(queue) for _ in range(2)] == ["first", "later"]


async def test_upkeep_waiting_for_the_store_does_not_hold_events_back(
    setup, sqlite_url: str
) -> None:  # type: ignore[no-untyped-def]
    """The purge of old rows waits for the write lock another process holds; handed rows go
    out meanwhile."""
    settings, engine, broker, queue = setup
    rows = [_row(f"u{i}", f"d{i}") for i in range(3)]
    for row in rows:
        row["exchange"] = Names(settings.namespace).events
    relay = OutboxRelay(engine, broker, settings)
    handover = await _hand_over(engine, relay, rows)
    holder = sqlite3.connect(make_url(sqlite_url).database or "", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        relay.start()  # its upkeep starts with a purge, which waits for the lock
        await asyncio.sleep(0.3)  # the relay is under way: that purge has begun
        relay.take(handover)
        assert [await _next_body(queue) for _ in range(3)] == [row["event_id"] for row in rows]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await wait_for(lambda: _unsent_are(engine, []), timeout=10)
    await relay.stop()


class _SlowConfirms:
    """The real broker, except that a batch holding ``slow`` learns of its confirms only once
    ``confirm`` is set: its messages are on the broker, the relay still waits, as when a
    quorum queue is slow to sync its log."""

    def __init__(self, broker: Broker, slow: str) -> None:
        self._broker = broker
        self._slow = slow
        self.confirm = asyncio.Event()

    async def publish_many(self, messages: list[OutgoingMessage]) -> list[Exception | None]:
        results = await self._broker.publish_many(messages)
        if any(message.message_id == self._slow for message in messages):
            await self.confirm.wait()
        return results


async def test_a_batch_goes_out_while_one_before_awaits_its_confirms(setup) -> None:  # type: ignore[no-untyped-def]
    """Another dossier's rows do not wait for a slow confirm; the same dossier's do, so that
    they never reach the broker ahead of a row it may yet refuse."""
    settings, engine, broker, queue = setup
    events = Names(settings.namespace).events
    first, other, later = (
        _row(event_id, dossier, exchange=events)
        for event_id, dossier in (("a1", "dA"), ("b1", "dB"), ("a2", "dA"))
    )
    slow = _SlowConfirms(broker, "a1")
    relay = OutboxRelay(engine, slow, settings)  # type: ignore[arg-type]
    relay.start()
    try:
        relay.take(await _hand_over(engine, relay, [first]))
        assert await _next_body(queue) == "a1"  # on the broker, its confirm still to come
        relay.take(await _hand_over(engine, relay, [other, later]))
        assert await _next_body(queue) == "b1"
        await asyncio.sleep(0.3)
        assert await queue.get(fail=False) is None, "a2 went out before a1 was confirmed"
        slow.confirm.set()
        assert await _next_body(queue) == "a2"
        await wait_for(lambda: _unsent_are(engine, []), timeout=10)
    finally:
        slow.confirm.set()
        await relay.stop()


async def test_a_stopping_relay_gives_back_the_batches_whose_confirms_do_not_come(
    setup, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Past the grace for confirms, a batch in flight is given up and its rows, published or
    not, are claimable at once by the next relay; the rows confirmed are marked sent."""
    settings, engine, broker, queue = setup
    monkeypatch.setattr(relay_module, "_STOP_GRACE_SECONDS", 0.2)
    events = Names(settings.namespace).events
    stuck, confirmed = _row("s1", "dA", exchange=events), _row("c1", "dB", exchange=events)
    slow = _SlowConfirms(broker, "s1")
    relay = OutboxRelay(engine, slow, settings)  # type: ignore[arg-type]
    relay.start()
    relay.take(await _hand_over(engine, relay, [stuck]))
    assert await _next_body(queue) == "s1"
    relay.take(await _hand_over(engine, relay, [confirmed]))
    assert await _next_body(queue) == "c1"
    await relay.stop()
    assert await _unsent(engine) == ["s1"]
    assert await OutboxRelay(engine, broker, settings).relay_once() == 1  # no lease to wait out
    assert await _next_body(queue) == "s1"  # twice on the broker: consumers deduplicate
