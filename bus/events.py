"""Building, encoding and decoding bus events (CloudEvents 1.0, structured JSON mode).

The whole envelope travels in the AMQP body as ``application/cloudevents+json``, so any AMQP
client (or the official ``cloudevents`` SDK's RabbitMQ binding) reads it without knowing the bus.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from bus.errors import InvalidMessage
from bus.routing import status_key
from contracts import (
    DOSSIER_DATASCHEMA,
    EVENT_DOSSIER_STATUS_CHANGED,
    EVENT_DOSSIER_STEP_REQUESTED,
    EVENT_DOSSIER_SUBMITTED,
    STATUS_CHANGE_DATASCHEMA,
    VN_TZ,
    Dossier,
    EventEnvelope,
    StatusChange,
    StepOrder,
)


def new_event_id() -> str:
    """A fresh event id (UUID4, text form)."""
    return str(uuid.uuid4())


def child_traceparent(parent: str | None) -> str:
    """A W3C ``traceparent`` for a new span: same trace as ``parent``, or a new trace."""
    trace_id = parent.split("-")[1] if parent else secrets.token_hex(16)
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"


def dossier_submitted(
    dossier: Dossier,
    *,
    event_id: str,
    time: datetime,
    correlation_id: str | None = None,
    traceparent: str | None = None,
    data: dict[str, Any] | None = None,
) -> EventEnvelope:
    """The ``dossier.submitted`` event that starts a dossier's journey (sequence 1).

    ``data`` is the dossier's JSON form when the caller already has it. Every attribute comes
    from a validated dossier, so the envelope is assembled without validating it again (this
    runs once per accepted dossier; tests check the result against the model).
    """
    return EventEnvelope.model_construct(
        specversion="1.0",
        id=event_id,
        source=dossier.receiving_agency,
        type=EVENT_DOSSIER_SUBMITTED,
        subject=dossier.code,
        time=time.astimezone(VN_TZ),
        datacontenttype="application/json",
        dataschema=DOSSIER_DATASCHEMA,
        correlationid=correlation_id or event_id,
        causationid=None,
        dossierseq=1,
        traceparent=child_traceparent(traceparent),
        data=data if data is not None else dossier_json(dossier),
    )


def dossier_json(dossier: Dossier) -> dict[str, Any]:
    """The dossier as the JSON object events and the store carry (no null fields)."""
    return dossier.model_dump(mode="json", exclude_none=True)


def status_changed(
    change: StatusChange,
    *,
    cause: EventEnvelope | None = None,
    sequence: int,
    correlation_id: str | None = None,
    event_id: str | None = None,
    mapping: str | None = None,
) -> EventEnvelope:
    """The ``dossier.status_changed`` event emitted on behalf of the agency that acted.

    ``cause`` is the bus event the partner acted on. A change the bus pulled from a partner has
    no causing event: it names its dossier's linkage run with ``correlation_id`` instead (the id
    of the event that accepted the dossier) and starts a new trace. ``mapping`` names the
    mapping (partner/version/message) that read the partner's answer.
    """
    if cause is not None:
        correlation_id, causation_id, traceparent = cause.correlationid, cause.id, cause.traceparent
    elif correlation_id is not None:
        causation_id, traceparent = None, None
    else:
        raise ValueError("a status event needs its cause or the correlation id of its dossier")
    return EventEnvelope(
        id=event_id or new_event_id(),
        source=change.agency,
        type=EVENT_DOSSIER_STATUS_CHANGED,
        subject=change.dossier_code,
        time=change.changed_at,
        dataschema=STATUS_CHANGE_DATASCHEMA,
        correlationid=correlation_id,
        causationid=causation_id,
        dossierseq=sequence,
        mappingid=mapping,
        traceparent=child_traceparent(traceparent),
        data=change.model_dump(mode="json", exclude_none=True),
    )


def status_outbox_row(
    change: StatusChange,
    *,
    sequence: int,
    receiving_agency: str,
    exchange: str,
    cause: EventEnvelope | None = None,
    correlation_id: str | None = None,
    mapping: str | None = None,
) -> dict[str, Any]:
    """The outbox row announcing ``change``, the ``sequence``-th event of its dossier.

    Shared by everything that moves a dossier (connector workers, pollers), so every status
    event has the same routing key and delivery options.
    """
    event = status_changed(
        change, cause=cause, sequence=sequence, correlation_id=correlation_id, mapping=mapping
    )
    return {
        "event_id": event.id,
        "dossier_code": change.dossier_code,
        "exchange": exchange,
        "routing_key": status_key(change.status, receiving_agency),
        # Status events are offered to whoever subscribes; having no subscriber is normal.
        "mandatory": False,
        "payload": encode(event),
        "created_at": datetime.now(UTC),
        "attempts": 0,
    }


_ENVELOPE_FIELDS = tuple(EventEnvelope.model_fields)


def encode(event: EventEnvelope) -> bytes:
    """The structured-mode JSON body of an event (orjson writes datetimes as RFC 3339)."""
    body = {name: getattr(event, name) for name in _ENVELOPE_FIELDS}
    return orjson.dumps({name: value for name, value in body.items() if value is not None})


def decode(body: bytes) -> EventEnvelope:
    """Parse a structured-mode body; anything else is an :class:`InvalidMessage`."""
    try:
        return EventEnvelope.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidMessage(f"not a bus event: {where}: {first['msg']}") from exc


def decode_payload(event: EventEnvelope) -> Dossier | StatusChange | StepOrder:
    """What an event carries: a submitted dossier, a status change or a linkage step order."""
    if event.type == EVENT_DOSSIER_STATUS_CHANGED:
        return decode_status_change(event)
    if event.type == EVENT_DOSSIER_STEP_REQUESTED:
        return decode_step_order(event)
    return decode_dossier(event)


def decode_step_order(event: EventEnvelope) -> StepOrder:
    """The step order carried by a ``dossier.step_requested`` event."""
    try:
        return StepOrder.model_validate(event.data)
    except ValidationError as exc:
        raise InvalidMessage(
            f"event {event.id} carries an invalid step order: {_first_error(exc)}"
        ) from exc


def decode_status_change(event: EventEnvelope) -> StatusChange:
    """The status change carried by a ``dossier.status_changed`` event."""
    if event.type != EVENT_DOSSIER_STATUS_CHANGED:
        raise InvalidMessage(f"expected a {EVENT_DOSSIER_STATUS_CHANGED} event, got {event.type}")
    try:
        return StatusChange.model_validate(event.data)
    except ValidationError as exc:
        raise InvalidMessage(
            f"event {event.id} carries an invalid status change: {_first_error(exc)}"
        ) from exc


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


def decode_dossier(event: EventEnvelope) -> Dossier:
    """The dossier carried by a ``dossier.submitted`` event."""
    if event.type != EVENT_DOSSIER_SUBMITTED:
        raise InvalidMessage(f"expected a {EVENT_DOSSIER_SUBMITTED} event, got {event.type}")
    try:
        return Dossier.model_validate(event.data)
    except ValidationError as exc:
        raise InvalidMessage(
            f"event {event.id} carries an invalid dossier: {_first_error(exc)}"
        ) from exc
