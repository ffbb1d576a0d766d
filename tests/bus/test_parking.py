"""The parking queue on the real RabbitMQ: listed without loss, replayed to where it failed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aio_pika
import orjson
import pytest

from bus.amqp import Broker, OutgoingMessage
from bus.parking import sweep
from bus.topology import ConnectorRoute, Names, declare_topology
from tests.conftest import AMQP_URL, FAST_RETRIES

pytestmark = pytest.mark.broker


@pytest.fixture
async def broker(namespace: str, broker_cleanup: list[str]) -> AsyncIterator[Broker]:
    """A connected publisher on a namespace with its topology declared."""
    broker = Broker(AMQP_URL, name=f"test@{namespace}")
    await broker.connect()
    await declare_topology(
        broker.channel,
        Names(namespace),
        routes=[ConnectorRoute("civil_status", ("1.001193",))],
        retry_delays=FAST_RETRIES,
        delivery_limit=3,
    )
    yield broker
    await broker.close()


async def _park(broker: Broker, names: Names, message_id: str, dossier: str, fault: str) -> None:
    await broker.publish(
        OutgoingMessage(
            exchange=names.dead,
            routing_key="dossier.submitted.000.00.10.H12.1.001193",
            body=orjson.dumps({"subject": dossier}),
            message_id=message_id,
            headers={
                "x-bus-reason": f"{fault} happened",
                "x-bus-fault-code": fault,
                "x-bus-error-class": "permanent",
                "x-bus-connector": "civil_status",
                "x-bus-queue": names.connector_queue("civil_status"),
                "x-bus-attempts": 1,
                "x-bus-attempt": 1,
            },
        )
    )


async def test_listing_keeps_every_message_in_order(namespace: str, broker: Broker) -> None:
    """A listing pass shows each parked message once, with its reason, and loses none."""
    names = Names(namespace)
    for n in range(5):
        await _park(broker, names, f"m-{n}", f"000.00.10.H12-240315-000{n}", "MAPPING_ERROR")
    for _ in range(2):
        replayed, kept = await sweep(broker, names)
        assert replayed == []
        assert [p.message_id for p in kept] == [f"m-{n}" for n in range(5)]
    first = kept[0]
    assert (first.fault_code, first.reason, first.connector) == (
        "MAPPING_ERROR", "MAPPING_ERROR happened", "civil_status",
    )  # fmt: skip
    assert first.dossier_code == "000.00.10.H12-240315-0000"


async def test_replay_sends_the_selected_message_back_to_its_queue(
    namespace: str, broker: Broker
) -> None:
    """The selected message returns to its connector queue without failure headers; others stay."""
    names = Names(namespace)
    await _park(broker, names, "m-1", "000.00.10.H12-240315-0001", "MAPPING_ERROR")
    await _park(broker, names, "m-2", "000.00.10.H12-240315-0002", "PARTNER_REJECTED")
    replayed, kept = await sweep(broker, names, replay=lambda p: p.fault_code == "MAPPING_ERROR")
    assert [p.message_id for p in replayed] == ["m-1"]
    assert [p.message_id for p in kept] == ["m-2"]

    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(names.connector_queue("civil_status"), ensure=False)
        message = await queue.get(fail=False, timeout=5)
        assert message is not None
        assert message.message_id == "m-1"
        headers = message.headers or {}
        assert headers["x-bus-replays"] == 1
        assert "x-bus-reason" not in headers
        assert "x-bus-attempt" not in headers
        await message.ack()
        parking = await channel.get_queue(names.parking, ensure=False)
        left = await parking.get(fail=False, timeout=5)
        assert left is not None
        assert left.message_id == "m-2"
        await left.nack(requeue=True)
    finally:
        await connection.close()
