"""One bus of real processes for the fault suite, and the means to hurt it and to count.

A rig runs what ``bus run`` runs, each piece its own OS process configured only by ``BUS_*``
variables: the civil-status partner's simulator, API processes and worker processes, on a
broker namespace and a store of their own. A :class:`~bus.testing.TcpProxy` stands between the
workers and the partner, so that "partner down" is a real cut (connections reset and refused)
while the simulator keeps the record of what it registered. A scenario pushes dossiers over
HTTP, SIGKILLs processes, cuts the partner's link, flips the simulator's fault switches or stops
a broker node, and ends with :meth:`Rig.settle`: what went in against what came out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from bus.api.auth import API_KEY_HEADER
from bus.bench.deployment import delete_namespace, free_port, fresh_store, wait_until
from bus.bench.load import dossier_bodies
from bus.chaos.ledger import Ledger, read_ledger
from bus.failpoints import ENVIRONMENT_VARIABLE as FAILPOINTS_VARIABLE
from bus.processes import Supervisor, python_module
from bus.registry import ConnectorRegistry
from bus.security.clients import (
    AgencyClient,
    ClientDirectory,
    hash_secret,
    new_secret,
    save_clients,
)
from bus.settings import Settings
from bus.store.database import create_engine
from bus.testing import TcpProxy
from bus.testing.cluster import RabbitNodes
from bus.topology import Names

log = logging.getLogger(__name__)

CONNECTOR = "civil_status"
"""The partner every rig delivers to: birth registrations, one hop each (no linkage bundle)."""

#: The receiving agency of the rig's dossiers; its client may submit every procedure.
_DESK = "000.00.10.H12"
#: Dossiers in flight from the pushing one-stop system.
PUSHERS = 16


@dataclass
class Child:
    """One process of the rig: an API (with its URL), a worker or the simulator."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    @property
    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None


@dataclass
class Pushed:
    """What the APIs answered to a stream of dossiers."""

    #: Dossier codes answered 202, on the first try or a later one.
    accepted: set[str] = field(default_factory=set)
    #: Final refusals (not retried) by status code or error name.
    refused: Counter[str] = field(default_factory=Counter)
    #: Tries answered by a dead connection, 429 or 5xx, and made again (same Idempotency-Key).
    retried: int = 0
    #: Dossiers answered 202 as a replay: committed by an earlier try that got no answer.
    replayed: set[str] = field(default_factory=set)

    def add(self, other: Pushed) -> None:
        """Count ``other``'s answers in this one."""
        self.accepted |= other.accepted
        self.refused.update(other.refused)
        self.retried += other.retried
        self.replayed |= other.replayed


@dataclass(frozen=True)
class PartnerStats:
    """What the partner's simulator counted (``GET /_sim/stats``)."""

    applied: int
    duplicates: int
    requests: int
    applied_codes: list[str]


@dataclass(frozen=True)
class Tally:
    """One scenario's account: dossiers in, dossiers out, and what went wrong."""

    #: Dossiers offered to the APIs, and those answered 202 (in).
    offered: int
    accepted: int
    #: Accepted dossiers the partner registered.
    delivered: int
    #: Accepted dossiers neither registered and finished, nor kept as a dead letter.
    lost: int
    #: Dossiers registered by the partner more than once, or delivered or announced twice.
    applied_twice: int
    parked: int
    expected_parked: int
    #: Dossiers the partner registered that no API answered 202 for.
    strays: int
    #: Events still unconfirmed in the outbox at the end.
    unsent_events: int
    seconds: float
    notes: tuple[str, ...] = ()
    #: Promises the scenario checks besides the count that did not hold (e.g. "the API
    #: refused dossiers while the broker was down").
    failures: tuple[str, ...] = ()
    #: Why the scenario could not run to its count (then nothing above proves anything).
    error: str | None = None
    #: The scenario's title, set by the suite that ran it.
    scenario: str = ""

    @property
    def problems(self) -> list[str]:
        """What makes this run a failure, in words; empty when it passed."""
        found = []
        if self.error is not None:
            # Its first line: the rest (a process's last log lines) is in the notes.
            found.append(f"did not run: {self.error.splitlines()[0]}")
        if self.lost:
            found.append(f"{self.lost} lost")
        if self.applied_twice:
            found.append(f"{self.applied_twice} applied twice")
        if self.parked != self.expected_parked:
            found.append(f"{self.parked} parked, {self.expected_parked} expected")
        if self.accepted != self.offered:
            found.append(f"{self.offered - self.accepted} of {self.offered} never answered 202")
        if self.strays:
            found.append(f"{self.strays} registered without a 202")
        if self.unsent_events:
            found.append(f"{self.unsent_events} events never published")
        return found + list(self.failures)

    @property
    def passed(self) -> bool:
        """Whether nothing was lost, nothing applied twice, and parked is what was expected."""
        return not self.problems

    @classmethod
    def failed_to_run(cls, scenario: str, error: str, seconds: float) -> Tally:
        """The tally of a scenario that broke before it could count."""
        return cls(0, 0, 0, 0, 0, 0, 0, 0, 0, seconds, error=error, scenario=scenario)


class _Children(Supervisor):
    """A supervisor whose children write their output to log files, each with its own extras
    in the environment (a fail point armed in one API process, its own port)."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        super().__init__(env=env)
        self.logs = logs

    def launch(
        self, name: str, argv: Sequence[str], *, extra_env: Mapping[str, str]
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` as child ``name`` in its own session, its output in ``<name>.log``."""
        with (self.logs / f"{name}.log").open("wb") as output:  # the child keeps its own copy
            process = subprocess.Popen(
                list(argv),
                env={**self.env, **extra_env},
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.children.append((name, process))
        return process

    def forget(self, process: subprocess.Popen[bytes]) -> None:
        """Stop watching a child that was meant to die."""
        self.children[:] = [(n, p) for n, p in self.children if p is not process]


class Rig:
    """A running bus of real processes on its own namespace and store; see the module text."""

    def __init__(
        self,
        workdir: Path,
        settings: Settings,
        proxy: TcpProxy,
        simulator_port: int,
        nodes: RabbitNodes | None,
    ) -> None:
        self.workdir = workdir
        self.settings = settings
        self.names = Names(settings.namespace)
        self.registry = ConnectorRegistry.discover(settings.connector_endpoints)
        self.nodes = nodes
        self._proxy = proxy
        self._secret = new_secret()
        env = {k: v for k, v in os.environ.items() if k != FAILPOINTS_VARIABLE}
        self._children = _Children({**env, **settings.as_environment()}, workdir)
        self._engine = create_engine(settings.database_url)
        self._simulator_port = simulator_port
        self.simulator_url = f"http://127.0.0.1:{self._simulator_port}"
        self._started: Counter[str] = Counter()

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        workdir: Path,
        *,
        amqp_url: str,
        database_server: str | None = None,
        nodes: RabbitNodes | None = None,
        retry_delays: tuple[float, ...] = (0.5, 2.0, 5.0, 15.0, 30.0),
        delivery_limit: int = 10,
    ) -> AsyncIterator[Rig]:
        """A rig with its simulator running (no API or worker yet); everything stopped and its
        namespace deleted on exit.

        ``database_server``: a PostgreSQL URL to make the rig's database on; otherwise a
        SQLite file in ``workdir``. ``nodes``: the broker's nodes, for scenarios that stop one.
        """
        await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
        simulator_port = free_port()
        async with fresh_store(workdir, database_server) as database_url:
            with TcpProxy("127.0.0.1", simulator_port) as proxy:
                settings = Settings(
                    amqp_url=amqp_url,
                    database_url=database_url,
                    namespace=f"chaos{uuid.uuid4().hex[:10]}",
                    clients_file=str(workdir / "clients.yaml"),
                    token_key_file=str(workdir / "keys" / "token-ed25519.pem"),
                    signing_key_file=str(workdir / "keys" / "bus-signing-ed25519.pem"),
                    agency_keys_dir=str(workdir / "keys" / "agencies"),
                    connector_endpoints={CONNECTOR: f"http://127.0.0.1:{proxy.port}"},
                    linkage_bundles=(),
                    retry_delays=retry_delays,
                    delivery_limit=delivery_limit,
                    # Rows of a relay that died are taken over this soon: the API-kill
                    # scenario waits for it. A publish is bounded well inside the lease, so a
                    # live relay's rows are not taken from it.
                    outbox_lease_seconds=6.0,
                    publish_timeout=3.0,
                )
                rig = cls(workdir, settings, proxy, simulator_port, nodes)
                try:
                    await rig._start_simulator()
                    yield rig
                finally:
                    await rig._close()

    # --- processes ---------------------------------------------------------------------------

    async def _start_simulator(self) -> None:
        self._write_clients()
        child = self._start(
            "simulator",
            python_module(
                "connectors.civil_status.simulator", "--port", str(self._simulator_port),
                "--log-level", "warning",
            ),
        )  # fmt: skip
        await self._wait_http(child, f"{self.simulator_url}/_sim/stats", timeout=60)

    def _write_clients(self) -> None:
        # Its own client with no rate limit: the suite pushes thousands of dossiers a minute.
        desk = AgencyClient(
            id="chaos-one-stop",
            name="The fault suite's one-stop system",
            agency=_DESK,
            secret_sha256=(hash_secret(self._secret),),
            procedures=("*",),
            rate_limit="1000000/second",
        )
        save_clients(Path(self.settings.clients_file), ClientDirectory((desk,)))

    def _start(
        self, kind: str, argv: Sequence[str], extra_env: Mapping[str, str] | None = None
    ) -> Child:
        self._started[kind] += 1
        name = f"{kind}-{self._started[kind]}"
        process = self._children.launch(name, argv, extra_env=extra_env or {})
        return Child(name, process, self.workdir / f"{name}.log")

    async def start_api(self, *, failpoints: str | None = None) -> Child:
        """Start an API process on a port of its own (``failpoints``: its ``BUS_FAILPOINTS``);
        returns once it answers ``/readyz``."""
        port = free_port()
        extra = {"BUS_API_PORT": str(port)}
        if failpoints is not None:
            extra[FAILPOINTS_VARIABLE] = failpoints
        child = self._start("api", python_module("bus.cli", "api"), extra)
        child.url = f"http://127.0.0.1:{port}"
        await self._wait_http(child, f"{child.url}/readyz", timeout=120)
        return child

    async def start_worker(self) -> Child:
        """Start a ``bus worker --connector civil_status`` process; returns once it consumes."""
        child = self._start("worker", python_module("bus.cli", "worker", "--connector", CONNECTOR))

        async def ready() -> bool:
            self._check_alive(child)
            # The worker prints this line (stdout, into its log) once it consumes.
            return any(line == b"worker ready" for line in child.log.read_bytes().splitlines())

        await wait_until(ready, timeout=120, what=f"{child.name} ready")
        return child

    def kill(self, child: Child) -> int:
        """SIGKILL ``child`` (no clean-up of any kind runs) and wait for it; its exit code."""
        child.process.send_signal(signal.SIGKILL)
        return self.reap(child, timeout=30)

    def reap(self, child: Child, *, timeout: float) -> int:
        """Wait for ``child``, which was meant to die, and stop watching it; its exit code."""
        code = child.process.wait(timeout)
        self._children.forget(child.process)
        return code

    def dead_children(self) -> list[str]:
        """Children that died without being told to, with their exit codes."""
        return [
            f"{name} exited with code {process.returncode}"
            for name, process in self._children.children
            if process.poll() is not None
        ]

    def log_lines(self, kind: str, text: str) -> int:
        """Lines of the logs of every ``kind`` process (``worker``, ``api``) containing
        ``text``: what a process saw that only its log tells, e.g. its circuit opening."""
        wanted = text.encode()
        return sum(
            wanted in line
            for path in self.workdir.glob(f"{kind}-*.log")
            for line in path.read_bytes().splitlines()
        )

    def _check_alive(self, child: Child) -> None:
        if not child.alive:
            tail = child.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{child.name} exited with {child.process.returncode}:\n{tail}")

    async def _wait_http(self, child: Child, url: str, *, timeout: float) -> None:
        async with httpx.AsyncClient(timeout=5) as client:

            async def answers() -> bool:
                self._check_alive(child)
                try:
                    return (await client.get(url)).is_success
                except httpx.HTTPError:
                    return False

            await wait_until(answers, timeout=timeout, what=f"{child.name} at {url}")

    async def _close(self) -> None:
        await asyncio.to_thread(self._children.stop)
        try:
            await asyncio.wait_for(delete_namespace(self.settings), 60)
        except Exception:
            # Said, not raised: the scenario's count stands, but the broker keeps the queues.
            log.warning("could not delete namespace %s", self.names.namespace, exc_info=True)
        await self._engine.dispose()

    # --- faults ------------------------------------------------------------------------------

    def cut_partner(self) -> None:
        """Reset every connection to the partner and refuse new ones (the simulator lives on)."""
        self._proxy.cut()

    def restore_partner(self) -> None:
        """Let connections to the partner through again."""
        self._proxy.restore()

    async def set_partner_faults(self, **switches: object) -> None:
        """Replace the simulator's fault switches (``POST /_sim/faults``; left out: off)."""
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.post(f"{self.simulator_url}/_sim/faults", json=switches)
            answer.raise_for_status()

    @property
    def partner_slots(self) -> int:
        """Calls the worker keeps in flight to the partner (its connector's ``concurrency``)."""
        return self.registry.get(CONNECTOR).config.concurrency

    def broker_nodes(self) -> RabbitNodes:
        """The nodes of the rig's broker, for scenarios that stop one."""
        if self.nodes is None:
            raise RuntimeError("this rig runs on a broker whose nodes it does not control")
        return self.nodes

    # --- dossiers in -------------------------------------------------------------------------

    def dossiers(self, count: int, *, start: int = 0) -> list[dict[str, Any]]:
        """``count`` valid birth dossiers, numbered from ``start``, with distinct codes."""
        return dossier_bodies(count, first=start)

    async def push(
        self,
        bodies: Sequence[Mapping[str, Any]],
        apis: Sequence[Child],
        *,
        concurrency: int = PUSHERS,
        give_up_after: float = 600.0,
    ) -> Pushed:
        """POST each dossier to the first API still alive, ``concurrency`` at a time.

        A try met by a dead connection, 429 or 5xx is made again with the same
        ``Idempotency-Key`` (on the next live API when its own died), as a one-stop system
        does: a dossier committed before its API died is then answered 202 as a replay.
        """
        pushed = Pushed()
        pending = list(reversed(bodies))
        deadline = time.monotonic() + give_up_after
        headers = {API_KEY_HEADER: self._secret}

        def target() -> Child:
            for api in apis:
                if api.alive:
                    return api
            raise RuntimeError("every API process of the push has died")

        async with httpx.AsyncClient(timeout=60, headers=headers) as client:

            async def sender() -> None:
                while pending:
                    body = pending.pop()
                    key = {"Idempotency-Key": f"chaos-{body['code']}"}
                    while True:
                        status: int | None = None
                        try:
                            answer = await client.post(
                                f"{target().url}/v1/dossiers", json=body, headers=key
                            )
                            status, outcome = answer.status_code, str(answer.status_code)
                        except httpx.TransportError as exc:
                            outcome = type(exc).__name__
                        if status == 202:
                            pushed.accepted.add(str(body["code"]))
                            if answer.json()["replayed"]:
                                pushed.replayed.add(str(body["code"]))
                            break
                        retryable = status is None or status == 429 or status >= 500
                        if not retryable or time.monotonic() > deadline:
                            pushed.refused[outcome] += 1
                            break
                        pushed.retried += 1
                        await asyncio.sleep(0.2)

            await asyncio.gather(*(sender() for _ in range(concurrency)))
        return pushed

    # --- dossiers out ------------------------------------------------------------------------

    async def partner_stats(self) -> PartnerStats:
        """What the partner registered so far."""
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.get(f"{self.simulator_url}/_sim/stats")
            answer.raise_for_status()
            stats = answer.json()
        return PartnerStats(
            int(stats["applied"]),
            int(stats["duplicates"]),
            int(stats["requests"]),
            [str(code) for code in stats["applied_codes"]],
        )

    async def wait_applied(self, count: int, *, timeout: float = 300.0) -> int:
        """Wait until the partner registered at least ``count`` dossiers; how many it had."""
        applied = 0

        async def enough() -> bool:
            nonlocal applied
            applied = (await self.partner_stats()).applied
            return applied >= count

        await wait_until(enough, timeout=timeout, what=f"{count} registered", interval=0.05)
        return applied

    async def ledger(self, codes: set[str]) -> Ledger:
        """What the store says happened (see :func:`bus.chaos.ledger.read_ledger`)."""
        return await read_ledger(self._engine, codes)

    async def settle(
        self,
        offered: int,
        pushed: Pushed,
        *,
        started: float,
        expected_parked: set[str] | None = None,
        timeout: float = 300.0,
        notes: Sequence[str] = (),
        failures: Sequence[str] = (),
    ) -> Tally:
        """Wait until every accepted dossier is registered and finished (the ``expected_parked``
        ones kept as dead letters instead) and every event published, or ``timeout``; then count.

        ``started``: the ``time.monotonic()`` the scenario started at; ``notes`` and
        ``failures``: what the scenario saw, and which of its own checks did not hold.
        """
        parked_wanted = expected_parked or set()
        good = pushed.accepted - parked_wanted
        stats, ledger = await self.partner_stats(), await self.ledger(pushed.accepted)

        async def settled() -> bool:
            nonlocal stats, ledger
            stats, ledger = await self.partner_stats(), await self.ledger(pushed.accepted)
            return (
                good <= set(stats.applied_codes)
                and good <= ledger.finished
                and ledger.unsent_events == 0
                and parked_wanted <= set(ledger.parked)
            )

        extra = list(notes)
        try:
            await wait_until(settled, timeout=timeout, what="settled", interval=1.0)
        except TimeoutError:
            extra.append(f"not settled after {timeout:.0f} s")
        broken = [*failures, *self.dead_children()]
        tally = tally_of(offered, pushed, parked_wanted, stats, ledger, started, extra)
        return replace(tally, failures=tuple(broken))


def tally_of(
    offered: int,
    pushed: Pushed,
    expected_parked: set[str],
    stats: PartnerStats,
    ledger: Ledger,
    started: float,
    notes: Sequence[str],
) -> Tally:
    """The tally of a scenario from the partner's record and the store's ledger."""
    applied_counts = Counter(stats.applied_codes)
    applied = set(applied_counts)
    twice = {code for code, n in applied_counts.items() if n > 1}
    twice |= {code for code, n in ledger.delivered_hops.items() if n > 1}
    twice |= {code for code, n in ledger.status_events.items() if n > 1}
    # The simulator's own counter, in case its list and its count ever disagree.
    excess = max(0, stats.applied - len(stats.applied_codes))
    parked = set(ledger.parked) - {""}
    # Finished: registered by the partner, its delivery recorded, at the final status.
    finished = {code for code in applied & ledger.finished if ledger.delivered_hops[code]}
    lost = pushed.accepted - finished - parked
    explained = list(notes)
    if pushed.refused:
        explained.append(f"never answered 202: {dict(pushed.refused)}")
    if stats.duplicates:
        explained.append(f"{stats.duplicates} repeated calls answered from the partner's record")
    if pushed.retried:
        explained.append(f"{pushed.retried} pushes retried (same Idempotency-Key)")
    for code in sorted(parked)[:3]:
        explained.append(f"parked {code}: {'; '.join(ledger.parked[code])[:160]}")
    if expected_parked - parked:
        explained.append(f"not parked: {sorted(expected_parked - parked)[:3]}")
    if lost:
        explained.append(f"lost, e.g. {sorted(lost)[:3]}")
    return Tally(
        offered=offered,
        accepted=len(pushed.accepted),
        delivered=len(pushed.accepted & applied),
        lost=len(lost),
        applied_twice=len(twice) + excess,
        parked=len(parked),
        expected_parked=len(expected_parked),
        strays=len(applied - pushed.accepted),
        unsent_events=ledger.unsent_events,
        seconds=time.monotonic() - started,
        notes=tuple(explained),
    )
