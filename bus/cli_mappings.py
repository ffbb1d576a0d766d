"""``bus mappings``: run the golden examples, check specs, try one input, measure speed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console

from bus.errors import MappingError
from bus.mapping import MappingCatalog, SpecError

app = typer.Typer(
    help="Declarative mappings between partner dialects and the contracts.", no_args_is_help=True
)
console = Console()

RootOption = Annotated[
    Path | None,
    typer.Option("--root", help="Mappings folder (default: BUS_MAPPINGS_DIR or ./mappings)."),
]


def _catalog(root: Path | None) -> MappingCatalog:
    try:
        return MappingCatalog.load(root)
    except SpecError as exc:
        console.print(f"[red]spec error:[/] {exc}")
        raise typer.Exit(2) from exc


@app.command("test")
def run_examples(root: RootOption = None) -> None:
    """Run every golden example (input → expected output) and report the ones that differ."""
    from bus.mapping.golden import run_all

    results = run_all(_catalog(root))
    failed = [r for r in results if not r.ok]
    for result in failed:
        console.print(f"[red]FAIL[/] {result.case.label}: {result.detail}")
    console.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed or not results:
        raise typer.Exit(1)


@app.command("check")
def check(root: RootOption = None) -> None:
    """Check every spec against the canonical contracts (unknown fields, gaps in code lists)."""
    from bus.mapping.check import check_catalog

    catalog = _catalog(root)
    findings = check_catalog(catalog)
    for finding in findings:
        console.print(f"[red]error[/] {finding}")
    console.print(f"{len(catalog)} mappings checked, {len(findings)} problems")
    if findings:
        raise typer.Exit(1)


@app.command("try")
def try_mapping(
    mapping: Annotated[
        str, typer.Argument(help="partner/version/message, e.g. dvcqg/1.0/dossier-sync.out")
    ],
    file: Annotated[
        Path, typer.Argument(help="The input: canonical JSON (outbound) or the partner's message.")
    ],
    context: Annotated[
        str | None,
        typer.Option(help='Context values as JSON, e.g. \'{"agency": "000.00.00.G12"}\''),
    ] = None,
    root: RootOption = None,
) -> None:
    """Map one input file and print the result (or the precise error)."""
    message = _catalog(root).get(mapping) if "/" in mapping else None
    if message is None:
        console.print("[red]give the mapping as partner/version/message[/]")
        raise typer.Exit(2)
    values = json.loads(context) if context else {}
    raw = file.read_bytes()
    try:
        if message.spec.direction == "outbound":
            result = message.apply(orjson.loads(raw), values)
            encoded = message.encode_partner(result)
            sys.stdout.write(
                encoded.decode() + "\n"
                if message.spec.partner_format == "xml"
                else orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n"
            )
        else:
            source = message.decode_partner(raw)
            out = (
                message.to_canonical(source, values).model_dump(mode="json", exclude_none=True)
                if message.spec.complete
                else message.apply(source, values)
            )
            sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    except MappingError as exc:
        console.print(f"[red]mapping error:[/] {exc}")
        raise typer.Exit(1) from exc


@app.command("bench")
def bench(
    outbound: Annotated[str, typer.Option(help="Outbound mapping to time.")] = (
        "dvcqg/1.0/dossier-sync.out"
    ),
    inbound: Annotated[str, typer.Option(help="Inbound mapping to time.")] = (
        "dvcqg/1.0/dossier-sync.in"
    ),
    seconds: Annotated[float, typer.Option(help="Seconds per measurement.")] = 2.0,
    target: Annotated[float, typer.Option(help="Records/s each mapping must reach.")] = 10_000,
    root: RootOption = None,
) -> None:
    """Map the DVCQG dossier (5 documents) both ways on one core; compare with json.loads."""
    from rich.table import Table

    from bus.mapping import bench as measure

    catalog = _catalog(root)
    cores = measure.pin_to_one_core()
    results = measure.run(catalog, outbound=outbound, inbound=inbound, seconds=seconds)
    baseline = results[0]
    table = Table(title=f"Mapping speed on one core ({cores})")
    for column in ("what", "records/s", "µs/record", "× json.loads"):
        table.add_column(column, justify="right" if column != "what" else "left")
    for result in results:
        table.add_row(
            result.name,
            f"{result.per_second:,.0f}",
            f"{result.microseconds:.1f}",
            f"{result.microseconds / baseline.microseconds:.1f}",
        )
    console.print(table)
    peak = measure.peak_memory(catalog, outbound=outbound)
    console.print(f"peak traced memory while mapping 20,000 dossiers: {peak / 1024:.0f} KiB")
    slow = [r for r in results[1:3] if r.per_second < target]
    for result in slow:
        console.print(
            f"[red]below target[/] {result.name}: {result.per_second:,.0f} < {target:,.0f}"
        )
    if slow:
        raise typer.Exit(1)
