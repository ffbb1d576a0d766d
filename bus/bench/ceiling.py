"""The raw ceiling: what RabbitMQ alone does on this machine, the bus's yardstick.

A plain aio-pika producer publishes persistent messages the size of a dossier event with
publisher confirms (up to ``in_flight`` unconfirmed at once), and a consumer takes them from a
quorum queue with manual acknowledgements, the way every bus queue is declared and read. No
store, no HTTP, no mapping: whatever the bus does per hop costs on top of this. Latency is from
just before the publish to the consumer's receipt (one clock: both run in this process).

    python -m bus.bench.ceiling --messages 20000 [--in-flight 256] [--amqp-url amqp://…]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from bus import events
from bus.amqp import connect_once
from bus.settings import get_settings
from contracts import sample_birth_dossier

__all__ = ["CeilingResult", "dossier_event_size", "measure_ceiling", "percentile"]

#: The header carrying the publish time (monotonic nanoseconds of this process).
_SENT: Final = "x-bench-sent-ns"


@dataclass(frozen=True)
class CeilingResult:
    """One run of the ceiling."""

    messages: int
    payload_bytes: int
    queue: str
    seconds: float
    per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


def dossier_event_size() -> int:
    """Bytes of the sample dossier's ``dossier.submitted`` event, as the bus publishes it."""
    dossier = sample_birth_dossier()
    event = events.dossier_submitted(dossier, event_id=str(uuid.uuid4()), time=datetime.now(UTC))
    return len(events.encode(event))


async def _publish_all(
    channel: aio_pika.abc.AbstractChannel, queue: str, payload: bytes, count: int, in_flight: int
) -> None:
    """Publish ``count`` messages, at most ``in_flight`` of them awaiting their confirm."""
    slots = asyncio.Semaphore(in_flight)
    pending: set[asyncio.Task[object]] = set()
    failures: list[BaseException] = []

    def settled(task: asyncio.Task[object]) -> None:
        slots.release()
        pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            failures.append(task.exception())  # type: ignore[arg-type]

    for _ in range(count):
        await slots.acquire()
        if failures:
            break
        message = aio_pika.Message(
            payload,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={_SENT: time.monotonic_ns()},
        )
        task = asyncio.ensure_future(channel.default_exchange.publish(message, routing_key=queue))
        pending.add(task)
        task.add_done_callback(settled)
    await asyncio.gather(*pending, return_exceptions=True)
    if failures:
        raise failures[0]


def percentile(values: list[float], share: float) -> float:
    """The ``share`` (0–1) percentile of ``values``, nearest rank."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, round(share * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


async def measure_ceiling(
    amqp_url: str, *, messages: int, payload_bytes: int, in_flight: int = 256, prefetch: int = 256
) -> CeilingResult:
    """Publish and consume ``messages`` through a fresh quorum queue; the queue is deleted after."""
    if messages < 1:
        raise ValueError("measure at least one message")
    queue_name = f"bench.ceiling.{uuid.uuid4().hex[:12]}"
    payload = b"x" * payload_bytes
    latencies_ms: list[float] = []
    done = asyncio.Event()
    connection = await connect_once(amqp_url)
    try:
        consuming = await connection.channel()
        await consuming.set_qos(prefetch_count=prefetch)
        queue = await consuming.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )

        async def on_message(message: AbstractIncomingMessage) -> None:
            sent = (message.headers or {}).get(_SENT)
            if isinstance(sent, int):
                latencies_ms.append((time.monotonic_ns() - sent) / 1e6)
            await message.ack()
            if len(latencies_ms) >= messages:
                done.set()

        consumer_tag = await queue.consume(on_message)
        publishing = await connection.channel(publisher_confirms=True)
        started = time.perf_counter()
        await _publish_all(publishing, queue_name, payload, messages, in_flight)
        await done.wait()
        seconds = time.perf_counter() - started
        await queue.cancel(consumer_tag)
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()
    return CeilingResult(
        messages=messages,
        payload_bytes=payload_bytes,
        queue=queue_name,
        seconds=seconds,
        per_second=messages / seconds,
        p50_ms=percentile(latencies_ms, 0.50),
        p95_ms=percentile(latencies_ms, 0.95),
        p99_ms=percentile(latencies_ms, 0.99),
    )


def main(argv: list[str] | None = None) -> None:
    """Print one run of the ceiling (the broker at ``BUS_AMQP_URL`` unless told)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=256, help="unconfirmed publishes")
    parser.add_argument("--amqp-url", default=None, help="default: BUS_AMQP_URL")
    args = parser.parse_args(argv)
    url = args.amqp_url or get_settings().amqp_url
    size = dossier_event_size()
    result = asyncio.run(
        measure_ceiling(url, messages=args.messages, payload_bytes=size, in_flight=args.in_flight)
    )
    print(
        f"raw ceiling: {result.messages} messages of {result.payload_bytes} B in "
        f"{result.seconds:.2f} s = {result.per_second:,.0f}/s; latency p50 {result.p50_ms:.1f} ms, "
        f"p95 {result.p95_ms:.1f} ms, p99 {result.p99_ms:.1f} ms (publish to consumer, "
        f"{args.in_flight} in flight)"
    )


if __name__ == "__main__":
    main()
