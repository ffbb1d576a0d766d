"""Dead letters: the parking queue moved into the store, for operators to work through.

The parking queue is where every failure ends (permanent faults, retries exhausted, the broker's
delivery limit). A queue can only be read by taking messages off it, which suits neither a
dashboard that lists them every few seconds nor a filter over thousands, so the
:class:`DeadLetterKeeper` (run by every ``bus worker``; competing keepers are harmless) takes
each parked message into the ``dead_letters`` table and acknowledges it only once committed:
nothing parked is lost, and a copy delivered twice is kept once (its fingerprint).

Operators then, through the API (``/v1/dead-letters``), the CLI (``bus dlq``) or the dashboard:
list and filter, inspect one (body, headers, reason, attempts), **replay** (the message goes
back to the queue it failed in; the consumers' dedup guard makes a replay of something already
applied change nothing) and **discard** with a reason. Each decision is a hop of the dossier,
sealed in the audit chain.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.amqp import Broker
from bus.batching import Batcher
from bus.logs import about
from bus.parking import dead_letter_row, replay_message
from bus.runtime import Runtime
from bus.store.dead_letters import (
    Resolution,
    keep_dead_letters,
    read_parked,
    resolve_dead_letters,
)

__all__ = ["DeadLetterKeeper", "ReplayReport", "discard_dead_letters", "replay_dead_letters"]

log = logging.getLogger(__name__)

#: Parked messages the keeper holds unacknowledged at once (one transaction keeps them all).
KEEPER_PREFETCH: Final = 200
#: Dead letters replayed per round: read together, published together, marked together.
REPLAY_CHUNK: Final = 100
#: A pause before a message the store could not take is handed back, so an outage of the
#: database does not spin the keeper.
_STORE_DOWN_PAUSE: Final = 1.0

Progress = Callable[[int], None]
"""Told how many more dead letters were handled, as a bulk operation goes (progress bars)."""


class DeadLetterKeeper:
    """Consumes ``<ns>.parking`` into the ``dead_letters`` table."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._engine = runtime.writer
        self._batcher: Batcher[tuple[dict[str, Any], bool], bool] = Batcher(
            self._keep, max_batch=KEEPER_PREFETCH, name="dead-letters"
        )
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self.kept = 0

    async def start(self) -> None:
        """Start consuming the parking queue."""
        self._batcher.start()
        channel = await self._runtime.broker.connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=KEEPER_PREFETCH)
        self._channel = channel
        self._queue = await channel.get_queue(self._runtime.names.parking, ensure=True)
        self._consumer_tag = await self._queue.consume(self._on_message, no_ack=False)

    async def stop(self) -> None:
        """Stop consuming; what is held unacknowledged returns to the queue."""
        if self._queue is not None and self._consumer_tag is not None:
            try:
                await self._queue.cancel(self._consumer_tag)
            except Exception:  # the channel may already be gone with the broker
                log.debug("cancelling the dead-letter keeper failed", exc_info=True)
        await self._batcher.stop()
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        with about(message_id=message.message_id, correlation_id=message.correlation_id):
            await self._keep_one(message)

    async def _keep_one(self, message: AbstractIncomingMessage) -> None:
        try:
            row, recorded = dead_letter_row(message)
            new = await self._batcher.submit((row, recorded))
        except Exception:
            log.exception("could not keep parked message %s; handing it back", message.message_id)
            await asyncio.sleep(_STORE_DOWN_PAUSE)
            await message.nack(requeue=True)
            return
        await message.ack()
        if new:
            self.kept += 1
            log.info(
                "dead letter kept: %s (%s, %s)",
                row["message_id"],
                row["connector"] or row["queue"],
                row["fault_code"],
            )

    async def _keep(self, items: Sequence[tuple[dict[str, Any], bool]]) -> Sequence[bool]:
        return await keep_dead_letters(
            self._engine,
            [row for row, _ in items],
            recorded=[recorded for _, recorded in items],
        )


@dataclass
class ReplayReport:
    """What a replay did: the ids sent back, and those it skipped (no longer parked)."""

    replayed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)


async def replay_dead_letters(
    engine: AsyncEngine,
    broker: Broker,
    ids: Sequence[int],
    *,
    by: str,
    progress: Progress | None = None,
) -> ReplayReport:
    """Send each still-parked dead letter of ``ids`` back to the queue it failed in.

    Published (and confirmed by the broker) before it is marked replayed: a crash between the
    two leaves it parked, and replaying it again is harmless, since the consumer's dedup guard
    applies a message once however often it comes.
    """
    report = ReplayReport()
    for start in range(0, len(ids), REPLAY_CHUNK):
        chunk = list(ids[start : start + REPLAY_CHUNK])
        ready = [row for row in await read_parked(engine, chunk) if row["queue"]]
        await asyncio.gather(*(broker.publish(replay_message(row)) for row in ready))
        done = await resolve_dead_letters(
            engine, [row["id"] for row in ready], Resolution("replayed", by)
        )
        report.replayed += done
        report.skipped += sorted(set(chunk) - set(done))
        if progress is not None:
            progress(len(chunk))
    return report


async def discard_dead_letters(
    engine: AsyncEngine,
    ids: Sequence[int],
    *,
    by: str,
    reason: str,
    progress: Progress | None = None,
) -> list[int]:
    """Mark the still-parked ones among ``ids`` discarded, with the operator's reason."""
    if not reason.strip():
        raise ValueError("say why the dead letters are discarded (a reason is required)")
    discarded: list[int] = []
    for start in range(0, len(ids), REPLAY_CHUNK):
        chunk = list(ids[start : start + REPLAY_CHUNK])
        discarded += await resolve_dead_letters(
            engine, chunk, Resolution("discarded", by, reason.strip())
        )
        if progress is not None:
            progress(len(chunk))
    return discarded
