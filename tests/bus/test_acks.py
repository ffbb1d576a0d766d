"""AckBatcher: settled deliveries acknowledged in as few frames as possible, never wrongly."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bus.acks import AckBatcher


@dataclass
class FakeChannel:
    """Records the ack frames a channel would send."""

    frames: list[tuple[int, bool]] = field(default_factory=list)
    is_closed: bool = False


@dataclass
class FakeMessage:
    """The part of an incoming message the batcher uses."""

    delivery_tag: int
    channel: FakeChannel

    async def ack(self, multiple: bool = False) -> None:
        self.channel.frames.append((self.delivery_tag, multiple))


def _acked(frames: list[tuple[int, bool]], delivered: range) -> set[int]:
    done: set[int] = set()
    for tag, multiple in frames:
        done |= {t for t in delivered if t <= tag} if multiple else {tag}
    return done


async def test_messages_settled_together_are_acked_with_one_frame() -> None:
    """Ten messages settled in the same loop turn cost a single multiple-ack."""
    channel = FakeChannel()
    batcher = AckBatcher()
    messages = [FakeMessage(tag, channel) for tag in range(1, 11)]
    for message in messages:
        batcher.received(message)  # type: ignore[arg-type]
    for message in messages:
        batcher.ack(message)  # type: ignore[arg-type]
    await batcher.drain()
    assert channel.frames == [(10, True)]


async def test_an_unsettled_message_is_never_covered_by_a_multiple_ack() -> None:
    """A slow message below settled ones keeps its own ack; the others are acked without it."""
    channel = FakeChannel()
    batcher = AckBatcher()
    messages = {tag: FakeMessage(tag, channel) for tag in range(1, 7)}
    for message in messages.values():
        batcher.received(message)  # type: ignore[arg-type]
    for tag in (1, 2, 4, 5, 6):
        batcher.ack(messages[tag])  # type: ignore[arg-type]
    await batcher.drain()
    assert channel.frames[0] == (2, True)
    assert 3 not in _acked(channel.frames, range(1, 7))
    assert _acked(channel.frames, range(1, 7)) == {1, 2, 4, 5, 6}
    batcher.ack(messages[3])  # type: ignore[arg-type]
    await batcher.drain()
    assert _acked(channel.frames, range(1, 7)) == set(range(1, 7))


async def test_out_of_order_settling_acks_everything_exactly() -> None:
    """Whatever the order of settling, every tag ends acked and no unsettled tag is acked early."""
    channel = FakeChannel()
    batcher = AckBatcher()
    messages = [FakeMessage(tag, channel) for tag in range(1, 101)]
    for message in messages:
        batcher.received(message)  # type: ignore[arg-type]
    order = sorted(messages, key=lambda m: (m.delivery_tag * 37) % 101)
    settled: set[int] = set()
    for index, message in enumerate(order):
        batcher.ack(message)  # type: ignore[arg-type]
        settled.add(message.delivery_tag)
        if index % 7 == 0:
            await batcher.drain()
            assert _acked(channel.frames, range(1, 101)) <= settled
    await batcher.drain()
    assert _acked(channel.frames, range(1, 101)) == set(range(1, 101))
    assert len(channel.frames) < 100


async def test_tags_of_a_closed_channel_are_dropped() -> None:
    """After the channel closed (the broker requeued its messages) nothing is acked on it."""
    channel = FakeChannel()
    batcher = AckBatcher()
    message = FakeMessage(1, channel)
    batcher.received(message)  # type: ignore[arg-type]
    channel.is_closed = True
    batcher.ack(message)  # type: ignore[arg-type]
    await batcher.drain()
    await asyncio.sleep(0)
    assert channel.frames == []


async def test_a_nacked_message_does_not_hold_back_the_others() -> None:
    """Forgetting a message (nacked elsewhere) lets the ones after it be acked together."""
    channel = FakeChannel()
    batcher = AckBatcher()
    messages = [FakeMessage(tag, channel) for tag in range(1, 4)]
    for message in messages:
        batcher.received(message)  # type: ignore[arg-type]
    batcher.forget(messages[0])  # type: ignore[arg-type]
    batcher.ack(messages[1])  # type: ignore[arg-type]
    batcher.ack(messages[2])  # type: ignore[arg-type]
    await batcher.drain()
    assert channel.frames == [(3, True)]
