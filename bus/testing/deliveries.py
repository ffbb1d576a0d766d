"""Deliveries as the bus hands them to a connector, for calling ``deliver()`` in a test."""

from __future__ import annotations

from bus.connector import Delivery
from contracts import DOSSIER_DATASCHEMA, EVENT_DOSSIER_SUBMITTED, Dossier, EventEnvelope

__all__ = ["delivery_of"]


def delivery_of(dossier: Dossier, *, message_id: str | None = None, attempt: int = 1) -> Delivery:
    """A delivery of ``dossier`` inside its ``dossier.submitted`` event, as a worker makes it.

    ``message_id`` (the event id, which a connector may send as its idempotency key) defaults
    to one derived from the dossier code, so that delivering the same dossier twice repeats it.
    """
    event = EventEnvelope(
        id=message_id or f"evt-{dossier.code}",
        source=dossier.receiving_agency,
        type=EVENT_DOSSIER_SUBMITTED,
        subject=dossier.code,
        time=dossier.received_at,
        dataschema=DOSSIER_DATASCHEMA,
        correlationid=f"run-{dossier.code}",
        dossierseq=1,
        data=dossier.model_dump(mode="json"),
    )
    return Delivery(message_id=event.id, event=event, dossier=dossier, attempt=attempt)
