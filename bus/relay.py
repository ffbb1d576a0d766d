"""The outbox relay: publishes committed events with confirms, then marks them sent.

Every process that writes outbox rows runs one. The hot writers (the API's ingest, a worker's
commit) hand their committed rows straight to it (:meth:`OutboxRelay.take`), so an event is
usually on the broker a few milliseconds after the 202. Other writers wake it, and it claims
their rows from the store; the poll interval only matters for rows left by a process that died
(their lease runs out and any relay takes them).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import deque

from sqlalchemy.ext.asyncio import AsyncEngine

from bus.amqp import Broker, OutgoingMessage
from bus.errors import BrokerUnavailable
from bus.settings import Settings
from bus.store import outbox, statistics
from bus.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: Seconds before rows whose publish failed are tried again: a broker outage is not a busy loop.
_RETRY_SECONDS = 1.0
#: Seconds a mark waits for more confirms to join it. Marking is off the events' path (they are
#: on the broker already), so the wait costs them nothing, while at a steady trickle it writes
#: one transaction for several batches instead of one each; only event streams (which show
#: events once marked) see them this much later.
_MARK_LINGER_SECONDS = 0.05
#: Seconds between purges of sent rows past their retention (and, when the bus keeps the
#: store's statistics itself, analyses: see bus.store.statistics).
_UPKEEP_SECONDS = 60.0


class _SentMarks:
    """Confirmed rows waiting to be marked sent, marked by a task of their own.

    Marking is a write transaction, and on SQLite it waits for the single write lock that the
    API's and the workers' commits hold much of the time under load. Written in the relay's
    loop, it held back every event handed over meanwhile: the next batch went out only after
    the mark. Here the relay goes on publishing, and the rows confirmed during a mark, or
    within :data:`_MARK_LINGER_SECONDS` before it, are marked together: one transaction for
    several batches. Until marked, the rows stay leased to this relay, so no other relay sends
    them; if the process dies first, the lease runs out and they go out again, which consumers'
    deduplication absorbs (as after any crash between a confirm and its mark).
    """

    def __init__(self, engine: AsyncEngine, batch_max: int) -> None:
        self._engine = engine
        self._batch_max = batch_max
        self._waiting: deque[str] = deque()
        self._due = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, event_ids: list[str]) -> None:
        """Mark these confirmed rows sent, soon."""
        if event_ids:
            self._waiting.extend(event_ids)
            self._due.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-marks")

    async def stop(self) -> None:
        """Stop, marking what is left (once: if the store is away, the leases run out)."""
        await cancel_and_wait(self._task)
        self._task = None
        try:
            while self._waiting:
                await self._mark_some()
        except Exception:
            log.warning("outbox: %d confirmed events left to their lease", len(self._waiting))

    async def _run(self) -> None:
        while True:
            await self._due.wait()
            await asyncio.sleep(_MARK_LINGER_SECONDS)
            self._due.clear()
            while self._waiting:
                try:
                    await self._mark_some()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.warning("outbox: marking events sent failed; retrying", exc_info=True)
                    await asyncio.sleep(_RETRY_SECONDS)

    async def _mark_some(self) -> None:
        count = min(len(self._waiting), self._batch_max)
        batch = [self._waiting.popleft() for _ in range(count)]
        try:
            await outbox.mark_sent(self._engine, batch)
        except BaseException:
            self._waiting.extendleft(reversed(batch))
            raise


class OutboxRelay:
    """Moves outbox rows to RabbitMQ: claim a batch, publish it concurrently, mark the confirmed."""

    def __init__(self, engine: AsyncEngine, broker: Broker, settings: Settings) -> None:
        self._engine = engine
        self._broker = broker
        self._settings = settings
        self._relay_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._wake = asyncio.Event()
        # Rows may wait in the store (another writer committed, a lease ran out): claim them.
        self._claim_due = True
        self._handed: deque[outbox.PendingEvent] = deque()
        # Rows given back after a failed publish, until this relay confirms them. Meanwhile
        # handed rows go back to the store too and out in commit order with them, so that a
        # dossier's later event does not overtake the one waiting to be retried.
        self._retrying: set[str] = set()
        self._retrying_until = 0.0
        self._retries_checked_at = -float("inf")
        self._task: asyncio.Task[None] | None = None
        self._marks = _SentMarks(engine, settings.batch_max)
        self._upkeep_task: asyncio.Task[None] | None = None
        self.published = 0

    def wake(self) -> None:
        """Tell the relay that new rows were committed to the store."""
        self._claim_due = True
        self._wake.set()

    def handover(self) -> outbox.Handover | None:
        """A handover for one write transaction: its rows are inserted leased to this relay.

        ``None`` while the relay is behind (the broker slow or away) by more than two batches:
        the rows then wait in the store, unleased, for the relay or any other to claim, so
        that memory does not grow with the backlog.
        """
        if len(self._handed) >= 2 * self._settings.batch_max:
            return None
        return outbox.Handover(self._relay_id, self._settings.outbox_lease_seconds)

    def take(self, handover: outbox.Handover | None) -> None:
        """Publish the rows of ``handover``, whose transaction has committed (``None``: the
        rows were written to the store for a claim)."""
        if handover is None:
            self.wake()
        elif handover.events:
            self._handed.extend(handover.events)
            self._wake.set()

    def start(self) -> None:
        """Start relaying in the background."""
        self._task = asyncio.create_task(self._run(), name="outbox-relay")
        self._upkeep_task = asyncio.create_task(self._upkeep(), name="outbox-upkeep")
        self._marks.start()

    async def stop(self) -> None:
        """Stop after the batch in flight; rows handed over and not yet published go back to
        the store, for the next relay to take at once rather than when their lease runs out."""
        await cancel_and_wait(self._task)
        self._task = None
        await cancel_and_wait(self._upkeep_task)
        self._upkeep_task = None
        await self._marks.stop()
        if self._handed:
            left = [(event.event_id, "relay stopped before publishing") for event in self._handed]
            self._handed.clear()
            try:
                await outbox.release(self._engine, left, retry_in=0.0)
            except Exception:  # the store is gone too: the lease runs out instead
                log.warning("outbox: %d handed-over events left to their lease", len(left))

    async def relay_once(self) -> int:
        """Publish one batch claimed from the store and mark it sent; returns how many rows
        were confirmed."""
        sent = await self._publish(await self._claim())
        await outbox.mark_sent(self._engine, sent)
        return len(sent)

    async def relay_handed(self) -> int:
        """Publish up to a batch of the rows handed over and mark them sent; returns how many
        were confirmed."""
        sent = await self._publish_handed()
        await outbox.mark_sent(self._engine, sent)
        return len(sent)

    async def _claim(self) -> list[outbox.PendingEvent]:
        return await outbox.claim(
            self._engine,
            relay_id=self._relay_id,
            limit=self._settings.batch_max,
            lease_seconds=self._settings.outbox_lease_seconds,
        )

    async def _publish_handed(self) -> list[str]:
        batch = [
            self._handed.popleft() for _ in range(min(len(self._handed), self._settings.batch_max))
        ]
        try:
            if self._handover_paused:
                await self._forget_retries_sent_elsewhere()
            if not self._handover_paused:
                return await self._publish(batch)
            # Back to the store, due when the failed rows are, for the claim to take them all
            # in commit order.
            await outbox.release(
                self._engine,
                [(event.event_id, "waits for an earlier failed publish") for event in batch],
                retry_in=_RETRY_SECONDS,
            )
            return []
        except BaseException:
            # Not settled (the store failed): kept for the next round. A row the broker already
            # confirmed goes out twice, which consumers' deduplication absorbs.
            self._handed.extendleft(reversed(batch))
            raise

    @property
    def _handover_paused(self) -> bool:
        # Bounded by the lease, in case the store cannot say (see below).
        return bool(self._retrying) and asyncio.get_running_loop().time() < self._retrying_until

    async def _forget_retries_sent_elsewhere(self) -> None:
        """Drop from the rows waiting to be retried those that are sent: any relay may claim
        a row given back, and then this one never confirms it. Asked of the store at most once
        per retry interval; until then every handed row waits in the store a second."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._retries_checked_at + _RETRY_SECONDS:
            return
        self._retries_checked_at = loop.time()
        self._retrying &= await outbox.unsent(self._engine, list(self._retrying))

    async def _publish(self, pending: list[outbox.PendingEvent]) -> list[str]:
        """Publish rows, give back those not confirmed; returns the confirmed rows' ids, which
        stay leased to this relay until they are marked sent."""
        if not pending:
            return []
        results = await self._publish_in_dossier_order(pending)
        sent = [row.event_id for row, error in zip(pending, results, strict=True) if error is None]
        failed = [
            (row.event_id, f"{type(error).__name__}: {error}")
            for row, error in zip(pending, results, strict=True)
            if error is not None
        ]
        self._retrying.difference_update(sent)
        if failed:
            log.warning(
                "outbox: %d of %d events not confirmed: %s", len(failed), len(pending), failed[0][1]
            )
            # Leave them alone for a second so a broker outage is not a busy loop.
            await outbox.release(self._engine, failed, retry_in=_RETRY_SECONDS)
            loop = asyncio.get_running_loop()
            self._retrying.update(event_id for event_id, _ in failed)
            self._retrying_until = loop.time() + self._settings.outbox_lease_seconds
            loop.call_later(_RETRY_SECONDS, self.wake)
        self.published += len(sent)
        return sent

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

    async def _claim_round(self) -> bool:
        """Publish a batch claimed from the store; whether a full batch came (more may wait)."""
        self._claim_due = False
        sent = await self._publish(await self._claim())
        self._marks.add(sent)
        if len(sent) >= self._settings.batch_max:
            self._claim_due = True
            return True
        return False

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_claim = loop.time()
        poll = self._settings.outbox_poll_interval
        while True:
            # Cleared before publishing: a commit that lands during this batch wakes the next.
            self._wake.clear()
            busy = False
            try:
                if self._handed:
                    self._marks.add(await self._publish_handed())
                    busy = bool(self._handed)
                # Also when handed rows keep the relay busy: rows of a relay that died wait.
                if self._claim_due or loop.time() - last_claim >= poll:
                    last_claim = loop.time()
                    busy = await self._claim_round() or busy
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay iteration failed; retrying")
                self._claim_due = True
                await asyncio.sleep(1.0)
            if busy:
                continue  # more are waiting
            try:
                async with asyncio.timeout(poll):  # no task per wait, as wait_for has
                    await self._wake.wait()
            except TimeoutError:
                self._claim_due = True

    async def _upkeep(self) -> None:
        """Purge sent rows past their retention and keep the store's statistics, once a minute.

        A task of its own: an ANALYZE of the busy tables takes hundreds of milliseconds on
        PostgreSQL, and run between two batches it held every event back that long.
        """
        keep_statistics: bool | None = None
        while True:
            try:
                await outbox.purge_sent(
                    self._engine, older_than_seconds=self._settings.outbox_retention_seconds
                )
                if keep_statistics is None:
                    keep_statistics = await statistics.analyze_needed(self._engine)
                if keep_statistics:
                    await statistics.refresh(self._engine)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("outbox upkeep failed; trying again later", exc_info=True)
            await asyncio.sleep(_UPKEEP_SECONDS)
