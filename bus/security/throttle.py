"""Rate limits per client, and per address for failed authentications: an abuser slows itself.

Each authenticated request spends one unit of its client's limit (``BUS_CLIENT_RATE_LIMIT``, or
the client's own ``rate_limit`` in the directory); past it the client is answered 429 with
``Retry-After`` and the request does no work, so its flood costs others nothing beyond reading
its headers. An address that keeps failing to authenticate is cut off the same way
(``BUS_AUTH_FAILURE_RATE_LIMIT``), which bounds secret guessing.

Counting uses the ``limits`` library's sliding-window counters: two counters per key and limit,
the previous window's count weighted by how much of it the sliding window still covers. Its
moving windows were exact but kept one entry per request (6,000 per client for a limit of 6,000
a minute), and in memory they cost every request a new expiry task with a trip to a thread per
key. Its storage is ``BUS_RATE_LIMIT_STORAGE``:
``memory://`` counts in each API process (N processes behind a load balancer allow up to N times
the limit), ``redis://host:6379`` counts once for the whole cluster.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string

__all__ = ["Throttle", "parse_limits"]


def parse_limits(text: str) -> tuple[RateLimitItem, ...]:
    """``"100/second;2000/minute"`` as limits; ValueError naming the text if it is not one."""
    try:
        return tuple(parse_many(text))
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not a rate limit (e.g. 100/second or 100/second;2000/minute)"
        ) from exc


@dataclass(frozen=True, slots=True)
class Throttle:
    """Counts requests per key against limits; answers how long to wait when one is exceeded."""

    limiter: SlidingWindowCounterRateLimiter

    @classmethod
    def from_uri(cls, uri: str) -> Throttle:
        """A throttle counting in the storage at ``uri`` (``memory://``, ``redis://…``)."""
        # The async flavour of each storage is named with an ``async+`` prefix.
        storage = storage_from_string(uri if uri.startswith("async+") else f"async+{uri}")
        if not isinstance(storage, Storage):
            raise ValueError(f"{uri} is not an asynchronous rate-limit storage")
        return cls(SlidingWindowCounterRateLimiter(storage))

    async def spend(self, key: str, limits: Sequence[RateLimitItem]) -> float | None:
        """Count one request of ``key``; the seconds to wait if a limit was already reached."""
        for item in limits:
            if not await self.limiter.hit(item, key):
                return await self._wait(item, key)
        return None

    async def blocked(self, key: str, limits: Sequence[RateLimitItem]) -> float | None:
        """The seconds ``key`` must wait because a limit is reached, without counting."""
        for item in limits:
            if not await self.limiter.test(item, key):
                return await self._wait(item, key)
        return None

    async def _wait(self, item: RateLimitItem, key: str) -> float:
        stats = await self.limiter.get_window_stats(item, key)
        return max(1.0, math.ceil(stats.reset_time - time.time()))
