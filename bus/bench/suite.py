"""``bus bench``: the raw ceiling and the bus end to end, side by side in one run.

The ceiling (RabbitMQ alone, :mod:`bus.bench.ceiling`) is measured first on the same broker, so
each of the bus's hops is read as a share of what the machine allows today. Then one deployment
runs the end-to-end stages (:mod:`bus.bench.endtoend`), and fresh deployments with 1, 2 and 4
workers behind 1 and 2 API processes draw the scale-out curve. The result is written as JSON and
a PNG chart under ``bench/results/`` and judged against the targets below.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson

from bus.bench.ceiling import CeilingResult, dossier_event_size, measure_ceiling
from bus.bench.endtoend import (
    EndToEndResult,
    Latency,
    Tally,
    measure_end_to_end,
    measure_throughput,
)
from bus.settings import redact_url

__all__ = ["QUICK", "STANDARD", "BenchPlan", "BenchReport", "Verdict", "run_bench", "write_report"]

#: Each hop of the bus should move at least this share of what RabbitMQ alone moves.
HOP_SHARE_TARGET: Final = 0.5
#: p99 from ingest to status event at half of the peak rate, milliseconds.
P99_TARGET_MS: Final = 100.0
#: Largest change of a process's RSS from early in the soak to its end.
RSS_DRIFT_TARGET: Final = 0.10
#: The processes the memory target is about: the bus's, not the simulator or the load.
BUS_ROLES: Final = ("api-", "worker-")


@dataclass(frozen=True)
class BenchPlan:
    """What one run measures, and how much of it."""

    amqp_url: str
    ceiling_messages: int = 20_000
    dossiers: int = 5_000
    latency_seconds: float = 20.0
    soak: int = 200_000
    workers: tuple[int, ...] = (1, 2, 4)
    apis: tuple[int, ...] = (1, 2)
    scale_dossiers: int = 3_000
    concurrency: int = 64
    database_server: str | None = None


#: ``make bench``: every figure the targets speak of, 200,000 dossiers of soak included.
STANDARD: Final = BenchPlan(amqp_url="")
#: ``bus bench --quick``: the same stages, small enough for the test suite.
QUICK: Final = BenchPlan(
    amqp_url="",
    ceiling_messages=2_000,
    dossiers=300,
    latency_seconds=3.0,
    soak=0,
    workers=(1, 2),
    apis=(1,),
    scale_dossiers=300,
)


@dataclass(frozen=True)
class ScalePoint:
    """Throughput with one count of API and worker processes."""

    apis: int
    workers: int
    latency: Latency
    tally: Tally


@dataclass(frozen=True)
class Verdict:
    """One target, the figure measured against it, and whether it was met."""

    target: str
    measured: str
    met: bool


@dataclass
class BenchReport:
    """Everything a run measured, and where it was measured."""

    started_at: str
    machine: dict[str, Any]
    plan: dict[str, Any]
    ceiling: CeilingResult
    end_to_end: EndToEndResult
    scale_out: list[ScalePoint] = field(default_factory=list)

    def hop_shares(self) -> dict[str, float]:
        """Each hop's rate as a share of the ceiling's messages per second."""
        return {hop.hop: hop.per_second / self.ceiling.per_second for hop in self.end_to_end.hops}

    def verdicts(self) -> list[Verdict]:
        """The issue's targets, judged."""
        found = [
            Verdict(
                f"{hop} ≥ {HOP_SHARE_TARGET:.0%} of the raw ceiling",
                f"{share:.1%} ({rate:,.0f}/s of {self.ceiling.per_second:,.0f}/s)",
                share >= HOP_SHARE_TARGET,
            )
            for (hop, share), rate in zip(
                self.hop_shares().items(),
                (h.per_second for h in self.end_to_end.hops),
                strict=True,
            )
        ]
        half = self.end_to_end.half_of_peak
        found.append(
            Verdict(
                f"p99 ≤ {P99_TARGET_MS:.0f} ms at half of the peak rate",
                f"{half.p99_ms:.1f} ms at {half.offered_per_second or 0:,.0f}/s",
                half.p99_ms <= P99_TARGET_MS,
            )
        )
        soak = self.end_to_end.soak
        if soak is not None:
            for role in sorted(soak.last_mib):
                # The bus's own processes: the partner's simulator keeps every registration it
                # made (that is how it answers a repeated call), so it grows by design.
                if role in soak.early_mib and role.startswith(BUS_ROLES):
                    drift = soak.drift(role)
                    found.append(
                        Verdict(
                            f"{role} RSS flat (±{RSS_DRIFT_TARGET:.0%}) over "
                            f"{soak.dossiers:,} dossiers",
                            f"{soak.early_mib[role]:.0f} → {soak.last_mib[role]:.0f} MiB "
                            f"({drift:+.1%})",
                            abs(drift) <= RSS_DRIFT_TARGET,
                        )
                    )
        tallies = [self.end_to_end.tally, *(point.tally for point in self.scale_out)]
        lost = sum(t.lost for t in tallies)
        twice = sum(t.applied_twice + t.delivered_twice for t in tallies)
        found.append(
            Verdict(
                "every accepted dossier applied once",
                f"{sum(t.accepted for t in tallies):,} accepted, {lost} lost, {twice} twice",
                lost == 0 and twice == 0,
            )
        )
        return found

    def as_json(self) -> dict[str, Any]:
        """Plain data for the result file."""
        return {
            "started_at": self.started_at,
            "machine": self.machine,
            "plan": self.plan,
            "ceiling": asdict(self.ceiling),
            "end_to_end": self.end_to_end.as_json(),
            "hop_shares": self.hop_shares(),
            "scale_out": [
                {
                    "apis": p.apis,
                    "workers": p.workers,
                    **asdict(p.latency),
                    "tally": {**asdict(p.tally), "lost": p.tally.lost},
                }
                for p in self.scale_out
            ],
            "verdicts": [asdict(v) for v in self.verdicts()],
        }


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }


async def run_bench(
    plan: BenchPlan,
    workdir: Path,
    say: Callable[[str], None] = print,
    *,
    freeze_heap: bool = False,
) -> BenchReport:
    """Measure the ceiling, the bus end to end and its scale-out, in that order.

    ``freeze_heap``: this process runs the benchmark alone (``bus bench``), so what it holds
    may be frozen out of its garbage collector's walks before each steady load.
    """
    started = datetime.now(UTC)
    shown = replace(
        plan,
        amqp_url=redact_url(plan.amqp_url),
        database_server=redact_url(plan.database_server) if plan.database_server else None,
    )
    say(f"raw ceiling: {plan.ceiling_messages:,} messages through a quorum queue")
    ceiling = await measure_ceiling(
        plan.amqp_url,
        messages=plan.ceiling_messages,
        payload_bytes=dossier_event_size(),
    )
    say(f"raw ceiling: {ceiling.per_second:,.0f} messages/s")
    end_to_end = await measure_end_to_end(
        amqp_url=plan.amqp_url,
        workdir=workdir,
        dossiers=plan.dossiers,
        latency_seconds=plan.latency_seconds,
        soak=plan.soak,
        concurrency=plan.concurrency,
        database_server=plan.database_server,
        say=say,
        freeze_heap=freeze_heap,
    )
    report = BenchReport(started.isoformat(), _machine(), asdict(shown), ceiling, end_to_end)
    for apis in plan.apis:
        for workers in plan.workers:
            say(f"scale-out: {apis} API and {workers} worker process(es)")
            latency, tally = await measure_throughput(
                amqp_url=plan.amqp_url,
                workdir=workdir,
                dossiers=plan.scale_dossiers,
                apis=apis,
                workers=workers,
                concurrency=plan.concurrency,
                database_server=plan.database_server,
            )
            report.scale_out.append(ScalePoint(apis, workers, latency, tally))
            say(f"scale-out: {latency.per_second:,.0f} dossiers/s")
    return report


def write_report(report: BenchReport, directory: Path) -> tuple[Path, Path]:
    """Write ``bench-<time>.json`` and ``bench-<time>.png`` in ``directory``; their paths."""
    from bus.bench.chart import draw  # matplotlib is slow to import: only when writing

    directory.mkdir(parents=True, exist_ok=True)
    stamp = report.started_at[:19].replace(":", "").replace("-", "")
    data = directory / f"bench-{stamp}.json"
    data.write_bytes(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2))
    chart = directory / f"bench-{stamp}.png"
    draw(report, chart)
    shutil.copyfile(data, directory / "latest.json")
    shutil.copyfile(chart, directory / "latest.png")
    return data, chart
