"""Helpers the connector tests share: status events, failure switches, simulator control."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from bus import events
from bus.connector import Connector, Delivery
from bus.errors import PartnerUnavailable
from bus.testing import FaultSwitches, PartnerState
from contracts import DossierStatus, StatusChange, sample_birth_dossier

CODE = sample_birth_dossier().code
"""The sample dossier's code: every status event of these helpers is about it."""


def status_delivery(
    sequence: int,
    status: DossierStatus,
    *,
    start: datetime,
    agency: str,
    attempt: int = 1,
    **details: Any,
) -> Delivery:
    """A status event of the sample dossier, ``sequence`` minutes after ``start``, as handed over.

    ``details`` are the change's other fields (``note``, ``partner_reference``).
    """
    change = StatusChange(
        dossier_code=CODE,
        status=status,
        changed_at=start + timedelta(minutes=sequence),
        agency=agency,
        **details,
    )
    event = events.status_changed(change, sequence=sequence, correlation_id=f"run-{CODE}")
    return Delivery(event.id, event, change=change, attempt=attempt)


def sick_partner_cases(rejected: type[Exception], rejected_fault: str) -> list[object]:
    """Each failure switch, with the error and fault code the connector must make of it.

    ``reject_all`` must become ``rejected`` with ``rejected_fault``: each partner says no in
    its own words. Parameters ``switches``, ``error``, ``fault_code``.
    """
    return [
        pytest.param(FaultSwitches(error_rate=1.0), PartnerUnavailable, "HTTP_503", id="503"),
        pytest.param(
            FaultSwitches(malformed=True), PartnerUnavailable, "MALFORMED_REPLY", id="malformed"
        ),
        pytest.param(
            FaultSwitches(hang=True, hang_seconds=5),
            PartnerUnavailable,
            "PARTNER_TIMEOUT",
            id="timeout",
        ),
        pytest.param(FaultSwitches(reject_all=True), rejected, rejected_fault, id="rejected"),
    ]


async def check_sick_then_well(
    connector: Connector,
    state: PartnerState[FaultSwitches],
    switches: FaultSwitches,
    error: type[Exception],
    fault_code: str,
    attempt: Callable[[int], Delivery],
) -> None:
    """A partner made sick by ``switches`` fails the delivery with ``error`` and ``fault_code``
    and applies nothing; back up, it takes the retry (``attempt(n)``: the n-th try of one)."""
    state.set_faults(switches)
    with pytest.raises(error) as caught:
        await connector.deliver(attempt(1))
    assert getattr(caught.value, "fault_code", None) == fault_code
    assert state.stats()["applied"] == 0  # nothing applied by a sick partner

    state.set_faults(FaultSwitches())  # back up: the retry is taken
    await connector.deliver(attempt(2))
    assert state.stats()["applied"] == 1


async def set_faults(sim: httpx.AsyncClient, **faults: Any) -> None:
    """Switch a simulator's failure modes over its ``/_sim/faults`` route."""
    response = await sim.post("/_sim/faults", json=faults)
    response.raise_for_status()


async def stats(sim: httpx.AsyncClient) -> dict[str, Any]:
    """A simulator's exact counters, read over HTTP."""
    response = await sim.get("/_sim/stats")
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result
