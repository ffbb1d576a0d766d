"""Acknowledging settled deliveries in as few frames as the broker allows.

A worker settles messages out of order (partner calls take different times), but a commit batch
settles many in the same event-loop turn. At the end of that turn, the run of settled delivery
tags below the lowest still-unsettled one is acked with one ``multiple`` frame; settled tags
above it are acked one by one, so no finished message waits on a slow one.

Tags belong to a channel: after a reconnection a robust channel starts counting again, so the
bookkeeping is kept per underlying channel, and that of a closed channel is dropped (the broker
has already put those messages back in the queue).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

log = logging.getLogger(__name__)


@dataclass
class _ChannelTags:
    channel: Any
    unsettled: set[int] = field(default_factory=set)
    settled: dict[int, AbstractIncomingMessage] = field(default_factory=dict)


class AckBatcher:
    """Collects acknowledgements of one consumer and sends them once per event-loop turn."""

    def __init__(self) -> None:
        self._channels: dict[int, _ChannelTags] = {}
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.frames = 0
        self.acked = 0

    def received(self, message: AbstractIncomingMessage) -> None:
        """Note a delivery that has not been settled yet."""
        if message.delivery_tag is not None:
            self._tags(message).unsettled.add(message.delivery_tag)

    def ack(self, message: AbstractIncomingMessage) -> None:
        """Acknowledge ``message`` at the end of this event-loop turn."""
        tag = message.delivery_tag
        if tag is None:
            return
        tags = self._tags(message)
        tags.unsettled.discard(tag)
        tags.settled[tag] = message
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def forget(self, message: AbstractIncomingMessage) -> None:
        """Stop tracking a message settled some other way, once that nack or reject is sent.

        Call it after the frame is written, never before: while it is tracked, the tag keeps
        a multiple-ack from acknowledging it.
        """
        if message.delivery_tag is not None:
            self._tags(message).unsettled.discard(message.delivery_tag)

    async def drain(self) -> None:
        """Wait until every acknowledgement handed over so far has been written."""
        if self._flush_scheduled:
            await asyncio.sleep(0)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _tags(self, message: AbstractIncomingMessage) -> _ChannelTags:
        key = id(message.channel)
        tags = self._channels.get(key)
        if tags is None or tags.channel is not message.channel:
            tags = self._channels[key] = _ChannelTags(message.channel)
        return tags

    def _flush(self) -> None:
        self._flush_scheduled = False
        for key, tags in list(self._channels.items()):
            if getattr(tags.channel, "is_closed", False):
                # The broker requeued this channel's unacked messages; dedup absorbs the repeat.
                del self._channels[key]
                continue
            if not tags.settled:
                continue
            floor = min(tags.unsettled) if tags.unsettled else None
            run = sorted(t for t in tags.settled if floor is None or t < floor)
            rest = [t for t in tags.settled if floor is not None and t > floor]
            if run:
                self._send(tags.settled[run[-1]], multiple=True, count=len(run))
            for tag in rest:
                self._send(tags.settled[tag], multiple=False, count=1)
            tags.settled.clear()
            if not tags.unsettled:
                del self._channels[key]

    def _send(self, message: AbstractIncomingMessage, *, multiple: bool, count: int) -> None:
        self.frames += 1
        self.acked += count
        task = asyncio.get_running_loop().create_task(message.ack(multiple=multiple))
        self._tasks.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The channel closed under us: the broker redelivers, and dedup makes that harmless.
            log.info("ack not sent (%r); the message will be redelivered", task.exception())
