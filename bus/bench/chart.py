"""The PNG chart of a benchmark run: hops against the ceiling, latency, scale-out, memory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # no screen: render straight to a file

import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from bus.bench.suite import BenchReport

__all__ = ["draw"]


def _hops(axes: Axes, report: BenchReport) -> None:
    names = ["RabbitMQ alone", *(hop.hop for hop in report.end_to_end.hops)]
    rates = [report.ceiling.per_second, *(hop.per_second for hop in report.end_to_end.hops)]
    colours = ["#888888", *["#1f77b4"] * len(report.end_to_end.hops)]
    bars = axes.bar(names, rates, color=colours)
    axes.bar_label(bars, labels=[f"{rate:,.0f}" for rate in rates], fontsize=8)
    axes.axhline(report.ceiling.per_second / 2, color="#d62728", linestyle="--", linewidth=1)
    axes.text(len(names) - 0.5, report.ceiling.per_second / 2, " target: ½ of the ceiling",
              color="#d62728", fontsize=8, va="bottom", ha="right")  # fmt: skip
    axes.set_title("Messages per second, per hop")
    axes.set_ylabel("per second")


def _latency(axes: Axes, report: BenchReport) -> None:
    loads = report.end_to_end.latency
    width = 0.8 / len(loads)
    for index, load in enumerate(loads):
        offset = (index - (len(loads) - 1) / 2) * width
        values = [load.p50_ms, load.p95_ms, load.p99_ms]
        label = load.load if load.offered_per_second is None else (
            f"{load.load} ({load.offered_per_second:,.0f}/s)"
        )  # fmt: skip
        bars = axes.bar([i + offset for i in range(3)], values, width, label=label)
        axes.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=7)
    axes.axhline(100, color="#d62728", linestyle="--", linewidth=1, label="target p99 at ½ peak")
    axes.set_xticks(range(3), ["p50", "p95", "p99"])
    axes.set_yscale("log")
    axes.set_ylabel("ms, ingest → status event")
    axes.set_title("Latency")
    axes.legend(fontsize=7)


def _scale_out(axes: Axes, report: BenchReport) -> None:
    if not report.scale_out:
        axes.text(0.5, 0.5, "no scale-out run", ha="center", va="center")
        axes.set_axis_off()
        return
    for apis in sorted({point.apis for point in report.scale_out}):
        points = sorted((p for p in report.scale_out if p.apis == apis), key=lambda p: p.workers)
        axes.plot([p.workers for p in points], [p.latency.per_second for p in points],
                  marker="o", label=f"{apis} API process(es)")  # fmt: skip
    axes.set_xticks(sorted({point.workers for point in report.scale_out}))
    axes.set_xlabel("worker processes")
    axes.set_ylabel("dossiers per second")
    axes.set_ylim(bottom=0)
    axes.set_title("Scale-out")
    axes.legend(fontsize=7)


def _memory(axes: Axes, report: BenchReport) -> None:
    soak = report.end_to_end.soak
    if soak is None or not soak.series:
        peaks = report.end_to_end.peak_rss_mib
        bars = axes.bar(list(peaks), list(peaks.values()), color="#2ca02c")
        axes.bar_label(bars, labels=[f"{v:.0f}" for v in peaks.values()], fontsize=8)
        axes.set_ylabel("MiB")
        axes.set_title("Peak RSS per process (no soak run)")
        return
    roles = sorted(soak.last_mib)
    for role in roles:
        present = [s for s in soak.series if role in s]
        axes.plot([s["dossiers"] for s in present], [s[role] for s in present], label=role)
    axes.set_xlabel("dossiers through the bus")
    axes.set_ylabel("RSS, MiB")
    axes.set_ylim(bottom=0)
    axes.set_title(f"Memory over {soak.dossiers:,} dossiers")
    axes.legend(fontsize=7)


def draw(report: BenchReport, path: Path) -> None:
    """Draw the four panels of ``report`` into ``path`` (PNG)."""
    figure, grid = plt.subplots(2, 2, figsize=(13, 9))
    _hops(grid[0][0], report)
    _latency(grid[0][1], report)
    _scale_out(grid[1][0], report)
    _memory(grid[1][1], report)
    e2e = report.end_to_end
    figure.suptitle(
        f"lienthong-bus end to end on {report.machine['cpus']} CPUs ({e2e.database}), "
        f"{report.started_at[:16]} UTC — ceiling {report.ceiling.per_second:,.0f} msg/s"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
