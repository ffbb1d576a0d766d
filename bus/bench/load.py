"""The benchmark's load: dossiers pushed over HTTP, and a subscriber timing their status events.

The pusher and the subscriber run in the benchmark's own process, so the latency from "about to
POST" to "status event received" is read on one monotonic clock. Bodies are built before the
clock starts: making them is the one-stop system's work, not the bus's.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import httpx
import orjson
from aio_pika.abc import AbstractIncomingMessage

from bus.amqp import connect_once
from bus.api.auth import API_KEY_HEADER
from bus.routing import STATUS_PREFIX
from bus.topology import Names
from contracts import sample_birth_dossier_json

__all__ = ["Pushed", "StatusListener", "dossier_bodies", "push_at_rate", "push_flat_out"]

#: Dossier codes carry a four-digit daily sequence: a day holds at most this many.
_PER_DAY = 9999


def dossier_bodies(count: int, *, first: int = 0) -> list[dict[str, Any]]:
    """``count`` distinct birth dossiers, numbers ``first`` to ``first + count - 1`` of a run.

    Every 9,999 dossiers move to the previous day, so a run of 200,000 keeps distinct codes.
    """
    today = datetime.now(UTC).replace(hour=3, minute=0, second=0, microsecond=0)
    bodies = []
    for number in range(first, first + count):
        day, sequence = divmod(number, _PER_DAY)
        bodies.append(
            sample_birth_dossier_json(
                sequence=sequence + 1, received_at=today - timedelta(days=day + 1)
            )
        )
    return bodies


@dataclass
class Pushed:
    """What the APIs answered, and when each accepted dossier was sent (monotonic ns)."""

    sent_ns: dict[str, int] = field(default_factory=dict)
    answered_ns: dict[str, int] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    started_ns: int = 0
    finished_ns: int = 0
    #: When each was sent by the wall clock (ns), to set beside the store's timestamps: the
    #: monotonic clock can drift from the wall clock by milliseconds a second while it is slewed.
    sent_wall_ns: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """From the first POST to the last answer."""
        return (self.finished_ns - self.started_ns) / 1e9


class _Clients:
    """Keep-alive connections to the APIs, each its own one-connection httpx client, lent out one
    request at a time and spread over the APIs in turn (the benchmark is their load balancer).

    One client per connection because httpcore scans every pooled connection on each request: a
    shared pool of 64 spent more CPU choosing a connection than the request itself, CPU that the
    bus under test would lack on a small machine.
    """

    def __init__(self, api_urls: list[str], api_key: str, connections: int) -> None:
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        urls = itertools.islice(itertools.cycle(api_urls), connections)
        # One TLS context for all: httpx builds a fresh one per client otherwise (milliseconds
        # each), though the APIs speak plain HTTP on loopback.
        tls = ssl.create_default_context()
        self._all = [
            httpx.AsyncClient(base_url=url, timeout=60, headers={API_KEY_HEADER: api_key},
                              limits=one, verify=tls)
            for url in urls
        ]  # fmt: skip
        # Last in, first out: at a modest rate the same few connections stay warm, where a
        # round robin over all of them outlived the server's keep-alive and reconnected.
        self._idle: asyncio.LifoQueue[httpx.AsyncClient] = asyncio.LifoQueue()
        for client in self._all:
            self._idle.put_nowait(client)

    async def post(self, body: bytes, code: str, pushed: Pushed) -> None:
        """POST one encoded dossier on the next idle connection and note the answer."""
        client = await self._idle.get()
        sent = time.monotonic_ns()
        sent_wall = time.time_ns()
        try:
            answer = await client.post(
                "/v1/dossiers",
                content=body,
                headers={"Idempotency-Key": code, "Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            pushed.refused[type(exc).__name__] += 1
            return
        finally:
            self._idle.put_nowait(client)
        if answer.status_code == 202:
            pushed.sent_ns[code] = sent
            pushed.sent_wall_ns[code] = sent_wall
            pushed.answered_ns[code] = time.monotonic_ns()
        else:
            pushed.refused[str(answer.status_code)] += 1

    async def close(self) -> None:
        for client in self._all:
            await client.aclose()


def _encoded(bodies: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    return [(str(body["code"]), orjson.dumps(body)) for body in bodies]


async def push_flat_out(
    api_urls: list[str], api_key: str, bodies: list[dict[str, Any]], *, concurrency: int
) -> Pushed:
    """POST every body, ``concurrency`` requests in flight: the most the APIs take."""
    pushed = Pushed()
    pending = iter(_encoded(bodies))
    clients = _Clients(api_urls, api_key, concurrency)

    async def sender() -> None:
        for code, body in pending:  # a shared iterator: each body is taken by one sender
            await clients.post(body, code, pushed)

    pushed.started_ns = time.monotonic_ns()
    try:
        await asyncio.gather(*(sender() for _ in range(concurrency)))
    finally:
        pushed.finished_ns = time.monotonic_ns()
        await clients.close()
    return pushed


async def push_at_rate(
    api_urls: list[str], api_key: str, bodies: list[dict[str, Any]], *, per_second: float
) -> Pushed:
    """POST the bodies on a fixed schedule (an open loop): dossier ``i`` leaves at ``i / rate``
    seconds whether or not earlier ones were answered, as citizens' filings arrive."""
    pushed = Pushed()
    clients = _Clients(api_urls, api_key, 256)
    in_flight: set[asyncio.Task[None]] = set()
    pushed.started_ns = time.monotonic_ns()
    try:
        for index, (code, body) in enumerate(_encoded(bodies)):
            due = pushed.started_ns + int(index * 1e9 / per_second)
            delay = (due - time.monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(clients.post(body, code, pushed))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        await asyncio.gather(*in_flight)
    finally:
        pushed.finished_ns = time.monotonic_ns()
        await clients.close()
    return pushed


class StatusListener:
    """Subscribes to every status event of a namespace and notes when each dossier's first one
    arrived (monotonic ns), like a portal consuming the bus's events."""

    def __init__(self, amqp_url: str, names: Names) -> None:
        self._amqp_url = amqp_url
        self._names = names
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._consumer_tag = ""
        self.received_ns: dict[str, int] = {}
        self.received_wall_ns: dict[str, int] = {}  # the same, by the wall clock
        self._awaited: set[str] = set()
        self._all_arrived = asyncio.Event()

    async def start(self) -> None:
        """Declare the listener's queue on the events exchange and start consuming."""
        self._connection = await connect_once(self._amqp_url)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=512)
        queue = await channel.declare_queue(
            f"{self._names.namespace}.bench.status",
            durable=True,
            arguments={"x-queue-type": "quorum"},
        )
        await queue.bind(self._names.events, routing_key=f"{STATUS_PREFIX}.#")
        self._consumer_tag = await queue.consume(self._on_message)
        self._queue = queue

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        now, wall = time.monotonic_ns(), time.time_ns()
        code = str(orjson.loads(message.body).get("subject", ""))
        self.received_ns.setdefault(code, now)
        self.received_wall_ns.setdefault(code, wall)
        await message.ack()
        if self._awaited:
            self._awaited.discard(code)
            if not self._awaited:
                self._all_arrived.set()

    async def wait_for(self, codes: set[str], *, timeout: float) -> None:
        """Return once a status event of every one of ``codes`` arrived."""
        self._awaited = codes - self.received_ns.keys()
        if not self._awaited:
            return
        self._all_arrived.clear()
        try:
            await asyncio.wait_for(self._all_arrived.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"{len(self._awaited)} of {len(codes)} dossiers had no status event after "
                f"{timeout:.0f} s"
            ) from None
        finally:
            self._awaited = set()

    async def close(self) -> None:
        """Stop consuming and delete the listener's queue."""
        if self._connection is None:
            return
        if self._queue is not None:
            await self._queue.cancel(self._consumer_tag)
            await self._queue.delete(if_unused=False, if_empty=False)
        await self._connection.close()
