"""A dossier's trace: every hop it made across agencies, in order, with where time went.

Built from the transaction log (``hops``, one row per attempt of every hop) and the outbox (the
events the bus emitted about it), as ``GET /v1/dossiers/{code}/trace`` and ``bus trace CODE``
show it: who sent to whom, the four timestamps (received by the bus, sent to the partner,
answered by it, done: recorded), the sizes, the outcome and fault, the mapping that shaped the
message, and how many times it was retried. The durations between the timestamps say whether a
delay was the bus's (queued, recording) or the partner's (answering).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from contracts import DossierStatus

__all__ = ["DossierTrace", "TraceEvent", "TraceHop", "build_trace"]


class TraceHop(BaseModel):
    """One attempt of one hop."""

    seq: int = Field(description="Its place in the trace, from 1")
    message_id: str = Field(description="The message (event id) the hop carried")
    correlation_id: str = Field(description="The dossier's run across agencies")
    kind: str = Field(description="ingest, deliver, inbound, poll, replay, discard …")
    sender: str = Field(description="From: an agency, a client, a connector or the bus")
    recipient: str = Field(description="To: a connector, the bus, or the parking queue")
    received_at: datetime | None = Field(description="When the bus received the message")
    sent_at: datetime | None = Field(description="When it was sent to the partner")
    answered_at: datetime | None = Field(description="When the partner answered")
    done_at: datetime = Field(description="When the outcome was recorded")
    request_bytes: int
    response_bytes: int
    outcome: str = Field(description="accepted, delivered, retry, parked, replayed …")
    fault_code: str | None
    fault_detail: str | None
    mapping_version: str | None = Field(description="The mapping that shaped the message")
    attempt: int = Field(description="Which attempt this is (1: the first)")
    retries: int = Field(description="Attempts before this one")
    signed: bool = Field(description="Whether the exchange with the partner was signed")
    queued_ms: float | None = Field(description="Received → sent: waiting on the bus")
    partner_ms: float | None = Field(description="Sent → answered: the partner's time")
    recorded_ms: float | None = Field(description="Answered (or received) → done")


class TraceEvent(BaseModel):
    """An event the bus emitted about the dossier, and when the broker confirmed it."""

    event_id: str
    routing_key: str
    created_at: datetime
    sent_at: datetime | None = Field(description="When the broker confirmed it (None: not yet)")
    publish_ms: float | None = Field(description="Created → confirmed")
    attempts: int
    last_error: str | None


class DossierTrace(BaseModel):
    """Every hop of a dossier, in order, with its events and totals."""

    dossier_code: str
    procedure_code: str
    status: int
    status_label: str
    received_at: datetime
    finished_at: datetime | None
    hops: list[TraceHop]
    events: list[TraceEvent]
    retries: int = Field(description="Failed attempts that were tried again, over every hop")
    outcomes: dict[str, int] = Field(description="Hops by outcome")
    elapsed_ms: float | None = Field(description="First hop received → last hop done")


def build_trace(found: Mapping[str, Any]) -> DossierTrace:
    """The trace of a dossier as :func:`bus.store.queries.dossier_with_history` reads it."""
    row = found["dossier"]
    hops = [_hop(index, hop) for index, hop in enumerate(found["hops"], start=1)]
    events = [_event(event) for event in found["events"]]
    starts = [h.received_at or h.sent_at or h.done_at for h in hops]
    return DossierTrace(
        dossier_code=row["code"],
        procedure_code=row["procedure_code"],
        status=row["status"],
        status_label=DossierStatus(row["status"]).label_en,
        received_at=row["received_at"],
        finished_at=row["finished_at"],
        hops=hops,
        events=events,
        retries=sum(1 for h in hops if h.outcome == "retry"),
        outcomes=dict(Counter(h.outcome for h in hops)),
        elapsed_ms=_ms(min(starts), max(h.done_at for h in hops)) if hops else None,
    )


def _hop(seq: int, hop: Mapping[str, Any]) -> TraceHop:
    received, sent, answered, done = (
        hop["received_at"], hop["sent_at"], hop["answered_at"], hop["done_at"],
    )  # fmt: skip
    attempt = int(hop["attempt"] or 1)
    signatures: Sequence[Any] | None = hop.get("signatures")
    return TraceHop(
        seq=seq,
        message_id=hop["message_id"],
        correlation_id=hop["correlation_id"],
        kind=hop["kind"],
        sender=hop["sender"],
        recipient=hop["recipient"],
        received_at=received,
        sent_at=sent,
        answered_at=answered,
        done_at=done,
        request_bytes=hop["request_bytes"],
        response_bytes=hop["response_bytes"],
        outcome=hop["outcome"],
        fault_code=hop["fault_code"],
        fault_detail=hop["fault_detail"],
        mapping_version=hop["mapping_version"],
        attempt=attempt,
        retries=attempt - 1,
        signed=bool(signatures),
        queued_ms=_ms(received, sent),
        partner_ms=_ms(sent, answered),
        recorded_ms=_ms(answered or received, done),
    )


def _event(event: Mapping[str, Any]) -> TraceEvent:
    return TraceEvent(
        event_id=event["event_id"],
        routing_key=event["routing_key"],
        created_at=event["created_at"],
        sent_at=event["sent_at"],
        publish_ms=_ms(event["created_at"], event["sent_at"]),
        attempts=event["attempts"],
        last_error=event["last_error"],
    )


def _ms(start: datetime | None, end: datetime | None) -> float | None:
    """Milliseconds from ``start`` to ``end``; None unless both are known."""
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() * 1000, 3)
