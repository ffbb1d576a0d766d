"""The bus's one connection to RabbitMQ: robust reconnection, confirmed persistent publishing.

``BUS_AMQP_URL`` may list one URL per node of a cluster: :func:`connect_robust` and
:func:`connect_once` take that list. aio-pika and aiormq errors are translated to bus errors here
and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractRobustChannel,
    AbstractRobustConnection,
    DeliveryMode,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, DeliveryError, PublishError
from aio_pika.robust_connection import RobustConnection
from yarl import URL

from bus.errors import BrokerUnavailable, Unroutable
from bus.settings import broker_addresses, redact_url

log = logging.getLogger(__name__)

CLOUDEVENTS_JSON = "application/cloudevents+json"
#: Seconds one connection attempt to one node may take: a node that does not answer at all (a
#: host gone without a TCP reset) is given up after this, and the next one is tried.
ATTEMPT_TIMEOUT = 10.0


class FailoverConnection(RobustConnection):
    """A robust connection that goes round the nodes of a cluster.

    The first attempt uses the first address; every later one (after a failed attempt or a lost
    connection) the next address, round robin, so a process whose node stops carries on with
    another node of the cluster. Channels, queues and consumers are restored there by aio-pika,
    as after any reconnection.

    Hand-written because aio-pika's ``connect_robust`` takes one URL (aio-pika issue #141; a
    multi-host class was proposed and closed). Its reconnection loop connects to ``self.url``;
    ``_on_connection_close`` is called for every lost connection and every failed attempt
    (``UnderlayConnection.connect`` calls it with the error), so that is where the address moves.
    """

    def __init__(self, addresses: Sequence[str], **kwargs: Any) -> None:
        if not addresses:
            raise ValueError("a connection needs at least one broker address")
        self._addresses = [URL(address) for address in addresses]
        self._current = 0
        self._name = str((kwargs.get("client_properties") or {}).get("connection_name", ""))
        super().__init__(self._addresses[0], **kwargs)

    @property
    def address(self) -> str:
        """The node this connection uses or tries next, password hidden."""
        return redact_url(str(self._addresses[self._current]))

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        await super()._on_connection_close(closing)
        if self._close_called or self.is_closed or len(self._addresses) == 1:
            return  # closed on purpose, or nowhere else to go
        self._current = (self._current + 1) % len(self._addresses)
        self.url = self._addresses[self._current]
        log.warning(
            "broker connection %s lost or refused (%s); the next attempt goes to node %d of %d: %s",
            self._name,
            _reason(closing),
            self._current + 1,
            len(self._addresses),
            self.address,
        )


def _reason(closing: asyncio.Future[Any]) -> str:
    try:
        exc = closing.exception()
    except asyncio.CancelledError:
        return "cancelled"
    return repr(exc) if exc is not None else "closed"


async def connect_robust(
    amqp_url: str,
    *,
    name: str | None = None,
    reconnect_interval: float = 1.0,
    attempt_timeout: float = ATTEMPT_TIMEOUT,
) -> FailoverConnection:
    """A robust connection to the first node of ``amqp_url`` (a URL or a comma-separated list)
    that answers; it moves on to the next node whenever it loses one.

    Raises the last node's error when none answers.
    """
    addresses = broker_addresses(amqp_url)
    properties: dict[str, Any] = {"connection_name": name} if name else {}
    error: BaseException | None = None
    # Each node once, in order, before giving up: aio-pika fails fast on a connection's first
    # attempt, so each starting node is a connection of its own.
    for start in range(len(addresses)):
        connection = FailoverConnection(
            [*addresses[start:], *addresses[:start]],
            client_properties=properties,
            reconnect_interval=reconnect_interval,
        )
        try:
            await connection.connect(timeout=attempt_timeout)
        except CONNECTION_EXCEPTIONS as exc:
            await connection.close()
            error = exc
            continue
        except BaseException:  # cancelled (a caller's timeout): no reconnection loop left behind
            await connection.close()
            raise
        if start:
            log.warning(
                "broker connection %s opened on node %d of %d", name, start + 1, len(addresses)
            )
        return connection
    assert error is not None
    raise error


async def connect_once(
    amqp_url: str, *, timeout: float | None = None, name: str | None = None
) -> AbstractConnection:
    """A plain (not robust) connection to the first node of ``amqp_url`` that answers, for
    short tasks (status, benchmarks, clean-up); each node gets ``timeout`` seconds.

    Raises the last node's error when none answers.
    """
    addresses = broker_addresses(amqp_url)
    properties: dict[str, Any] = {"connection_name": name} if name else {}
    for number, address in enumerate(addresses, start=1):
        # Not aio_pika.connect(): it leaves a connection that failed to open unclosed, and its
        # finaliser then schedules a close that nobody awaits.
        connection = aio_pika.Connection(URL(address), client_properties=properties)
        try:
            await connection.connect(timeout=timeout)
            return connection
        except CONNECTION_EXCEPTIONS as exc:
            await connection.close()
            if number == len(addresses):
                raise
            log.warning(
                "cannot reach node %d of %d (%s): %r; trying the next",
                number,
                len(addresses),
                redact_url(address),
                exc,
            )
        except BaseException:
            await connection.close()
            raise
    raise AssertionError("unreachable: broker_addresses() returns at least one address")


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message to publish: where, what, and the identity that makes redelivery harmless."""

    exchange: str
    routing_key: str
    body: bytes
    message_id: str
    mandatory: bool = True
    correlation_id: str | None = None
    content_type: str = CLOUDEVENTS_JSON
    type: str | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)


class Broker:
    """A robust connection and a publisher-confirm channel, shared by one process's tasks.

    :func:`connect_robust` re-opens the connection and its channels after a broker restart or a
    network cut, on the next node of a cluster; a publish made while it is down waits, so every
    publish is bounded by ``publish_timeout`` and the caller (the outbox relay) tries again later.
    """

    def __init__(self, url: str, *, name: str, publish_timeout: float = 10.0) -> None:
        self._url = url
        self._name = name
        self._publish_timeout = publish_timeout
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._renewing = asyncio.Lock()

    async def connect(self, *, timeout: float = 30.0) -> None:
        """Open the connection and the confirm channel; BrokerUnavailable after ``timeout``."""
        try:
            self._connection = await asyncio.wait_for(
                connect_robust(self._url, name=self._name, reconnect_interval=1.0), timeout
            )
            channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            assert isinstance(channel, AbstractRobustChannel)
            self._channel = channel
        except (TimeoutError, *CONNECTION_EXCEPTIONS) as exc:
            raise BrokerUnavailable(
                f"cannot reach RabbitMQ at {redact_url(self._url)}: {exc!r}. Is it running? "
                "Start it with `rabbitmq-server -detached` or set BUS_AMQP_URL."
            ) from exc

    @property
    def connection(self) -> AbstractRobustConnection:
        """The robust connection (consumers open their own channels on it)."""
        if self._connection is None:
            raise RuntimeError("Broker.connect() has not been called")
        return self._connection

    @property
    def channel(self) -> AbstractChannel:
        """The publishing channel (also used to declare the topology)."""
        if self._channel is None:
            raise RuntimeError("Broker.connect() has not been called")
        return self._channel

    @property
    def is_connected(self) -> bool:
        """Whether the connection is currently open (it may be reconnecting)."""
        return self._connection is not None and not self._connection.is_closed

    async def _exchange(self, name: str) -> AbstractExchange:
        if name == "":
            return self.channel.default_exchange
        exchange = self._exchanges.get(name)
        if exchange is None:
            exchange = await self.channel.get_exchange(name, ensure=False)
            self._exchanges[name] = exchange
        return exchange

    async def publish(self, message: OutgoingMessage) -> None:
        """Publish one persistent message and wait for the broker's confirm."""
        amqp_message = aio_pika.Message(
            body=message.body,
            content_type=message.content_type,
            delivery_mode=DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            type=message.type,
            app_id="lienthong-bus",
            headers=dict(message.headers),
        )
        channel = self.channel
        try:
            exchange = await self._exchange(message.exchange)
            # A timeout scope rather than wait_for, which on Python 3.11 runs the publish as a
            # task of its own: one more task and trip through the loop for every message.
            async with asyncio.timeout(self._publish_timeout):
                await exchange.publish(
                    amqp_message, routing_key=message.routing_key, mandatory=message.mandatory
                )
        except PublishError as exc:
            raise Unroutable(
                f"no queue is bound for routing key {message.routing_key!r} "
                f"on exchange {message.exchange!r}"
            ) from exc
        except DeliveryError as exc:
            await self._renew_channel(channel)
            raise BrokerUnavailable(f"broker refused message {message.message_id}: {exc}") from exc
        except TimeoutError as exc:
            raise BrokerUnavailable(
                f"no publisher confirm within {self._publish_timeout}s (broker down?)"
            ) from exc
        except CONNECTION_EXCEPTIONS as exc:
            raise BrokerUnavailable(f"publish failed: {exc!r}") from exc

    async def _renew_channel(self, refused: AbstractChannel) -> None:
        """Replace the publishing channel after it refused a message (a nack).

        The bus's queues have no length limit, so a nack means the broker could not enqueue. On
        RabbitMQ 3.10 a channel whose first publish to a quorum queue came while the queue's
        leader node was down goes on refusing every publish to that queue, even once a new
        leader serves it (the channel's enqueuer never looks the leader up again): only a new
        channel publishes there again. Seen when a cluster node stops.
        """
        async with self._renewing:
            if self._channel is not refused or self._connection is None:
                return  # already replaced by a concurrent publish that was refused too
            try:
                fresh = await self._connection.channel(
                    publisher_confirms=True, on_return_raises=True
                )
            except CONNECTION_EXCEPTIONS as exc:
                log.warning("cannot open a new publishing channel (%r): the next nack retries", exc)
                return
            assert isinstance(fresh, AbstractRobustChannel)
            log.warning(
                "broker %s refused a publish (nack): publishing on a new channel", self._name
            )
            self._channel = fresh
            self._exchanges.clear()
        with contextlib.suppress(*CONNECTION_EXCEPTIONS):
            await refused.close()

    async def publish_many(self, messages: Sequence[OutgoingMessage]) -> list[Exception | None]:
        """Publish concurrently so confirms for the whole batch share round trips.

        Returns, per message, ``None`` when confirmed or the bus error that prevented it.
        """
        results = await asyncio.gather(*(self.publish(m) for m in messages), return_exceptions=True)
        outcome: list[Exception | None] = []
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
            outcome.append(result if isinstance(result, Exception) else None)
        return outcome

    async def close(self) -> None:
        """Close the connection; pending publishes fail with BrokerUnavailable."""
        if self._connection is not None:
            await self._connection.close()
        self._connection = None
        self._channel = None
        self._exchanges.clear()
