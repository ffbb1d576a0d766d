"""``bus dlq``: list what is in the parking queue and replay it once the cause is fixed."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bus.amqp import Broker
from bus.parking import ParkedMessage, sweep
from bus.settings import get_settings
from bus.topology import Names

app = typer.Typer(help="Dead letters: the parking queue.", no_args_is_help=True)
console = Console()


def _matches(
    parked: ParkedMessage,
    *,
    message_id: str | None,
    connector: str | None,
    fault: str | None,
    dossier: str | None,
) -> bool:
    return (
        (message_id is None or parked.message_id == message_id)
        and (connector is None or parked.connector == connector)
        and (fault is None or parked.fault_code == fault)
        and (dossier is None or parked.dossier_code == dossier)
    )  # fmt: skip


async def _run(
    replay: bool, **filters: str | None
) -> tuple[list[ParkedMessage], list[ParkedMessage]]:
    settings = get_settings()
    broker = Broker(settings.amqp_url, name=f"bus-dlq@{settings.namespace}")
    await broker.connect()
    try:
        selector = (lambda parked: _matches(parked, **filters)) if replay else None
        return await sweep(broker, Names(settings.namespace), replay=selector)
    finally:
        await broker.close()


MessageId = Annotated[str | None, typer.Option("--message-id", help="Only this message id.")]
Connector = Annotated[str | None, typer.Option(help="Only messages of this connector.")]
Fault = Annotated[str | None, typer.Option(help="Only this fault code, e.g. MAPPING_ERROR.")]
Dossier = Annotated[str | None, typer.Option(help="Only this dossier code.")]


@app.command("list")
def list_parked() -> None:
    """Show every parked message with where it failed and why."""
    _, kept = asyncio.run(_run(False))
    table = Table(title=f"{len(kept)} parked message(s)")
    for column in ("message id", "dossier", "connector", "class", "fault", "attempts", "reason"):
        table.add_column(column)
    for parked in kept:
        table.add_row(
            parked.message_id, parked.dossier_code or "—", parked.connector or parked.queue or "—",
            parked.error_class, parked.fault_code, str(parked.attempts), parked.reason,
        )  # fmt: skip
    console.print(table)


@app.command("replay")
def replay(
    message_id: MessageId = None,
    connector: Connector = None,
    fault: Fault = None,
    dossier: Dossier = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every parked message.")] = False,
) -> None:
    """Send parked messages back to the queue they failed in (dedup keeps effects single)."""
    if not all_ and not any((message_id, connector, fault, dossier)):
        console.print(
            "[red]say what to replay:[/] --message-id, --connector, --fault, --dossier or --all"
        )
        raise typer.Exit(2)
    replayed, kept = asyncio.run(
        _run(True, message_id=message_id, connector=connector, fault=fault, dossier=dossier)
    )
    for parked in replayed:
        console.print(f"replayed {parked.message_id} ({parked.dossier_code}) → {parked.queue}")
    console.print(f"{len(replayed)} replayed, {len(kept)} left in the parking queue")
