"""Group commit: batches form under load, and the backlog waiting for them is bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from bus.batching import Batcher
from bus.errors import Backlogged


async def test_waiting_items_share_one_batch_and_a_full_backlog_is_refused() -> None:
    """While one batch is handled the next items wait together; past ``max_pending`` waiting,
    a submission is refused at once (Backlogged, transient) and the others still complete."""
    release = asyncio.Event()
    batches: list[list[int]] = []

    async def handle(items: Sequence[int]) -> Sequence[int | Exception]:
        batches.append(list(items))
        await release.wait()
        return [item * 10 for item in items]

    batcher: Batcher[int, int] = Batcher(handle, name="test", max_pending=3)
    batcher.start()
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)  # the first batch starts and holds
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(batcher.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    with pytest.raises(Backlogged, match="3 items already wait") as refused:
        await batcher.submit(5)
    assert refused.value.transient
    release.set()
    assert await first == 10
    assert [await task for task in waiting] == [20, 30, 40]
    assert batches == [[1], [2, 3, 4]]
    await batcher.stop()
