"""The fault suite's report: a table on the terminal, and the same tallies as a JSON file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bus.chaos.rig import Tally


def verdict(tally: Tally) -> str:
    """``PASS``, or ``FAIL:`` and what failed."""
    return "PASS" if tally.passed else "FAIL: " + "; ".join(tally.problems)


def table(tallies: Sequence[Tally], *, title: str) -> Table:
    """One row per scenario: in, delivered, lost, applied twice, parked, seconds, verdict."""
    grid = Table(title=title, title_justify="left")
    grid.add_column("scenario", no_wrap=True)
    for column in ("in", "delivered", "lost", "applied twice", "parked", "seconds"):
        grid.add_column(column, justify="right")
    grid.add_column("verdict")
    for tally in tallies:
        # "n of m": n parked where m were meant to be.
        parked = str(tally.parked)
        if tally.expected_parked:
            parked += f" of {tally.expected_parked}"
        if tally.parked != tally.expected_parked:
            parked = f"[red]{parked}[/]"
        grid.add_row(
            tally.scenario,
            f"{tally.accepted:,}",
            f"{tally.delivered:,}",
            _count(tally.lost),
            _count(tally.applied_twice),
            parked,
            f"{tally.seconds:.0f}",
            "[green]PASS[/]" if tally.passed else f"[red]{verdict(tally)}[/]",
        )
    return grid


def _count(value: int) -> str:
    return "0" if value == 0 else f"[red]{value:,}[/]"


def print_notes(console: Console, tallies: Sequence[Tally]) -> None:
    """What each scenario saw on the way, under the table."""
    for tally in tallies:
        console.print(f"[bold]{tally.scenario}[/]")
        for note in (*tally.notes, *([tally.error] if tally.error else [])):
            console.print(f"  {note}", markup=False, highlight=False)


def write_json(
    tallies: Sequence[Tally], directory: Path, *, started: datetime, size: str, store: str
) -> Path:
    """``chaos-<timestamp>.json`` in ``directory``: the run's settings and every tally."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"chaos-{started:%Y%m%dT%H%M%S}.json"
    document = {
        "started_at": started.isoformat(),
        "size": size,
        "store": store,
        "passed": all(t.passed for t in tallies),
        "scenarios": [{**asdict(t), "verdict": verdict(t)} for t in tallies],
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
