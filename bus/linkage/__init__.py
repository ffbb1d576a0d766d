"""The linkage engine: runs a bundle's steps for one dossier, one decision at a time.

:mod:`bus.linkage.decisions` holds the rules as pure functions of the bundle, the run's state
and what a partner answered, so they are the same wherever they are applied (a worker's commit,
a pushed or polled status change) and can be tested without a broker or a store.
"""

from __future__ import annotations

from bus.linkage.decisions import (
    Decision,
    RunState,
    StepRecord,
    StepRequest,
    StepState,
    on_step_outcome,
    start_run,
)

__all__ = [
    "Decision",
    "RunState",
    "StepRecord",
    "StepRequest",
    "StepState",
    "on_step_outcome",
    "start_run",
]
