"""The broker topology on the real RabbitMQ: quorum queues, bindings, retry tiers, parking."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from bus.amqp import Broker, OutgoingMessage
from bus.errors import Unroutable
from bus.routing import submitted_key
from bus.topology import ConnectorRoute, Names, declare_topology
from tests.conftest import AMQP_URL, FAST_RETRIES

pytestmark = pytest.mark.broker

ROUTES = [ConnectorRoute("civil_status", ("1.001193",)), ConnectorRoute("residence", ("1.004194",))]


@pytest.fixture
async def channel(namespace: str, broker_cleanup: list[str]) -> AsyncIterator[AbstractChannel]:
    """A channel on a namespace whose topology is declared."""
    broker_cleanup.append("residence")
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    await declare_topology(
        channel, Names(namespace), routes=ROUTES, retry_delays=FAST_RETRIES, delivery_limit=3
    )
    yield channel
    await connection.close()


@pytest.fixture
async def broker(namespace: str, channel: AbstractChannel) -> AsyncIterator[Broker]:
    """The bus's publisher, connected."""
    broker = Broker(AMQP_URL, name=f"test@{namespace}", publish_timeout=5)
    await broker.connect()
    yield broker
    await broker.close()


async def _get(
    channel: AbstractChannel, queue: str, timeout: float = 5.0
) -> AbstractIncomingMessage:
    q = await channel.get_queue(queue, ensure=False)
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        message = await q.get(fail=False)
        if message is not None:
            return message
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing arrived in {queue} within {timeout}s")


async def test_declaring_twice_is_harmless(namespace: str, channel: AbstractChannel) -> None:
    """Every process declares the topology at start-up; a second declaration changes nothing."""
    await declare_topology(
        channel, Names(namespace), routes=ROUTES, retry_delays=FAST_RETRIES, delivery_limit=3
    )


async def test_connector_queues_are_durable_quorum_queues_with_dead_lettering(
    namespace: str, channel: AbstractChannel
) -> None:
    """A connector queue refuses redeclaration as a classic queue: it is a quorum queue."""
    with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
        await channel.declare_queue(Names(namespace).connector_queue("civil_status"), durable=True)


@pytest.mark.parametrize(
    ("procedure", "connector"),
    [
        ("1.001193", "civil_status"),
        ("1.001193.000.00.00.H38.02", "civil_status"),
        ("1.004194", "residence"),
    ],
)
async def test_submitted_dossiers_reach_the_connector_of_their_procedure(
    namespace: str, channel: AbstractChannel, broker: Broker, procedure: str, connector: str
) -> None:
    """The routing key's procedure code, with or without issuing-unit suffix, picks the queue."""
    names = Names(namespace)
    await broker.publish(
        OutgoingMessage(names.events, submitted_key("000.00.10.H12", procedure), b"{}", "m-1")
    )
    message = await _get(channel, names.connector_queue(connector))
    assert message.message_id == "m-1"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    await message.ack()


async def test_a_mandatory_event_nobody_receives_is_reported(
    namespace: str, broker: Broker
) -> None:
    """Publishing a dossier of a procedure no connector serves fails instead of vanishing."""
    with pytest.raises(Unroutable):
        await broker.publish(
            OutgoingMessage(
                Names(namespace).events, submitted_key("000.00.10.H12", "2.000001"), b"{}", "m-2"
            )
        )


async def test_a_retry_tier_sends_the_message_back_after_its_delay(
    namespace: str, channel: AbstractChannel, broker: Broker
) -> None:
    """A message put in a retry tier returns to its connector queue when the tier's TTL expires."""
    names = Names(namespace)
    queue = names.connector_queue("civil_status")
    started = asyncio.get_running_loop().time()
    await broker.publish(OutgoingMessage(names.retry(FAST_RETRIES[1]), queue, b"{}", "m-3"))
    message = await _get(channel, queue)
    waited = asyncio.get_running_loop().time() - started
    assert message.message_id == "m-3"
    assert waited >= FAST_RETRIES[1] * 0.9
    assert message.headers["x-death"][0]["queue"] == names.retry(FAST_RETRIES[1])  # type: ignore[index]
    await message.ack()


async def test_a_message_redelivered_past_the_delivery_limit_is_parked(
    namespace: str, channel: AbstractChannel, broker: Broker
) -> None:
    """A message a consumer keeps failing on (as when it crashes) ends in the parking queue."""
    names = Names(namespace)
    queue = names.connector_queue("civil_status")
    await broker.publish(OutgoingMessage("", queue, b"{}", "m-4"))
    for _ in range(4):  # delivery limit 3: the fourth return dead-letters it
        message = await _get(channel, queue)
        await message.nack(requeue=True)
    parked = await _get(channel, names.parking)
    assert parked.message_id == "m-4"
    await parked.ack()
