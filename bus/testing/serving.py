"""Serving an ASGI app (a partner simulator, the bus API) on a real loopback port for tests."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn

__all__ = ["ServerStartError", "aserve_app", "serve_app"]


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
