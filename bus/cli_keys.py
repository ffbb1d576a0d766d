"""``bus keys``: the agencies' signing keys, with which connectors sign their calls to partners.

A key is made once per agency and its public half handed to each partner that checks it (also
served at ``GET /v1/keys``). The private half never leaves ``BUS_AGENCY_KEYS_DIR``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bus.security.agency_keys import (
    AgencyKeyError,
    create_agency_key,
    load_agency_key,
    public_agency_keys,
)
from bus.security.signing import public_jwk, public_key_text
from bus.settings import get_settings

app = typer.Typer(help="Agency signing keys: sign the bus's calls to partners for an agency.")
console = Console()

DirectoryOption = Annotated[
    Path | None,
    typer.Option("--dir", help="The key directory (default: BUS_AGENCY_KEYS_DIR)."),
]
AgencyArgument = Annotated[str, typer.Argument(help="Agency code, e.g. 000.00.10.H12.")]


def _directory(directory: Path | None) -> Path:
    return directory or Path(get_settings().agency_keys_dir)


@app.command("new")
def new(
    agency: AgencyArgument,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Replace the agency's key (partners need the new one)."),
    ] = False,
    directory: DirectoryOption = None,
) -> None:
    """Make a signing key for an agency and print the public half to give its partners."""
    where = _directory(directory)
    try:
        key = create_agency_key(where, agency, replace=replace)
    except AgencyKeyError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"Signing key for {agency} written to {where}.")
    console.print("Give this public key to each partner that checks the agency's signatures:")
    typer.echo(public_key_text(key.public_key()))


@app.command("show")
def show(
    agency: AgencyArgument,
    jwk: Annotated[bool, typer.Option("--jwk", help="Print it as a JSON Web Key.")] = False,
    directory: DirectoryOption = None,
) -> None:
    """Print an agency's public key (base64, or a JSON Web Key)."""
    try:
        public = load_agency_key(_directory(directory), agency).public_key()
    except AgencyKeyError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(public_jwk(agency, public)) if jwk else public_key_text(public))


@app.command("list")
def list_keys(directory: DirectoryOption = None) -> None:
    """List the agencies that have a signing key, with their public keys."""
    where = _directory(directory)
    keys = public_agency_keys(where)
    if not keys:
        console.print(f"No agency keys in {where}. `bus keys new AGENCY` makes one.")
        return
    table = Table("Agency", "Public key (Ed25519, base64)", title=f"Agency keys in {where}")
    for agency, public in keys.items():
        table.add_row(agency, public_key_text(public))
    console.print(table)
