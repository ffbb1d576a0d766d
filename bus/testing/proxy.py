"""A loopback TCP proxy whose link can be cut, to test reconnection for real."""

from __future__ import annotations

import asyncio
import threading

__all__ = ["TcpProxy"]


class TcpProxy:
    """A loopback TCP proxy whose link can be cut, to test reconnection for real.

    Point a client at ``proxy.port`` instead of the server's port; :meth:`cut` drops every open
    connection and refuses new ones until :meth:`restore`. Nothing in the client or the server
    is patched: the client sees exactly what a network failure or a restarted peer looks like.
    Runs in its own thread, so it keeps serving while the test blocks. A hand-written proxy
    because the usual tool for this (toxiproxy) is a separate server binary.

        with TcpProxy("127.0.0.1", 5672) as proxy:
            url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
            ...
            proxy.cut()
            proxy.restore()
    """

    def __init__(
        self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1"
    ) -> None:
        self._target = (target_host, target_port)
        self._listen_host = listen_host
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tcp-proxy", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._cut = False
        self.port = 0
        self.connections = 0

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def cut(self) -> None:
        """Drop every proxied connection now and refuse new ones."""
        asyncio.run_coroutine_threadsafe(self._drop_all(refuse=True), self._loop).result(10)

    def restore(self) -> None:
        """Accept and forward connections again."""
        self._cut = False

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self._listen_host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        await self._drop_all(refuse=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _drop_all(self, *, refuse: bool) -> None:
        self._cut = refuse
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, not a polite close: as when a link dies
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers.update({writer, upstream_writer})
        await asyncio.gather(
            self._pipe(reader, upstream_writer),
            self._pipe(upstream_reader, writer),
            return_exceptions=True,
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
