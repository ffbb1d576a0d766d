"""Deadline alerts: a dossier, or one step of its linkage bundle, at risk of being late or late.

The data of ``dossier.at_risk`` and ``dossier.overdue`` events. Each is raised once per dossier,
scope and kind, so an officer's inbox or a portal's feed is not flooded by a scheduler that
looks again every minute.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from contracts._model import ContractModel
from contracts.codes import AgencyCode, DossierCode
from contracts.status import DossierStatus
from contracts.timezone import VnDateTime

__all__ = ["AlertKind", "AlertScope", "DeadlineAlert"]

AlertKind = Literal["at_risk", "overdue"]
"""``at_risk``: still open on its due date; ``overdue``: still open after it."""

AlertScope = Literal["dossier", "step"]
"""What is late: the whole dossier (its ``due_at``) or one step of its bundle."""


class DeadlineAlert(ContractModel):
    """A dossier or one of its linkage steps near or past its due date, while still open."""

    model_config = ConfigDict(frozen=True)

    schema_version: Literal["1.0"] = "1.0"
    dossier_code: DossierCode = Field(description="Mã hồ sơ — the dossier")
    kind: AlertKind = Field(description="at_risk (due today) or overdue (past its due date)")
    scope: AlertScope = Field(description="The whole dossier, or one step of its bundle")
    step: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,40}$")] | None = Field(
        default=None, description="The step, when scope is step"
    )
    connector: str | None = Field(
        default=None, max_length=64, description="The connector of the step's agency"
    )
    agency: AgencyCode | None = Field(
        default=None, description="The agency that must act (the step's, or the handling one)"
    )
    status: DossierStatus = Field(description="The dossier's status when the alert was raised")
    due_on: date = Field(description="The due date at risk or missed (supplement time added)")
    detected_at: VnDateTime = Field(description="When the bus noticed")
    working_days_late: int = Field(
        default=0, ge=0, description="Working days past the due date (0 for at_risk)"
    )
    note: str | None = Field(default=None, max_length=500, description="What is waited for")
