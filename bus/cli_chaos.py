"""``bus chaos``: the fault suite, run from the shell (``make chaos``).

Each scenario starts a bus of real processes, hurts it for real and counts every dossier in and
out; the run prints a table and writes it as JSON under ``bench/results/``. Exits 1 when a
scenario lost a dossier, applied one twice, or could not run.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bus.chaos import SCENARIOS, SIZES, Tally, run_suite
from bus.chaos.report import print_notes, table, write_json
from bus.settings import redact_url

# A log file or a pipe gets a table as wide as a terminal would show it, not 80 columns.
console = Console(width=None if sys.stdout.isatty() else 120)


class SizeName(StrEnum):
    """How big a run is: ``full`` as ``make chaos`` runs it, ``small`` as ``make test`` does."""

    FULL = "full"
    SMALL = "small"


def chaos(
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            "--scenario",
            "-s",
            help=f"Scenario to run; repeat. Default: all ({', '.join(SCENARIOS)}).",
        ),
    ] = None,
    size: Annotated[
        SizeName,
        typer.Option(
            help="full: 10,000 dossiers, the broker down 30 s, the partner 60 s; small: "
            "600 dossiers (the poison among 1,000), 5 s outages."
        ),
    ] = SizeName.FULL,
    database_url: Annotated[
        str | None,
        typer.Option(
            envvar="BUS_DATABASE_URL",
            help="A PostgreSQL URL: each scenario gets a new database on that server, dropped "
            "after it. Otherwise (or for a SQLite URL) each gets a new SQLite file.",
        ),
    ] = None,
    amqp_url: Annotated[
        str,
        typer.Option(
            envvar="BUS_AMQP_URL",
            help="The shared broker, which no scenario stops; the broker-stop and node-stop "
            "scenarios start RabbitMQ nodes of their own (ports 5721, 5731-5733).",
        ),
    ] = "amqp://guest:guest@127.0.0.1:5672/",
    workdir: Annotated[
        Path | None,
        typer.Option(help="Where each scenario keeps its processes' logs and its store."),
    ] = None,
    results: Annotated[Path, typer.Option(help="Directory of the JSON report.")] = Path(
        "bench/results"
    ),
) -> None:
    """Inject real faults into a bus of real processes and count: 0 lost, 0 applied twice.

    The scenarios, each on a fresh bus (API, worker and partner simulator processes):

    - worker-kill: a worker SIGKILLed mid-batch, a new one started;
    - api-kill: an API killed between its commit and its publish (the outbox resumes);
    - broker-stop: the broker stopped for an outage, then restarted;
    - node-stop: one node of a three-node RabbitMQ cluster stopped;
    - partner-down: the partner's link cut for an outage, then back;
    - partner-flaky: the partner answering 1 call in 5 with 503;
    - poison: a poison message among good ones, parked with its reason.

    Prints a table and writes it as JSON.
    Exits 1 if any scenario lost or doubled anything, or could not run.
    """
    unknown = sorted(set(scenario or ()) - set(SCENARIOS))
    if unknown:
        raise typer.BadParameter(
            f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}",
            param_hint="--scenario",
        )
    chosen = [SCENARIOS[name] for name in scenario] if scenario else list(SCENARIOS.values())
    started = datetime.now(UTC)
    workdir = workdir or Path("var") / "chaos" / f"{started:%Y%m%dT%H%M%S}"
    postgres = database_url is not None and database_url.startswith("postgresql")
    store = f"PostgreSQL at {redact_url(database_url or '')}" if postgres else "SQLite"
    stores = "a new database on that server" if postgres else "a new SQLite file"
    console.print(
        f"fault suite, {size.value} size, {len(chosen)} scenario(s) on {store}, {stores} for "
        f"each; logs in {workdir}",
        highlight=False,
    )

    def report(tally: Tally) -> None:
        mark = "[green]PASS[/]" if tally.passed else "[red]FAIL[/]"
        console.print(f"{mark} {tally.scenario} ({tally.seconds:.0f} s)")

    tallies = asyncio.run(
        run_suite(
            chosen,
            SIZES[size.value],
            workdir=workdir,
            amqp_url=amqp_url,
            database_server=database_url if postgres else None,
            on_tally=report,
        )
    )
    console.print(table(tallies, title=f"Fault suite ({size.value}, {store})"))
    print_notes(console, tallies)
    path = write_json(tallies, results, started=started, size=size.value, store=store)
    console.print(f"written to {path}", highlight=False)
    raise typer.Exit(0 if all(t.passed for t in tallies) else 1)
