"""What the benchmark's processes cost: resident memory sampled while it runs, and CPU time.

Read from Linux's ``/proc/<pid>/status`` (``VmRSS`` now, ``VmHWM`` the peak the kernel kept) and
``/proc/<pid>/stat`` (user and system time), the figures ``ps`` and ``top`` show; psutil would
add a dependency for three numbers. Elsewhere the figures are absent, not wrong.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bus.tasks import cancel_and_wait

__all__ = ["MemorySampler", "Sample", "cpu_seconds", "rss_kib"]


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
