"""PartnerClients: one-connection clients lent a call at a time, replaced when a call is cancelled.

The partner is a real HTTP server on loopback and the clients are real httpx clients: the failure
the pool guards against (a cancelled request leaves a connection slot stuck for good,
encode/httpcore#1093) lives inside httpcore, so only the real library shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from bus.partner_clients import PartnerClients


class Partner:
    """A keep-alive HTTP/1.1 server answering ``{}``; it can hold answers back, or hang up."""

    def __init__(self) -> None:
        self.hold = asyncio.Event()
        self.hold.set()
        self.hang_up_odds = 0.0
        self.asked = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._open):
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        try:
            await self._answer(reader, writer)
        finally:
            self._open.discard(writer)
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while True:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = await reader.read(4096)
                    if not chunk:
                        return
                    head += chunk
                self.asked.set()
                await self.hold.wait()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
                if random.random() < self.hang_up_odds:
                    return  # _serve closes the connection


@pytest.fixture
async def partner() -> AsyncIterator[Partner]:
    server = Partner()
    await server.start()
    yield server
    server.hold.set()
    await server.stop()


def maker(made: list[httpx.AsyncClient], **options: object) -> Callable[[], httpx.AsyncClient]:
    """A client factory that keeps what it made, as the kits' factories do not."""

    def make() -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(0.5),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            **options,  # type: ignore[arg-type]
        )
        made.append(client)
        return client

    return make


async def test_clients_are_lent_last_in_first_out(partner: Partner) -> None:
    made: list[httpx.AsyncClient] = []
    clients = PartnerClients(maker(made), 3, wait_seconds=1, name="test")
    async with clients.lend() as first:
        async with clients.lend() as second:
            assert first is not second
        async with clients.lend() as again:
            assert again is second  # the warmest one
    assert len(made) == 3 and clients.replaced == 0
    await clients.aclose()


async def test_waiting_longer_than_allowed_for_a_client_is_a_pool_timeout(partner: Partner) -> None:
    clients = PartnerClients(maker([]), 1, wait_seconds=0.2, name="test")
    async with clients.lend():
        with pytest.raises(httpx.PoolTimeout, match="came free"):
            async with clients.lend():
                pass
    # The failed wait spoiled nothing: the one client serves the next call.
    async with clients.lend() as client:
        assert (await client.get(partner.url)).status_code == 200
    assert clients.replaced == 0
    await clients.aclose()


async def test_a_client_whose_call_was_cancelled_is_closed_and_replaced(partner: Partner) -> None:
    made: list[httpx.AsyncClient] = []
    clients = PartnerClients(maker(made), 1, wait_seconds=1, name="test")
    partner.hold.clear()  # the partner holds its answer: the call is in flight when cancelled

    async def call() -> None:
        async with clients.lend() as client:
            await client.get(partner.url)

    calling = asyncio.create_task(call())
    await asyncio.wait_for(partner.asked.wait(), 5)
    calling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await calling
    partner.hold.set()

    async with clients.lend() as client:
        assert client is made[1], "the cancelled call's client was lent again"
        assert (await client.get(partner.url)).status_code == 200
    assert clients.replaced == 1
    await asyncio.sleep(0)  # the spoiled client closes in a task of its own
    await clients.aclose()
    assert made[0].is_closed and made[1].is_closed


def failing_clients(
    error: type[httpx.TransportError], count: int, made: list[httpx.AsyncClient]
) -> PartnerClients:
    """``count`` clients whose every call raises ``error``."""

    def fail(request: httpx.Request) -> httpx.Response:
        raise error("injected", request=request)

    return PartnerClients(
        maker(made, transport=httpx.MockTransport(fail)), count, wait_seconds=1, name="test"
    )


async def test_a_lent_client_that_reports_a_pool_timeout_is_replaced() -> None:
    made: list[httpx.AsyncClient] = []
    clients = failing_clients(httpx.PoolTimeout, 2, made)
    with pytest.raises(httpx.PoolTimeout):
        async with clients.lend() as client:
            await client.get("http://partner.invalid/")
    assert clients.replaced == 1
    async with clients.lend() as client:
        assert client is made[2]
    await clients.aclose()


async def test_a_client_whose_call_failed_serves_again() -> None:
    made: list[httpx.AsyncClient] = []
    clients = failing_clients(httpx.ConnectError, 1, made)
    for _ in range(3):
        with pytest.raises(httpx.ConnectError):
            async with clients.lend() as client:
                await client.get("http://partner.invalid/")
    assert len(made) == 1 and clients.replaced == 0
    await clients.aclose()


async def test_calls_cancelled_at_any_moment_never_leave_a_stuck_client(partner: Partner) -> None:
    """A thousand calls and more cancelled at random moments, on a partner that sometimes hangs up
    (so that calls also open new connections): the call after each always gets an answer.

    With bare httpx clients a few cancelled calls in a thousand leave the client's one slot
    stuck, and every later call on it fails with PoolTimeout."""
    partner.hang_up_odds = 0.3
    rng = random.Random(1093)
    clients = PartnerClients(maker([]), 1, wait_seconds=1, name="test")

    async def call() -> int:
        async with clients.lend() as client:
            return (await client.get(partner.url)).status_code

    cancelled = 0
    for _ in range(1500):
        calling = asyncio.create_task(call())
        if rng.random() < 0.5:
            for _ in range(rng.randint(0, 8)):
                await asyncio.sleep(0)
        else:
            await asyncio.sleep(rng.random() * 0.003)
        if not calling.done():
            calling.cancel()
            cancelled += 1
        with contextlib.suppress(asyncio.CancelledError):
            await calling
        assert await call() == 200
    assert cancelled > 500
    assert 0 < clients.replaced <= cancelled  # a task cancelled before its first step lent none
    await clients.aclose()
