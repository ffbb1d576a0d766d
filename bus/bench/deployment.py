"""A bus of real processes to measure: the civil-status simulator, N API and M worker processes.

Each deployment has its own broker namespace, its own store (a fresh SQLite file, or a fresh
database on a PostgreSQL server) and its own simulator, so one run's leftovers never flatter or
burden the next. The processes are the ones ``bus api`` and ``bus worker`` start in production;
only the settings differ (a generous per-client rate limit, so the limiter does not cap the load).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import asyncpg
from sqlalchemy.engine import make_url

from bus.amqp import connect_once
from bus.processes import Supervisor, python_module, wait_http
from bus.registry import ConnectorRegistry
from bus.runtime import retry_tiers
from bus.security.demo import make_demo_clients
from bus.settings import Settings
from bus.store.migrate import upgrade_async
from bus.topology import Names, delete_topology

__all__ = [
    "Deployment",
    "delete_namespace",
    "deploy",
    "free_port",
    "fresh_store",
    "queue_consumers",
    "wait_until",
]

#: The connector the benchmark's dossiers (birth registrations) go to.
CONNECTOR = "civil_status"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Deployment:
    """The running processes and how to reach them."""

    settings: Settings
    api_urls: list[str]
    simulator_url: str
    api_key: str
    supervisor: Supervisor
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def names(self) -> Names:
        """The deployment's broker names."""
        return Names(self.settings.namespace)

    def pids(self) -> dict[str, int]:
        """Process id per role (``api-1``, ``worker-2``, ``simulator``)."""
        return {role: process.pid for role, process in self.processes.items()}

    def start_workers(self, count: int) -> None:
        """Start ``count`` more worker processes for the benchmark's connector."""
        first = sum(role.startswith("worker-") for role in self.processes) + 1
        for number in range(first, first + count):
            self.processes[f"worker-{number}"] = self.supervisor.start(
                f"worker-{number}",
                python_module("bus.cli", "worker", "--connector", CONNECTOR),
                output=self.logs / f"worker-{number}.log",
            )

    async def wait_for_consumers(self, count: int, *, timeout: float = 120.0) -> None:
        """Return once ``count`` workers consume the connector's queue."""
        queue = self.names.connector_queue(CONNECTOR)
        deadline = asyncio.get_running_loop().time() + timeout
        while await queue_consumers(self.settings.amqp_url, queue) < count:
            if failure := self.supervisor.failed():
                raise RuntimeError(failure)
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{count} workers did not start consuming {queue}")
            await asyncio.sleep(0.2)


async def queue_consumers(amqp_url: str, queue: str) -> int:
    """How many consumers ``queue`` has (0 when it does not exist)."""
    connection = await connect_once(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.consumer_count or 0)
    except aio_pika.exceptions.ChannelClosed:
        return 0
    finally:
        await connection.close()


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, timeout: float, what: str, interval: float = 0.2
) -> None:
    """Poll ``check`` until it holds; TimeoutError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f} s")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def fresh_store(workdir: Path, server_url: str | None) -> AsyncIterator[str]:
    """A store nobody used; yields its SQLAlchemy URL.

    A new SQLite file in ``workdir`` (deleted afterwards: a long run's file is large), or, when
    ``server_url`` is PostgreSQL, a new database on that server (dropped afterwards; the role
    needs the right to create databases).
    """
    if server_url is None or not server_url.startswith("postgresql"):
        path = workdir / f"store-{uuid.uuid4().hex[:8]}.sqlite3"
        try:
            yield f"sqlite+aiosqlite:///{path}"
        finally:
            for leftover in (path, path.with_name(f"{path.name}-wal"),
                             path.with_name(f"{path.name}-shm")):  # fmt: skip
                leftover.unlink(missing_ok=True)
        return
    server = make_url(server_url)
    admin_dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"bus_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(admin_dsn)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    await admin(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(drivername="postgresql+asyncpg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def delete_namespace(settings: Settings) -> None:
    """Delete every exchange and queue of ``settings.namespace``: each leaked quorum queue is a
    Raft group the broker keeps running."""
    registry = ConnectorRegistry.discover(settings.connector_endpoints)
    connection = await connect_once(settings.amqp_url, timeout=10)
    try:
        await delete_topology(
            await connection.channel(),
            Names(settings.namespace),
            connector_ids=registry.ids,
            retry_delays=retry_tiers(settings, registry),
        )
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def deploy(
    *,
    apis: int,
    amqp_url: str,
    workdir: Path,
    database_server: str | None = None,
    env: dict[str, str] | None = None,
) -> AsyncIterator[Deployment]:
    """Start the simulator and ``apis`` API processes (workers come later, see
    :meth:`Deployment.start_workers`); stop everything and delete the namespace afterwards."""
    async with fresh_store(workdir, database_server) as database_url:
        simulator_port = free_port()
        simulator = f"http://127.0.0.1:{simulator_port}"
        clients = make_demo_clients(
            ConnectorRegistry.discover(), workdir / f"clients-{uuid.uuid4().hex[:6]}.yaml"
        )
        settings = Settings(
            clients_file=str(clients.path),
            token_key_file=str(workdir / "token-ed25519.pem"),
            agency_keys_dir=str(workdir / "agency-keys"),
            amqp_url=amqp_url,
            database_url=database_url,
            namespace=f"bench{uuid.uuid4().hex[:8]}",
            connector_endpoints={CONNECTOR: simulator},
            # The registration alone: one delivery per dossier, not the birth bundle's three.
            linkage_bundles=(),
            # The limiter guards a partner's share of a real API; here it would cap the load.
            client_rate_limit="1000000/second",
            log_format="text",
        )
        await upgrade_async(database_url)  # once, before several processes race to do it
        supervisor = Supervisor(env={**(env or os.environ), **settings.as_environment()})
        logs = workdir / settings.namespace
        logs.mkdir()
        deployment = Deployment(settings, [], simulator, clients.one_stop_secret, supervisor, logs)
        try:
            deployment.processes["simulator"] = supervisor.start(
                "simulator",
                python_module(
                    "connectors.civil_status.simulator", "--port", str(simulator_port),
                    "--log-level", "warning",
                ),
                output=logs / "simulator.log",
            )  # fmt: skip
            for number in range(1, apis + 1):
                port = free_port()
                supervisor.env["BUS_API_PORT"] = str(port)
                deployment.processes[f"api-{number}"] = supervisor.start(
                    f"api-{number}",
                    python_module("bus.cli", "api"),
                    output=logs / f"api-{number}.log",
                )
                deployment.api_urls.append(f"http://127.0.0.1:{port}")
            await asyncio.to_thread(
                wait_http, f"{simulator}/_sim/stats", timeout=60, supervisor=supervisor
            )
            for api in deployment.api_urls:
                await asyncio.to_thread(
                    wait_http, f"{api}/readyz", timeout=90, supervisor=supervisor
                )
            yield deployment
        finally:
            await asyncio.to_thread(supervisor.stop)
            await delete_namespace(settings)
