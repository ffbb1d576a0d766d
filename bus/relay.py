"""The outbox relay: publishes committed events with confirms, then marks them sent.

Every process that writes outbox rows runs one. The hot writers (the API's ingest, a worker's
commit) hand their committed rows straight to it (:meth:`OutboxRelay.take`), so an event is
usually on the broker a few milliseconds after the 202. Other writers wake it, and it claims
their rows from the store; the poll interval only matters for rows left by a process that died
(their lease runs out and any relay takes them).

Handed rows do not wait for the confirms of the batch before them: up to
:data:`_BATCHES_IN_FLIGHT` batches are on the broker at once. A confirm comes only once every
queue the message reached has it on disk (a quorum queue: once its log is synced), which under
load took 9 ms at the median and 73 ms at p99; published one batch after the other, a worker's
status events queued behind those waits. A dossier's rows still go out in order: a row whose
dossier has a batch in flight waits until that batch is settled, so that it never reaches the
broker ahead of an earlier row the broker may yet refuse.
"""

from __future__ import annotations

import asyncio
import contextlib
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
#: Batches of handed rows awaiting their confirms at once (see the module's docstring). With the
#: store's bound on rows in hand (two batches), memory holds at most this many batches more.
_BATCHES_IN_FLIGHT = 4
#: Seconds a stopping relay waits for the confirms of the batches it has in flight.
_STOP_GRACE_SECONDS = 2.0


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
        # Batches of handed rows published and awaiting their confirms, with their dossiers.
        self._in_flight: dict[asyncio.Task[list[str]], frozenset[str]] = {}
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
        """Stop once the batches in flight have their confirms (at most
        :data:`_STOP_GRACE_SECONDS`, then they are given up); rows handed over and not
        confirmed go back to the store, for the next relay to take at once rather than when
        their lease runs out. What the broker confirmed is marked sent."""
        await cancel_and_wait(self._task)
        self._task = None
        await cancel_and_wait(self._upkeep_task)
        self._upkeep_task = None
        if self._in_flight:
            # A batch given up is published again by the next relay: duplicates, absorbed by
            # consumers, but avoidable when the broker answers.
            await asyncio.wait(self._in_flight, timeout=_STOP_GRACE_SECONDS)
            for task in self._in_flight:
                task.cancel()
            await asyncio.wait(self._in_flight)
        with contextlib.suppress(Exception):  # a failed batch's rows are back in hand already
            self._marks.add(self._settled())
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
        """Publish the rows handed over as the running relay does (those of a dossier with a
        batch in flight stay in hand), wait for every batch in flight and mark the confirmed
        rows sent; returns how many were confirmed."""
        await self._send_handed()
        if self._in_flight:
            await asyncio.wait(self._in_flight)
        sent = self._settled()
        await outbox.mark_sent(self._engine, sent)
        return len(sent)

    async def _claim(self) -> list[outbox.PendingEvent]:
        return await outbox.claim(
            self._engine,
            relay_id=self._relay_id,
            limit=self._settings.batch_max,
            lease_seconds=self._settings.outbox_lease_seconds,
        )

    async def _send_handed(self) -> None:
        """Start publishing the rows in hand, or, while an earlier failed publish waits to be
        retried, give them back to the store behind it."""
        if self._handover_paused:
            await self._forget_retries_sent_elsewhere()
        if not self._handover_paused:
            self._launch_batches()
            return
        while self._handed:
            batch = self._next_batch(busy=frozenset())
            try:
                # Due when the failed rows are, for the claim to take them all in commit order.
                await outbox.release(
                    self._engine,
                    [(event.event_id, "waits for an earlier failed publish") for event in batch],
                    retry_in=_RETRY_SECONDS,
                )
            except BaseException:
                self._handed.extendleft(reversed(batch))  # kept for the next round
                raise

    def _launch_batches(self) -> None:
        """Publish the rows in hand in batches, as long as fewer than _BATCHES_IN_FLIGHT are
        in flight; a row whose dossier has a batch in flight stays in hand, in its place."""
        while self._handed and len(self._in_flight) < _BATCHES_IN_FLIGHT:
            batch = self._next_batch(busy=self._dossiers_in_flight)
            if not batch:
                return
            task = asyncio.create_task(self._publish_batch(batch), name="outbox-batch")
            self._in_flight[task] = frozenset(event.dossier_code for event in batch)
            task.add_done_callback(lambda _: self._wake.set())

    @property
    def _dossiers_in_flight(self) -> frozenset[str]:
        return frozenset().union(*self._in_flight.values())

    def _next_batch(self, *, busy: frozenset[str]) -> list[outbox.PendingEvent]:
        """Take up to a batch of rows in hand, in order, leaving those of ``busy`` dossiers."""
        batch: list[outbox.PendingEvent] = []
        left: list[outbox.PendingEvent] = []
        while self._handed and len(batch) < self._settings.batch_max:
            event = self._handed.popleft()
            (left if event.dossier_code in busy else batch).append(event)
        self._handed.extendleft(reversed(left))
        return batch

    async def _publish_batch(self, batch: list[outbox.PendingEvent]) -> list[str]:
        try:
            return await self._publish(batch)
        except BaseException:
            # Not settled (stopped, or the store failed): kept for the next round. A row the
            # broker already confirmed goes out twice, which consumers' deduplication absorbs.
            # Back in front of the rows in hand: none of its dossiers' later rows left them.
            self._handed.extendleft(reversed(batch))
            raise

    def _settled(self) -> list[str]:
        """Forget the batches no longer in flight; the rows they had confirmed. Raises the
        error of one that failed (its rows are back in hand) after forgetting them all."""
        sent: list[str] = []
        error: BaseException | None = None
        for task in [task for task in self._in_flight if task.done()]:
            del self._in_flight[task]
            if task.cancelled():
                continue
            if task.exception() is None:
                sent += task.result()
            elif error is None:
                error = task.exception()
        if error is not None:
            self._marks.add(sent)
            raise error
        return sent

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
        claimed = await self._claim()
        busy = self._dossiers_in_flight
        if any(event.dossier_code in busy for event in claimed):
            # A dossier's rows in flight and in the store: the claimed ones go out once those
            # are settled, as handed rows would.
            await asyncio.wait(self._in_flight)
            try:
                self._marks.add(self._settled())
            except Exception:
                # Not published: claimable again at once rather than when the lease runs out.
                await outbox.release(
                    self._engine,
                    [(event.event_id, "an earlier batch failed") for event in claimed],
                    retry_in=0.0,
                )
                raise
        sent = await self._publish(claimed)
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
                self._marks.add(self._settled())
                if self._handed:
                    # Rows left in hand wait for a batch in flight, which wakes the relay.
                    await self._send_handed()
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
