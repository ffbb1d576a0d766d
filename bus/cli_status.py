"""``bus status``: the bus at a glance, for an operator's shell.

The store's figures (dossiers by status, overdue, dead letters, the outbox's lag), each partner's
health as the log shows it, and the broker: reachable, and the messages waiting in each
connector's queue and in the parking queue. Exits 0 when the store and the broker answer, 1
when one does not, so a script can use it too.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import aio_pika
import orjson
import typer
from aiormq.exceptions import AMQPError
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from bus.amqp import connect_once
from bus.cli_store import missing_sqlite_store, store_error
from bus.connector_health import HEALTH_WINDOW, health_of
from bus.registry import ConnectorRegistry
from bus.settings import Settings, get_settings, redact_url
from bus.store.connector_health import connector_activity
from bus.store.database import create_engine
from bus.store.figures import StoreFigures, read_store_figures
from bus.topology import Names
from contracts import DossierStatus

console = Console()


@dataclass
class BusStatus:
    """What ``bus status`` found."""

    store: str = "unreachable"
    broker: str = "unreachable"
    figures: StoreFigures | None = None
    connectors: list[str] = field(default_factory=list)
    partners: dict[str, str] = field(default_factory=dict)
    queues: dict[str, int | None] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        """Whether both the store and the broker answered."""
        return self.store == "ok" and self.broker == "ok"


async def read_status(settings: Settings, registry: ConnectorRegistry) -> BusStatus:
    """Ask the store and the broker; what does not answer is reported, not raised."""
    found = BusStatus(connectors=registry.ids)
    missing = missing_sqlite_store(settings.database_url)
    if missing is not None:
        found.store = f"unreachable: {missing} (`bus migrate` makes it)"
        return await _with_broker(found, settings, registry)
    engine = create_engine(settings.database_url)
    try:
        found.figures = await read_store_figures(engine)
        since = datetime.now(UTC) - HEALTH_WINDOW
        activity = await connector_activity(engine, registry.ids, since)
        found.partners = {a.connector: health_of(a).value for a in activity}
        found.store = "ok"
    except (SQLAlchemyError, OSError) as exc:
        text = store_error(exc)
        hint = " (run `bus migrate`)" if "no such table" in text or "does not exist" in text else ""
        found.store = f"unreachable: {text}{hint}"
    finally:
        await engine.dispose()
    return await _with_broker(found, settings, registry)


async def _with_broker(
    found: BusStatus, settings: Settings, registry: ConnectorRegistry
) -> BusStatus:
    """``found``, with the broker's answer and the depth of each queue."""
    names = Names(settings.namespace)
    queues = [names.connector_queue(cid) for cid in registry.ids] + [names.parking]
    try:
        connection = await connect_once(settings.amqp_url, timeout=5)
    except (TimeoutError, AMQPError, OSError) as exc:
        found.broker = f"unreachable: {type(exc).__name__}"
        return found
    try:
        found.broker = "ok"
        for queue in queues:
            found.queues[queue] = await _depth(connection, queue)
    finally:
        await connection.close()
    return found


async def _depth(connection: aio_pika.abc.AbstractConnection, queue: str) -> int | None:
    """Messages ready in ``queue`` (a passive declare), None when it is not declared."""
    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count
    except AMQPError:
        return None
    finally:
        if not channel.is_closed:
            await channel.close()


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Show the bus at a glance: store, broker, queues, dossiers, dead letters, partners."""
    settings = get_settings()
    found = asyncio.run(
        read_status(settings, ConnectorRegistry.discover(settings.connector_endpoints))
    )
    if as_json:
        typer.echo(orjson.dumps(_as_dict(found), option=orjson.OPT_INDENT_2).decode())
    else:
        _print(found, settings)
    raise typer.Exit(0 if found.healthy else 1)


def _as_dict(found: BusStatus) -> dict[str, Any]:
    figures = found.figures
    return {
        "store": found.store,
        "broker": found.broker,
        "queues": found.queues,
        "partners": found.partners,
        "dossiers": None if figures is None else {str(k): v for k, v in figures.by_status.items()},
        "overdue": None if figures is None else figures.overdue,
        "dead_letters": None if figures is None else figures.parked,
        "outbox_pending": None if figures is None else figures.outbox_pending,
        "outbox_lag_seconds": None if figures is None else figures.outbox_lag_seconds,
    }


def _print(found: BusStatus, settings: Settings) -> None:
    def state(word: str) -> str:
        return "[green]ok[/]" if word == "ok" else f"[red]{word}[/]"

    console.print(f"store   {state(found.store)}  {redact_url(settings.database_url)}")
    console.print(f"broker  {state(found.broker)}  {redact_url(settings.amqp_url)}")
    figures = found.figures
    if figures is not None:
        dossiers = Table("status", "dossiers", title="Dossiers")
        for status_code, count in sorted(figures.by_status.items()):
            dossiers.add_row(f"{status_code} {DossierStatus(status_code).label_en}", str(count))
        console.print(dossiers)
        parked = sum(figures.parked.values())
        console.print(
            f"overdue {figures.overdue}   dead letters parked {parked}   events waiting "
            f"{figures.outbox_pending} (oldest {figures.outbox_lag_seconds:.1f} s)"
        )
    names = Names(settings.namespace)
    partners = Table("connector", "health (last hour)", "queued", title="Partners")
    for connector in found.connectors:
        health = found.partners.get(connector, "?")
        depth = found.queues.get(names.connector_queue(connector))
        colour = {"ok": "green", "failing": "red"}.get(health, "yellow")
        queued = "—" if depth is None else str(depth)
        partners.add_row(connector, f"[{colour}]{health}[/]", queued)
    console.print(partners)
    parking = found.queues.get(names.parking)
    if parking:
        console.print(f"{parking} message(s) in the parking queue, not yet kept by a worker")
