"""The bus end to end: HTTP ingest, store, outbox relay, worker, mapping, delivery to the
civil-status simulator, status event out, measured on real processes.

One deployment goes through four stages:

1. **hops**: dossiers pushed flat out with no worker running, then workers started to drain
   them. Each hop's rate is read where the hop leaves its mark: the APIs' answers (ingest), the
   outbox's confirm times (publish), the store's delivered hops (deliver) and the subscriber's
   receipts (announce).
2. **peak**: with every process running, dossiers pushed flat out; dossiers per second from the
   first POST to the last status event, and the latency of each (a loaded system's latency).
3. **half of peak**: dossiers pushed on a fixed schedule at half that rate; latency p50/p95/p99
   and where it went (:mod:`bus.bench.breakdown`); then the same at a quarter and a tenth.
4. **soak** (optional): many dossiers flat out while every process's RSS is sampled.

Every stage ends by checking the exactly-once effect: each accepted dossier applied once by the
partner and delivered once in the store.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.bench.breakdown import Segment, split
from bus.bench.ceiling import percentile
from bus.bench.deployment import Deployment, deploy, wait_until
from bus.bench.load import (
    Pushed,
    StatusListener,
    dossier_bodies,
    push_at_rate,
    push_flat_out,
)
from bus.bench.resources import (
    CpuTicks,
    MemorySampler,
    cpu_seconds,
    machine_load,
    machine_ticks,
)
from bus.heap import freeze_startup_objects
from bus.store.database import create_engine
from bus.store.schema import hops, outbox

__all__ = [
    "EndToEndResult",
    "HopRate",
    "Latency",
    "SoakResult",
    "Tally",
    "measure_end_to_end",
    "measure_throughput",
]

#: The final status of a birth registration the civil-status partner took.
_PROCESSED = 9
#: The steady loads after the peak, as shares of its rate: the target's, then two lower ones
#: that show the rate up to which latency stays low on the machine.
STEADY_LOADS: Final = (("half of peak", 0.5), ("quarter of peak", 0.25), ("tenth of peak", 0.1))


@dataclass(frozen=True)
class HopRate:
    """How fast one hop moved the dossiers it was given."""

    hop: str
    what: str
    messages: int
    seconds: float

    @property
    def per_second(self) -> float:
        """Messages through the hop per second."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Latency:
    """Ingest-to-status-event latency of one load."""

    load: str
    offered_per_second: float | None
    dossiers: int
    per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    #: The first part of it: POST to the 202 (group commit included).
    answer_p50_ms: float = 0.0
    answer_p99_ms: float = 0.0
    #: Where the time went, segment by segment (measured at half of the peak).
    segments: list[Segment] = field(default_factory=list)
    #: The machine meanwhile: CPUs' worth of work by every process, and the share of CPU time
    #: the hypervisor gave to other guests (None where Linux's /proc/stat is not).
    busy_cores: float | None = None
    steal_share: float | None = None


@dataclass(frozen=True)
class Tally:
    """What went in and what came out of one stage."""

    accepted: int
    refused: dict[str, int]
    applied: int
    applied_twice: int
    delivered_twice: int

    @property
    def lost(self) -> int:
        """Accepted dossiers the partner never applied."""
        return self.accepted - self.applied


@dataclass(frozen=True)
class SoakResult:
    """RSS across a long run: per role, early (after warm-up), last and peak, in MiB."""

    dossiers: int
    seconds: float
    early_mib: dict[str, float]
    last_mib: dict[str, float]
    series: list[dict[str, Any]]

    def drift(self, role: str) -> float:
        """Relative change of ``role``'s RSS from early in the run to its end."""
        return self.last_mib[role] / self.early_mib[role] - 1.0


@dataclass(frozen=True)
class EndToEndResult:
    """Everything one deployment measured."""

    apis: int
    workers: int
    database: str
    hops: list[HopRate]
    latency: list[Latency]
    tally: Tally
    peak_rss_mib: dict[str, float]
    cpu_ms_per_dossier: dict[str, float]
    soak: SoakResult | None = None

    @property
    def half_of_peak(self) -> Latency:
        """The load the latency target is about."""
        return next(load for load in self.latency if load.load == STEADY_LOADS[0][0])

    def as_json(self) -> dict[str, Any]:
        """Plain data for the result file."""
        data = asdict(self)
        data["hops"] = [{**asdict(hop), "per_second": hop.per_second} for hop in self.hops]
        data["tally"]["lost"] = self.tally.lost
        return data


def _latencies(pushed: Pushed, listener: StatusListener) -> list[float]:
    return [
        (listener.received_ns[code] - sent) / 1e6
        for code, sent in pushed.sent_ns.items()
        if code in listener.received_ns
    ]


def _latency(load: str, pushed: Pushed, listener: StatusListener, offered: float | None) -> Latency:
    values = _latencies(pushed, listener)
    answers = [(pushed.answered_ns[code] - sent) / 1e6 for code, sent in pushed.sent_ns.items()]
    last = max(listener.received_ns[code] for code in pushed.sent_ns)
    return Latency(
        load=load,
        offered_per_second=offered,
        dossiers=len(values),
        per_second=len(values) / ((last - pushed.started_ns) / 1e9),
        p50_ms=percentile(values, 0.50),
        p95_ms=percentile(values, 0.95),
        p99_ms=percentile(values, 0.99),
        max_ms=max(values),
        answer_p50_ms=percentile(answers, 0.50),
        answer_p99_ms=percentile(answers, 0.99),
    )


def _on_machine(latency: Latency, since: CpuTicks | None) -> Latency:
    """``latency`` with the machine's load from ``since`` until now."""
    load = machine_load(since, machine_ticks())
    if load is None:
        return latency
    return replace(latency, busy_cores=load.busy_cores, steal_share=load.steal_share)


async def _span(
    engine: AsyncEngine,
    first: sa.ColumnElement[Any],
    last: sa.ColumnElement[Any],
    where: sa.ColumnElement[bool],
) -> tuple[int, float]:
    """Rows matching ``where``, and seconds from the earliest ``first`` to the latest ``last``."""
    # type_= keeps the columns' own type, so SQLite's text timestamps come back as datetimes.
    query = sa.select(
        sa.func.count(), sa.func.min(first, type_=first.type), sa.func.max(last, type_=last.type)
    ).where(where)
    async with engine.connect() as connection:
        count, start, end = (await connection.execute(query)).one()
    if not count or not isinstance(start, datetime) or not isinstance(end, datetime):
        return 0, 0.0
    return int(count), (end - start).total_seconds()


async def _outbox_empty(engine: AsyncEngine) -> bool:
    """Whether every committed event has been confirmed by the broker."""
    async with engine.connect() as connection:
        found = await connection.scalar(
            sa.select(sa.func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
        )
    return not found


async def _tally(deployment: Deployment, engine: AsyncEngine, pushed: list[Pushed]) -> Tally:
    """Count, over every stage so far, what the partner and the store say happened."""
    accepted: set[str] = set()
    refused: dict[str, int] = {}
    for stage in pushed:
        accepted |= stage.sent_ns.keys()
        for reason, count in stage.refused.items():
            refused[reason] = refused.get(reason, 0) + count
    async with httpx.AsyncClient(timeout=30) as client:
        stats = (await client.get(f"{deployment.simulator_url}/_sim/stats")).json()
    applied_codes = set(stats["applied_codes"]) & accepted
    async with engine.connect() as connection:
        delivered_twice = await connection.scalar(
            sa.select(sa.func.count()).select_from(
                sa.select(hops.c.dossier_code)
                .where(hops.c.kind == "deliver", hops.c.outcome == "delivered")
                .group_by(hops.c.dossier_code)
                .having(sa.func.count() > 1)
                .subquery()
            )
        )
    return Tally(
        accepted=len(accepted),
        refused=refused,
        applied=len(applied_codes),
        applied_twice=int(stats["applied"]) - len(set(stats["applied_codes"])),
        delivered_twice=int(delivered_twice or 0),
    )


@dataclass
class _Run:
    """One deployment with its subscriber, store connection and memory sampler."""

    deployment: Deployment
    listener: StatusListener
    engine: AsyncEngine
    sampler: MemorySampler
    concurrency: int
    pushed: list[Pushed] = field(default_factory=list)
    numbered: int = 0

    def bodies(self, count: int) -> list[dict[str, Any]]:
        made = dossier_bodies(count, first=self.numbered)
        self.numbered += count
        return made

    async def flat_out(self, count: int, *, timeout: float = 1800) -> Pushed:
        bodies = self.bodies(count)
        pushed = await push_flat_out(
            self.deployment.api_urls,
            self.deployment.api_key,
            bodies,
            concurrency=self.concurrency,
        )
        self.pushed.append(pushed)
        await self.listener.wait_for(set(pushed.sent_ns), timeout=timeout)
        return pushed

    async def at_rate(self, count: int, per_second: float) -> Pushed:
        bodies = self.bodies(count)
        pushed = await push_at_rate(
            self.deployment.api_urls, self.deployment.api_key, bodies, per_second=per_second
        )
        self.pushed.append(pushed)
        await self.listener.wait_for(set(pushed.sent_ns), timeout=600)
        return pushed


@contextlib.asynccontextmanager
async def _deployed(
    apis: int, amqp_url: str, workdir: Path, database_server: str | None, concurrency: int
) -> AsyncIterator[_Run]:
    """Deploy, subscribe, connect and sample; undo all of it on exit."""
    async with deploy(
        apis=apis, amqp_url=amqp_url, workdir=workdir, database_server=database_server
    ) as deployment:
        listener = StatusListener(amqp_url, deployment.names)
        await listener.start()
        sampler = MemorySampler(deployment.pids, lambda: len(listener.received_ns))
        sampler.start()
        engine = create_engine(deployment.settings.database_url)
        try:
            yield _Run(deployment, listener, engine, sampler, concurrency)
        finally:
            await sampler.stop()
            await listener.close()
            await engine.dispose()


def _mib(kib: dict[str, int]) -> dict[str, float]:
    return {role: round(value / 1024, 1) for role, value in kib.items()}


async def measure_end_to_end(
    *,
    amqp_url: str,
    workdir: Path,
    dossiers: int,
    latency_seconds: float,
    apis: int = 1,
    workers: int = 1,
    soak: int = 0,
    concurrency: int = 64,
    database_server: str | None = None,
    say: Callable[[str], None] = print,
    freeze_heap: bool = False,
) -> EndToEndResult:
    """Run the four stages on one deployment (see the module's docstring).

    ``freeze_heap``: freeze this process's objects out of the garbage collector's walks
    before each steady load (see :mod:`bus.heap`), when it runs nothing else.
    """
    async with _deployed(apis, amqp_url, workdir, database_server, concurrency) as run:
        # 1. hops: ingest and publish with no worker, then the workers drain what was queued.
        say(f"hops: {dossiers} dossiers into {apis} API process(es), no worker yet")
        bodies = run.bodies(dossiers)
        ingest = await push_flat_out(
            run.deployment.api_urls, run.deployment.api_key, bodies, concurrency=concurrency
        )
        run.pushed.append(ingest)
        await wait_until(lambda: _outbox_empty(run.engine), timeout=600, what="outbox empty")
        published, publish_seconds = await _span(
            run.engine, outbox.c.created_at, outbox.c.sent_at, outbox.c.sent_at.is_not(None)
        )
        say(f"hops: {workers} worker process(es) drain {len(ingest.sent_ns)} queued dossiers")
        run.deployment.start_workers(workers)
        await run.listener.wait_for(set(ingest.sent_ns), timeout=1800)
        delivered, deliver_seconds = await _span(
            run.engine,
            hops.c.received_at,
            hops.c.done_at,
            (hops.c.kind == "deliver") & (hops.c.outcome == "delivered"),
        )
        receipts = [run.listener.received_ns[code] for code in ingest.sent_ns]
        hop_rates = [
            HopRate("ingest", "HTTP POST → committed with its event → 202", len(ingest.sent_ns),
                    ingest.seconds),
            HopRate("publish", "outbox → broker, confirmed (beside ingest)", published,
                    publish_seconds),
            HopRate("deliver", "queue → map → partner → store → ack", delivered, deliver_seconds),
            HopRate("announce", "status event → subscriber (as workers deliver)", len(receipts),
                    (max(receipts) - min(receipts)) / 1e9),
        ]  # fmt: skip

        # 2. peak: everything running, pushed flat out.
        say(f"peak: {dossiers} dossiers flat out through {apis} API(s) and {workers} worker(s)")
        before, ticks = _cpu(run.deployment), machine_ticks()
        peak = _on_machine(
            _latency("flat out", await run.flat_out(dossiers), run.listener, None), ticks
        )
        after = _cpu(run.deployment)
        cpu_ms = {role: round((after[role] - before[role]) * 1000 / dossiers, 2) for role in after}

        # 3. half of peak, on a fixed schedule; then lower rates, for where latency bends.
        steady_loads: list[Latency] = []
        for name, share in STEADY_LOADS:
            rate = peak.per_second * share
            count = max(50, round(rate * latency_seconds))
            say(f"{name}: {count} dossiers at {rate:.0f}/s")
            if freeze_heap:
                # What the benchmark kept so far, out of its own collector's walks: a full
                # collection here stopped the subscriber for 100-220 ms, counted as latency.
                freeze_startup_objects("bench")
            ticks = machine_ticks()
            steady = await run.at_rate(count, rate)
            measured = _on_machine(_latency(name, steady, run.listener, rate), ticks)
            segments = await split(run.engine, steady.sent_wall_ns, run.listener.received_wall_ns)
            steady_loads.append(replace(measured, segments=segments))

        # 4. soak: RSS across many dossiers.
        soaked = await _soak(run, soak, say) if soak else None
        await wait_until(lambda: _outbox_empty(run.engine), timeout=600, what="outbox empty")
        tally = await _tally(run.deployment, run.engine, run.pushed)
        await run.sampler.stop()
        return EndToEndResult(
            apis=apis,
            workers=workers,
            database="postgresql" if database_server else "sqlite",
            hops=hop_rates,
            latency=[peak, *steady_loads],
            tally=tally,
            peak_rss_mib=_mib(run.sampler.peaks_kib),
            cpu_ms_per_dossier=cpu_ms,
            soak=soaked,
        )


def _cpu(deployment: Deployment) -> dict[str, float]:
    """CPU seconds so far of every process of the deployment, and of this one (``bench``:
    the load and the subscriber)."""
    spent = {role: cpu_seconds(pid) for role, pid in deployment.pids().items()}
    return {**spent, "bench": time.process_time()}


async def _soak(run: _Run, total: int, say: Callable[[str], None]) -> SoakResult:
    """Push ``total`` dossiers flat out in chunks, sampling RSS; warm-up is the first tenth."""
    chunk = 10_000
    started = time.monotonic()
    first_sample = len(run.sampler.samples)
    run.sampler.read()  # the baseline: what the processes hold before the soak
    done = 0
    while done < total:
        size = min(chunk, total - done)
        await run.flat_out(size)
        done += size
        say(f"soak: {done:,}/{total:,} dossiers, {done / (time.monotonic() - started):.0f}/s")
    run.sampler.read()
    samples = run.sampler.samples[first_sample:]
    base = samples[0].dossiers
    warm = next(s for s in samples if s.dossiers - base >= total / 10)
    last = samples[-1]
    return SoakResult(
        dossiers=total,
        seconds=time.monotonic() - started,
        early_mib=_mib(warm.rss_kib),
        last_mib=_mib(last.rss_kib),
        series=[
            {"seconds": round(s.seconds, 1), "dossiers": s.dossiers - base, **_mib(s.rss_kib)}
            for s in samples
        ],
    )


async def measure_throughput(
    *,
    amqp_url: str,
    workdir: Path,
    dossiers: int,
    apis: int,
    workers: int,
    concurrency: int = 64,
    database_server: str | None = None,
) -> tuple[Latency, Tally]:
    """Dossiers per second with ``apis`` API and ``workers`` worker processes, all running,
    and the tally proving competing workers handled no dossier twice."""
    async with _deployed(apis, amqp_url, workdir, database_server, concurrency) as run:
        run.deployment.start_workers(workers)
        await run.deployment.wait_for_consumers(workers)
        await run.flat_out(min(200, dossiers))  # first requests pay for imports, pools
        peak = _latency("flat out", await run.flat_out(dossiers), run.listener, None)
        await wait_until(lambda: _outbox_empty(run.engine), timeout=600, what="outbox empty")
        return peak, await _tally(run.deployment, run.engine, run.pushed)
