"""The parking queue's messages: what each says about its failure, kept as a row, replayed.

A parked message keeps its body and headers: why it failed (``x-bus-reason``, fault code,
class), where it came from (``x-bus-queue``) and how often it was tried. Messages the broker
dead-lettered itself (delivery limit) carry RabbitMQ's ``x-death`` header instead.
:func:`dead_letter_row` turns one into a row of the store's ``dead_letters`` table (the keeper in
:mod:`bus.dead_letters` moves them there), and :func:`replay_message` makes the message a replay
sends back to the queue it failed in, without its failure headers. A replayed message passes
the consumers' dedup guard: replaying one twice applies it once.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aio_pika.abc import AbstractIncomingMessage

from bus.amqp import OutgoingMessage
from bus.topology import CONNECTOR_QUEUE_MARK

#: Headers describing a failure; dropped when a message is replayed.
FAILURE_HEADERS = frozenset(
    {
        "x-bus-reason",
        "x-bus-fault-code",
        "x-bus-error-class",
        "x-bus-attempts",
        "x-bus-parked-at",
        "x-bus-attempt",
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
        "x-delivery-count",
    }
)


@dataclass(frozen=True)
class ParkedMessage:
    """One message in the parking queue and why it is there."""

    message_id: str
    dossier_code: str | None
    queue: str | None
    connector: str | None
    error_class: str
    fault_code: str
    reason: str
    attempts: int
    parked_at: str | None
    routing_key: str
    replays: int
    body: bytes
    headers: dict[str, Any]


def describe(message: AbstractIncomingMessage) -> ParkedMessage:
    """What a parked message says about itself."""
    headers = dict(message.headers or {})
    death = _first_death(headers)
    queue = _text(headers.get("x-bus-queue")) or (death.get("queue") if death else None)
    if "x-bus-reason" in headers:
        reason = _text(headers["x-bus-reason"]) or ""
        fault = _text(headers.get("x-bus-fault-code")) or "UNKNOWN"
        error_class = _text(headers.get("x-bus-error-class")) or "permanent"
    else:
        why = death.get("reason", "unknown") if death else "unknown"
        reason = (
            f"dead-lettered by the broker ({why}): redelivered too often, e.g. a worker crashed"
        )
        fault = "DELIVERY_LIMIT" if why == "delivery_limit" else f"BROKER_{str(why).upper()}"
        error_class = "transient"
    try:
        subject = orjson.loads(message.body).get("subject")
    except (orjson.JSONDecodeError, AttributeError):
        subject = None
    attempts = headers.get("x-bus-attempts")
    replays = headers.get("x-bus-replays", 0)
    return ParkedMessage(
        message_id=message.message_id or "",
        dossier_code=subject if isinstance(subject, str) else None,
        queue=queue if isinstance(queue, str) else None,
        connector=_text(headers.get("x-bus-connector")),
        error_class=error_class,
        fault_code=fault,
        reason=reason,
        attempts=attempts if isinstance(attempts, int) else 0,
        parked_at=_text(headers.get("x-bus-parked-at")),
        routing_key=message.routing_key or "",
        replays=replays if isinstance(replays, int) else 0,
        body=message.body,
        headers=headers,
    )


def dead_letter_row(message: AbstractIncomingMessage) -> tuple[dict[str, Any], bool]:
    """The ``dead_letters`` row of a parked message, and whether a worker parked it (and so
    recorded its hop) rather than the broker."""
    parked = describe(message)
    headers = {str(name): _plain(value) for name, value in parked.headers.items()}
    try:
        envelope = orjson.loads(parked.body)
    except orjson.JSONDecodeError:
        envelope = None
    event_type = envelope.get("type") if isinstance(envelope, dict) else None
    # The quorum queue counts each delivery in x-delivery-count: a copy delivered again (kept
    # but not yet acknowledged when the keeper stopped) must have the same fingerprint.
    parking = {k: v for k, v in headers.items() if k != "x-delivery-count"}
    fingerprint = hashlib.sha256(
        orjson.dumps([parked.message_id, parking], option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    row = {
        "fingerprint": fingerprint,
        "message_id": parked.message_id[:64],
        "dossier_code": (parked.dossier_code or "")[:40] or None,
        "connector": parked.connector or _connector_of(parked.queue),
        "event_type": event_type[:120] if isinstance(event_type, str) else None,
        "queue": parked.queue,
        "routing_key": parked.routing_key,
        "error_class": parked.error_class,
        "fault_code": parked.fault_code[:64],
        "reason": parked.reason,
        "attempts": parked.attempts,
        "replays": parked.replays,
        "parked_at": _parked_at(parked, headers),
        "content_type": message.content_type,
        "correlation_id": (message.correlation_id or "")[:64] or None,
        "headers": headers,
        "body": parked.body,
    }
    return row, "x-bus-reason" in parked.headers


def replay_message(row: Mapping[str, Any]) -> OutgoingMessage:
    """The message that replays the dead letter ``row``: straight to the queue it failed in,
    without its failure headers, counting the replay."""
    if not row["queue"]:
        raise ValueError(f"dead letter {row['id']} names no queue it failed in: it cannot replay")
    headers = {k: v for k, v in row["headers"].items() if k not in FAILURE_HEADERS}
    headers["x-bus-replays"] = int(row["replays"]) + 1
    headers["x-bus-replayed-at"] = datetime.now(UTC).isoformat()
    return OutgoingMessage(
        exchange="",  # straight to the queue it failed in, not to every binding again
        routing_key=row["queue"],
        body=row["body"],
        message_id=row["message_id"],
        correlation_id=row["correlation_id"],
        content_type=row["content_type"] or "application/cloudevents+json",
        headers=headers,
    )


def _connector_of(queue: str | None) -> str | None:
    """The connector whose queue this is (``<ns>.connector.<id>``), if it is one."""
    if queue is None or CONNECTOR_QUEUE_MARK not in queue:
        return None
    return queue.rpartition(CONNECTOR_QUEUE_MARK)[2] or None


def _parked_at(parked: ParkedMessage, headers: Mapping[str, Any]) -> datetime:
    """When it was parked: the worker's header, the broker's death time, or now."""
    if parked.parked_at:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(parked.parked_at)
    death = _first_death(headers)
    if death is not None and isinstance(death.get("time"), str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(death["time"])
    return datetime.now(UTC)


def _plain(value: Any) -> Any:
    """An AMQP header value as JSON can hold it (and the broker takes back on a replay)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _first_death(headers: Mapping[str, Any]) -> dict[str, Any] | None:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return {k: _text(v) if isinstance(v, bytes) else v for k, v in deaths[0].items()}
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
