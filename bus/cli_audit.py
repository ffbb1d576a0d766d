"""``bus audit``: check the tamper-evident audit log, and export and check a dossier's evidence."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from bus.audit.evidence import check_evidence_bytes
from bus.audit.export import (
    DEFAULT_MAX_LINKS,
    ChainBroken,
    EvidenceUnavailable,
    export_evidence,
)
from bus.audit.verify import Verification, verify_chain
from bus.audit.walk import ChainProblem
from bus.cli_store import CANNOT_READ, on_store
from bus.settings import get_settings

app = typer.Typer(
    help="The tamper-evident audit log: every hop and event, each record hash-chained to the "
    "one before. Verify the chain, export one dossier's evidence, check an export offline.",
    no_args_is_help=True,
)
console = Console()

#: Exit codes: 0 intact, 1 a problem found in the chain or the export, 2 the check could not run.
BROKEN, CANNOT_CHECK = 1, CANNOT_READ

T = TypeVar("T")

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL of the store (default: BUS_DATABASE_URL).",
        show_default=False,
    ),
]


@app.command(
    epilog="Checks each record's content against its digest and hash, its link to the record "
    "before, that no seq is missing, and that the head row names the last record, all in one "
    "snapshot of the store, a batch of records at a time. Exit codes: 0 intact, 1 broken, "
    "2 the store cannot be read."
)
def verify(
    database_url: DatabaseUrl = None,
    batch: Annotated[int, typer.Option(min=1, max=100_000, help="Records read at a time.")] = 2000,
) -> None:
    """Recompute every hash of the chain in seq order; name the first broken record."""
    url = database_url or get_settings().database_url

    def progress(count: int) -> None:
        status.update(f"verifying the audit chain: {count:,} records checked")

    with console.status("verifying the audit chain") as status:
        result = on_store(
            lambda engine: verify_chain(engine, batch=batch, progress=progress),
            tables=("audit_log", "audit_head"),
            url=url,
        )
    if result.problem is not None:
        _report_broken(result)
        raise typer.Exit(BROKEN)
    console.print(
        f"[green]✔ audit chain intact[/]: {result.records:,} records, head seq {result.head_seq}"
    )
    console.print(f"  head hash {result.head_hash}", soft_wrap=True)


@app.command(
    "export",
    epilog="The file holds the dossier as stored, each of its audit records in full, the event "
    "bodies, the signatures recorded with its messages, and the chain proof from its first "
    "record to the head. `bus audit check-export FILE` checks it without the database. Exit "
    "codes: 0 written, 1 the chain is broken within the proof, 2 no such dossier, a proof "
    "longer than --max-links, or a store that cannot be read.",
)
def export(
    code: Annotated[str, typer.Argument(help="The dossier code, e.g. 000.00.10.H12-240315-0001.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The JSON file to write.")],
    database_url: DatabaseUrl = None,
    max_links: Annotated[
        int,
        typer.Option(
            min=1,
            help="Most links in the chain proof (from the dossier's first record "
            "to the head); a longer proof is refused with the number it needs.",
        ),
    ] = DEFAULT_MAX_LINKS,
    force: Annotated[bool, typer.Option(help="Overwrite FILE if it exists.")] = False,
) -> None:
    """Write one dossier's evidence (records, event bodies, chain proof) to a JSON file."""
    if out.exists() and not force:
        console.print(f"[red]{out} exists[/]: choose another --out, or pass --force to replace it")
        raise typer.Exit(CANNOT_CHECK)
    url = database_url or get_settings().database_url
    try:
        evidence = on_store(
            lambda engine: export_evidence(engine, code, max_links=max_links),
            tables=("audit_log", "audit_head"),
            url=url,
        )
    except EvidenceUnavailable as exc:
        console.print(f"[red]no evidence exported[/]: {exc}", soft_wrap=True)
        raise typer.Exit(BROKEN if isinstance(exc, ChainBroken) else CANNOT_CHECK) from exc
    data = orjson.dumps(evidence.model_dump(mode="json"), option=orjson.OPT_INDENT_2)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, out)  # a reader never sees half a file
    head = evidence.chain.head
    console.print(
        f"[green]wrote {out}[/]: dossier {code}, {len(evidence.records)} records, "
        f"{len(evidence.events)} events, a proof of {len(evidence.chain.links)} links to head "
        f"seq {head.seq}",
        soft_wrap=True,
    )


@app.command(
    "check-export",
    epilog="Recomputes each of the dossier's records' digest and hash from its content, follows "
    "every link of the proof to the head, and checks the events and signatures against the "
    "sealed records. Exit codes: 0 the evidence holds, 1 a problem (named), 2 unreadable file.",
)
def check_export(
    file: Annotated[Path, typer.Argument(help="An evidence file from `bus audit export`.")],
) -> None:
    """Check an evidence export offline, with nothing but the file; name the first problem."""
    try:
        raw = file.read_bytes()
    except OSError as exc:
        console.print(f"[red]cannot read {file}[/]: {exc.strerror or exc}")
        raise typer.Exit(CANNOT_CHECK) from exc
    problem = check_evidence_bytes(raw)
    if problem is not None:
        console.print(f"[red]✘ evidence does not hold[/] ({file})")
        _print_problem(problem)
        raise typer.Exit(BROKEN)
    evidence = orjson.loads(raw)
    head = evidence["chain"]["head"]
    console.print(
        f"[green]✔ evidence holds[/]: dossier {evidence['dossier_code']}, "
        f"{len(evidence['records'])} records, every link checked up to head seq {head['seq']}",
        soft_wrap=True,
    )
    console.print(f"  head hash {head['hash']}: compare it with `bus audit verify`", soft_wrap=True)


def _report_broken(result: Verification) -> None:
    problem = result.problem
    assert problem is not None
    console.print(f"[red]✘ audit chain broken[/] after {result.records:,} intact records")
    _print_problem(problem)
    console.print(
        "  The records before it hold. Find out who changed the store (the triggers refuse "
        "UPDATE and DELETE of records: it took a deliberate act), and keep this output.",
        soft_wrap=True,
    )


def _print_problem(problem: ChainProblem) -> None:
    details = Table.grid(padding=(0, 2))
    details.add_column(style="bold")
    details.add_column()
    if problem.seq is not None:
        details.add_row("seq", str(problem.seq))
    if problem.record_id is not None:
        details.add_row("record id", str(problem.record_id))
    if problem.dossier_code:
        details.add_row("dossier", problem.dossier_code)
    details.add_row("problem", problem.kind)
    details.add_row("detail", problem.detail)
    console.print(details)
