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
from bus.routing import alert_key, status_key, step_key
from contracts import (
    DEADLINE_ALERT_DATASCHEMA,
    DOSSIER_DATASCHEMA,
    EVENT_DOSSIER_AT_RISK,
    EVENT_DOSSIER_OVERDUE,
    EVENT_DOSSIER_STATUS_CHANGED,
    EVENT_DOSSIER_STEP_REQUESTED,
    EVENT_DOSSIER_SUBMITTED,
    STATUS_CHANGE_DATASCHEMA,
    STEP_ORDER_DATASCHEMA,
    VN_TZ,
    DeadlineAlert,
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
    correlation_id, causation_id, traceparent = _lineage(cause, correlation_id, "a status event")
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


def _lineage(
    cause: EventEnvelope | None, correlation_id: str | None, what: str
) -> tuple[str, str | None, str | None]:
    """Correlation id, causation id and parent trace of an event caused by ``cause``.

    Without a cause (a change the bus pulled or was pushed), the event names its dossier's
    linkage run with ``correlation_id`` and starts a new trace.
    """
    if cause is not None:
        return cause.correlationid, cause.id, cause.traceparent
    if correlation_id is None:
        raise ValueError(f"{what} needs its cause or the correlation id of its dossier")
    return correlation_id, None, None


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


def step_order_outbox_row(
    order: StepOrder,
    *,
    event_id: str,
    sequence: int,
    time: datetime,
    exchange: str,
    cause: EventEnvelope | None = None,
    correlation_id: str | None = None,
) -> dict[str, Any]:
    """The outbox row of a ``dossier.step_requested`` event: the engine's order to a connector.

    ``event_id`` is fixed by the run and step (one order per step of a dossier), so the
    connector's dedup record makes a repeated order harmless. Published ``mandatory``: an order
    no connector queue takes must fail loudly, not vanish.
    """
    correlation_id, causation_id, traceparent = _lineage(cause, correlation_id, "a step order")
    event = EventEnvelope(
        id=event_id,
        source=order.dossier.receiving_agency,
        type=EVENT_DOSSIER_STEP_REQUESTED,
        subject=order.dossier.code,
        time=time,
        dataschema=STEP_ORDER_DATASCHEMA,
        correlationid=correlation_id,
        causationid=causation_id,
        dossierseq=sequence,
        traceparent=child_traceparent(traceparent),
        data=order.model_dump(mode="json", exclude_none=True),
    )
    return {
        "event_id": event.id,
        "dossier_code": order.dossier.code,
        "exchange": exchange,
        "routing_key": step_key(order.connector, order.step),
        "mandatory": True,
        "payload": encode(event),
        "created_at": datetime.now(UTC),
        "attempts": 0,
    }


def deadline_alert(
    alert: DeadlineAlert,
    *,
    source: str,
    sequence: int,
    correlation_id: str,
    event_id: str | None = None,
) -> EventEnvelope:
    """The ``dossier.at_risk`` or ``dossier.overdue`` event of ``alert``.

    An alert changes nothing in the dossier, so it carries the dossier's current ``sequence``
    rather than a new one; ``correlation_id`` is the id of the event that accepted the dossier.
    The bus noticed it itself: no causing event, a new trace.
    """
    return EventEnvelope(
        id=event_id or new_event_id(),
        source=source,
        type=EVENT_DOSSIER_AT_RISK if alert.kind == "at_risk" else EVENT_DOSSIER_OVERDUE,
        subject=alert.dossier_code,
        time=alert.detected_at,
        dataschema=DEADLINE_ALERT_DATASCHEMA,
        correlationid=correlation_id,
        dossierseq=sequence,
        traceparent=child_traceparent(None),
        data=alert.model_dump(mode="json", exclude_none=True),
    )


def alert_outbox_row(
    alert: DeadlineAlert,
    *,
    event_id: str,
    sequence: int,
    receiving_agency: str,
    correlation_id: str,
    exchange: str,
) -> dict[str, Any]:
    """The outbox row announcing ``alert``, on behalf of the dossier's receiving agency."""
    event = deadline_alert(
        alert,
        source=receiving_agency,
        sequence=sequence,
        correlation_id=correlation_id,
        event_id=event_id,
    )
    return {
        "event_id": event.id,
        "dossier_code": alert.dossier_code,
        "exchange": exchange,
        "routing_key": alert_key(alert.kind, receiving_agency),
        # Offered to whoever watches deadlines (webhooks, SSE, dashboards); none is normal.
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
