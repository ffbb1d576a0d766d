"""One-connection HTTP clients, lent to a connector's partner calls one call at a time.

The SOAP and REST kits call their partner through a :class:`PartnerClients` of
``concurrency`` clients instead of one ``httpx.AsyncClient`` with a pool of that size:

- **Cost.** httpcore scans every pooled connection (expiry checks that ask the socket) on
  each request; at eight connections that was a tenth of a worker's CPU. A client of one
  connection scans one.
- **A cancelled call can ruin a pool for good.** httpcore 1.0.9 leaves a connection in its
  pool, owned by no request and never cleaned up, when the task making a request is cancelled
  between the pool's choice of connection and its use (encode/httpcore#1093, open at the time
  of writing). The slot stays taken: once a pool's slots are all gone every call to that pool
  waits ``timeout_seconds`` and fails with ``PoolTimeout`` against a healthy partner, until the
  process restarts. Calls are cancelled for ordinary reasons (the broker channel that delivered
  the message closes, the worker stops), so a client whose call was cancelled is closed and
  replaced by a fresh one; so is a client that reports ``PoolTimeout`` although it was lent to
  one call only, whatever got its slot stuck.

Clients are lent last in, first out: the warmest connection serves next and spare ones may
expire, as httpcore's own pool would have it. Waiting for a client takes at most
``wait_seconds`` and then raises ``httpx.PoolTimeout``, as httpx's pool does, so callers
classify it as they always have.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from bus.metrics import PARTNER_CLIENTS_REPLACED

__all__ = ["PartnerClients"]

_log = logging.getLogger(__name__)


class PartnerClients:
    """``count`` clients made by ``make``, lent one call at a time (see the module's notes).

    ``name`` (the connector id) labels the log lines and the replacement counter.
    """

    def __init__(
        self,
        make: Callable[[], httpx.AsyncClient],
        count: int,
        *,
        wait_seconds: float,
        name: str,
    ) -> None:
        if count < 1:
            raise ValueError(f"{name}: at least one partner client is needed, not {count}")
        self._make = make
        self._wait_seconds = wait_seconds
        self._name = name
        self._clients = [make() for _ in range(count)]
        self._idle: asyncio.LifoQueue[httpx.AsyncClient] = asyncio.LifoQueue()
        for client in self._clients:
            self._idle.put_nowait(client)
        self._closing: set[asyncio.Task[None]] = set()
        #: Clients replaced so far (a cancelled call, or a slot found stuck).
        self.replaced = 0

    @classmethod
    def one_connection(
        cls, count: int, *, timeout_seconds: float, name: str, **options: Any
    ) -> PartnerClients:
        """``count`` clients of one connection each, made with httpx.AsyncClient's
        ``options``, one TLS context for all (as one pooled client would have had), redirects
        never followed; a call waits for a client as long as it would for an answer."""
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        tls = httpx.create_ssl_context()

        def make() -> httpx.AsyncClient:
            return httpx.AsyncClient(
                timeout=httpx.Timeout(timeout_seconds), limits=one, verify=tls,
                follow_redirects=False, **options,
            )  # fmt: skip

        return cls(make, count, wait_seconds=timeout_seconds, name=name)

    @property
    def first(self) -> httpx.AsyncClient:
        """One of the clients, for libraries that want a client to configure (zeep)."""
        return self._clients[0]

    @asynccontextmanager
    async def lend(self) -> AsyncIterator[httpx.AsyncClient]:
        """A client for one call, back to the idle ones when the call is over."""
        client = await self._take()
        healthy = False
        try:
            yield client
            healthy = True
        except httpx.PoolTimeout:
            # Lent to this call alone, so no other request can hold its connection: the slot
            # is stuck (the failure the module's notes describe).
            raise
        except Exception:
            healthy = True  # the call failed; the client did not
            raise
        finally:
            # A cancellation (or any BaseException) leaves ``healthy`` False too.
            self._idle.put_nowait(client if healthy else self._replace(client))

    async def aclose(self) -> None:
        """Close every client, and the replaced ones still closing."""
        for client in self._clients:
            await client.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def _take(self) -> httpx.AsyncClient:
        if not self._idle.empty():
            return self._idle.get_nowait()
        try:
            async with asyncio.timeout(self._wait_seconds):
                return await self._idle.get()
        except TimeoutError:
            raise httpx.PoolTimeout("no connection to the partner came free in time") from None

    def _replace(self, spoiled: httpx.AsyncClient) -> httpx.AsyncClient:
        fresh = self._make()
        self._clients[self._clients.index(spoiled)] = fresh
        self.replaced += 1
        PARTNER_CLIENTS_REPLACED.labels(self._name).inc()
        _log.info("%s: a partner client was replaced after a cancelled or stuck call", self._name)
        # Closed in a task of its own: the caller may be unwinding a cancellation, and a
        # close must not delay the call that is failing.
        closing = asyncio.get_running_loop().create_task(spoiled.aclose())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        return fresh
