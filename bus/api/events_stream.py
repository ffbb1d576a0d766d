"""``/v1/events/stream``: bus events as Server-Sent Events, resumable with ``Last-Event-ID``.

Every frame is read from the outbox, in stream order (``(stream_batch, id)``, see
:mod:`bus.store.replay`), so a client's last event id is a position in one order that never
changes behind it: resuming after it gives exactly the events it has not had. Serving live
frames straight from the broker instead would not: with several relays, what a client saw
live may be published in another order than the one a resume reads, and the difference
would be lost between two connections.

The broker is the stream's doorbell: each connection has its own exclusive, auto-deleted queue
bound to ``<ns>.events`` with the requested patterns, and an event arriving there (published,
so about to be marked sent) makes the stream read the outbox now instead of at its next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any, Final

import anyio
import orjson
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import AMQPError
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from bus.api.auth import Caller, require_subscription_rights
from bus.api.problems import PROBLEM_JSON, Problem
from bus.errors import BrokerUnavailable
from bus.runtime import Runtime
from bus.store.replay import StreamPosition, events_after, position_of, stream_end
from bus.topics import is_topic_pattern, literal_prefix, topic_matches

router = APIRouter(prefix="/v1/events", tags=["events"])

log = logging.getLogger(__name__)

EVENT_STREAM: Final = "text/event-stream"
REPLAY_UNAVAILABLE: Final = "vn.lienthong.stream.replay_unavailable"
"""SSE event type sent when ``Last-Event-ID`` is not a position of the stream."""

#: Doorbells waiting on the broker for a stream too busy to take them; a bell is a bell.
_QUEUE_LIMIT: Final = 1_000
_PAGE: Final = 500
#: With no bell, the outbox is read this often anyway: an event published just before the
#: stream's queue was bound, or by a relay whose confirm was slow, is not left waiting.
_IDLE_POLL: Final = 1.0
#: A bell rings when the event is published, a moment before the relay records it as sent:
#: the outbox is read again after these growing pauses until the event is there.
_FIRST_REPOLL: Final = 0.005
_MAX_REPOLL: Final = 0.5
#: A rung event not in the outbox by then was published by something else than a relay.
_BELL_PATIENCE: Final = 10.0

_PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "Problem details (RFC 9457)"}


@router.get(
    "/stream",
    summary="Bus events as Server-Sent Events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {EVENT_STREAM: {}},
            "description": "`id:` the event id, `event:` its type, `data:` the CloudEvent JSON",
        },
        422: _PROBLEM,
        503: _PROBLEM,
    },
)
async def stream_events(
    request: Request,
    caller: Caller,
    routing_key: Annotated[
        list[str] | None,
        Query(description="AMQP topic pattern(s) of the events to stream; default every event"),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=100,
            description="Resume after this event (browsers send it when they reconnect)",
        ),
    ] = None,
) -> StreamingResponse:
    """Stream matching events as the broker confirms them; resume after ``Last-Event-ID``.

    Events come in one order for every client, the order in which their publication was
    recorded; a client that reconnects with the id of the last event it got receives exactly
    the matching events after it, then the new ones. A comment line ``: live`` marks the end of
    that catch-up, and ``: heartbeat`` comes every ``BUS_SSE_HEARTBEAT_SECONDS`` while nothing
    happens. An id this stream did not send (unknown, purged, or not yet confirmed) gets a
    ``vn.lienthong.stream.replay_unavailable`` event, then new events only.
    """
    patterns = routing_key or ["#"]
    invalid = [p for p in patterns if not is_topic_pattern(p)]
    if invalid or len(patterns) > 20:
        raise Problem(
            422,
            "Invalid routing-key pattern",
            "give up to 20 routing_key patterns: words of letters, digits, - or _ separated by "
            "dots, * for one word, # for any number of words",
            kind="validation",
            errors=[
                {
                    "field": f"routing_key[{index}]",
                    "problem": "not an AMQP topic pattern",
                    "allowed": "e.g. dossier.status.# or dossier.status.*.000.00.10.H12",
                }
                for index, pattern in enumerate(patterns)
                if not is_topic_pattern(pattern)
            ],
        )
    require_subscription_rights(caller, patterns)
    runtime: Runtime = request.app.state.runtime
    # The bell first, the stream's end second: an event recorded after that read is served,
    # and one published after the bell was bound rings it.
    bell = await _Doorbell.open(runtime, patterns)
    try:
        start = await position_of(runtime.engine, last_event_id) if last_event_id else None
        unknown = last_event_id if last_event_id is not None and start is None else None
        if start is None:
            start = await stream_end(runtime.engine)
    except BaseException:
        await bell.close()
        raise
    return StreamingResponse(
        _frames(runtime, bell, patterns, start, unknown),
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        # Also when the client left before the first frame, so the stream never started.
        background=BackgroundTask(bell.close),
    )


class _Doorbell:
    """A stream's own queue on the broker: each matching event published rings it."""

    def __init__(self, channel: AbstractChannel, queue: AbstractQueue) -> None:
        self.channel = channel
        self.queue = queue
        #: Ids of events that rang and have not been read from the outbox yet, with when.
        self.rung: dict[str, float] = {}
        #: The channel closed (the broker went away): the client resumes by reconnecting.
        self.broken = False
        self._bell = asyncio.Event()
        self._consumer_tag: str | None = None
        self._is_closed = False

    @classmethod
    async def open(cls, runtime: Runtime, patterns: Sequence[str]) -> _Doorbell:
        try:
            channel = await runtime.broker.connection.channel(publisher_confirms=False)
            try:
                queue = await channel.declare_queue(
                    exclusive=True,
                    auto_delete=True,
                    arguments={"x-max-length": _QUEUE_LIMIT, "x-overflow": "drop-head"},
                )
                for pattern in patterns:
                    await queue.bind(runtime.names.events, routing_key=pattern)
                bell = cls(channel, queue)
                channel.close_callbacks.add(bell._closed)
                # No acks: losing a bell costs at most one idle poll's wait.
                bell._consumer_tag = await queue.consume(bell._ring, no_ack=True)
            except BaseException:
                await channel.close()
                raise
        except (AMQPError, ConnectionError, RuntimeError) as exc:
            raise BrokerUnavailable(f"cannot open an event stream: {exc!r}") from exc
        return bell

    async def _ring(self, message: AbstractIncomingMessage) -> None:
        if message.message_id:
            self.rung[message.message_id] = asyncio.get_running_loop().time()
        self._bell.set()

    def _closed(self, *_args: Any) -> None:
        self.broken = True
        self._bell.set()

    async def wait(self, timeout: float) -> None:
        """Return when the bell rings or after ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._bell.wait(), timeout)
        self._bell.clear()

    def forget_older_than(self, moment: float) -> None:
        """Stop waiting for events that rang before ``moment``."""
        self.rung = {event_id: at for event_id, at in self.rung.items() if at >= moment}

    async def close(self) -> None:
        """Remove the queue and close the channel (idempotent)."""
        if self._is_closed:
            return
        self._is_closed = True
        self.channel.close_callbacks.discard(self._closed)
        if self.channel.is_closed:
            return
        with contextlib.suppress(Exception):
            if self._consumer_tag is not None:
                await self.queue.cancel(self._consumer_tag)
            await self.queue.delete(if_unused=False, if_empty=False)
        with contextlib.suppress(Exception):
            await self.channel.close()


async def _frames(
    runtime: Runtime,
    bell: _Doorbell,
    patterns: Sequence[str],
    position: StreamPosition,
    unknown_last_event_id: str | None,
) -> AsyncIterator[bytes]:
    heartbeat = runtime.settings.sse_heartbeat_seconds
    prefixes = [literal_prefix(p) for p in patterns]
    loop = asyncio.get_running_loop()
    try:
        if unknown_last_event_id is not None:
            yield _frame(
                None,
                REPLAY_UNAVAILABLE,
                orjson.dumps(
                    {
                        "last_event_id": unknown_last_event_id,
                        "detail": "unknown, purged or not yet published event: streaming new "
                        "events only; read the dossiers' state from GET /v1/dossiers/{code}",
                    }
                ),
            )
        live = False
        quiet_since = loop.time()
        repoll = _FIRST_REPOLL
        while True:
            page = await events_after(
                runtime.engine,
                position=position,
                exchange=runtime.names.events,
                prefixes=prefixes,
                limit=_PAGE,
            )
            for event in page:
                position = event.position
                bell.rung.pop(event.event_id, None)
                if any(topic_matches(p, event.routing_key) for p in patterns):
                    yield _event_frame(event.event_id, event.payload)
                    quiet_since = loop.time()
            if len(page) == _PAGE:
                continue
            if not live:
                live = True
                yield b": live\n\n"
            if bell.broken:
                return  # the broker connection dropped: the client resumes where it was
            now = loop.time()
            bell.forget_older_than(now - _BELL_PATIENCE)
            if page or not bell.rung:
                repoll = _FIRST_REPOLL
            if bell.rung:
                wait, repoll = repoll, min(repoll * 2, _MAX_REPOLL)
            else:
                wait = _IDLE_POLL
            wait = min(wait, quiet_since + heartbeat - now)
            if wait > 0:
                await bell.wait(wait)
            if loop.time() - quiet_since >= heartbeat:
                yield b": heartbeat\n\n"
                quiet_since = loop.time()
    finally:
        # The client went away and the response is being cancelled: tidy up regardless.
        with anyio.CancelScope(shield=True):
            await bell.close()


def _event_frame(event_id: str, body: bytes) -> bytes:
    try:
        event_type = orjson.loads(body).get("type")
    except (orjson.JSONDecodeError, AttributeError):
        event_type = None
    return _frame(event_id, event_type if isinstance(event_type, str) else None, body)


def _frame(event_id: str | None, event_type: str | None, data: bytes) -> bytes:
    lines = []
    if event_id:
        lines.append(b"id: " + event_id.encode())
    if event_type:
        lines.append(b"event: " + event_type.encode())
    # The bus writes compact JSON (one line); any line break would still be framed correctly.
    lines.extend(b"data: " + line for line in data.splitlines() or [b""])
    return b"\n".join(lines) + b"\n\n"
