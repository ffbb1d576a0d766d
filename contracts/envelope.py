"""The CloudEvents 1.0 envelope every bus message travels in, with the bus's event types.

Extension attributes keep CloudEvents' naming rule (lowercase letters and digits, at most 20).
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field, JsonValue

from contracts._model import ContractModel
from contracts.codes import AgencyCode, DossierCode
from contracts.timezone import VnDateTime

__all__ = [
    "DEADLINE_ALERT_DATASCHEMA",
    "DOSSIER_DATASCHEMA",
    "EVENT_DOSSIER_AT_RISK",
    "EVENT_DOSSIER_OVERDUE",
    "EVENT_DOSSIER_STATUS_CHANGED",
    "EVENT_DOSSIER_STEP_REQUESTED",
    "EVENT_DOSSIER_SUBMITTED",
    "STATUS_CHANGE_DATASCHEMA",
    "STEP_ORDER_DATASCHEMA",
    "EventEnvelope",
    "dataschema_uri",
]

EVENT_DOSSIER_SUBMITTED: Final = "vn.lienthong.dossier.submitted"
"""A dossier was accepted by the bus; ``data`` is a ``Dossier``."""

EVENT_DOSSIER_STATUS_CHANGED: Final = "vn.lienthong.dossier.status_changed"
"""A dossier's status changed; ``data`` is a ``StatusChange``."""

EVENT_DOSSIER_STEP_REQUESTED: Final = "vn.lienthong.dossier.step_requested"
"""The linkage engine asks one agency to do its step; ``data`` is a ``StepOrder``."""

EVENT_DOSSIER_AT_RISK: Final = "vn.lienthong.dossier.at_risk"
"""A dossier or one of its steps may miss its due date; ``data`` is a ``DeadlineAlert``."""

EVENT_DOSSIER_OVERDUE: Final = "vn.lienthong.dossier.overdue"
"""A dossier or one of its steps is past its due date; ``data`` is a ``DeadlineAlert``."""


def dataschema_uri(name: str, version: str) -> str:
    """The ``dataschema`` URI of a contract: ``urn:lienthong:contracts:{name}:{version}``."""
    return f"urn:lienthong:contracts:{name}:{version}"


DOSSIER_DATASCHEMA: Final = dataschema_uri("dossier", "1.0")
STATUS_CHANGE_DATASCHEMA: Final = dataschema_uri("status-change", "1.0")
STEP_ORDER_DATASCHEMA: Final = dataschema_uri("step-order", "1.0")
DEADLINE_ALERT_DATASCHEMA: Final = dataschema_uri("deadline-alert", "1.0")


class EventEnvelope(ContractModel):
    """A CloudEvents 1.0 event in structured JSON mode, about exactly one dossier."""

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(
        min_length=1,
        max_length=100,
        description="Unique per source; a redelivered event keeps its id, so consumers deduplicate",
    )
    source: AgencyCode = Field(description="The agency on whose behalf the event is emitted")
    type: str = Field(
        max_length=200,
        pattern=r"^[a-z0-9]+(\.[a-z0-9_]+)+$",
        description="Reverse-DNS event type, e.g. vn.lienthong.dossier.submitted",
    )
    subject: DossierCode = Field(description="Mã hồ sơ — the dossier the event is about")
    time: VnDateTime = Field(description="When the occurrence happened")
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str = Field(
        max_length=500,
        pattern=r"^[a-zA-Z][a-zA-Z0-9+.\-]*:\S+$",
        description="Absolute URI of the data's contract, e.g. urn:lienthong:contracts:dossier:1.0",
    )
    correlationid: str = Field(
        min_length=1,
        max_length=100,
        description="Shared by every event of one linkage run, to follow a dossier across agencies",
    )
    causationid: str | None = Field(
        default=None, min_length=1, max_length=100, description="The id of the event that caused it"
    )
    dossierseq: int = Field(
        ge=1, description="Per-dossier sequence number, so consumers can order and spot gaps"
    )
    mappingid: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The mapping that shaped the data, as partner/version/message, when one did",
    )
    traceparent: str | None = Field(
        default=None,
        pattern=r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        description="W3C Trace Context traceparent",
    )
    data: dict[str, JsonValue] = Field(description="The payload, valid against dataschema")
