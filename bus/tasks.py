"""Stopping the background tasks that the bus's long-running parts keep.

The relay, its sent-marks, the deadline scanner, pollers, the webhook dispatcher and the
benchmark's sampler each run a loop in a task and stop it the same way: cancel it and wait until
it has unwound. :func:`cancel_and_wait` is that, once, with the detail the usual idiom
(``task.cancel()`` then ``await`` it with ``CancelledError`` suppressed) gets wrong: when the
caller is itself cancelled while it waits, the idiom swallows the caller's cancellation too.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (``None``: nothing to do) and return once it has finished.

    The task's own cancellation ends here; the caller's, if it comes while waiting, goes on.
    An exception the task raised while unwinding goes on too.
    """
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
