"""The machine's load as the benchmark reads it from Linux's /proc/stat."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.bench.resources import CpuTicks, machine_load, machine_ticks

# cpu  user nice system idle iowait irq softirq steal guest guest_nice
_STAT = "cpu  {} 10 {} {} 40 5 5 {} 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 12345\n"


def _write(path: Path, user: int, system: int, idle: int, steal: int) -> Path:
    path.write_text(_STAT.format(user, system, idle, steal))
    return path


def test_busy_time_steal_and_idle_are_read_from_the_first_line(tmp_path: Path) -> None:
    ticks = machine_ticks(_write(tmp_path / "stat", 1000, 300, 5000, 60))
    # Guest time (7) is inside user already: not counted twice.
    assert ticks == CpuTicks(busy=1000 + 10 + 300 + 5 + 5, steal=60, total=1320 + 5000 + 40 + 60)


def test_the_load_between_two_readings_in_cores_and_stolen_share(tmp_path: Path) -> None:
    before = machine_ticks(_write(tmp_path / "before", 1000, 300, 5000, 60))
    # 400 ticks pass on two CPUs: 250 busy (1.25 cores), 100 idle, 50 stolen (12.5 %).
    after = machine_ticks(_write(tmp_path / "after", 1200, 350, 5100, 110))
    load = machine_load(before, after, cpus=2)
    assert load is not None
    assert load.busy_cores == pytest.approx(1.25)
    assert load.steal_share == pytest.approx(0.125)


def test_no_figure_rather_than_a_wrong_one(tmp_path: Path) -> None:
    assert machine_ticks(tmp_path / "absent") is None
    (tmp_path / "odd").write_text("intr 1 2 3\n")
    assert machine_ticks(tmp_path / "odd") is None
    same = CpuTicks(busy=1, steal=0, total=10)
    assert machine_load(same, same) is None  # no time passed
    assert machine_load(None, same) is None


def test_this_machine_reads_as_a_plausible_load() -> None:
    before = machine_ticks()
    sum(i * i for i in range(300_000))  # some work, so that ticks pass
    after = machine_ticks()
    assert before is not None and after is not None and after.total >= before.total
