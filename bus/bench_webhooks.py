"""What webhooks cost the event path: end-to-end dossiers per second with and without them.

One run measures three phases back to back, each on fresh processes (API, worker with its
webhook dispatcher, as ``bus worker`` runs it; the civil-status simulator; a webhook receiver),
its own broker namespace and its own store::

    python -m bus.bench_webhooks --dossiers 1000 [--database-url postgresql+asyncpg://...]

1. reference: the ``<ns>.webhooks`` queue deleted before the push, so no event goes there;
2. the queue fed as always, no subscription: the dispatcher reads each event and drops it;
3. one subscription to ``dossier.#``: each dossier's two events are POSTed and logged.

A phase pushes the dossiers over HTTP and stops the clock when every one is processed and
every event confirmed (the event path); in phase 3 it also waits for the receiver to have
every POST. Printed: dossiers per second, CPU seconds of the worker and API processes per 1,000
dossiers, and for phase 3 how long the last POST trailed the event path. Not a test: it needs
the broker (and PostgreSQL if asked), and its figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.amqp import connect_once
from bus.api.auth import API_KEY_HEADER
from bus.bench.deployment import delete_namespace, free_port, queue_consumers, wait_until
from bus.bench.resources import cpu_seconds
from bus.processes import Supervisor, python_module, wait_http
from bus.registry import ConnectorRegistry
from bus.security.demo import make_demo_clients
from bus.settings import Settings
from bus.store.database import create_engine
from bus.store.schema import dossiers, outbox
from bus.topology import Names
from contracts import sample_birth_dossier_json

_PROCESSED: Final = 9
_PHASES: Final = (
    "reference: no webhooks queue",
    "webhooks queue, no subscription",
    "1 subscription",
)


@dataclass(frozen=True)
class Result:
    """What one phase measured."""

    phase: str
    dossiers: int
    seconds: float
    ingest_seconds: float
    worker_cpu: float
    api_cpu: float
    posts: int
    posts_trailed: float | None

    @property
    def per_second(self) -> float:
        """Dossiers through the whole event path per second."""
        return self.dossiers / self.seconds


async def _delete_queue(amqp_url: str, queue: str) -> None:
    connection = await connect_once(amqp_url)
    try:
        channel = await connection.channel()
        await channel.queue_delete(queue, if_unused=False, if_empty=False)
    finally:
        await connection.close()


async def _push(api: str, bodies: list[dict[str, object]], concurrency: int, api_key: str) -> None:
    pending = list(reversed(bodies))
    headers = {API_KEY_HEADER: api_key}
    async with httpx.AsyncClient(base_url=api, timeout=60, headers=headers) as client:

        async def sender() -> None:
            while pending:
                body = pending.pop()
                answer = await client.post(
                    "/v1/dossiers", json=body, headers={"Idempotency-Key": str(body["code"])}
                )
                answer.raise_for_status()

        await asyncio.gather(*(sender() for _ in range(concurrency)))


async def _event_path_done(engine: AsyncEngine, codes: set[str]) -> bool:
    async with engine.connect() as connection:
        processed = (
            await connection.execute(
                sa.select(sa.func.count()).where(
                    dossiers.c.code.in_(codes), dossiers.c.status == _PROCESSED
                )
            )
        ).scalar_one()
        unsent = (
            await connection.execute(
                sa.select(sa.func.count()).where(
                    outbox.c.dossier_code.in_(codes), outbox.c.sent_at.is_(None)
                )
            )
        ).scalar_one()
    return int(processed) == len(codes) and int(unsent) == 0


async def _posts(receiver: str) -> int:
    async with httpx.AsyncClient(timeout=10) as client:
        return int((await client.get(f"{receiver}/count")).json()["count"])


async def run_phase(
    index: int, run: int, args: argparse.Namespace, workdir: Path, env: dict[str, str]
) -> Result:
    """Start a fresh bus, push the dossiers, time the event path (and the webhooks).

    ``run`` numbers the phase runs of this benchmark: each has its own SQLite file and its own
    dossier receipt date, which keeps dossier codes apart in a shared PostgreSQL store.
    """
    phase = _PHASES[index]
    database_url = args.database_url or f"sqlite+aiosqlite:///{workdir / f'run{run}.sqlite3'}"
    simulator_port, receiver_port, api_port = free_port(), free_port(), free_port()
    simulator, receiver = f"http://127.0.0.1:{simulator_port}", f"http://127.0.0.1:{receiver_port}"
    clients = make_demo_clients(ConnectorRegistry.discover(), workdir / f"clients{run}.yaml")
    settings = Settings(
        clients_file=str(clients.path),
        token_key_file=str(workdir / "token-ed25519.pem"),
        amqp_url=args.amqp_url,
        database_url=database_url,
        namespace=f"bench{uuid.uuid4().hex[:8]}",
        api_port=api_port,
        connector_endpoints={"civil_status": simulator},
        # The registration alone: with the birth bundle on, a dossier waits for two more agencies.
        linkage_bundles=(),
        webhook_refresh_seconds=0.5,
    )
    names = Names(settings.namespace)
    engine = create_engine(database_url)
    supervisor = Supervisor(env={**env, **settings.as_environment()})
    try:
        supervisor.start(
            "simulator",
            python_module(
                "connectors.civil_status.simulator", "--port", str(simulator_port),
                "--log-level", "warning",
            ),
        )  # fmt: skip
        supervisor.start(
            "receiver", python_module("bus.bench_webhooks", "--receive", str(receiver_port))
        )
        api_process = supervisor.start("api", python_module("bus.cli", "api"))
        wait_http(f"{simulator}/_sim/stats", timeout=30, supervisor=supervisor)
        wait_http(f"{receiver}/count", timeout=30, supervisor=supervisor)
        api = f"http://127.0.0.1:{api_port}"
        wait_http(f"{api}/readyz", timeout=60, supervisor=supervisor)
        # Only the connector the dossiers go to: the others would add their own work.
        worker = supervisor.start(
            "worker", python_module("bus.cli", "worker", "--connector", "civil_status")
        )
        while not (
            await queue_consumers(args.amqp_url, names.connector_queue("civil_status"))
            and await queue_consumers(args.amqp_url, names.webhooks)
        ):
            if failure := supervisor.failed():
                raise RuntimeError(failure)
            await asyncio.sleep(0.2)

        if index == 0:
            await _delete_queue(args.amqp_url, names.webhooks)
        elif index == 2:
            operator = {API_KEY_HEADER: clients.secrets["demo-operator"]}
            async with httpx.AsyncClient(base_url=api, headers=operator) as client:
                answer = await client.post(
                    "/v1/subscriptions",
                    json={"url": f"{receiver}/hook", "routing_keys": ["dossier.#"]},
                )
                answer.raise_for_status()
            await asyncio.sleep(settings.webhook_refresh_seconds * 2)  # the dispatcher sees it

        received_at = datetime.now(UTC) - timedelta(days=run + 1)
        bodies = [
            sample_birth_dossier_json(sequence=n, received_at=received_at)
            for n in range(1, args.dossiers + 1)
        ]
        codes = {str(body["code"]) for body in bodies}
        cpu_before = cpu_seconds(worker.pid), cpu_seconds(api_process.pid)
        started = time.monotonic()
        await _push(api, bodies, args.concurrency, clients.one_stop_secret)
        ingested = time.monotonic()
        await wait_until(
            lambda: _event_path_done(engine, codes), timeout=600, what="event path", interval=0.05
        )
        finished = time.monotonic()
        worker_cpu = cpu_seconds(worker.pid) - cpu_before[0]
        api_cpu = cpu_seconds(api_process.pid) - cpu_before[1]
        trailed = None
        if index == 2:
            expected = 2 * int(args.dossiers)  # submitted and status-changed

            async def all_posted() -> bool:
                return await _posts(receiver) >= expected

            await wait_until(all_posted, timeout=600, what="webhook POSTs", interval=0.05)
            trailed = time.monotonic() - finished
        posts = await _posts(receiver)
        return Result(
            phase,
            args.dossiers,
            finished - started,
            ingested - started,
            worker_cpu,
            api_cpu,
            posts,
            trailed,
        )
    finally:
        supervisor.stop()
        await engine.dispose()
        await delete_namespace(settings)


async def main_async(args: argparse.Namespace) -> list[Result]:
    """Run every phase ``args.rounds`` times and print one line per phase run."""
    env = dict(os.environ)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as workdir:
        for round_ in range(args.rounds):
            for index in range(len(_PHASES)):
                run = round_ * len(_PHASES) + index
                result = await run_phase(index, run, args, Path(workdir), env)
                results.append(result)
                trailed = ""
                if result.posts_trailed is not None:
                    with_posts = result.dossiers / (result.seconds + result.posts_trailed)
                    trailed = (
                        f", the last {result.posts_trailed:.2f} s after the event path "
                        f"({with_posts:.1f} dossiers/s with their webhooks)"
                    )
                print(
                    f"{result.phase:<34} {result.per_second:8.1f} dossiers/s "
                    f"({result.dossiers} in {result.seconds:.2f} s, all accepted after "
                    f"{result.ingest_seconds:.2f} s); CPU s per 1000 dossiers: worker "
                    f"{result.worker_cpu / result.dossiers * 1000:.2f}, API "
                    f"{result.api_cpu / result.dossiers * 1000:.2f}; "
                    f"{result.posts} webhook POSTs{trailed}",
                    flush=True,
                )
    return results


def _serve_receiver(port: int) -> None:
    """A webhook receiver that answers 204 to every POST and counts them (GET /count)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    lock = threading.Lock()
    received = [0]

    async def hook(request: Request) -> Response:
        await request.body()
        with lock:
            received[0] += 1
        return Response(status_code=204)

    async def count(_request: Request) -> Response:
        return JSONResponse({"count": received[0]})

    app = Starlette(
        routes=[Route("/count", count, methods=["GET"]), Route("/{path}", hook, methods=["POST"])]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def main(argv: list[str] | None = None) -> None:
    """Parse the options and run the benchmark (or, with ``--receive``, the receiver)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dossiers", type=int, default=1000, help="dossiers per phase (≤ 9999)")
    parser.add_argument("--concurrency", type=int, default=32, help="POSTs in flight")
    parser.add_argument("--rounds", type=int, default=1, help="times to run the three phases")
    parser.add_argument(
        "--database-url", default=None, help="an empty store; default: fresh SQLite files"
    )
    parser.add_argument(
        "--amqp-url", default=os.environ.get("BUS_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    )
    parser.add_argument("--receive", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.receive is not None:
        _serve_receiver(args.receive)
        return
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
