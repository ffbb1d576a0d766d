"""What the benchmark's processes cost: resident memory sampled while it runs, and CPU time; and
how loaded the machine was meanwhile.

Read from Linux's ``/proc/<pid>/status`` (``VmRSS`` now, ``VmHWM`` the peak the kernel kept),
``/proc/<pid>/stat`` (user and system time) and ``/proc/stat`` (the machine's CPU time by kind),
the figures ``ps``, ``top`` and ``vmstat`` show; psutil would add a dependency for a few
numbers. Elsewhere the figures are absent, not wrong.

The machine's share matters on a virtual machine: time the hypervisor gives to other guests
(*steal*) stops every process of the bus at once, and a latency measured then says more about
the neighbours than about the bus.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bus.tasks import cancel_and_wait

__all__ = [
    "CpuTicks",
    "MachineLoad",
    "MemorySampler",
    "Sample",
    "cpu_seconds",
    "machine_load",
    "machine_ticks",
    "rss_kib",
]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far (0 when unknown).

    CPU time per dossier stays comparable when other work shares the machine, where
    wall-clock rates do not.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuTicks:
    """The machine's CPU time so far, all CPUs together, in clock ticks."""

    busy: int
    """Running anything: user (guests included), nice, system, interrupts."""
    steal: int
    """Taken by the hypervisor for other guests while this machine had work."""
    total: int
    """Everything, idle and waiting for I/O included."""


def machine_ticks(stat: Path = Path("/proc/stat")) -> CpuTicks | None:
    """The machine's CPU time so far (None where ``/proc/stat`` is not)."""
    try:
        first = stat.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if first[:1] != ["cpu"] or len(first) < 9:
        return None
    # user nice system idle iowait irq softirq steal (guest time is inside user already)
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    busy = user + nice + system + irq + softirq
    return CpuTicks(busy=busy, steal=steal, total=busy + idle + iowait + steal)


@dataclass(frozen=True)
class MachineLoad:
    """How loaded the machine was between two readings."""

    busy_cores: float
    """CPUs' worth of work, by every process of the machine."""
    steal_share: float
    """Share of the CPUs' time taken by the hypervisor for other guests."""


def machine_load(
    before: CpuTicks | None, after: CpuTicks | None, cpus: int | None = None
) -> MachineLoad | None:
    """The machine's load between two readings (None when either is missing or no time
    passed)."""
    if before is None or after is None or after.total <= before.total:
        return None
    elapsed = after.total - before.total
    count = cpus or os.cpu_count() or 1
    return MachineLoad(
        busy_cores=round((after.busy - before.busy) / elapsed * count, 2),
        steal_share=round((after.steal - before.steal) / elapsed, 4),
    )


def _status_field(pid: int, name: str) -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status``, in KiB; None when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_kib(pid: int) -> int | None:
    """Resident memory of ``pid`` now, in KiB."""
    return _status_field(pid, "VmRSS")


def peak_rss_kib(pid: int) -> int | None:
    """The most resident memory ``pid`` has had, in KiB."""
    return _status_field(pid, "VmHWM")


@dataclass(frozen=True)
class Sample:
    """One reading: seconds since sampling began, dossiers done by then, RSS per role (KiB)."""

    seconds: float
    dossiers: int
    rss_kib: dict[str, int]


@dataclass
class MemorySampler:
    """Samples every process's RSS each ``interval`` seconds, with a progress count beside it."""

    pids: Callable[[], dict[str, int]]
    progress: Callable[[], int]
    interval: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    peaks_kib: dict[str, int] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _started: float | None = None

    def read(self) -> None:
        """Take one sample now."""
        if self._started is None:
            self._started = time.monotonic()
        rss: dict[str, int] = {}
        for role, pid in self.pids().items():
            now = rss_kib(pid)
            peak = peak_rss_kib(pid)
            if now is not None:
                rss[role] = now
            if peak is not None:
                self.peaks_kib[role] = max(peak, self.peaks_kib.get(role, 0))
        self.samples.append(Sample(time.monotonic() - self._started, self.progress(), rss))

    async def _run(self) -> None:
        while True:
            self.read()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Sample in the background until :meth:`stop`."""
        self._task = asyncio.create_task(self._run(), name="memory-sampler")

    async def stop(self) -> None:
        """Take a last sample and stop."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
            self.read()
