"""Names and declaration of every exchange and queue the bus uses.

Declared idempotently at every start-up, so a fresh broker, a restarted one and a cluster all end
up with the same topology. Layout (``ns`` is ``BUS_NAMESPACE``)::

    ns.events  (topic)  ──binding per procedure──►  ns.connector.<id>  (quorum, DLX ns.dead)
    ns.retry.<n>s (fanout) ──► ns.retry.<n>s (quorum, TTL n s) ──dead-letters via ""──► back
    ns.dead    (fanout) ──► ns.parking (quorum): retries exhausted, permanent failures,
                                                  delivery limit exceeded
    ns.events  ──dossier.step.<id>.#──►  ns.connector.<id>: the linkage engine's step orders
    ns.events  ──dossier.status.#, alerts, the connectors' bindings──►  ns.webhooks  (quorum, DLX
                                                  ns.dead): the webhook dispatcher's feed

Quorum queues dead-letter *at most once* unless told otherwise: every queue that dead-letters is
declared ``x-dead-letter-strategy: at-least-once`` with ``x-overflow: reject-publish`` (see
https://www.rabbitmq.com/docs/quorum-queues#dead-lettering).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractChannel, ExchangeType
from aiormq.abc import FieldTable

from bus.routing import ALERT_PREFIXES, STATUS_PREFIX, procedure_bindings, step_binding

#: What stands between the namespace and the connector id in a connector's queue name.
CONNECTOR_QUEUE_MARK = ".connector."


@dataclass(frozen=True, slots=True)
class Names:
    """Every broker name derived from one namespace prefix."""

    namespace: str

    @property
    def events(self) -> str:
        """The topic exchange of all bus events."""
        return f"{self.namespace}.events"

    @property
    def dead(self) -> str:
        """The dead-letter exchange: everything that reaches it ends in the parking queue."""
        return f"{self.namespace}.dead"

    @property
    def parking(self) -> str:
        """The parking queue, where failed messages wait with their reason for a replay."""
        return f"{self.namespace}.parking"

    @property
    def webhooks(self) -> str:
        """The queue the webhook dispatcher consumes: every event, to match subscriptions."""
        return f"{self.namespace}.webhooks"

    def connector_queue(self, connector_id: str) -> str:
        """The work queue of one connector."""
        return f"{self.namespace}{CONNECTOR_QUEUE_MARK}{connector_id}"

    def retry(self, delay_seconds: float) -> str:
        """The exchange and queue of one retry tier (same name for both)."""
        return f"{self.namespace}.retry.{_delay_label(delay_seconds)}"


def _delay_label(delay_seconds: float) -> str:
    milliseconds = round(delay_seconds * 1000)
    return f"{milliseconds // 1000}s" if milliseconds % 1000 == 0 else f"{milliseconds}ms"


def _quorum(**extra: Any) -> FieldTable:
    return {"x-queue-type": "quorum", **extra}


def _dead_lettering(exchange: str) -> dict[str, Any]:
    return {
        "x-dead-letter-exchange": exchange,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


@dataclass(frozen=True, slots=True)
class ConnectorRoute:
    """A connector's queue and the procedures routed to it."""

    connector_id: str
    procedures: tuple[str, ...]
    #: Further routing-key patterns the connector subscribes to (e.g. ``dossier.status.#``).
    subscriptions: tuple[str, ...] = ()


async def declare_topology(
    channel: AbstractChannel,
    names: Names,
    *,
    routes: Iterable[ConnectorRoute],
    retry_delays: Iterable[float],
    delivery_limit: int,
) -> None:
    """Declare exchanges, queues and bindings; a no-op when they already exist as declared."""
    events = await channel.declare_exchange(names.events, ExchangeType.TOPIC, durable=True)
    dead = await channel.declare_exchange(names.dead, ExchangeType.FANOUT, durable=True)
    parking = await channel.declare_queue(names.parking, durable=True, arguments=_quorum())
    await parking.bind(dead, routing_key="#")

    for delay in retry_delays:
        tier = names.retry(delay)
        tier_exchange = await channel.declare_exchange(tier, ExchangeType.FANOUT, durable=True)
        # Expired messages dead-letter through the default exchange with the routing key they
        # were published with: the name of the connector queue they came from.
        tier_queue = await channel.declare_queue(
            tier,
            durable=True,
            arguments=_quorum(**_dead_lettering(""), **{"x-message-ttl": round(delay * 1000)}),
        )
        await tier_queue.bind(tier_exchange, routing_key="#")

    routes = list(routes)
    for route in routes:
        queue = await channel.declare_queue(
            names.connector_queue(route.connector_id),
            durable=True,
            arguments=_quorum(
                **_dead_lettering(names.dead), **{"x-delivery-limit": delivery_limit}
            ),
        )
        for procedure in route.procedures:
            for key in procedure_bindings(procedure):
                await queue.bind(events, routing_key=key)
        # The linkage engine's orders to this connector (dossier.step.<id>.<step>).
        await queue.bind(events, routing_key=step_binding(route.connector_id))
        for pattern in route.subscriptions:
            await queue.bind(events, routing_key=pattern)
    await _declare_webhooks_queue(channel, names, routes=routes, delivery_limit=delivery_limit)


async def _declare_webhooks_queue(
    channel: AbstractChannel, names: Names, *, routes: list[ConnectorRoute], delivery_limit: int
) -> None:
    """The webhook dispatcher's feed: every status event and whatever the connectors take.

    Not simply ``dossier.#``: that would make every submitted event routable, so a procedure no
    connector serves would no longer fail the relay's mandatory publish.
    """
    queue = await channel.declare_queue(
        names.webhooks,
        durable=True,
        arguments=_quorum(**_dead_lettering(names.dead), **{"x-delivery-limit": delivery_limit}),
    )
    keys = {f"{STATUS_PREFIX}.#", *(f"{prefix}.#" for prefix in ALERT_PREFIXES)}
    for route in routes:
        keys.update(key for procedure in route.procedures for key in procedure_bindings(procedure))
        keys.update(route.subscriptions)
    for key in sorted(keys):
        await queue.bind(names.events, routing_key=key)


async def delete_topology(
    channel: AbstractChannel,
    names: Names,
    *,
    connector_ids: Iterable[str],
    retry_delays: Iterable[float],
) -> None:
    """Remove a namespace's exchanges and queues (tests and ``bus reset``), even if not empty."""
    queue_names = [names.parking, names.webhooks, *(names.retry(d) for d in retry_delays)]
    queue_names += [names.connector_queue(c) for c in connector_ids]
    for name in queue_names:
        # Quorum queues refuse if_unused=True with 540 NOT_IMPLEMENTED, closing the channel.
        await channel.queue_delete(name, if_unused=False, if_empty=False)
    for name in [names.events, names.dead, *(names.retry(d) for d in retry_delays)]:
        await channel.exchange_delete(name, if_unused=False)
