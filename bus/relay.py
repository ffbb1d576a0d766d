"""The outbox relay: publishes committed events with confirms, then marks them sent.

Every process that writes outbox rows runs one. The API wakes it after each commit, so an event
is usually on the broker a few milliseconds after the 202; the poll interval only matters for
rows left by a process that died (their lease runs out and any relay takes them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from sqlalchemy.ext.asyncio import AsyncEngine

from bus.amqp import Broker, OutgoingMessage
from bus.errors import BrokerUnavailable
from bus.settings import Settings
from bus.store import outbox

log = logging.getLogger(__name__)


class OutboxRelay:
    """Moves outbox rows to RabbitMQ: claim a batch, publish it concurrently, mark the confirmed."""

    def __init__(self, engine: AsyncEngine, broker: Broker, settings: Settings) -> None:
        self._engine = engine
        self._broker = broker
        self._settings = settings
        self._relay_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0

    def wake(self) -> None:
        """Tell the relay that new rows were committed."""
        self._wake.set()

    def start(self) -> None:
        """Start relaying in the background."""
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Stop after the batch in flight."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def relay_once(self) -> int:
        """Publish one batch; returns how many rows were confirmed."""
        pending = await outbox.claim(
            self._engine,
            relay_id=self._relay_id,
            limit=self._settings.batch_max,
            lease_seconds=self._settings.outbox_lease_seconds,
        )
        if not pending:
            return 0
        results = await self._publish_in_dossier_order(pending)
        sent = [row.id for row, error in zip(pending, results, strict=True) if error is None]
        failed = [
            (row.id, f"{type(error).__name__}: {error}")
            for row, error in zip(pending, results, strict=True)
            if error is not None
        ]
        await outbox.mark_sent(self._engine, sent)
        if failed:
            log.warning(
                "outbox: %d of %d events not confirmed: %s", len(failed), len(pending), failed[0][1]
            )
            # Leave them alone for a second so a broker outage is not a busy loop.
            await outbox.release(self._engine, failed, retry_in=1.0)
        self.published += len(sent)
        return len(sent)

    async def _publish_in_dossier_order(
        self, pending: list[outbox.PendingEvent]
    ) -> list[Exception | None]:
        """Publish a batch concurrently, except that a dossier's later events wait for earlier.

        Rows go out in waves: wave k holds each dossier's k-th pending event, so confirms are
        still shared across dossiers while one dossier's events reach the broker in order.
        """
        waves: list[list[int]] = []
        seen: dict[str, int] = {}
        for index, row in enumerate(pending):
            position = seen.get(row.dossier_code, 0)
            seen[row.dossier_code] = position + 1
            if position == len(waves):
                waves.append([])
            waves[position].append(index)
        held_back = BrokerUnavailable("held back: an earlier event of this dossier failed")
        # Rows not attempted (held back) count as failed: they are released, never marked sent.
        results: list[Exception | None] = [held_back] * len(pending)
        failed_dossiers: set[str] = set()
        for wave in waves:
            # After a failure, a dossier's later events wait for the next round.
            attempt = [i for i in wave if pending[i].dossier_code not in failed_dossiers]
            outcome = await self._broker.publish_many(
                [
                    OutgoingMessage(
                        exchange=pending[i].exchange,
                        routing_key=pending[i].routing_key,
                        body=pending[i].payload,
                        message_id=pending[i].event_id,
                        mandatory=pending[i].mandatory,
                    )
                    for i in attempt
                ]
            )
            for i, error in zip(attempt, outcome, strict=True):
                results[i] = error
                if error is not None:
                    failed_dossiers.add(pending[i].dossier_code)
        return results

    async def _run(self) -> None:
        last_purge = 0.0
        loop = asyncio.get_running_loop()
        while True:
            # Cleared before claiming: a commit that lands during this batch wakes the next one.
            self._wake.clear()
            try:
                count = await self.relay_once()
                if loop.time() - last_purge > 60:
                    last_purge = loop.time()
                    await outbox.purge_sent(
                        self._engine, older_than_seconds=self._settings.outbox_retention_seconds
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay iteration failed; retrying")
                count = 0
                await asyncio.sleep(1.0)
            if count >= self._settings.batch_max:
                continue  # more are waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.outbox_poll_interval)
