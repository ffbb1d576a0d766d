"""Fail points: how ``BUS_FAILPOINTS`` is read, and a process killed where it says."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from bus.failpoints import ENVIRONMENT_VARIABLE, FailPoint, FailPointSyntaxError, parse

_PASS_THREE_TIMES = (
    "from bus.failpoints import failpoint\n"
    "for n in range(1, 4):\n"
    "    failpoint('ingest.after_commit')\n"
    "    print(n, flush=True)\n"
)


def test_a_point_without_a_count_dies_the_first_time() -> None:
    """``name=kill`` arms the point for its first pass."""
    assert parse("ingest.after_commit=kill") == {
        "ingest.after_commit": FailPoint("ingest.after_commit", at=1)
    }


def test_several_points_are_separated_by_semicolons() -> None:
    """Terms split on ';', surrounding blanks and empty terms ignored, each with its count."""
    assert parse(" ingest.after_commit=kill@50 ; relay.before_mark=kill@3 ;") == {
        "ingest.after_commit": FailPoint("ingest.after_commit", at=50),
        "relay.before_mark": FailPoint("relay.before_mark", at=3),
    }


def test_nothing_is_armed_by_an_empty_variable() -> None:
    """An unset or blank variable arms no point."""
    assert parse("") == {} and parse("  ") == {}


@pytest.mark.parametrize(
    "text",
    [
        "ingest.after_commit",  # no action
        "ingest.after_commit=crash",  # unknown action
        "ingest.after_commit=kill@0",  # there is no 0th pass
        "ingest.after_commit=kill@-1",
        "ingest.after_commit=kill@many",
        "Ingest=kill",  # names are lower case, as in the code
        "ingest.after_commit=kill,relay=kill",  # ',' is not the separator
    ],
)
def test_a_term_that_cannot_be_read_is_refused(text: str) -> None:
    """A malformed term stops the process instead of leaving it half-armed."""
    with pytest.raises(FailPointSyntaxError, match=ENVIRONMENT_VARIABLE):
        parse(text)


def test_a_point_armed_twice_is_refused() -> None:
    """Two counts for one point are a mistake, not a choice."""
    with pytest.raises(FailPointSyntaxError, match="armed twice"):
        parse("ingest.after_commit=kill@2;ingest.after_commit=kill@5")


def _run(failpoints: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != ENVIRONMENT_VARIABLE}
    if failpoints is not None:
        env[ENVIRONMENT_VARIABLE] = failpoints
    return subprocess.run(
        [sys.executable, "-c", _PASS_THREE_TIMES],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_process_is_killed_on_the_counted_pass() -> None:
    """``kill@2``: the first pass goes on, the second is a SIGKILL before the code after it."""
    finished = _run("ingest.after_commit=kill@2")
    assert finished.returncode == -signal.SIGKILL
    assert finished.stdout.split() == ["1"]


def test_an_unarmed_or_other_point_changes_nothing() -> None:
    """Without the variable, or with another point armed, the code runs to its end."""
    for failpoints in (None, "relay.before_mark=kill"):
        finished = _run(failpoints)
        assert finished.returncode == 0, finished.stderr
        assert finished.stdout.split() == ["1", "2", "3"]
