"""Failure switches: how a test or an operator makes a partner simulator slow, flaky or hostile.

A simulator holds one frozen set of switches at a time; ``POST /_sim/faults`` replaces all of
them (a switch left out is off), ``GET /_sim/faults`` shows them. A partner's own switches go
in a subclass, and every switch defaults to off, so that the class called without arguments is
a healthy partner and ``/_sim/reset`` returns to it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DossierFaultSwitches", "FaultSwitches", "SoapFaultSwitches"]


class FaultSwitches(BaseModel):
    """The failure switches every simulator has; posting to ``/_sim/faults`` replaces all of them.

    :func:`bus.testing.sick_answer` applies the first four to a call, in this order: latency,
    hang, error rate, malformed. ``reject_all`` is the simulator's to apply, in its partner's
    words for "no".
    """

    # extra="forbid": a misspelt switch is refused with 422 instead of silently doing nothing.
    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: int = Field(default=0, ge=0, le=600_000, description="Delay before answering")
    error_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of calls answered as a busy partner (HTTP 503, or a SOAP Server "
        "fault), unapplied",
    )
    reject_all: bool = Field(
        default=False, description="Refuse every dossier as the partner's business rejection"
    )
    malformed: bool = Field(
        default=False, description="Answer HTTP 200 with an HTML error page (not JSON, not XML)"
    )
    hang: bool = Field(
        default=False, description="Answer nothing until the client gives up (or hang_seconds)"
    )
    hang_seconds: float = Field(
        default=330.0, gt=0, le=3600, description="Longest hang; above any connector timeout"
    )


class DossierFaultSwitches(FaultSwitches):
    """The switches of a partner that receives dossiers: adds a record it chokes on."""

    failing_dossiers: frozenset[str] = Field(
        default=frozenset(),
        max_length=10_000,
        description="Dossier codes always answered HTTP 503, unapplied: a record it chokes on",
    )


class SoapFaultSwitches(DossierFaultSwitches):
    """The switches of a SOAP partner: adds a request refused as the client's fault."""

    client_fault: bool = Field(
        default=False, description="Answer a soap:Client fault (1.2: Sender), unapplied"
    )
