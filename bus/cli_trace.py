"""``bus trace CODE``: every hop of a dossier across agencies, read from the store."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bus.cli_store import fail, on_store
from bus.store.queries import dossier_with_history
from bus.trace import DossierTrace, build_trace
from contracts import VN_TZ, is_dossier_code

console = Console()
_EXAMPLE = "000.00.10.H12-240315-0001"


def trace(
    code: Annotated[str, typer.Argument(help="The dossier code, e.g. 000.00.10.H12-240315-0001.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the trace as JSON.")] = False,
) -> None:
    """Show every hop of a dossier across agencies, and where its time went.

    For each attempt of each hop: from, to, received, sent, answered, done (Vietnam time),
    sizes, outcome, fault, mapping and retries; then the events the bus emitted about it.
    """
    if not is_dossier_code(code):
        fail(f"{code!r} is not a dossier code: agency-YYMMDD-sequence, e.g. {_EXAMPLE}")
    found = on_store(
        lambda engine: dossier_with_history(engine, code), tables=("dossiers", "hops", "outbox")
    )
    if found is None:
        fail(f"no dossier {code} in this store (BUS_DATABASE_URL)", 1)
    result = build_trace(found)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    _print(result)


def _print(result: DossierTrace) -> None:
    console.print(
        f"[bold]{result.dossier_code}[/]  procedure {result.procedure_code}  status "
        f"{result.status} {result.status_label}  received {_clock(result.received_at)}"
        + (f"  finished {_clock(result.finished_at)}" if result.finished_at else "")
    )
    table = Table(title=f"{len(result.hops)} hop(s), {result.retries} retried")
    for column in ("#", "kind", "from", "to", "received", "sent", "answered", "done", "bytes",
                   "outcome", "fault", "mapping", "try"):  # fmt: skip
        table.add_column(column)
    for hop in result.hops:
        table.add_row(
            str(hop.seq), hop.kind + (" ✎" if hop.signed else ""), hop.sender, hop.recipient,
            _clock(hop.received_at), _clock(hop.sent_at), _clock(hop.answered_at),
            _clock(hop.done_at), f"{hop.request_bytes}/{hop.response_bytes}", hop.outcome,
            hop.fault_code or "", hop.mapping_version or "", str(hop.attempt),
        )  # fmt: skip
    console.print(table)
    if any(hop.signed for hop in result.hops):
        console.print("✎ signed exchange: its signatures are in `bus audit export`")
    events = Table(title=f"{len(result.events)} event(s)")
    for column in ("routing key", "created", "confirmed", "ms"):
        events.add_column(column)
    for event in result.events:
        ms = f"{event.publish_ms:.1f}" if event.publish_ms is not None else "pending"
        events.add_row(event.routing_key, _clock(event.created_at), _clock(event.sent_at), ms)
    console.print(events)
    if result.elapsed_ms is not None:
        console.print(f"elapsed {result.elapsed_ms / 1000:.3f} s; outcomes {result.outcomes}")


def _clock(moment: datetime | None) -> str:
    """Vietnam time, month-day and time to the millisecond."""
    if moment is None:
        return "—"
    return moment.astimezone(VN_TZ).strftime("%m-%d %H:%M:%S.%f")[:-3]
