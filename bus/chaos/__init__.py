"""The fault suite: real faults injected into a bus of real processes, and a count of every
dossier in and out. Every run must end with 0 lost and 0 applied twice.

``bus chaos`` runs it (``--size small`` for the bounded subset ``make test`` runs from
``tests/chaos/``). Each scenario (:mod:`bus.chaos.scenarios`) gets a fresh
:class:`~bus.chaos.rig.Rig`: the civil-status simulator behind a cuttable link, API and worker
processes as ``bus run`` starts them, its own broker namespace (or private RabbitMQ nodes when
it stops one) and its own store. The report (:mod:`bus.chaos.report`) is a table and a JSON
file under ``bench/results/``.
"""

from __future__ import annotations

from bus.chaos.rig import Rig, Tally
from bus.chaos.scenarios import FULL, SCENARIOS, SIZES, SMALL, Scenario, Size
from bus.chaos.suite import run_scenario, run_suite

__all__ = [
    "FULL",
    "SCENARIOS",
    "SIZES",
    "SMALL",
    "Rig",
    "Scenario",
    "Size",
    "Tally",
    "run_scenario",
    "run_suite",
]
