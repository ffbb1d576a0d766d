"""The ``bus`` command: run the processes, the demo, and maintenance tasks."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Coroutine
from typing import Annotated, Any

import typer
from rich.console import Console

from bus.cli_audit import app as audit_app
from bus.cli_bench import bench
from bus.cli_chaos import chaos
from bus.cli_clients import app as clients_app
from bus.cli_connector import app as connector_app
from bus.cli_dlq import app as dlq_app
from bus.cli_keys import app as keys_app
from bus.cli_mappings import app as mappings_app
from bus.cli_status import status
from bus.cli_trace import trace
from bus.logs import configure_logging
from bus.security.masking import install_log_masking, quiet_payload_loggers
from bus.settings import Settings, get_settings, redact_url

app = typer.Typer(
    name="bus",
    help="Liên thông bus: inter-agency interoperability over RabbitMQ.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
app.add_typer(mappings_app, name="mappings")
app.add_typer(dlq_app, name="dlq")
app.add_typer(connector_app, name="connector")
app.add_typer(clients_app, name="clients")
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
app.command("trace")(trace)
app.command("status")(status)
app.command("bench")(bench)
app.command("chaos")(chaos)


def _logging(verbose: bool, process: str) -> None:
    install_log_masking()
    configure_logging(
        logging.DEBUG if verbose else logging.INFO, get_settings().log_format, process
    )
    # Libraries that log message bodies at DEBUG (personal data), and chatter at INFO.
    quiet_payload_loggers()
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _run_fast(main: Coroutine[Any, Any, None]) -> None:
    """Run a long-lived process on uvloop (installed with uvicorn) when available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop does not build on every platform
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Listen address (BUS_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (BUS_API_PORT).")] = None,
    verbose: bool = False,
) -> None:
    """Serve the HTTP API (ingest, dossier state and history; OpenAPI at /docs)."""
    from bus.processes import serve_api

    _logging(verbose, "api")
    overrides = {k: v for k, v in {"api_host": host, "api_port": port}.items() if v is not None}
    serve_api(get_settings().model_copy(update=overrides))


@app.command()
def worker(
    connector: Annotated[
        list[str] | None,
        typer.Option("--connector", "-c", help="Connector id to serve; repeat. Default: all."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve Prometheus metrics on this port (BUS_WORKER_METRICS_PORT)."),
    ] = None,
    verbose: bool = False,
) -> None:
    """Run connector workers: consume their queues and deliver to the partner systems."""
    from bus.processes import serve_workers

    _logging(verbose, "worker")
    settings = get_settings()
    if metrics_port is not None:
        settings = settings.model_copy(update={"worker_metrics_port": metrics_port})
    _run_fast(serve_workers(settings, connector or ()))


@app.command()
def migrate() -> None:
    """Bring the store's schema up to date (runs automatically at start-up too)."""
    from bus.store.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url)
    console.print(f"[green]store is up to date[/] ({redact_url(settings.database_url)})")


@app.command()
def run(
    demo: Annotated[bool, typer.Option(help="Push a sample dossier and show its journey.")] = True,
    workers: Annotated[int, typer.Option(min=1, max=16, help="Worker processes.")] = 1,
) -> None:
    """Start the whole bus on this machine: simulators, worker(s), API; Ctrl-C stops all."""
    from bus.demo import run_embedded

    raise typer.Exit(run_embedded(get_settings(), demo=demo, workers=workers, console=console))


@app.command()
def demo(
    api_key: Annotated[
        str,
        typer.Option(
            envvar="BUS_API_KEY",
            help="Secret of a client that may submit dossiers at 000.00.10.H12 "
            "(`bus run` prints demo-one-stop's).",
        ),
    ],
    url: Annotated[
        str, typer.Option(help="Base URL of a running bus API.")
    ] = "http://127.0.0.1:8000",
) -> None:
    """Push a sample birth and death dossier to a running bus and print their journeys."""
    from bus.demo import push_and_follow

    raise typer.Exit(push_and_follow(get_settings(), url, api_key, console=console))


@app.command("config")
def show_config() -> None:
    """Print the effective configuration (passwords redacted) as JSON."""
    data = json.loads(get_settings().model_dump_json())
    data["database_url"] = redact_url(data["database_url"])
    data["amqp_url"] = redact_url(data["amqp_url"])
    console.print_json(json.dumps(data))


def settings_table() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every setting: the README's configuration table."""
    rows = []
    for name, info in Settings.model_fields.items():
        default = info.default_factory() if info.default_factory else info.default  # type: ignore[call-arg]
        rows.append(
            (f"BUS_{name.upper()}", json.dumps(default, default=str), info.description or "")
        )
    return rows


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
