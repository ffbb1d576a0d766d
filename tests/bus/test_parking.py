"""The parking queue on the real RabbitMQ and a real store: what a parked message says about its
failure, the row it is kept as, the keeper that moves it into the store, and replays.

Messages are parked the two ways they are in production: a worker publishes them to
``<ns>.dead`` with its ``x-bus-*`` headers, or the broker dead-letters them itself when a
connector queue's delivery limit is reached (here: 1, so a message nacked twice is gone).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from bus.amqp import OutgoingMessage
from bus.dead_letters import DeadLetterKeeper, discard_dead_letters, replay_dead_letters
from bus.parking import FAILURE_HEADERS, dead_letter_row, replay_message
from bus.runtime import Runtime
from bus.store.dead_letters import (
    DeadLetterQuery,
    count_dead_letters,
    keep_dead_letters,
    matching_ids,
    read_dead_letter,
)
from bus.store.schema import audit_log, hops
from bus.topology import Names
from tests.conftest import make_settings
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.broker

CONNECTOR = "civil_status"
EVENT_TYPE = "vn.lienthong.dossier.submitted"
SUBMITTED_KEY = "dossier.submitted.000.00.10.H12.1.001193"
#: A connector queue dead-letters a message once it was delivered this many times over.
DELIVERY_LIMIT = 1


async def _open(namespace: str, database_url: str) -> Runtime:
    """A bus process's runtime: the store migrated, the topology declared (delivery limit 1)."""
    settings = make_settings(namespace, database_url, delivery_limit=DELIVERY_LIMIT)
    return await Runtime.open(settings, name="test-parking")


@pytest.fixture
async def runtime(
    namespace: str, broker_cleanup: list[str], sqlite_url: str
) -> AsyncIterator[Runtime]:
    """A runtime on SQLite, for the tests about messages alone."""
    runtime = await _open(namespace, sqlite_url)
    yield runtime
    await runtime.close()


@pytest.fixture
async def store_runtime(
    namespace: str, broker_cleanup: list[str], database_url: str
) -> AsyncIterator[Runtime]:
    """A runtime on each store (SQLite and PostgreSQL), for the tests that keep rows."""
    runtime = await _open(namespace, database_url)
    yield runtime
    await runtime.close()


async def _channel(runtime: Runtime) -> AbstractChannel:
    channel: AbstractChannel = await runtime.broker.connection.channel()
    return channel


def _envelope(dossier: str) -> bytes:
    return orjson.dumps({"type": EVENT_TYPE, "subject": dossier, "data": {"code": dossier}})


async def _park(
    runtime: Runtime,
    message_id: str,
    dossier: str,
    fault: str = "MAPPING_ERROR",
    *,
    body: bytes | None = None,
    headers: Mapping[str, Any] | None = None,
) -> None:
    """Park a message as a worker does: to ``<ns>.dead`` with its failure headers."""
    names = runtime.names
    await runtime.broker.publish(
        OutgoingMessage(
            exchange=names.dead,
            routing_key=SUBMITTED_KEY,
            body=_envelope(dossier) if body is None else body,
            message_id=message_id,
            correlation_id=f"corr-{message_id}",
            headers={
                "x-bus-reason": f"{fault} happened",
                "x-bus-fault-code": fault,
                "x-bus-error-class": "permanent",
                "x-bus-connector": CONNECTOR,
                "x-bus-queue": names.connector_queue(CONNECTOR),
                "x-bus-attempts": 3,
                "x-bus-attempt": 3,
                "x-bus-parked-at": "2024-03-15T08:00:00+07:00",
                **(headers or {}),
            },
        )
    )


async def _dead_letter_by_broker(
    runtime: Runtime, channel: AbstractChannel, message_id: str
) -> None:
    """Make the broker itself dead-letter a message: deliver it on the connector queue and hand
    it back until the queue's delivery limit sends it to ``<ns>.dead``."""
    queue_name = runtime.names.connector_queue(CONNECTOR)
    await runtime.broker.publish(
        OutgoingMessage(
            exchange="",
            routing_key=queue_name,
            body=_envelope(f"dossier-of-{message_id}"),
            message_id=message_id,
            correlation_id=f"corr-{message_id}",
            headers={"x-bus-connector-hint": "kept"},
        )
    )
    queue = await channel.get_queue(queue_name, ensure=False)
    deliveries = 0
    for _ in range(DELIVERY_LIMIT + 5):
        message = await _get(channel, queue_name, timeout=2.0, missing_ok=True)
        if message is None:
            break
        assert message.message_id == message_id
        deliveries += 1
        await message.nack(requeue=True)
    assert deliveries == DELIVERY_LIMIT + 1, "the delivery limit did not dead-letter it"
    assert await queue.get(fail=False) is None


async def _get(
    channel: AbstractChannel, queue_name: str, *, timeout: float = 10.0, missing_ok: bool = False
) -> Any:
    """The next message of ``queue_name`` (unacknowledged), waiting for it to arrive."""
    queue = await channel.get_queue(queue_name, ensure=False)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        message = await queue.get(fail=False)
        if message is not None:
            return message
        if asyncio.get_running_loop().time() > deadline:
            if missing_ok:
                return None
            raise AssertionError(f"nothing arrived in {queue_name} within {timeout}s")
        await asyncio.sleep(0.05)


async def _parked_message(channel: AbstractChannel, names: Names) -> AbstractIncomingMessage:
    message: AbstractIncomingMessage = await _get(channel, names.parking)
    return message


async def _empty(channel: AbstractChannel, queue_name: str) -> bool:
    """Whether nothing (more) arrives in ``queue_name``. The message count of a passive
    declaration is no help: for a quorum queue it lags behind by seconds."""
    return await _get(channel, queue_name, timeout=0.5, missing_ok=True) is None


async def _hops(runtime: Runtime, *conditions: sa.ColumnElement[bool]) -> list[dict[str, Any]]:
    async with runtime.engine.connect() as connection:
        found = await connection.execute(sa.select(hops).where(*conditions).order_by(hops.c.id))
        return [dict(row._mapping) for row in found]


async def _audited_hops(runtime: Runtime) -> list[str]:
    """The subjects (message ids) of the hop records in the audit chain."""
    async with runtime.engine.connect() as connection:
        found = await connection.execute(
            sa.select(audit_log.c.subject)
            .where(audit_log.c.kind == "hop")
            .order_by(audit_log.c.seq)
        )
        return [str(subject) for subject in found.scalars()]


async def _at_least(keeper: DeadLetterKeeper, kept: int) -> bool:
    return keeper.kept >= kept


# --- dead_letter_row: a message a worker parked -------------------------------------------


async def test_row_of_a_message_a_worker_parked(runtime: Runtime) -> None:
    """Every column comes from the message and its ``x-bus-*`` headers; the worker recorded it."""
    names = runtime.names
    channel = await _channel(runtime)
    try:
        dossier = "000.00.10.H12-240315-0001"
        await _park(runtime, "m-1", dossier, "PARTNER_REJECTED", headers={"x-bus-replays": 2})
        message = await _parked_message(channel, names)
        row, recorded = dead_letter_row(message)
        await message.ack()
    finally:
        await channel.close()

    assert recorded is True
    assert len(row["fingerprint"]) == 64 and int(row["fingerprint"], 16) >= 0  # SHA-256
    expected = {
        "message_id": "m-1",
        "dossier_code": "000.00.10.H12-240315-0001",
        "connector": CONNECTOR,
        "event_type": EVENT_TYPE,
        "queue": names.connector_queue(CONNECTOR),
        "routing_key": SUBMITTED_KEY,
        "error_class": "permanent",
        "fault_code": "PARTNER_REJECTED",
        "reason": "PARTNER_REJECTED happened",
        "attempts": 3,
        "replays": 2,
        "parked_at": datetime(2024, 3, 15, 1, 0, tzinfo=UTC),
        "content_type": "application/cloudevents+json",
        "correlation_id": "corr-m-1",
        "body": _envelope("000.00.10.H12-240315-0001"),
    }
    assert {name: row[name] for name in expected} == expected
    assert set(row) == {*expected, "fingerprint", "headers"}
    # The headers as parked, plain JSON (what the store keeps and a replay sends back).
    assert orjson.loads(orjson.dumps(row["headers"])) == row["headers"]
    assert row["headers"]["x-bus-fault-code"] == "PARTNER_REJECTED"
    assert row["headers"]["x-bus-queue"] == names.connector_queue(CONNECTOR)
    assert row["headers"]["x-bus-attempts"] == 3


async def test_row_derives_what_the_headers_leave_out(runtime: Runtime) -> None:
    """The connector from a connector queue's name; none for another queue; an unreadable body
    names no dossier or event type; no parking time means now."""
    names = runtime.names
    channel = await _channel(runtime)
    before = datetime.now(UTC)
    try:
        # Headers win over the derived value only when present: drop the connector header.
        await runtime.broker.publish(
            OutgoingMessage(
                exchange=names.dead,
                routing_key=SUBMITTED_KEY,
                body=_envelope("000.00.10.H12-240315-0002"),
                message_id="m-derived",
                headers={
                    "x-bus-reason": "bad",
                    "x-bus-queue": names.connector_queue("residence"),
                },
            )
        )
        await _park(
            runtime, "m-unreadable", "d", headers={"x-bus-connector": None}, body=b"\xff not json"
        )
        derived = await _parked_message(channel, names)
        unreadable = await _parked_message(channel, names)
        (derived_row, derived_recorded) = dead_letter_row(derived)
        (unreadable_row, _) = dead_letter_row(unreadable)
        await derived.ack()
        await unreadable.ack()
    finally:
        await channel.close()

    assert derived_recorded is True
    assert derived_row["connector"] == "residence"
    assert derived_row["fault_code"] == "UNKNOWN"  # no fault code header
    assert derived_row["error_class"] == "permanent"
    assert (derived_row["attempts"], derived_row["replays"]) == (0, 0)
    assert before <= derived_row["parked_at"] <= datetime.now(UTC)
    assert derived_row["correlation_id"] is None

    # The connector header was sent empty: derived from the queue instead.
    assert unreadable_row["connector"] == CONNECTOR
    assert unreadable_row["dossier_code"] is None
    assert unreadable_row["event_type"] is None
    assert unreadable_row["body"] == b"\xff not json"


async def test_two_parkings_of_one_message_are_two_rows_and_a_copy_is_one(
    runtime: Runtime,
) -> None:
    """The fingerprint tells a second parking (after a replay: other headers) from a second copy
    of the same parking (identical headers)."""
    names = runtime.names
    channel = await _channel(runtime)
    try:
        await _park(runtime, "m-1", "d-1")
        await _park(runtime, "m-1", "d-1")  # a copy: the worker's publish was repeated
        # Parked again after a replay: the same message with other headers.
        await _park(runtime, "m-1", "d-1", headers={"x-bus-replays": 1})
        rows = []
        for _ in range(3):
            message = await _parked_message(channel, names)
            rows.append(dead_letter_row(message)[0])
            await message.ack()
    finally:
        await channel.close()
    first, copy, again = (row["fingerprint"] for row in rows)
    assert first == copy
    assert again != first
    assert [row["replays"] for row in rows] == [0, 0, 1]


async def test_a_redelivered_parked_message_has_the_same_fingerprint(runtime: Runtime) -> None:
    """Got, handed back (a keeper that stopped before its ack), got again: the same parking."""
    names = runtime.names
    channel = await _channel(runtime)
    try:
        await _park(runtime, "m-1", "d-1")
        message = await _parked_message(channel, names)
        first, _ = dead_letter_row(message)
        await message.nack(requeue=True)
        again = await _parked_message(channel, names)
        assert again.message_id == "m-1"
        second, _ = dead_letter_row(again)
        await again.ack()
    finally:
        await channel.close()
    assert {k: v for k, v in second.items() if k != "headers"} == {
        k: v for k, v in first.items() if k != "headers"
    }


# --- dead_letter_row: a message the broker dead-lettered ------------------------------------


async def test_row_of_a_message_the_broker_dead_lettered(runtime: Runtime) -> None:
    """The delivery limit reached: transient, DELIVERY_LIMIT, queue and connector from
    ``x-death``, parked when the broker says; no worker recorded it."""
    names = runtime.names
    channel = await _channel(runtime)
    try:
        await _dead_letter_by_broker(runtime, channel, "m-broker")
        message = await _parked_message(channel, names)
        row, recorded = dead_letter_row(message)
        deaths = (message.headers or {})["x-death"]
        await message.ack()
    finally:
        await channel.close()

    assert recorded is False
    assert isinstance(deaths, list) and isinstance(deaths[0], dict)
    died_at = deaths[0]["time"]
    assert isinstance(died_at, datetime)
    queue = names.connector_queue(CONNECTOR)
    assert (row["error_class"], row["fault_code"]) == ("transient", "DELIVERY_LIMIT")
    assert (row["queue"], row["connector"]) == (queue, CONNECTOR)
    assert "delivery_limit" in row["reason"]
    assert (row["attempts"], row["replays"]) == (0, 0)
    assert row["parked_at"] == died_at
    assert row["message_id"] == "m-broker"
    assert row["dossier_code"] == "dossier-of-m-broker"
    assert row["correlation_id"] == "corr-m-broker"
    # x-death is kept, as JSON: its time as ISO text.
    death = row["headers"]["x-death"][0]
    assert (death["reason"], death["queue"]) == ("delivery_limit", queue)
    assert datetime.fromisoformat(death["time"]) == died_at
    assert orjson.loads(orjson.dumps(row["headers"])) == row["headers"]


async def test_row_of_another_broker_death_names_its_reason(runtime: Runtime) -> None:
    """Any other reason the broker gives becomes BROKER_<REASON>; a queue that is no
    connector's names no connector."""
    names = runtime.names
    died_at = datetime(2024, 3, 15, 1, 2, 3, tzinfo=UTC)
    channel = await _channel(runtime)
    try:
        await runtime.broker.publish(
            OutgoingMessage(
                exchange=names.dead,
                routing_key="dossier.status.x",
                body=b"{}",
                message_id="m-rejected",
                headers={
                    "x-death": [
                        {
                            "count": 1,
                            "reason": "rejected",
                            "queue": names.webhooks,
                            "time": died_at,
                            "exchange": names.events,
                            "routing-keys": ["dossier.status.x"],
                        }
                    ]
                },
            )
        )
        message = await _parked_message(channel, names)
        row, recorded = dead_letter_row(message)
        await message.ack()
    finally:
        await channel.close()
    assert recorded is False
    assert (row["error_class"], row["fault_code"]) == ("transient", "BROKER_REJECTED")
    assert (row["queue"], row["connector"]) == (names.webhooks, None)
    assert row["parked_at"] == died_at
    assert row["dossier_code"] is None and row["event_type"] is None


# --- replay_message --------------------------------------------------------------------------


async def test_replay_goes_back_to_its_queue_without_its_failure(runtime: Runtime) -> None:
    """The replay of a worker's and of the broker's parking: failure headers dropped, replays
    counted, straight to the queue it failed in; published, it is on the connector queue."""
    names = runtime.names
    queue = names.connector_queue(CONNECTOR)
    channel = await _channel(runtime)
    try:
        await _park(runtime, "m-worker", "d-1", headers={"x-bus-replays": 2, "x-custom": "kept"})
        await _dead_letter_by_broker(runtime, channel, "m-broker")
        rows = {}
        for _ in range(2):
            message = await _parked_message(channel, names)
            rows[message.message_id] = dead_letter_row(message)[0]
            await message.ack()
        worker_row, broker_row = rows["m-worker"], rows["m-broker"]

        replays = [replay_message(worker_row), replay_message(broker_row)]
        for replay, row in zip(replays, (worker_row, broker_row), strict=True):
            assert (replay.exchange, replay.routing_key) == ("", queue)
            assert replay.message_id == row["message_id"]
            assert replay.correlation_id == row["correlation_id"]
            assert replay.body == row["body"]
            assert not FAILURE_HEADERS & set(replay.headers)
            datetime.fromisoformat(replay.headers["x-bus-replayed-at"])
        assert replays[0].headers["x-bus-replays"] == 3
        assert replays[0].headers["x-custom"] == "kept"
        assert replays[0].headers["x-bus-connector"] == CONNECTOR
        assert replays[1].headers["x-bus-replays"] == 1
        assert replays[1].headers["x-bus-connector-hint"] == "kept"
        assert set(replays[1].headers) == {
            "x-bus-connector-hint",
            "x-bus-replays",
            "x-bus-replayed-at",
        }

        for replay in replays:
            await runtime.broker.publish(replay)
        arrived = []
        for _ in range(2):
            message = await _get(channel, queue)
            arrived.append(message)
            await message.ack()
        assert await _empty(channel, queue)
        assert await _empty(channel, names.parking)
    finally:
        await channel.close()
    by_id = {m.message_id: m for m in arrived}
    assert set(by_id) == {"m-worker", "m-broker"}
    worker = by_id["m-worker"]
    headers = worker.headers or {}
    assert headers["x-bus-replays"] == 3
    assert "x-bus-reason" not in headers and "x-bus-attempt" not in headers
    assert worker.body == _envelope("d-1")
    assert worker.correlation_id == "corr-m-worker"
    broker_headers = by_id["m-broker"].headers or {}
    assert "x-death" not in broker_headers and broker_headers["x-bus-replays"] == 1


def test_a_dead_letter_that_names_no_queue_cannot_replay() -> None:
    row: dict[str, Any] = {"id": 7, "queue": None, "headers": {}, "replays": 0}
    with pytest.raises(ValueError, match="dead letter 7 names no queue"):
        replay_message(row)


# --- the keeper ------------------------------------------------------------------------------


async def test_the_keeper_moves_the_parking_queue_into_the_store(store_runtime: Runtime) -> None:
    """Every parking kept once (a copy too), acknowledged; the broker's parking gets its hop."""
    runtime = store_runtime
    names = runtime.names
    channel = await _channel(runtime)
    keeper = DeadLetterKeeper(runtime)
    try:
        await _park(runtime, "m-1", "d-1")
        await _park(runtime, "m-2", "d-2", "PARTNER_REJECTED")
        await _park(runtime, "m-2", "d-2", "PARTNER_REJECTED")  # the same parking, twice
        await _park(runtime, "m-3", "d-3")
        await _dead_letter_by_broker(runtime, channel, "m-broker")

        await keeper.start()
        everything = DeadLetterQuery(state=None)

        async def all_kept() -> bool:
            return keeper.kept == 4 and await count_dead_letters(runtime.engine, everything) == 4

        await wait_for(all_kept, timeout=20)
        await asyncio.sleep(0.3)  # anything more would show now
        await keeper.stop()
        # Stopped: whatever it had not acknowledged (the copy too) would be back in the queue.
        assert await _empty(channel, names.parking)
    finally:
        await keeper.stop()
        await channel.close()

    assert keeper.kept == 4
    assert await count_dead_letters(runtime.engine, DeadLetterQuery(state=None)) == 4
    assert await count_dead_letters(runtime.engine, DeadLetterQuery()) == 4  # all parked
    ids = await matching_ids(runtime.engine, DeadLetterQuery(), limit=10)
    kept = {}
    for dead_letter_id in ids:
        row = await read_dead_letter(runtime.engine, dead_letter_id)
        assert row is not None
        kept[row["message_id"]] = row
    assert sorted(kept) == ["m-1", "m-2", "m-3", "m-broker"]
    assert kept["m-2"]["fault_code"] == "PARTNER_REJECTED"
    assert kept["m-broker"]["fault_code"] == "DELIVERY_LIMIT"
    assert kept["m-broker"]["headers"]["x-death"][0]["reason"] == "delivery_limit"
    assert kept["m-1"]["body"] == _envelope("d-1")
    assert {row["state"] for row in kept.values()} == {"parked"}
    assert await count_dead_letters(runtime.engine, DeadLetterQuery(connector=CONNECTOR)) == 4
    assert await count_dead_letters(runtime.engine, DeadLetterQuery(error_class="transient")) == 1

    # The broker's parking, which no worker recorded, is a hop of its dossier, sealed.
    parked_hops = await _hops(runtime, hops.c.outcome == "parked")
    assert len(parked_hops) == 1
    hop = parked_hops[0]
    assert (hop["message_id"], hop["kind"], hop["sender"], hop["recipient"]) == (
        "m-broker", "deliver", "bus", CONNECTOR,
    )  # fmt: skip
    assert (hop["dossier_code"], hop["fault_code"]) == ("dossier-of-m-broker", "DELIVERY_LIMIT")
    assert hop["received_at"] == kept["m-broker"]["parked_at"]
    # The worker's parkings got nothing from the keeper: their worker recorded them.
    assert await _hops(runtime, hops.c.message_id.in_(["m-1", "m-2", "m-3"])) == []
    assert await _audited_hops(runtime) == ["m-broker"]


async def test_a_parking_committed_but_not_acknowledged_is_kept_once(
    store_runtime: Runtime,
) -> None:
    """A keeper that committed a row and stopped before its ack: the next keeper gets the
    message again and must keep no second row (nor a second hop)."""
    runtime = store_runtime
    names = runtime.names
    channel = await _channel(runtime)
    keeper = DeadLetterKeeper(runtime)
    try:
        await _dead_letter_by_broker(runtime, channel, "m-broker")
        message = await _parked_message(channel, names)
        row, recorded = dead_letter_row(message)
        assert await keep_dead_letters(runtime.writer, [row], recorded=[recorded]) == [True]
        await message.nack(requeue=True)  # the first keeper's channel closed before its ack

        # Parked after it: once this one is kept, the keeper has been through the first.
        await _park(runtime, "m-sentinel", "d-sentinel")
        await keeper.start()
        sentinel = DeadLetterQuery(state=None, message_id="m-sentinel")

        async def sentinel_kept() -> bool:
            return await count_dead_letters(runtime.engine, sentinel) == 1

        await wait_for(sentinel_kept, timeout=20)
        await keeper.stop()
        assert await _empty(channel, names.parking)
    finally:
        await keeper.stop()
        await channel.close()
    again = DeadLetterQuery(state=None, message_id="m-broker")
    assert await count_dead_letters(runtime.engine, again) == 1
    assert len(await _hops(runtime, hops.c.outcome == "parked")) == 1


async def test_the_keeper_leaves_in_the_queue_what_the_store_cannot_take(
    store_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """The table gone (an outage of the store): the parking stays in the queue, and is kept
    once the store is back."""
    runtime = store_runtime
    names = runtime.names
    channel = await _channel(runtime)
    keeper = DeadLetterKeeper(runtime)
    caplog.set_level(logging.ERROR, logger="bus.dead_letters")
    try:
        async with runtime.writer.begin() as connection:
            await connection.execute(
                sa.text("ALTER TABLE dead_letters RENAME TO dead_letters_away")
            )
        await _park(runtime, "m-1", "d-1")
        await keeper.start()

        async def refused() -> bool:
            return any(
                "could not keep parked message m-1" in r.getMessage() for r in caplog.records
            )

        await wait_for(refused, timeout=20)
        assert keeper.kept == 0
        async with runtime.writer.begin() as connection:
            await connection.execute(
                sa.text("ALTER TABLE dead_letters_away RENAME TO dead_letters")
            )

        await wait_for(lambda: _at_least(keeper, 1), timeout=20)
        await keeper.stop()
        assert await _empty(channel, names.parking)
    finally:
        await keeper.stop()
        await channel.close()
    assert await count_dead_letters(runtime.engine, DeadLetterQuery(state=None)) == 1


# --- replaying and discarding kept dead letters ----------------------------------------------


async def test_replay_twice_sends_once_and_discard_needs_a_reason(store_runtime: Runtime) -> None:
    """A replay sends the still-parked ones back and marks them; a second replay of the same
    ids finds none parked and sends nothing. A discard without a reason is refused."""
    runtime = store_runtime
    names = runtime.names
    queue = names.connector_queue(CONNECTOR)
    channel = await _channel(runtime)
    try:
        for n in (1, 2, 3):
            await _park(runtime, f"m-{n}", f"d-{n}")
        rows, recorded = [], []
        for _ in range(3):
            message = await _parked_message(channel, names)
            row, was_recorded = dead_letter_row(message)
            rows.append(row)
            recorded.append(was_recorded)
            await message.ack()
        engine = runtime.writer
        assert await keep_dead_letters(engine, rows, recorded=recorded) == [True] * 3
        assert await keep_dead_letters(engine, rows, recorded=recorded) == [False] * 3
        ids = await matching_ids(engine, DeadLetterQuery(), limit=10)
        assert len(ids) == 3
        by_message = {}
        for dead_letter_id in ids:
            stored = await read_dead_letter(engine, dead_letter_id)
            assert stored is not None
            by_message[stored["message_id"]] = dead_letter_id
        discarded_id = by_message["m-3"]

        with pytest.raises(ValueError, match="reason"):
            await discard_dead_letters(engine, [discarded_id], by="op", reason="  ")
        assert await count_dead_letters(engine, DeadLetterQuery()) == 3  # nothing changed
        assert await discard_dead_letters(
            engine, [discarded_id], by="op", reason=" withdrawn "
        ) == [discarded_id]

        progress: list[int] = []
        unknown = 999_999
        first = await replay_dead_letters(
            engine, runtime.broker, [*ids, unknown], by="op", progress=progress.append
        )
        assert sorted(first.replayed) == sorted([by_message["m-1"], by_message["m-2"]])
        assert first.skipped == sorted([discarded_id, unknown])
        assert progress == [4]
        arrived = []
        for _ in range(2):
            message = await _get(channel, queue)
            arrived.append(message.message_id)
            assert (message.headers or {})["x-bus-replays"] == 1
            await message.ack()
        assert sorted(arrived) == ["m-1", "m-2"]

        second = await replay_dead_letters(engine, runtime.broker, ids, by="op")
        assert second.replayed == []
        assert second.skipped == sorted(ids)
        assert await _empty(channel, queue)
        assert await discard_dead_letters(engine, ids, by="op", reason="late") == []
    finally:
        await channel.close()

    assert await count_dead_letters(engine, DeadLetterQuery()) == 0
    assert await count_dead_letters(engine, DeadLetterQuery(state="replayed")) == 2
    assert await count_dead_letters(engine, DeadLetterQuery(state="discarded")) == 1
    replayed_row = await read_dead_letter(engine, by_message["m-1"])
    assert replayed_row is not None
    assert (replayed_row["state"], replayed_row["resolved_by"]) == ("replayed", "op")
    discarded_row = await read_dead_letter(engine, discarded_id)
    assert discarded_row is not None
    assert (discarded_row["resolved_by"], discarded_row["resolution_note"]) == ("op", "withdrawn")
    decisions = await _hops(runtime, hops.c.kind.in_(["replay", "discard"]))
    assert sorted((h["message_id"], h["kind"], h["outcome"]) for h in decisions) == [
        ("m-1", "replay", "replayed"),
        ("m-2", "replay", "replayed"),
        ("m-3", "discard", "discarded"),
    ]
    assert sorted(await _audited_hops(runtime)) == ["m-1", "m-2", "m-3"]
