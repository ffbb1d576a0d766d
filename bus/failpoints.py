"""Fail points: named places where the fault suite makes a bus process die on purpose.

A fail point is one call, ``failpoint("ingest.after_commit")``, at a spot where a crash is
worth proving harmless (between a commit and what follows it). It does nothing unless
``BUS_FAILPOINTS`` arms it, read once when this module is imported::

    BUS_FAILPOINTS="ingest.after_commit=kill@50"   # SIGKILL on the 50th time it is reached
    BUS_FAILPOINTS="ingest.after_commit=kill"      # ... on the first
    BUS_FAILPOINTS="a=kill@3;b=kill@10"            # several points, ';'-separated

Modelled on FreeBSD's fail(9) and etcd's gofail, reduced to the one action the fault suite
needs: ``kill``, a SIGKILL of the process itself, which no ``finally`` block, atexit hook or
signal handler survives, exactly as when the machine loses power or the kernel's OOM killer
strikes. Written by hand because no maintained Python library offers fail points; it is a
parser and a counter. Unset, a fail point costs one dictionary lookup on an empty dictionary.
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass
from typing import Final

__all__ = ["ENVIRONMENT_VARIABLE", "FailPoint", "FailPointSyntaxError", "failpoint", "parse"]

ENVIRONMENT_VARIABLE: Final = "BUS_FAILPOINTS"
"""The variable that arms fail points in a process (not a setting: only the fault suite uses it)."""

_TERM: Final = re.compile(r"(?P<name>[a-z][a-z0-9_.]*)=(?P<action>kill)(?:@(?P<at>[1-9][0-9]*))?")


class FailPointSyntaxError(ValueError):
    """Raised when ``BUS_FAILPOINTS`` cannot be read: a process must not run half-armed."""


@dataclass
class FailPoint:
    """One armed point: SIGKILL the process the ``at``-th time it is reached."""

    name: str
    at: int
    hits: int = 0


def parse(text: str) -> dict[str, FailPoint]:
    """The points armed by ``text`` (``name=kill[@N]`` terms separated by ``;``), by name."""
    points: dict[str, FailPoint] = {}
    for term in (t.strip() for t in text.split(";")):
        if not term:
            continue
        match = _TERM.fullmatch(term)
        if match is None:
            raise FailPointSyntaxError(
                f"{ENVIRONMENT_VARIABLE}: cannot read {term!r}; write name=kill or name=kill@N "
                "(N ≥ 1), several separated by ';'"
            )
        name = match["name"]
        if name in points:
            raise FailPointSyntaxError(f"{ENVIRONMENT_VARIABLE}: {name} is armed twice")
        points[name] = FailPoint(name, int(match["at"] or 1))
    return points


_ARMED: Final = parse(os.environ.get(ENVIRONMENT_VARIABLE, ""))


def failpoint(name: str) -> None:
    """Count a pass through fail point ``name``; SIGKILL this process if it is armed to die now."""
    point = _ARMED.get(name)
    if point is None:
        return
    point.hits += 1
    if point.hits == point.at:
        os.kill(os.getpid(), signal.SIGKILL)
