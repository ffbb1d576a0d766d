"""``/v1/events/stream``: bus events as Server-Sent Events, resumable with ``Last-Event-ID``.

Each connection gets its own exclusive, auto-deleted queue bound to ``<ns>.events`` with the
requested patterns. A client that reconnects with ``Last-Event-ID`` first gets, from the outbox,
every matching event committed after that one, then the live ones: the queue is bound before
the outbox is read, and an event seen in both is sent once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

import anyio
import orjson
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import AMQPError
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from bus.api.problems import PROBLEM_JSON, Problem
from bus.errors import BrokerUnavailable
from bus.runtime import Runtime
from bus.store.replay import StoredEvent, events_after, position_of
from bus.topics import is_topic_pattern, literal_prefix, topic_matches

router = APIRouter(prefix="/v1/events", tags=["events"])

log = logging.getLogger(__name__)

EVENT_STREAM: Final = "text/event-stream"
REPLAY_UNAVAILABLE: Final = "vn.lienthong.stream.replay_unavailable"
"""SSE event type sent when ``Last-Event-ID`` is unknown (purged, or never an event here)."""

#: Unacknowledged live events per stream; the rest wait in the stream's queue on the broker.
_PREFETCH: Final = 100
#: A stream that falls this far behind loses its oldest live events; it resumes by reconnecting.
_QUEUE_LIMIT: Final = 10_000
_REPLAY_PAGE: Final = 500
#: A replayed event may also come live if it was published after the queue was bound, which
#: happened just before the outbox was read; this covers clocks of other processes too.
_OVERLAP: Final = timedelta(minutes=1)

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
    """Stream matching events as they are published; resume after ``Last-Event-ID``.

    A comment line ``: live`` marks the end of the replay, and ``: heartbeat`` comes every
    ``BUS_SSE_HEARTBEAT_SECONDS`` while nothing happens. Delivery is at least once.
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
    runtime: Runtime = request.app.state.runtime
    position = await position_of(runtime.engine, last_event_id) if last_event_id else None
    live = await _LiveEvents.open(runtime, patterns)
    return StreamingResponse(
        _frames(runtime, live, patterns, last_event_id, position),
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        # Also when the client left before the first frame, so the stream never started.
        background=BackgroundTask(live.close),
    )


class _LiveEvents:
    """A stream's own queue on the broker and the messages it delivered, in order."""

    def __init__(self, channel: AbstractChannel, queue: AbstractQueue) -> None:
        self.channel = channel
        self.queue = queue
        # ``None`` says the channel closed (broker gone): the client reconnects and resumes.
        self.messages: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        self.bound_at = datetime.now(UTC)
        self._consumer_tag: str | None = None
        self._is_closed = False

    @classmethod
    async def open(cls, runtime: Runtime, patterns: Sequence[str]) -> _LiveEvents:
        try:
            channel = await runtime.broker.connection.channel(publisher_confirms=False)
            try:
                await channel.set_qos(prefetch_count=_PREFETCH)
                queue = await channel.declare_queue(
                    exclusive=True,
                    auto_delete=True,
                    arguments={"x-max-length": _QUEUE_LIMIT, "x-overflow": "drop-head"},
                )
                for pattern in patterns:
                    await queue.bind(runtime.names.events, routing_key=pattern)
                live = cls(channel, queue)
                channel.close_callbacks.add(live._closed)
                live._consumer_tag = await queue.consume(live.messages.put, no_ack=False)
            except BaseException:
                await channel.close()
                raise
        except (AMQPError, ConnectionError, RuntimeError) as exc:
            raise BrokerUnavailable(f"cannot open an event stream: {exc!r}") from exc
        return live

    def _closed(self, *_args: Any) -> None:
        self.messages.put_nowait(None)

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
    live: _LiveEvents,
    patterns: Sequence[str],
    last_event_id: str | None,
    position: int | None,
) -> AsyncIterator[bytes]:
    heartbeat = runtime.settings.sse_heartbeat_seconds
    try:
        sent_in_replay: set[str] = set()
        if last_event_id is not None and position is None:
            yield _frame(
                None,
                REPLAY_UNAVAILABLE,
                orjson.dumps(
                    {
                        "last_event_id": last_event_id,
                        "detail": "unknown or purged event: streaming live events only; "
                        "read the dossiers' state from GET /v1/dossiers/{code}",
                    }
                ),
            )
        elif position is not None:
            async for event in _replay(runtime, patterns, position):
                if event.sent_at is None or event.sent_at >= live.bound_at - _OVERLAP:
                    sent_in_replay.add(event.event_id)
                yield _event_frame(event.event_id, event.payload)
        yield b": live\n\n"
        while True:
            try:
                message = await asyncio.wait_for(live.messages.get(), heartbeat)
            except TimeoutError:
                yield b": heartbeat\n\n"
                continue
            if message is None:
                return  # the broker connection dropped: the client resumes from the outbox
            event_id = message.message_id or ""
            if event_id in sent_in_replay:
                sent_in_replay.discard(event_id)
            else:
                yield _event_frame(event_id, message.body)
            await message.ack()
    finally:
        # The client went away and the response is being cancelled: tidy up regardless.
        with anyio.CancelScope(shield=True):
            await live.close()


async def _replay(
    runtime: Runtime, patterns: Sequence[str], position: int
) -> AsyncIterator[StoredEvent]:
    prefixes = [literal_prefix(p) for p in patterns]
    while True:
        page = await events_after(
            runtime.engine,
            position=position,
            exchange=runtime.names.events,
            prefixes=prefixes,
            limit=_REPLAY_PAGE,
        )
        for event in page:
            if any(topic_matches(p, event.routing_key) for p in patterns):
                yield event
        if len(page) < _REPLAY_PAGE:
            return
        position = page[-1].position


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
