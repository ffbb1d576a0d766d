"""Connections to a cluster: BUS_AMQP_URL as a list of nodes, moving to the next node, and a
publishing channel replaced when the broker refuses a publish."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import pydantic
import pytest

from bus.amqp import Broker, OutgoingMessage, connect_once, connect_robust
from bus.errors import BrokerUnavailable
from bus.settings import Settings, broker_addresses, redact_url
from bus.testing import TcpProxy
from tests.conftest import AMQP_URL


def test_one_url_is_a_list_of_one_node() -> None:
    """A single URL, the embedded default, is one address, unchanged."""
    assert broker_addresses("amqp://guest:guest@127.0.0.1:5672/") == (
        "amqp://guest:guest@127.0.0.1:5672/",
    )


def test_a_comma_separated_list_gives_each_node_in_order() -> None:
    """Commas separate the nodes; spaces around them do not matter; amqps counts too."""
    assert broker_addresses("amqp://u:p@n1:5701/, amqp://u:p@n2:5702/ ,amqps://u:p@n3/") == (
        "amqp://u:p@n1:5701/",
        "amqp://u:p@n2:5702/",
        "amqps://u:p@n3/",
    )


def test_a_comma_inside_a_password_does_not_split_the_url() -> None:
    """Only a comma followed by another URL separates nodes."""
    assert broker_addresses("amqp://u:p,w@n1/,amqp://u:p,w@n2/") == (
        "amqp://u:p,w@n1/",
        "amqp://u:p,w@n2/",
    )


@pytest.mark.parametrize(
    "value",
    [
        "http://u:secret@n1/",
        "amqp://u:secret@n1/,n2",  # the second node given without amqp://
        "amqp://u:secret@n1,n2/",
        "amqp://u:secret@n1/,",
        "amqp:///",
        "amqp://u:secret@n1:port/",
        "",
    ],
)
def test_a_list_item_that_is_not_an_amqp_url_is_refused_naming_it(value: str) -> None:
    """The error says what is expected and which item is wrong, with its password hidden."""
    with pytest.raises(ValueError, match="amqp:// or amqps:// URLs with a host") as refused:
        broker_addresses(value)
    assert "secret" not in str(refused.value)
    with pytest.raises(pydantic.ValidationError, match="one per RabbitMQ node"):
        Settings(amqp_url=value)


def test_the_second_item_of_a_bad_list_is_named_as_such() -> None:
    """In a list, the error counts which item is wrong."""
    with pytest.raises(ValueError, match=r"item 2 of the list is 'ftp://u:\*\*\*@n2/'"):
        broker_addresses("amqp://u:p@n1/,ftp://u:secret@n2/")


def test_redact_url_hides_every_password_of_a_list() -> None:
    """Each node's password is hidden, the hosts stay readable."""
    assert redact_url("amqp://a:one@n1:1/,amqp://b:two@n2:2/") == (
        "amqp://a:***@n1:1/,amqp://b:***@n2:2/"
    )
    assert redact_url("amqp://u:p,w@n1/") == "amqp://u:***@n1/"


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (a node that is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _broker_link() -> TcpProxy:
    target = urlsplit(AMQP_URL)
    return TcpProxy(target.hostname or "127.0.0.1", target.port or 5672)


@pytest.fixture
def two_links() -> Iterator[tuple[TcpProxy, TcpProxy]]:
    """Two cuttable links to the shared broker: two addresses, as of two cluster nodes."""
    with _broker_link() as first, _broker_link() as second:
        yield first, second


def _url(port: int) -> str:
    return f"amqp://guest:guest@127.0.0.1:{port}/"


@pytest.mark.broker
async def test_a_robust_connection_skips_a_node_that_is_down(closed_port: int) -> None:
    """With the first node down, the robust connection opens on the second one."""
    connection = await connect_robust(f"{_url(closed_port)},{AMQP_URL}", name="test-skip")
    try:
        assert not connection.is_closed
        assert connection.address == redact_url(AMQP_URL)
        channel = await connection.channel()
        await channel.close()
    finally:
        await connection.close()


@pytest.mark.broker
async def test_a_plain_connection_skips_a_node_that_is_down(closed_port: int) -> None:
    """connect_once tries the nodes in order and returns the first that answers."""
    connection = await connect_once(f"{_url(closed_port)},{AMQP_URL}", timeout=5)
    try:
        assert not connection.is_closed
    finally:
        await connection.close()


@pytest.mark.broker
async def test_no_node_answering_fails_fast_with_a_bus_error(closed_port: int) -> None:
    """When every node is down the broker says so at once, naming the nodes without passwords."""
    broker = Broker(f"{_url(closed_port)},{_url(closed_port)}", name="test-none")
    started = asyncio.get_running_loop().time()
    with pytest.raises(BrokerUnavailable, match=r"guest:\*\*\*@127\.0\.0\.1") as refused:
        await broker.connect(timeout=30)
    assert asyncio.get_running_loop().time() - started < 10
    assert ":guest@" not in str(refused.value)
    with pytest.raises(ConnectionError):
        await connect_once(f"{_url(closed_port)},{_url(closed_port)}", timeout=5)


@pytest.fixture
async def queue_name() -> AsyncIterator[str]:
    """A quorum queue of this test on the shared broker, deleted afterwards."""
    name = f"t.addresses.{uuid.uuid4().hex[:12]}"
    yield name
    connection = await connect_once(AMQP_URL)
    try:
        channel = await connection.channel()
        await channel.queue_delete(name, if_unused=False, if_empty=False)
    finally:
        await connection.close()


@pytest.mark.broker
async def test_a_lost_node_moves_the_connection_to_the_next_and_publishing_goes_on(
    two_links: tuple[TcpProxy, TcpProxy], queue_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Cutting the first node's link makes the bus's connection move to the second address,
    say so at WARNING (password hidden), and confirm every publish made there."""
    caplog.set_level(logging.WARNING, logger="bus.amqp")
    first, second = two_links
    broker = Broker(f"{_url(first.port)},{_url(second.port)}", name="test-failover")
    await broker.connect()
    try:
        await broker.channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )

        async def publish(numbers: range) -> None:
            for number in numbers:
                await broker.publish(
                    OutgoingMessage(
                        exchange="",
                        routing_key=queue_name,
                        body=b"{}",
                        message_id=f"m-{number}",
                    )
                )

        await publish(range(20))
        assert (first.connections, second.connections) == (1, 0)

        await asyncio.to_thread(first.cut)
        # Publishing waits or fails while the connection moves; retry, as the outbox relay does.
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            try:
                await publish(range(20, 40))
                break
            except BrokerUnavailable:
                assert asyncio.get_running_loop().time() < deadline, "publishing never resumed"
                await asyncio.sleep(0.1)
        assert (first.connections, second.connections) == (1, 1)

        queue = await broker.channel.get_queue(queue_name, ensure=False)
        arrived: set[str] = set()
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            arrived.add(message.message_id or "")
        assert arrived == {f"m-{number}" for number in range(40)}
    finally:
        await broker.close()
    moved = [
        r.getMessage() for r in caplog.records if "next attempt goes to node" in r.getMessage()
    ]
    assert moved, "no WARNING said where the connection went"
    assert f"node 2 of 2: amqp://guest:***@127.0.0.1:{second.port}/" in moved[0]
    assert "test-failover" in moved[0]


@pytest.mark.broker
async def test_a_refused_publish_moves_publishing_to_a_new_channel(queue_name: str) -> None:
    """A nack is a BrokerUnavailable, and the next publish goes out on a fresh channel (the cure
    for RabbitMQ 3.10 channels that keep refusing a queue whose leader node went down)."""
    broker = Broker(AMQP_URL, name="test-nack")
    await broker.connect()
    try:
        # The one way to make a healthy broker nack: a full queue that rejects publishes.
        await broker.channel.declare_queue(
            queue_name,
            durable=True,
            arguments={"x-queue-type": "quorum", "x-max-length": 1, "x-overflow": "reject-publish"},
        )

        def message(number: int) -> OutgoingMessage:
            return OutgoingMessage(
                exchange="", routing_key=queue_name, body=b"{}", message_id=f"m-{number}"
            )

        refusing = broker.channel
        # A quorum queue turns to refusing once it sees itself over the limit: a few publishes in.
        with pytest.raises(BrokerUnavailable, match="refused"):  # noqa: PT012
            for number in range(20):
                await broker.publish(message(number))
                await asyncio.sleep(0.05)
        assert broker.channel is not refusing
        assert refusing.is_closed
        queue = await broker.channel.get_queue(queue_name, ensure=False)
        await queue.purge()
        await broker.publish(message(99))  # the new channel publishes
    finally:
        await broker.close()
