"""``bus dlq``: dead letters, for operators: list, show, replay, discard.

The same store and the same operations as ``/v1/dead-letters`` (:mod:`bus.dead_letters`), run
from the operator's shell: the decisions are recorded as made by ``cli:<login name>``.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.amqp import Broker
from bus.cli_store import fail, on_store
from bus.dead_letters import discard_dead_letters, replay_dead_letters
from bus.settings import get_settings
from bus.store.dead_letters import (
    DeadLetterQuery,
    count_dead_letters,
    find_dead_letters,
    matching_ids,
    read_dead_letter,
)

app = typer.Typer(
    help="Dead letters: what failed for good. List, inspect, replay or discard them.",
    no_args_is_help=True,
)
console = Console()
_TABLES = ("dead_letters",)

#: Most dead letters one replay or discard command takes (run it again for more).
MAX_SELECTED = 100_000

Connector = Annotated[str | None, typer.Option(help="Only those of this connector.")]
Procedure = Annotated[str | None, typer.Option(help="Only those of this procedure (Mã TTHC).")]
ErrorClass = Annotated[
    str | None, typer.Option("--error-class", help="transient (retries ran out) or permanent.")
]
Fault = Annotated[str | None, typer.Option(help="Only this fault code, e.g. MAPPING_ERROR.")]
Dossier = Annotated[str | None, typer.Option(help="Only this dossier code.")]
Since = Annotated[
    datetime | None,
    typer.Option(help="Parked at or after (ISO 8601, e.g. 2024-03-15T08:00+07:00)."),
]
Until = Annotated[datetime | None, typer.Option(help="Parked before (ISO 8601).")]
Ids = Annotated[list[int] | None, typer.Argument(help="Dead-letter ids (see `bus dlq list`).")]
All = Annotated[bool, typer.Option("--all", help="Every parked dead letter.")]


def _operator() -> str:
    return f"cli:{getpass.getuser()}"[:64]


def _query(
    state: str,
    connector: str | None,
    procedure: str | None,
    error_class: str | None,
    fault: str | None,
    dossier: str | None,
    since: datetime | None,
    until: datetime | None,
) -> DeadLetterQuery:
    """The store's query for the command's filter options."""
    if state not in ("parked", "replayed", "discarded", "any"):
        fail("--state is parked, replayed, discarded or any")
    if error_class not in (None, "transient", "permanent"):
        fail("--error-class is transient or permanent")
    for moment in (since, until):
        if moment is not None and moment.tzinfo is None:
            fail("give --since and --until with their offset, e.g. 2024-03-15T08:00:00+07:00")
    return DeadLetterQuery(
        state=None if state == "any" else state,  # type: ignore[arg-type]
        connector=connector,
        procedure_code=procedure,
        error_class=error_class,
        fault_code=fault,
        dossier_code=dossier,
        parked_after=since,
        parked_before=until,
    )


def _narrows(query: DeadLetterQuery) -> bool:
    """Whether a filter option was given (beyond the state)."""
    return query != DeadLetterQuery(state=query.state)


@app.command("list")
def list_dead_letters(
    connector: Connector = None,
    procedure: Procedure = None,
    error_class: ErrorClass = None,
    fault: Fault = None,
    dossier: Dossier = None,
    since: Since = None,
    until: Until = None,
    state: Annotated[
        str, typer.Option(help="parked (default), replayed, discarded, or any.")
    ] = "parked",
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Most rows shown.")] = 50,
) -> None:
    """Show dead letters, newest first, with where they failed and why."""
    query = _query(state, connector, procedure, error_class, fault, dossier, since, until)

    async def read(engine: AsyncEngine) -> tuple[list[dict[str, Any]], int]:
        rows = await find_dead_letters(engine, query, limit=limit)
        return rows, await count_dead_letters(engine, query)

    rows, total = on_store(read, tables=_TABLES)
    table = Table(
        title=f"{total} dead letter(s), {state}" + (f"; newest {limit}" if total > limit else "")
    )
    for column in ("id", "parked at", "dossier", "connector", "class", "fault", "tries", "reason"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["id"]), f"{row['parked_at']:%Y-%m-%d %H:%M:%S}", row["dossier_code"] or "—",
            row["connector"] or row["queue"] or "—", row["error_class"], row["fault_code"],
            str(row["attempts"]), row["reason"],
        )  # fmt: skip
    console.print(table)


_SHOWN = ("id", "message_id", "dossier_code", "connector", "procedure_code", "event_type", "queue",
          "error_class", "fault_code", "reason", "attempts", "replays", "parked_at", "state",
          "resolved_at", "resolved_by", "resolution_note")  # fmt: skip


@app.command("show")
def show(dead_letter_id: Annotated[int, typer.Argument(help="The dead letter's id.")]) -> None:
    """Show one dead letter in full: reason, attempts, headers and body."""
    row = on_store(lambda engine: read_dead_letter(engine, dead_letter_id), tables=_TABLES)
    if row is None:
        fail(f"no dead letter {dead_letter_id}: `bus dlq list --state any` shows them", 1)
    for name in _SHOWN:
        console.print(f"[bold]{name:16}[/] {row[name] if row[name] is not None else '—'}")
    console.print("[bold]headers[/]")
    console.print_json(json.dumps(row["headers"], ensure_ascii=False))
    console.print("[bold]body[/]")
    try:
        console.print_json(orjson.dumps(orjson.loads(row["body"])).decode())
    except orjson.JSONDecodeError:
        console.print(repr(bytes(row["body"])))


def _selection(
    ids: list[int] | None, all_: bool, query: DeadLetterQuery, verb: str
) -> Callable[[AsyncEngine], Awaitable[list[int]]]:
    """The ids to act on: given, or every parked one matching the filters (or all)."""
    if ids and (_narrows(query) or all_):
        fail(f"give ids or filters to {verb}, not both")
    if not ids and not _narrows(query) and not all_:
        fail(
            f"say what to {verb}: ids, or --connector, --procedure, --error-class, --fault, "
            "--dossier, --since, --until, or --all"
        )
    if ids:
        return lambda _engine: _given(ids)
    return lambda engine: matching_ids(engine, query, limit=MAX_SELECTED)


async def _given(ids: list[int]) -> list[int]:
    return ids


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console,
    )  # fmt: skip


@app.command("replay")
def replay(
    ids: Ids = None,
    connector: Connector = None,
    procedure: Procedure = None,
    error_class: ErrorClass = None,
    fault: Fault = None,
    dossier: Dossier = None,
    since: Since = None,
    until: Until = None,
    all_: All = False,
) -> None:
    """Send dead letters back to the queue they failed in, oldest first.

    Fix the cause first (a mapping, a partner's key, the partner itself). Replaying is safe:
    a message already applied is recognised by its consumer and changes nothing.
    """
    query = _query("parked", connector, procedure, error_class, fault, dossier, since, until)
    select = _selection(ids, all_, query, "replay")

    async def run(engine: AsyncEngine) -> tuple[int, list[int], list[int]]:
        chosen = await select(engine)
        settings = get_settings()
        broker = Broker(settings.amqp_url, name=f"bus-dlq@{settings.namespace}")
        await broker.connect()
        try:
            with _progress() as progress:
                task = progress.add_task("replaying", total=len(chosen))
                report = await replay_dead_letters(
                    engine,
                    broker,
                    chosen,
                    by=_operator(),
                    progress=lambda n: progress.advance(task, n),
                )
        finally:
            await broker.close()
        return len(chosen), report.replayed, report.skipped

    total, replayed, skipped = on_store(run, tables=_TABLES, write=True)
    console.print(f"{len(replayed)} of {total} replayed" + _skipped(skipped))


@app.command("discard")
def discard(
    reason: Annotated[str, typer.Option(help="Why: kept with each one and in its dossier.")],
    ids: Ids = None,
    connector: Connector = None,
    procedure: Procedure = None,
    error_class: ErrorClass = None,
    fault: Fault = None,
    dossier: Dossier = None,
    since: Since = None,
    until: Until = None,
    all_: All = False,
) -> None:
    """Give up on dead letters, saying why; they stay on record and are never delivered."""
    if len(reason.strip()) < 3:
        fail("--reason must say why (at least a few words)")
    query = _query("parked", connector, procedure, error_class, fault, dossier, since, until)
    select = _selection(ids, all_, query, "discard")

    async def run(engine: AsyncEngine) -> tuple[list[int], list[int]]:
        chosen = await select(engine)
        with _progress() as progress:
            task = progress.add_task("discarding", total=len(chosen))
            done = await discard_dead_letters(
                engine,
                chosen,
                by=_operator(),
                reason=reason,
                progress=lambda n: progress.advance(task, n),
            )
        return chosen, done

    chosen, done = on_store(run, tables=_TABLES, write=True)
    console.print(
        f"{len(done)} of {len(chosen)} discarded" + _skipped(sorted(set(chosen) - set(done)))
    )


def _skipped(skipped: list[int]) -> str:
    if not skipped:
        return ""
    shown = ", ".join(str(i) for i in skipped[:10]) + (" …" if len(skipped) > 10 else "")
    return f"; skipped (no longer parked, or unknown): {shown}"
