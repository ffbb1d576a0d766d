"""Running the bus's processes: the API server, connector workers, and a supervisor for both.

``bus run`` is the embedded profile: it starts each piece as its own OS process, exactly as a
production deployment would (only the settings differ), and stops them all on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn
from prometheus_client import start_http_server

from bus.api.app import create_app
from bus.dead_letters import DeadLetterKeeper
from bus.deadlines import DeadlineScheduler
from bus.heap import freeze_startup_objects
from bus.poller import run_pollers
from bus.runtime import Runtime
from bus.settings import Settings
from bus.webhooks import WebhookDispatcher
from bus.worker import run_workers

log = logging.getLogger(__name__)


def serve_api(settings: Settings) -> None:
    """Serve the HTTP API in this process until SIGINT/SIGTERM."""
    uvicorn.run(
        create_app(settings, freeze_heap=True),
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )


async def serve_workers(settings: Settings, connector_ids: Sequence[str] = ()) -> None:
    """Run connectors, pollers, webhooks, deadline alerts, the dead-letter keeper and the relay
    until SIGINT/SIGTERM."""
    runtime = await Runtime.open(settings, name="bus-worker")
    if settings.worker_metrics_port:
        # Its own HTTP server (a thread): a worker has no API to hang /metrics on.
        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    ids = connector_ids or settings.connectors
    workers = await run_workers(runtime, ids)
    pollers = await run_pollers(runtime, ids)
    webhooks = WebhookDispatcher(runtime)
    await webhooks.start()
    # One per process; alerts are raised once in the store, so several workers are safe.
    deadlines = DeadlineScheduler(runtime)
    deadlines.start()
    # Competing keepers on one parking queue are harmless: each message is kept once.
    keeper = DeadLetterKeeper(runtime)
    await keeper.start()
    served = [w.connector_id for w in workers] + [p.connector_id for p in pollers]
    freeze_startup_objects("worker")
    log.info("worker ready: %s", ", ".join(served))
    print("worker ready", flush=True)  # readiness line read by supervisors and tests
    try:
        await stop.wait()
    finally:
        await keeper.stop()
        await deadlines.stop()
        await webhooks.stop()
        for poller in pollers:
            await poller.stop()
        for worker in workers:
            await worker.stop()
        await runtime.close()


@dataclass
class Supervisor:
    """Starts child processes, watches them, and stops them all together."""

    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(
        self, name: str, argv: Sequence[str], *, output: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` as child ``name`` in its own process group, its stdout and stderr
        appended to ``output`` when given (else shared with this process)."""
        if output is None:
            process = subprocess.Popen(list(argv), env=self.env, start_new_session=True)
        else:
            with output.open("ab") as log:  # the child keeps its own copy of the descriptor
                process = subprocess.Popen(
                    list(argv), env=self.env, start_new_session=True, stdout=log, stderr=log
                )
        self.children.append((name, process))
        return process

    def failed(self) -> str | None:
        """The name of a child that exited, if any."""
        for name, process in self.children:
            if process.poll() is not None:
                return f"{name} exited with code {process.returncode}"
        return None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every child (newest first), then SIGKILL what is still running."""
        for _, process in reversed(self.children):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _, process in self.children:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                process.wait(remaining)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.children.clear()


def python_module(module: str, *args: str) -> list[str]:
    """argv running ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def ensure_port_free(host: str, port: int, what: str) -> None:
    """Refuse to start ``what`` on a port something else already listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((host, port)) == 0:
            raise RuntimeError(
                f"{host}:{port} is already in use, so {what} cannot listen there. Stop what runs "
                "there (an earlier `bus run`?) or choose another port (BUS_API_PORT, "
                "BUS_CONNECTOR_ENDPOINTS)."
            )


def wait_http(url: str, *, timeout: float, supervisor: Supervisor | None = None) -> None:
    """Wait until ``url`` answers 2xx, or raise with what went wrong."""
    deadline = time.monotonic() + timeout
    last: str = "no answer"
    while time.monotonic() < deadline:
        if supervisor is not None and (failure := supervisor.failed()):
            raise RuntimeError(failure)
        try:
            if httpx.get(url, timeout=2.0).is_success:
                return
            last = "not ready"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout}s: {last}")
