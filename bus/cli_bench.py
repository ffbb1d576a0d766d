"""``bus bench``: measure the bus against RabbitMQ alone on this machine, and print the figures."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bus.bench.endtoend import Latency
from bus.bench.suite import QUICK, STANDARD, BenchReport, run_bench, write_report
from bus.errors import BrokerUnavailable
from bus.settings import get_settings

# A report's tables are read in logs and CI output too: there, not squeezed to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 120)


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of counts") from None
    if not counts or min(counts) < 1:
        raise typer.BadParameter("give counts of 1 or more, e.g. 1,2,4")
    return counts


def bench(
    quick: Annotated[
        bool, typer.Option(help="Small sizes (a minute or two): checks the bench, not the bus.")
    ] = False,
    dossiers: Annotated[
        int | None, typer.Option(min=50, help="Dossiers per end-to-end stage (default 5,000).")
    ] = None,
    soak: Annotated[
        int | None,
        typer.Option(min=0, help="Dossiers of the memory soak (default 200,000; 0 skips it)."),
    ] = None,
    workers: Annotated[
        str | None, typer.Option(help="Worker process counts of the scale-out curve (1,2,4).")
    ] = None,
    apis: Annotated[
        str | None, typer.Option(help="API process counts of the scale-out curve (1,2).")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="A PostgreSQL server to make a fresh database on for each deployment "
            "(default: BUS_DATABASE_URL when it is PostgreSQL, else fresh SQLite files)."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Where the JSON and PNG results go.")] = Path(
        "bench/results"
    ),
    strict: Annotated[
        bool, typer.Option(help="Exit 1 when a performance target is missed, too.")
    ] = False,
) -> None:
    """Measure RabbitMQ alone, then the bus end to end (HTTP ingest → store → relay → worker →
    partner → status event) on real processes, with latency at half, a quarter and a tenth of
    the peak rate and where a dossier's time went, its scale-out with more processes, and its
    memory over a long run; print the figures against the targets, write JSON and a PNG chart.

    Exits 1 when a dossier was lost or applied twice (and, with --strict, when a target is
    missed).
    """
    settings = get_settings()
    plan = QUICK if quick else STANDARD
    server = database_url or (None if settings.is_sqlite else settings.database_url)
    plan = replace(
        plan,
        amqp_url=settings.amqp_url,
        database_server=server,
        dossiers=dossiers or plan.dossiers,
        soak=plan.soak if soak is None else soak,
        workers=_counts(workers) if workers else plan.workers,
        apis=_counts(apis) if apis else plan.apis,
    )
    workdir = Path("var/bench")
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        report = asyncio.run(
            run_bench(plan, workdir, say=lambda line: console.print(f"· {line}"), freeze_heap=True)
        )
    except BrokerUnavailable as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    data, chart = write_report(report, out)
    _print(report)
    console.print(f"\nresults: {data}\nchart:   {chart}\nlogs:    {workdir}/<namespace>/")
    verdicts = report.verdicts()
    correct = verdicts[-1].met  # the exactly-once count
    if not correct or (strict and not all(v.met for v in verdicts)):
        raise typer.Exit(1)


def _print(report: BenchReport) -> None:
    e2e = report.end_to_end
    ceiling = report.ceiling
    hops = Table(title=f"Per hop, against RabbitMQ alone ({ceiling.per_second:,.0f} msg/s, "
                 f"{ceiling.payload_bytes:,} B, p99 {ceiling.p99_ms:.1f} ms)")  # fmt: skip
    for column in ("hop", "what", "messages", "seconds", "per second", "share of ceiling"):
        hops.add_column(column, justify="left" if column in ("hop", "what") else "right")
    for hop, share in zip(e2e.hops, report.hop_shares().values(), strict=True):
        hops.add_row(hop.hop, hop.what, f"{hop.messages:,}", f"{hop.seconds:.2f}",
                     f"{hop.per_second:,.0f}", f"{share:.1%}")  # fmt: skip
    console.print(hops)

    latency = Table(title=f"Ingest → status event ({e2e.apis} API, {e2e.workers} worker, "
                    f"{e2e.database})")  # fmt: skip
    for column in ("load", "dossiers", "dossiers/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
                   "202 p50", "202 p99", "busy cores", "steal"):  # fmt: skip
        latency.add_column(column, justify="left" if column == "load" else "right")
    for load in e2e.latency:
        latency.add_row(load.load, f"{load.dossiers:,}", f"{load.per_second:,.1f}",
                        f"{load.p50_ms:,.1f}", f"{load.p95_ms:,.1f}", f"{load.p99_ms:,.1f}",
                        f"{load.max_ms:,.1f}", f"{load.answer_p50_ms:,.1f}",
                        f"{load.answer_p99_ms:,.1f}",
                        "" if load.busy_cores is None else f"{load.busy_cores:.2f}",
                        "" if load.steal_share is None else f"{load.steal_share:.1%}")  # fmt: skip
    console.print(latency)
    console.print("busy cores: CPUs' worth of work by every process of the machine; steal: "
                  "CPU time the hypervisor gave to other guests (a virtual machine's "
                  "neighbours), which stops every process at once.")  # fmt: skip
    for load in e2e.latency:
        _print_segments(load)

    if report.scale_out:
        scale = Table(title="Scale-out (each row a fresh deployment)")
        for column in ("APIs", "workers", "dossiers", "dossiers/s", "p99 ms", "lost", "twice"):
            scale.add_column(column, justify="right")
        for point in report.scale_out:
            scale.add_row(str(point.apis), str(point.workers), f"{point.tally.accepted:,}",
                          f"{point.latency.per_second:,.1f}", f"{point.latency.p99_ms:,.0f}",
                          str(point.tally.lost),
                          str(point.tally.applied_twice + point.tally.delivered_twice))  # fmt: skip
        console.print(scale)

    costs = Table(title="What each process costs (CPU during the peak stage)")
    costs.add_column("process")
    costs.add_column("peak RSS MiB", justify="right")
    costs.add_column("CPU ms per dossier", justify="right")
    for role in e2e.cpu_ms_per_dossier:
        peak = e2e.peak_rss_mib.get(role)
        costs.add_row(role, "" if peak is None else f"{peak:,.0f}",
                      f"{e2e.cpu_ms_per_dossier[role]:.2f}")  # fmt: skip
    console.print(costs)

    verdicts = Table(title="Targets")
    for column in ("target", "measured", "met"):
        verdicts.add_column(column)
    for verdict in report.verdicts():
        mark = "[green]yes[/]" if verdict.met else "[red]no[/]"
        verdicts.add_row(verdict.target, verdict.measured, mark)
    console.print(verdicts)


def _print_segments(load: Latency) -> None:
    """Where the time of one load's dossiers went (bus.bench.breakdown)."""
    if not load.segments:
        return
    table = Table(title=f"Where the time went, {load.load} (ms; the slowest 1 %: their mean)")
    for column in ("segment", "from the mark before", "p50", "p99", "slowest 1 %"):
        table.add_column(column, justify="left" if column.startswith(("seg", "from")) else "right")
    for segment in load.segments:
        table.add_row(segment.name, segment.what, f"{segment.p50_ms:,.1f}",
                      f"{segment.p99_ms:,.1f}", f"{segment.tail_ms:,.1f}")  # fmt: skip
    console.print(table)
