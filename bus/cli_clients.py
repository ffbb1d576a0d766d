"""``bus clients``: the agency clients allowed to call the bus, in the directory file.

Secrets are shown once, when they are made (``add``, ``rotate``); the file keeps only their
hashes. The API reads the file when it starts: restart it (or roll the processes) after a change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bus.security.certificates import CertificateError, fingerprint_of_header
from bus.security.clients import (
    AgencyClient,
    ClientDirectory,
    ClientFileError,
    ReadScope,
    hash_secret,
    load_clients,
    new_secret,
    save_clients,
)
from bus.settings import get_settings

app = typer.Typer(help="Agency clients: who may call the bus, and what each may do.")
console = Console()

FileOption = Annotated[
    Path | None,
    typer.Option("--file", help="The client directory (default: BUS_CLIENTS_FILE)."),
]


def _path(file: Path | None) -> Path:
    return file or Path(get_settings().clients_file)


def _load(path: Path) -> ClientDirectory:
    try:
        return load_clients(path)
    except ClientFileError as exc:
        console.print(f"[red]{exc}[/red]\nFix the file, or move it aside and add clients again.")
        raise typer.Exit(2) from exc


def _existing(directory: ClientDirectory, client_id: str, path: Path) -> AgencyClient:
    client = directory.get(client_id)
    if client is None:
        console.print(f"[red]No client {client_id} in {path}.[/red] `bus clients list` shows them.")
        raise typer.Exit(1)
    return client


@app.command("add")
def add(
    client_id: Annotated[str, typer.Argument(help="Client id, e.g. one-stop-h12.")],
    agency: Annotated[str, typer.Option(help="Agency code it speaks for, e.g. 000.00.10.H12.")],
    name: Annotated[str, typer.Option(help="Whose system it is.")] = "",
    procedure: Annotated[
        list[str] | None, typer.Option(help="Procedure it may submit (repeat; * for all).")
    ] = None,
    desk: Annotated[
        list[str] | None, typer.Option(help="Another agency whose desk it submits for.")
    ] = None,
    connector: Annotated[
        list[str] | None, typer.Option(help="Connector whose answers it may push (repeat).")
    ] = None,
    read: Annotated[ReadScope, typer.Option(help="Dossiers it may read: own or all.")] = (
        ReadScope.OWN
    ),
    subscribe: Annotated[
        list[str] | None, typer.Option(help="Routing-key pattern it may receive (repeat).")
    ] = None,
    operator: Annotated[
        bool, typer.Option(help="May replay dead letters and manage every subscription.")
    ] = False,
    metrics: Annotated[
        bool, typer.Option(help="May read /metrics (a monitoring system such as Prometheus).")
    ] = False,
    certificate: Annotated[
        Path | None, typer.Option(help="PEM client certificate it may present (mutual TLS).")
    ] = None,
    file: FileOption = None,
) -> None:
    """Add a client (or replace one with the same id) and print its new secret, once."""
    path = _path(file)
    directory = _load(path)
    fingerprints: tuple[str, ...] = ()
    if certificate is not None:
        try:
            fingerprints = (fingerprint_of_header(certificate.read_text()),)
        except (OSError, CertificateError) as exc:
            console.print(f"[red]{certificate}: {exc}[/red]")
            raise typer.Exit(2) from exc
    secret = new_secret()
    try:
        client = AgencyClient(
            id=client_id,
            name=name,
            agency=agency,
            secret_sha256=(hash_secret(secret),),
            certificate_sha256=fingerprints,
            procedures=tuple(procedure or ()),
            desks=tuple(desk or ()),
            connectors=tuple(connector or ()),
            read=read,
            subscribe=tuple(subscribe or ()),
            operator=operator,
            metrics=metrics,
        )
        save_clients(path, directory.with_client(client))
    except (ValueError, ClientFileError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    console.print(f"Client [bold]{client_id}[/bold] saved in {path}.")
    console.print(
        f"Secret (shown once; send it as X-API-Key or as the OAuth2 client_secret):\n{secret}"
    )


@app.command("rotate")
def rotate(
    client_id: Annotated[str, typer.Argument(help="The client whose secret changes.")],
    keep_old: Annotated[
        bool, typer.Option(help="Keep the current secret valid too, until the next rotation.")
    ] = True,
    file: FileOption = None,
) -> None:
    """Give a client a new secret; the old one stays valid (``--no-keep-old`` ends it now)."""
    path = _path(file)
    directory = _load(path)
    client = _existing(directory, client_id, path)
    secret = new_secret()
    kept = client.secret_sha256[-1:] if keep_old else ()
    renewed = client.model_copy(update={"secret_sha256": (*kept, hash_secret(secret))})
    save_clients(path, directory.with_client(renewed))
    console.print(f"New secret of [bold]{client_id}[/bold] (shown once):")
    console.print(secret, markup=False, highlight=False)


@app.command("remove")
def remove(
    client_id: Annotated[str, typer.Argument(help="The client to remove.")],
    file: FileOption = None,
) -> None:
    """Remove a client: its secrets, tokens and certificates stop working at the next start."""
    path = _path(file)
    directory = _load(path)
    _existing(directory, client_id, path)
    save_clients(path, directory.without(client_id))
    console.print(f"Client {client_id} removed from {path}.")


@app.command("list")
def list_clients(file: FileOption = None) -> None:
    """Show every client and its rights (never a secret)."""
    path = _path(file)
    directory = _load(path)
    table = Table(title=f"{len(directory.clients)} client(s) in {path}")
    for column in ("id", "agency", "submits", "pushes as", "reads", "receives", "operator"):
        table.add_column(column)
    for client in directory.clients:
        table.add_row(
            client.id,
            client.agency,
            ", ".join(client.procedures) or "-",
            ", ".join(client.connectors) or "-",
            client.read.value,
            ", ".join(client.subscribe) or "-",
            "yes" if client.operator else "",
        )
    console.print(table)
