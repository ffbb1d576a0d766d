"""Turns per dossier: work on one dossier runs in arrival order, other dossiers run alongside.

A worker handles many messages at once (its prefetch), but two events of the same dossier must
reach the partner in the order they were published. :class:`asyncio.Lock` wakes its waiters in
the order they queued, so taking a dossier's lock before the first ``await`` of a message's
handling keeps the broker's delivery order for that dossier.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class DossierTurns:
    """One FIFO lock per dossier in use; a dossier's lock is dropped when nobody holds it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._holders: dict[str, int] = {}

    @asynccontextmanager
    async def turn(self, dossier_code: str) -> AsyncIterator[None]:
        """Wait for every earlier message of ``dossier_code`` to finish, then run."""
        lock = self._locks.get(dossier_code)
        if lock is None:
            lock = self._locks[dossier_code] = asyncio.Lock()
        self._holders[dossier_code] = self._holders.get(dossier_code, 0) + 1
        try:
            async with lock:
                yield
        finally:
            left = self._holders[dossier_code] - 1
            if left:
                self._holders[dossier_code] = left
            else:
                del self._holders[dossier_code], self._locks[dossier_code]

    def __len__(self) -> int:
        """How many dossiers have a message in hand."""
        return len(self._locks)
