"""The parking queue: reading what failed, and replaying it once the cause is fixed.

A parked message keeps its body and headers: why it failed (``x-bus-reason``, fault code,
class), where it came from (``x-bus-queue``) and how often it was tried. Messages the broker
dead-lettered itself (delivery limit exceeded) carry RabbitMQ's ``x-death`` header instead.

Reading the queue goes through it once in order: every message taken is either replayed or put
back at the end (republished with a confirm, then acknowledged), so nothing is lost and each
parked message is seen once per pass. A replayed message passes the consumers' dedup guard:
replaying one twice applies it once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aio_pika.abc import AbstractIncomingMessage

from bus.amqp import Broker, OutgoingMessage
from bus.topology import Names

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


Selector = Callable[[ParkedMessage], bool]


async def sweep(
    broker: Broker,
    names: Names,
    *,
    replay: Selector | None = None,
    limit: int | None = None,
) -> tuple[list[ParkedMessage], list[ParkedMessage]]:
    """One pass over the parking queue: replay what ``replay`` selects, keep the rest.

    Returns (replayed, kept). Without ``replay`` it only lists (every message is kept).
    """
    channel = await broker.connection.channel()
    replayed: list[ParkedMessage] = []
    kept: list[ParkedMessage] = []
    try:
        queue = await channel.declare_queue(names.parking, passive=True)
        waiting = queue.declaration_result.message_count or 0
        for _ in range(min(waiting, limit) if limit is not None else waiting):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            parked = describe(message)
            if replay is not None and replay(parked) and parked.queue:
                await broker.publish(_replay_of(parked))
                replayed.append(parked)
            else:
                await broker.publish(_keep(parked, names))
                kept.append(parked)
            # Acknowledged only once its copy (replayed or kept) is confirmed: never lost.
            await message.ack()
    finally:
        await channel.close()
    return replayed, kept


def _replay_of(parked: ParkedMessage) -> OutgoingMessage:
    headers = {k: v for k, v in parked.headers.items() if k not in FAILURE_HEADERS}
    headers["x-bus-replays"] = parked.replays + 1
    headers["x-bus-replayed-at"] = datetime.now(UTC).isoformat()
    assert parked.queue is not None
    return OutgoingMessage(
        exchange="",  # straight to the queue it failed in, not to every binding again
        routing_key=parked.queue,
        body=parked.body,
        message_id=parked.message_id,
        headers=headers,
    )


def _keep(parked: ParkedMessage, names: Names) -> OutgoingMessage:
    return OutgoingMessage(
        exchange=names.dead,
        routing_key=parked.routing_key,
        body=parked.body,
        message_id=parked.message_id,
        headers=parked.headers,
    )


def _first_death(headers: dict[str, Any]) -> dict[str, Any] | None:
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
