"""cancel_and_wait: a background task is cancelled and waited for; the caller's cancellation
is never swallowed on the way."""

from __future__ import annotations

import asyncio

import pytest

from bus.tasks import cancel_and_wait


async def test_the_task_has_unwound_when_the_call_returns() -> None:
    unwound: list[str] = []

    async def loop() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.01)  # cleanup that itself waits
            unwound.append("done")

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert unwound == ["done"] and task.cancelled()


async def test_no_task_is_nothing_to_do() -> None:
    await cancel_and_wait(None)


async def test_a_cancelled_caller_stays_cancelled() -> None:
    """The usual idiom (suppress CancelledError around the await) would have let the caller
    return normally here."""
    release = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await release.wait()

    task = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    stopping = asyncio.create_task(cancel_and_wait(task))
    await asyncio.sleep(0.01)
    stopping.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert task.done()


async def test_an_error_raised_while_unwinding_goes_on() -> None:
    async def fails_to_stop() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            raise RuntimeError("cleanup failed")

    task = asyncio.create_task(fails_to_stop())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="cleanup failed"):
        await cancel_and_wait(task)
