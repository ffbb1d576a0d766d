"""Connector workers: consume a connector's queue, deliver to the partner, record the outcome.

For each message: skip it if its id was already processed; call the connector; commit the dedup
record, the hop, the new dossier state and the status event together; only then ack. Failures
are classified: transient ones go to the next retry tier, permanent ones (and transient ones
after the last tier) go to the parking queue with their reason. Nothing is acked before the
outcome is durable somewhere (the store, a retry queue or the parking queue).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from bus import events
from bus.acks import AckBatcher
from bus.amqp import OutgoingMessage
from bus.batching import Batcher
from bus.circuit import CircuitBreaker, CircuitOpen, CircuitState
from bus.connector import Connector, Delivery, DeliveryReceipt
from bus.errors import BusError, InvalidMessage, PartnerUnavailable
from bus.logs import about
from bus.metrics import (
    CIRCUIT_OPEN,
    DELIVERIES,
    HOP_SECONDS,
    NO_PROCEDURE,
    PARTNER_CALL_SECONDS,
)
from bus.registry import RegisteredConnector
from bus.runtime import Runtime
from bus.security.outbound import recording_signatures
from bus.store.deliveries import (
    DeliveryRecord,
    Outcome,
    StatusTransition,
    already_processed,
    commit_deliveries,
    consumer_positions_of,
)
from bus.store.polls import FUTURE_TOLERANCE
from bus.turns import DossierTurns
from contracts import EventEnvelope, StatusChange, StepOrder

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-bus-attempt"


def attempt_of(message: AbstractIncomingMessage) -> int:
    """Which attempt this delivery is (1 for the first), from the bus's retry header."""
    value = (message.headers or {}).get(ATTEMPT_HEADER, 1)
    return value if isinstance(value, int) and value >= 1 else 1


class ConnectorWorker:
    """Consumes one connector's queue with bounded concurrency (the prefetch)."""

    def __init__(self, runtime: Runtime, registered: RegisteredConnector) -> None:
        self._runtime = runtime
        self._registered = registered
        self._settings = runtime.settings
        self.connector_id = registered.id
        self.queue_name = runtime.names.connector_queue(registered.id)
        self._connector: Connector | None = None
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._dedup: Batcher[str, bool] = Batcher(self._check_dedup, name=f"dedup:{registered.id}")
        self._positions: Batcher[str, int | None] = Batcher(
            self._check_positions, name=f"positions:{registered.id}"
        )
        self._turns = DossierTurns()
        self._commit: Batcher[DeliveryRecord, Outcome] = Batcher(
            self._commit_batch, max_batch=self._settings.batch_max, name=f"commit:{registered.id}"
        )
        self.counts: dict[str, int] = {
            "delivered": 0,
            "duplicate": 0,
            "retried": 0,
            "parked": 0,
            "deferred": 0,
            "superseded": 0,
        }
        self.circuit = CircuitBreaker(registered.config.circuit)
        CIRCUIT_OPEN.labels(registered.id).set(0)
        self._paused = False
        self._stopping = False
        # Set by stop(): wakes the messages held for an in-place retry (``keep_order``).
        self._stop_signal = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._resume_handle: asyncio.TimerHandle | None = None
        self._acks = AckBatcher()
        # The partner's capacity, from the connector's configuration.
        self._partner_slots = asyncio.Semaphore(registered.config.concurrency)

    async def start(self) -> None:
        """Open the connector and start consuming."""
        self._connector = self._registered.build()
        self._dedup.start()
        self._positions.start()
        self._commit.start()
        channel = await self._runtime.broker.connection.channel(publisher_confirms=False)
        # More messages in hand than partner calls in flight: the spare ones are deduplicated
        # and committed in larger batches while the partner works.
        prefetch = max(self._settings.prefetch, self._registered.config.concurrency)
        await channel.set_qos(prefetch_count=prefetch)
        self._channel = channel
        self._queue = await channel.get_queue(self.queue_name, ensure=True)
        self._consumer_tag = await self._queue.consume(self._on_message, no_ack=False)
        log.info("worker consuming %s (prefetch %d)", self.queue_name, prefetch)

    async def stop(self) -> None:
        """Stop consuming, finish the messages in hand, close the connector."""
        self._stopping = True
        self._stop_signal.set()
        if self._resume_handle is not None:
            self._resume_handle.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._queue is not None and self._consumer_tag is not None:
            try:
                await self._queue.cancel(self._consumer_tag)
            except Exception:  # the channel may already be gone; unacked messages come back
                log.debug("cancel of %s failed", self._consumer_tag, exc_info=True)
        await self._idle.wait()
        await self._acks.drain()
        await self._commit.stop()
        await self._dedup.stop()
        await self._positions.stop()
        if self._channel is not None:
            await self._channel.close()
        if self._connector is not None:
            await self._connector.aclose()

    async def _check_dedup(self, message_ids: Sequence[str]) -> list[bool | Exception]:
        done = await already_processed(self._runtime.engine, self.connector_id, message_ids)
        return [message_id in done for message_id in message_ids]

    async def _commit_batch(
        self, records: Sequence[DeliveryRecord]
    ) -> Sequence[Outcome | Exception]:
        relay = self._runtime.relay
        handover = relay.handover()
        outcomes = await commit_deliveries(
            self._runtime.writer,
            records,
            self._status_event_row,
            linkage=self._runtime.linkage,
            handover=handover,
        )
        relay.take(handover)
        return outcomes

    def _status_event_row(
        self, record: DeliveryRecord, change: StatusChange, transition: StatusTransition
    ) -> dict[str, Any]:
        return events.status_outbox_row(
            change,
            sequence=transition.sequence,
            receiving_agency=transition.receiving_agency,
            exchange=self._runtime.names.events,
            cause=record.cause,
            mapping=record.hop_row.get("mapping_version"),
        )

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._in_flight += 1
        self._idle.clear()
        self._acks.received(message)
        try:
            await self._handle(message)
        except Exception:
            # Could not record the outcome (store or broker down): leave the message unacked so
            # the broker redelivers it; the dedup record makes the repeat harmless.
            log.exception("message %s not settled; it will be redelivered", message.message_id)
            try:
                await message.nack(requeue=True)
            except Exception:
                log.debug("nack failed (channel closed); the broker requeues it", exc_info=True)
            finally:
                # Only now: until its nack is written, the tag must stop a multiple-ack
                # from covering it (that would acknowledge a message that was not handled).
                self._acks.forget(message)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        received_at = datetime.now(UTC)
        attempt = attempt_of(message)
        try:
            event = events.decode(message.body)
            payload = events.decode_payload(event)
        except InvalidMessage as exc:
            await self._park(message, exc, attempt)
            self._count("parked", None)
            self._acks.ack(message)
            return
        # Taken before the first await, so events of one dossier keep the broker's order.
        with about(
            dossier=event.subject,
            message_id=event.id,
            correlation_id=event.correlationid,
            traceparent=event.traceparent,
        ):
            async with self._turns.turn(event.subject):
                if isinstance(payload, StatusChange):
                    delivery = Delivery(event.id, event, change=payload, attempt=attempt)
                elif isinstance(payload, StepOrder):
                    delivery = Delivery(
                        event.id, event, dossier=payload.dossier, attempt=attempt, step=payload
                    )
                else:
                    delivery = Delivery(event.id, event, dossier=payload, attempt=attempt)
                await self._deliver(message, delivery, received_at)

    async def _deliver(
        self, message: AbstractIncomingMessage, delivery: Delivery, received_at: datetime
    ) -> None:
        event, attempt = delivery.event, delivery.attempt
        if await self._dedup.submit(event.id):
            self._count("duplicate", event)
            self._acks.ack(message)
            return
        if delivery.change is not None and await self._superseded(event):
            await self._commit.submit(self._superseded_record(event, received_at, attempt))
            self._count("superseded", event)
            self._acks.ack(message)
            return

        assert self._connector is not None
        if not self.circuit.accepting:  # open: no need to wait for a partner slot to know
            await self._wait_for_circuit(message, delivery, received_at)
            return
        with recording_signatures() as signed:
            try:
                receipt = await self._call_partner(delivery)
            except CircuitOpen:
                await self._wait_for_circuit(message, delivery, received_at)
                return
            except BusError as exc:
                self._judge(exc)
                await self._fail_or_hold(message, delivery, received_at, exc, signed)
                return
            except Exception as exc:  # a connector bug: retried like a transient fault, parked
                log.exception("connector %s raised an unclassified error", self.connector_id)
                wrapped = PartnerUnavailable(
                    f"connector error: {exc!r}", fault_code="CONNECTOR_BUG"
                )
                self._judge(wrapped)
                await self._fail_or_hold(message, delivery, received_at, wrapped, signed)
                return
        self.circuit.record_success()

        record = self._record(delivery, received_at, receipt, signed)
        outcome = await self._commit.submit(record)
        self._count("delivered" if outcome == "applied" else "duplicate", event)
        _observe(self.connector_id, receipt, received_at)
        self._acks.ack(message)

    def _count(self, outcome: str, event: EventEnvelope | None) -> None:
        """Count a settled message here (``counts``) and for Prometheus."""
        self.counts[outcome] += 1
        procedure = NO_PROCEDURE if event is None else _procedure_of(event)
        DELIVERIES.labels(self.connector_id, procedure, outcome).inc()

    @property
    def _keeps_order(self) -> bool:
        return self._registered.config.retry.keep_order

    async def _wait_for_circuit(
        self, message: AbstractIncomingMessage, delivery: Delivery, received_at: datetime
    ) -> None:
        """The circuit is open: send the message round a retry tier, or hold it in place."""
        if not self._keeps_order:
            await self._defer(message, delivery.event)
            return
        if await self._hold(message, self.circuit.retry_in):
            await self._deliver(message, delivery, received_at)  # the attempt was not spent

    async def _fail_or_hold(
        self,
        message: AbstractIncomingMessage,
        delivery: Delivery,
        received_at: datetime,
        error: BusError,
        signed: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Record a failed attempt; retry it through a tier, in place (``keep_order``), or park.

        ``signed``: the attempt's signed exchanges, kept as evidence with its hop.
        """
        attempt = delivery.attempt
        delays = self._registered.config.retry.delays or self._settings.retry_delays
        if not (self._keeps_order and error.transient and attempt <= len(delays)):
            await self._fail(message, delivery.event, received_at, attempt, error, signed)
            return
        # In place: the message stays unacked in this dossier's turn, so the dossier's later
        # messages wait behind it instead of overtaking it through a retry tier.
        await self._commit.submit(
            self._failed_record(delivery.event, received_at, attempt, error, "retry", signed)
        )
        self._count("retried", delivery.event)
        if await self._hold(message, delays[attempt - 1]):
            retry = replace(delivery, attempt=attempt + 1)
            await self._deliver(message, retry, datetime.now(UTC))

    async def _hold(self, message: AbstractIncomingMessage, seconds: float) -> bool:
        """Wait ``seconds`` before trying again; False (message requeued) if the worker stops.

        Given back unacked, the message is redelivered to the next worker with the rest of
        its dossier; its dedup record makes the handover harmless.
        """
        try:
            await asyncio.wait_for(self._stop_signal.wait(), timeout=seconds)
        except TimeoutError:
            return True
        try:
            await message.nack(requeue=True)
        finally:
            self._acks.forget(message)
        return False

    def _judge(self, error: BusError) -> None:
        """Feed a failed call to the circuit breaker; pause consuming when it opens."""
        if not error.transient:
            self.circuit.record_success()  # the partner is up: it answered, if with a refusal
            return
        self.circuit.record_failure()
        if self.circuit.state is CircuitState.OPEN:
            self._pause()

    async def _call_partner(self, delivery: Delivery) -> DeliveryReceipt:
        """Deliver in a partner slot, if the circuit still allows it once the slot is free.

        Asked only then, not when the message arrived: a prefetch of messages waiting for a few
        slots would otherwise all have been let through before the first failure came back,
        and would keep calling a partner the circuit already gave up on.
        """
        assert self._connector is not None
        async with self._partner_slots:
            if not self.circuit.allow():
                raise CircuitOpen
            return await self._connector.deliver(delivery)

    def _pause(self) -> None:
        """Stop taking messages while the circuit is open; they wait in the queue unspent."""
        if self._paused or self._queue is None or self._stopping:
            return
        self._paused = True
        CIRCUIT_OPEN.labels(self.connector_id).set(1)
        tag, self._consumer_tag = self._consumer_tag, None
        log.warning(
            "%s: partner failing, circuit open; pausing %.1fs before a probe",
            self.connector_id,
            self.circuit.retry_in,
        )
        if tag is not None:
            self._background(self._queue.cancel(tag))
        self._resume_later(self.circuit.retry_in)

    def _resume_later(self, delay: float) -> None:
        self._resume_handle = asyncio.get_running_loop().call_later(
            delay, lambda: self._background(self._resume())
        )

    async def _resume(self) -> None:
        """The pause is over: probe the partner with one message, then consume if it is up.

        The probe is fetched alone (``basic.get``) instead of by consuming again: a consumer
        would be handed a whole prefetch, and every message but the probe would be sent through
        a retry tier again and again for as long as the probe takes.
        """
        self._resume_handle = None
        try:
            while self._queue is not None and not self._stopping:
                if self.circuit.state is CircuitState.CLOSED:
                    break
                if self.circuit.retry_in > 0:  # the probe failed: the circuit opened again
                    log.warning("%s: probe failed; pausing again", self.connector_id)
                    self._resume_later(self.circuit.retry_in)
                    return
                if not self.circuit.accepting:
                    # A message still in hand from before the pause got the probe: fetching
                    # more now would only defer them. Look again when its answer is likely in.
                    self._resume_later(self._registered.config.circuit.open_seconds / 10)
                    return
                probe = await self._queue.get(no_ack=False, fail=False)
                if probe is None:
                    break  # nothing waits: consume, and the first message to come probes
                # A duplicate or a parked message makes no call: then the next one probes.
                await self._on_message(probe)
            if self._queue is None or self._stopping:
                return
            self._consumer_tag = await self._queue.consume(self._on_message, no_ack=False)
        except Exception:  # the channel is being restored after a broker outage, say
            log.warning("%s: could not resume; trying again", self.connector_id, exc_info=True)
            self._resume_later(self._registered.config.circuit.open_seconds)
            return
        self._paused = False
        CIRCUIT_OPEN.labels(self.connector_id).set(0)
        log.info("%s: consuming again (circuit %s)", self.connector_id, self.circuit.state)
        if self.circuit.state is CircuitState.OPEN:
            self._pause()  # a probe that came through the new consumer has already failed

    def _background(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _defer(self, message: AbstractIncomingMessage, event: EventEnvelope) -> None:
        """The circuit is open: send the message back through a retry tier, attempt unspent."""
        tiers = sorted(self._runtime.retry_tiers)
        wait = self.circuit.retry_in
        delay = next((t for t in tiers if t >= wait), tiers[-1])
        await self._runtime.broker.publish(
            OutgoingMessage(
                exchange=self._runtime.names.retry(delay),
                routing_key=self.queue_name,
                body=message.body,
                message_id=event.id,
                correlation_id=event.correlationid,
                content_type=message.content_type or "application/cloudevents+json",
                headers=dict(message.headers or {}),
            )
        )
        self._count("deferred", event)
        self._acks.ack(message)

    def _hop(
        self, event: EventEnvelope, received_at: datetime, attempt: int, **values: Any
    ) -> dict[str, Any]:
        return {
            "message_id": event.id,
            "dossier_code": event.subject,
            "correlation_id": event.correlationid,
            "kind": "deliver",
            "sender": "bus",
            "recipient": self.connector_id,
            "received_at": received_at,
            "sent_at": None,
            "answered_at": None,
            "request_bytes": 0,
            "response_bytes": 0,
            "fault_code": None,
            "fault_detail": None,
            "mapping_version": None,
            "attempt": attempt,
            "signatures": None,
            **values,
        }

    async def _superseded(self, event: EventEnvelope) -> bool:
        """Whether this consumer was already handed a later event of the dossier.

        A status event that was retried can arrive after a newer one; delivering it would tell
        the partner an older status last, so it is recorded and skipped instead.
        """
        position = await self._positions.submit(event.subject)
        return position is not None and position >= event.dossierseq

    def _superseded_record(
        self, event: EventEnvelope, received_at: datetime, attempt: int
    ) -> DeliveryRecord:
        return DeliveryRecord(
            consumer=self.connector_id,
            message_id=event.id,
            dossier_code=event.subject,
            hop_row=self._hop(event, received_at, attempt, outcome="superseded"),
        )

    async def _check_positions(self, dossier_codes: Sequence[str]) -> list[int | Exception | None]:
        known = await consumer_positions_of(self._runtime.engine, self.connector_id, dossier_codes)
        return [known.get(code) for code in dossier_codes]

    def _record(
        self,
        delivery: Delivery,
        received_at: datetime,
        receipt: DeliveryReceipt,
        signed: Sequence[Mapping[str, Any]] = (),
    ) -> DeliveryRecord:
        event = delivery.event
        return DeliveryRecord(
            consumer=self.connector_id,
            message_id=event.id,
            dossier_code=event.subject,
            hop_row=self._hop(
                event,
                received_at,
                delivery.attempt,
                sent_at=receipt.sent_at,
                answered_at=receipt.answered_at,
                request_bytes=receipt.request_size,
                response_bytes=receipt.response_size,
                mapping_version=receipt.mapping_version,
                signatures=list(signed) or None,
            ),
            new_status=receipt.status,
            partner_reference=receipt.partner_reference,
            cause=event,
            agency=self._registered.config.agency,
            note=receipt.note,
            changed_at=_partner_time(receipt),
            delivered_sequence=event.dossierseq if delivery.change is not None else None,
            step_id=None if delivery.step is None else delivery.step.step,
        )

    async def _fail(
        self,
        message: AbstractIncomingMessage,
        event: EventEnvelope,
        received_at: datetime,
        attempt: int,
        error: BusError,
        signed: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        delays = self._registered.config.retry.delays or self._settings.retry_delays
        retry = error.transient and attempt <= len(delays)
        outcome = "retry" if retry else "parked"
        await self._commit.submit(
            self._failed_record(event, received_at, attempt, error, outcome, signed)
        )
        if retry:
            delay = delays[attempt - 1]
            await self._runtime.broker.publish(
                OutgoingMessage(
                    exchange=self._runtime.names.retry(delay),
                    routing_key=self.queue_name,
                    body=message.body,
                    message_id=event.id,
                    correlation_id=event.correlationid,
                    content_type=message.content_type or "application/cloudevents+json",
                    headers={**(message.headers or {}), ATTEMPT_HEADER: attempt + 1},
                )
            )
            self._count("retried", event)
            log.info(
                "%s: %s attempt %d failed (%s); retry in %ss",
                self.connector_id,
                event.subject,
                attempt,
                error.fault_code,
                delay,
            )
        else:
            await self._park(message, error, attempt)
            self._count("parked", event)
        self._acks.ack(message)

    def _failed_record(
        self,
        event: EventEnvelope,
        received_at: datetime,
        attempt: int,
        error: BusError,
        outcome: str,
        signed: Sequence[Mapping[str, Any]] = (),
    ) -> DeliveryRecord:
        """The hop of a failed attempt: evidence only, the message stays unprocessed."""
        return DeliveryRecord(
            consumer=self.connector_id,
            message_id=event.id,
            dossier_code=event.subject,
            hop_row=self._hop(
                event,
                received_at,
                attempt,
                outcome=outcome,
                fault_code=error.fault_code,
                fault_detail=error.message[:2000],
                signatures=list(signed) or None,
            ),
            failed=True,
        )

    async def _park(self, message: AbstractIncomingMessage, error: BusError, attempt: int) -> None:
        """Publish the message to the parking queue with why it failed (confirmed)."""
        reason = error.message
        if error.transient:
            reason = f"retries exhausted after {attempt} attempts: {reason}"
        await self._runtime.broker.publish(
            OutgoingMessage(
                exchange=self._runtime.names.dead,
                routing_key=message.routing_key or self.queue_name,
                body=message.body,
                message_id=message.message_id or "",
                correlation_id=message.correlation_id,
                content_type=message.content_type or "application/octet-stream",
                headers={
                    **(message.headers or {}),
                    "x-bus-reason": reason[:2000],
                    "x-bus-fault-code": error.fault_code,
                    "x-bus-error-class": error.error_class,
                    "x-bus-connector": self.connector_id,
                    "x-bus-queue": self.queue_name,
                    "x-bus-attempts": attempt,
                    "x-bus-parked-at": datetime.now(UTC).isoformat(),
                },
            )
        )
        log.warning("%s: parked %s: %s", self.connector_id, message.message_id, reason)


async def run_workers(runtime: Runtime, connector_ids: Sequence[str] = ()) -> list[ConnectorWorker]:
    """Start one worker per connector (all registered ones when ``connector_ids`` is empty).

    Connectors of kind ``poller`` have no queue to consume: :func:`bus.poller.run_pollers`
    runs them.
    """
    ids = list(connector_ids) or runtime.registry.ids
    registered = [runtime.registry.get(cid) for cid in ids]
    workers = [ConnectorWorker(runtime, r) for r in registered if r.config.kind != "poller"]
    for worker in workers:
        await worker.start()
    return workers


def _partner_time(receipt: DeliveryReceipt) -> datetime:
    """When the partner dated its answer; the bus's time when it gave none, or one too far
    ahead of the bus's clock to be believed (it would make the answers after it look stale)."""
    dated = receipt.changed_at
    if dated is None or dated > receipt.answered_at + FUTURE_TOLERANCE:
        return receipt.answered_at
    return dated


def _procedure_of(event: EventEnvelope) -> str:
    """The procedure of the dossier an event carries (a submitted dossier or a step order)."""
    data = event.data if isinstance(event.data, dict) else {}
    dossier = data.get("dossier") if isinstance(data.get("dossier"), dict) else data
    procedure = dossier.get("procedure_code") if isinstance(dossier, dict) else None
    return procedure if isinstance(procedure, str) else NO_PROCEDURE


def _observe(connector_id: str, receipt: DeliveryReceipt, received_at: datetime) -> None:
    """The partner's time and the hop's, for the latency histograms."""
    PARTNER_CALL_SECONDS.labels(connector_id).observe(
        max(0.0, (receipt.answered_at - receipt.sent_at).total_seconds())
    )
    HOP_SECONDS.labels(connector_id).observe(
        max(0.0, (datetime.now(UTC) - received_at).total_seconds())
    )
