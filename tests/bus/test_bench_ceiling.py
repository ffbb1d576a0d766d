"""The raw ceiling measures what it says on the real broker, and leaves nothing behind."""

from __future__ import annotations

import aio_pika
import pytest
from aiormq.exceptions import ChannelNotFoundEntity

from bus.bench.ceiling import dossier_event_size, measure_ceiling, percentile
from tests.conftest import AMQP_URL

pytestmark = pytest.mark.broker


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99)) == (
        50.0, 95.0, 99.0,
    )  # fmt: skip
    assert percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_the_payload_is_the_size_of_a_dossier_event() -> None:
    assert 1_000 < dossier_event_size() < 10_000


async def test_every_message_is_counted_once_and_the_queue_is_deleted() -> None:
    result = await measure_ceiling(AMQP_URL, messages=600, payload_bytes=2_000, in_flight=64)
    assert (result.messages, result.payload_bytes) == (600, 2_000)
    assert result.seconds > 0 and result.per_second == pytest.approx(600 / result.seconds)
    assert 0 <= result.p50_ms <= result.p95_ms <= result.p99_ms
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        with pytest.raises(ChannelNotFoundEntity):
            await channel.declare_queue(result.queue, passive=True)
    finally:
        await connection.close()


async def test_nothing_to_measure_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        await measure_ceiling(AMQP_URL, messages=0, payload_bytes=10)
