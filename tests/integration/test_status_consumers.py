"""Connectors that consume status events: per-dossier order, and no older status after a newer.

A recording connector subscribes to ``dossier.status.#`` on the real broker. Its partner call
takes a random time, so without per-dossier turns the worker's concurrent handling would
deliver a dossier's events out of order.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from bus import events
from bus.amqp import OutgoingMessage
from bus.connector import ConnectorConfig, Delivery, DeliveryReceipt, RetryPolicy
from bus.errors import PartnerUnavailable
from bus.registry import ConnectorRegistry, RegisteredConnector
from bus.routing import status_key
from bus.runtime import Runtime
from bus.store.schema import hops
from bus.worker import ConnectorWorker
from contracts import DossierStatus, StatusChange
from tests.conftest import FAST_RETRIES, make_settings

pytestmark = [pytest.mark.broker]

CONSUMER = "status_log"
AGENCY = "000.00.10.H12"
PARTNER = "000.00.00.G12"


@dataclass
class StatusLog:
    """What the consuming partner was told, in the order it was told."""

    seen: list[tuple[str, int, int]] = field(default_factory=list)
    #: (dossier, sequence) whose first call the partner answers "busy".
    fail_once: set[tuple[str, int]] = field(default_factory=set)
    calls: int = 0

    def factory(self, config: ConnectorConfig) -> LoggingConnector:
        return LoggingConnector(config, self)


class LoggingConnector:
    """A consumer whose partner answers after a random pause and keeps what it was told."""

    def __init__(self, config: ConnectorConfig, log: StatusLog) -> None:
        self.config = config
        self._log = log

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        change = delivery.require_change()
        sent_at = datetime.now(UTC)
        self._log.calls += 1
        await asyncio.sleep(random.uniform(0, 0.02))
        key = (change.dossier_code, delivery.event.dossierseq)
        if key in self._log.fail_once:
            self._log.fail_once.discard(key)
            raise PartnerUnavailable("partner busy", fault_code="HTTP_503")
        self._log.seen.append((change.dossier_code, delivery.event.dossierseq, int(change.status)))
        return DeliveryReceipt(status=None, sent_at=sent_at, answered_at=datetime.now(UTC))

    async def aclose(self) -> None:
        return None


@pytest.fixture(params=[False], ids=["tier-retries"])
def keep_order(request: pytest.FixtureRequest) -> bool:
    """Whether the consumer retries in place (overridden by parametrised tests)."""
    value: bool = request.param
    return value


@pytest.fixture
async def consumer(
    namespace: str, sqlite_url: str, broker_cleanup: list[str], keep_order: bool
) -> AsyncIterator[tuple[Runtime, StatusLog]]:
    broker_cleanup.append(CONSUMER)
    log = StatusLog()
    config = ConnectorConfig(
        id=CONSUMER,
        kind="custom",
        agency=PARTNER,
        title="Status log",
        endpoint="http://127.0.0.1:9",  # type: ignore[arg-type]
        subscribes=("dossier.status.#",),
        concurrency=8,
        retry=RetryPolicy(delays=(FAST_RETRIES[0],), keep_order=keep_order),
    )
    registry = ConnectorRegistry([RegisteredConnector(log.factory, config)])
    runtime = await Runtime.open(
        make_settings(namespace, sqlite_url), name="test-consumer", registry=registry
    )
    yield runtime, log
    await runtime.close()


def _status_event(
    runtime: Runtime, code: str, sequence: int, status: DossierStatus
) -> OutgoingMessage:
    change = StatusChange(
        dossier_code=code,
        status=status,
        changed_at=datetime(2026, 11, 20, 9, tzinfo=UTC) + timedelta(minutes=sequence),
        agency=PARTNER,
    )
    event = events.status_changed(change, sequence=sequence, correlation_id=f"run-{code}")
    return OutgoingMessage(
        exchange=runtime.names.events,
        routing_key=status_key(status, AGENCY),
        body=events.encode(event),
        message_id=event.id,
        mandatory=True,
    )


async def _publish(runtime: Runtime, messages: list[OutgoingMessage]) -> None:
    for message in messages:  # one by one: the broker's order is the publication order
        await runtime.broker.publish(message)


async def _drained(worker: ConnectorWorker, handled: int, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while sum(worker.counts.values()) < handled:
        assert asyncio.get_running_loop().time() < deadline, worker.counts
        await asyncio.sleep(0.02)


STEPS = [
    DossierStatus.ACCEPTED,
    DossierStatus.PROCESSING,
    DossierStatus.SUPPLEMENT_REQUESTED,
    DossierStatus.PROCESSING,
    DossierStatus.PROCESSED,
    DossierStatus.RESULT_RETURNED,
]


async def test_status_events_reach_a_consumer_in_dossier_order(
    consumer: tuple[Runtime, StatusLog],
) -> None:
    runtime, log = consumer
    codes = [f"{AGENCY}-261120-{n:04d}" for n in range(1, 6)]
    messages = [
        _status_event(runtime, code, sequence, status)
        for sequence, status in enumerate(STEPS, start=2)
        for code in codes  # dossiers interleaved, as they are on the exchange
    ]
    await _publish(runtime, messages)

    worker = ConnectorWorker(runtime, runtime.registry.get(CONSUMER))
    await worker.start()
    try:
        await _drained(worker, len(messages))
    finally:
        await worker.stop()

    assert worker.counts["delivered"] == len(messages)
    for code in codes:
        told = [(seq, status) for c, seq, status in log.seen if c == code]
        assert told == [(seq, int(s)) for seq, s in enumerate(STEPS, start=2)], code


async def test_an_older_status_after_a_newer_one_is_superseded_not_delivered(
    consumer: tuple[Runtime, StatusLog],
) -> None:
    runtime, log = consumer
    code = f"{AGENCY}-261120-0042"
    newer = _status_event(runtime, code, 5, DossierStatus.PROCESSED)
    older = _status_event(runtime, code, 3, DossierStatus.PROCESSING)  # e.g. back from a retry tier
    await _publish(runtime, [newer, older, newer])  # and the newer one redelivered

    worker = ConnectorWorker(runtime, runtime.registry.get(CONSUMER))
    await worker.start()
    try:
        await _drained(worker, 3)
    finally:
        await worker.stop()

    assert log.seen == [(code, 5, int(DossierStatus.PROCESSED))]
    assert worker.counts["delivered"] == 1
    assert worker.counts["superseded"] == 1
    assert worker.counts["duplicate"] == 1
    async with runtime.engine.connect() as connection:
        outcomes = dict(
            (
                await connection.execute(
                    sa.select(hops.c.message_id, hops.c.outcome).where(
                        hops.c.dossier_code == code, hops.c.recipient == CONSUMER
                    )
                )
            ).all()
        )
    assert outcomes == {newer.message_id: "delivered", older.message_id: "superseded"}


@pytest.mark.parametrize("keep_order", [False, True], ids=["tier-retries", "keep-order"])
async def test_a_retried_status_is_overtaken_unless_the_consumer_keeps_order(
    consumer: tuple[Runtime, StatusLog], keep_order: bool
) -> None:
    """Through a retry tier a failed status is overtaken and skipped; in place it is not."""
    runtime, log = consumer
    code = f"{AGENCY}-261120-0077"
    log.fail_once.add((code, 2))
    await _publish(
        runtime,
        [
            _status_event(runtime, code, 2, DossierStatus.PROCESSING),
            _status_event(runtime, code, 3, DossierStatus.PROCESSED),
        ],
    )
    worker = ConnectorWorker(runtime, runtime.registry.get(CONSUMER))
    await worker.start()
    try:
        await _drained(worker, 3)  # two settled, one retried
    finally:
        await worker.stop()

    told = [(seq, status) for _, seq, status in log.seen]
    if keep_order:
        assert told == [(2, 4), (3, 9)]  # every step, in order
        assert worker.counts["superseded"] == 0
    else:
        assert told == [(3, 9)]  # the retried 2 came back after 3 and was skipped
        assert worker.counts["superseded"] == 1
    assert worker.counts["retried"] == 1 and worker.counts["parked"] == 0


@pytest.mark.parametrize("keep_order", [True], ids=["keep-order"])
async def test_a_message_held_for_a_retry_is_given_back_when_the_worker_stops(
    consumer: tuple[Runtime, StatusLog], keep_order: bool
) -> None:
    """Stopping while a message waits in place requeues it: the next worker delivers it."""
    runtime, log = consumer
    code = f"{AGENCY}-261120-0078"
    log.fail_once.add((code, 2))
    config = runtime.registry.get(CONSUMER).config
    slow = config.model_copy(update={"retry": RetryPolicy(delays=(600.0,), keep_order=True)})
    first = ConnectorWorker(runtime, RegisteredConnector(log.factory, slow))
    await first.start()
    await _publish(runtime, [_status_event(runtime, code, 2, DossierStatus.PROCESSING)])
    await _drained(first, 1)  # the failed attempt, now held for 600 s
    started = asyncio.get_running_loop().time()
    await first.stop()
    assert asyncio.get_running_loop().time() - started < 5  # not the 600 s hold
    assert log.seen == []

    second = ConnectorWorker(runtime, runtime.registry.get(CONSUMER))
    await second.start()
    try:
        await _drained(second, 1)
    finally:
        await second.stop()
    assert log.seen == [(code, 2, int(DossierStatus.PROCESSING))]
    assert second.counts["delivered"] == 1
