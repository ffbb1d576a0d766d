"""``bus connector``: write a new connector, ready to be filled in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bus.scaffold import (
    DEFAULT_AGENCY,
    MAX_NAME_LENGTH,
    Kind,
    ScaffoldError,
    plan_connector,
    write_connector,
)

app = typer.Typer(help="Connectors to partner systems.", no_args_is_help=True)
console = Console(soft_wrap=True)


@app.command("new")
def new(
    name: Annotated[
        str,
        typer.Argument(
            help=f"Connector id: lower case, digits, _ (at most {MAX_NAME_LENGTH}), "
            "e.g. land_registry."
        ),
    ],
    kind: Annotated[
        Kind, typer.Option(help="The generic connector it builds on.", case_sensitive=False)
    ],
    agency: Annotated[
        str, typer.Option(help="Agency code of the partner system, e.g. 000.00.00.G12.")
    ] = DEFAULT_AGENCY,
    port: Annotated[
        int | None,
        typer.Option(help="Port of its simulator. Default: above every other connector's."),
    ] = None,
    title: Annotated[str | None, typer.Option(help="Human name of the partner system.")] = None,
    dest: Annotated[
        Path, typer.Option(help="Repository root to write into (default: here).")
    ] = Path(),
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite the files of an existing connector.")
    ] = False,
) -> None:
    """Write connectors/NAME, its mappings, simulator, test and entry point."""
    try:
        plan = plan_connector(name, kind, agency=agency, title=title, port=port, dest=dest)
        written = write_connector(plan, force=force)
    except ScaffoldError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    for path in written:
        console.print(f"  wrote {path}")
    console.print(
        f"[green]connector {name} ({kind.value}) written[/]; its simulator listens on port "
        f"{plan.port}. Next:\n"
        f"  1. fill the mapping: mappings/{name}/1.0/ and its examples "
        "(bus mappings check, bus mappings test)\n"
        f"  2. make connectors/{name}/simulator.py answer as the partner does\n"
        f"  3. name its procedures and endpoint in connectors/{name}/connector.toml\n"
        "  4. make test (reinstalls the package: pyproject.toml has its entry point)"
    )
