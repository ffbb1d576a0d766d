"""The bus's one connection to RabbitMQ: robust reconnection, confirmed persistent publishing.

aio-pika and aiormq errors are translated to bus errors here and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractRobustChannel,
    AbstractRobustConnection,
    DeliveryMode,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, DeliveryError, PublishError

from bus.errors import BrokerUnavailable, Unroutable
from bus.settings import redact_url

log = logging.getLogger(__name__)

CLOUDEVENTS_JSON = "application/cloudevents+json"


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

    ``connect_robust`` re-opens the connection and its channels after a broker restart or a
    network cut; a publish made while it is down waits, so every publish is bounded by
    ``publish_timeout`` and the caller (the outbox relay) tries again later.
    """

    def __init__(self, url: str, *, name: str, publish_timeout: float = 10.0) -> None:
        self._url = url
        self._name = name
        self._publish_timeout = publish_timeout
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}

    async def connect(self, *, timeout: float = 30.0) -> None:
        """Open the connection and the confirm channel; BrokerUnavailable after ``timeout``."""
        try:
            self._connection = await asyncio.wait_for(
                aio_pika.connect_robust(
                    self._url,
                    client_properties={"connection_name": self._name},
                    reconnect_interval=1.0,
                ),
                timeout,
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
        try:
            exchange = await self._exchange(message.exchange)
            await asyncio.wait_for(
                exchange.publish(
                    amqp_message, routing_key=message.routing_key, mandatory=message.mandatory
                ),
                self._publish_timeout,
            )
        except PublishError as exc:
            raise Unroutable(
                f"no queue is bound for routing key {message.routing_key!r} "
                f"on exchange {message.exchange!r}"
            ) from exc
        except DeliveryError as exc:
            raise BrokerUnavailable(f"broker refused message {message.message_id}: {exc}") from exc
        except TimeoutError as exc:
            raise BrokerUnavailable(
                f"no publisher confirm within {self._publish_timeout}s (broker down?)"
            ) from exc
        except CONNECTION_EXCEPTIONS as exc:
            raise BrokerUnavailable(f"publish failed: {exc!r}") from exc

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
