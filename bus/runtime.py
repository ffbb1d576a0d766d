"""What every bus process opens at start-up: store, broker, topology, registry and relay."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aio_pika.exceptions import ChannelPreconditionFailed
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.amqp import Broker
from bus.calendar import calendar_from_settings
from bus.errors import BusError
from bus.linkage.book import LinkageBook
from bus.linkage.engine import LinkageEngine
from bus.registry import ConnectorRegistry
from bus.relay import OutboxRelay
from bus.settings import Settings
from bus.store.database import create_engine, writer
from bus.store.migrate import upgrade_async
from bus.topology import Names, declare_topology

log = logging.getLogger(__name__)


def retry_tiers(settings: Settings, registry: ConnectorRegistry) -> tuple[float, ...]:
    """Every retry delay in use: the bus's tiers plus those connectors ask for."""
    delays = set(settings.retry_delays)
    for connector_id in registry.ids:
        delays.update(registry.get(connector_id).config.retry.delays or ())
    return tuple(sorted(delays))


def linkage_engine(settings: Settings, registry: ConnectorRegistry, names: Names) -> LinkageEngine:
    """The linkage engine for these settings, its bundles checked against ``registry``."""
    book = LinkageBook.load(calendar_from_settings(settings), enabled=settings.linkage_bundles)
    book.check(registry)
    agencies = {cid: registry.get(cid).config.agency for cid in registry.ids}
    return LinkageEngine(book, exchange=names.events, agencies=agencies)


@dataclass
class Runtime:
    """The shared resources of one bus process."""

    settings: Settings
    engine: AsyncEngine
    writer: AsyncEngine
    broker: Broker
    registry: ConnectorRegistry
    names: Names
    relay: OutboxRelay
    linkage: LinkageEngine

    @property
    def retry_tiers(self) -> tuple[float, ...]:
        """The retry queues declared on the broker, in seconds."""
        return retry_tiers(self.settings, self.registry)

    @classmethod
    async def open(
        cls, settings: Settings, *, name: str, registry: ConnectorRegistry | None = None
    ) -> Runtime:
        """Migrate the store, connect to RabbitMQ, declare the topology, start the relay."""
        registry = registry or ConnectorRegistry.discover(settings.connector_endpoints)
        names = Names(settings.namespace)
        linkage = linkage_engine(settings, registry, names)  # refuses bundles it cannot run
        await upgrade_async(settings.database_url)
        engine = create_engine(settings.database_url)
        # The namespace in the connection name lets operators (and tests) find this process.
        broker = Broker(
            settings.amqp_url,
            name=f"{name}@{settings.namespace}",
            publish_timeout=settings.publish_timeout,
        )
        try:
            await broker.connect()
            await declare_topology(
                broker.channel,
                names,
                routes=registry.routes(linked=linkage.book.procedures),
                retry_delays=retry_tiers(settings, registry),
                delivery_limit=settings.delivery_limit,
            )
        except ChannelPreconditionFailed as exc:
            await engine.dispose()
            await broker.close()
            # Queue arguments are fixed when a queue is created; a changed setting cannot apply.
            raise BusError(
                f"the broker already has this namespace's queues with other arguments ({exc}). "
                "Keep the settings they were created with (BUS_DELIVERY_LIMIT, "
                "BUS_RETRY_DELAYS), or drain and delete those queues, or use a new BUS_NAMESPACE."
            ) from exc
        except BaseException:
            await engine.dispose()
            await broker.close()
            raise
        write_engine = writer(engine)
        relay = OutboxRelay(write_engine, broker, settings)
        relay.start()
        return cls(settings, engine, write_engine, broker, registry, names, relay, linkage)

    async def close(self) -> None:
        """Stop the relay, close the broker connection and the store."""
        await self.relay.stop()
        await self.broker.close()
        await self.engine.dispose()
