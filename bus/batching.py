"""Group commit: many concurrent callers, one database transaction (or broker round) per batch.

While one batch is being written, newcomers queue up; the next batch takes all of them. At low
load a batch is one item and adds no delay; under load the cost of each commit (an fsync on
SQLite, a round trip on PostgreSQL) is shared by up to ``max_batch`` items. No timer is involved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from bus.errors import Backlogged

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

#: Handles a whole batch; returns one result per item, or the exception for that item alone.
BatchHandler = Callable[[Sequence[Item]], Awaitable[Sequence[Result | Exception]]]


class Batcher(Generic[Item, Result]):
    """Runs ``handler`` over batches of submitted items from a single background task."""

    def __init__(
        self,
        handler: BatchHandler[Item, Result],
        *,
        max_batch: int = 500,
        name: str = "batch",
        max_pending: int | None = None,
    ) -> None:
        self._handler = handler
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._name = name
        # ``None`` is the stop sentinel: everything queued before it is still handled.
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future[Result]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"batcher:{self._name}")

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.put(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def submit(self, item: Item) -> Result:
        """Queue ``item`` and wait until the batch that holds it has been handled."""
        if self._task is None or self._task.done():
            raise RuntimeError(f"batcher {self._name} is not running")
        if self._max_pending is not None and self._queue.qsize() >= self._max_pending:
            raise Backlogged(f"{self._name}: {self._max_pending} items already wait")
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                entry = self._queue.get_nowait()
                if entry is None:
                    stopping = True
                    break
                batch.append(entry)
            try:
                results = await self._handler([item for item, _ in batch])
            except Exception as exc:  # the whole batch failed: every caller learns why
                log.warning("%s batch of %d failed: %r", self._name, len(batch), exc)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # the caller was cancelled
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
