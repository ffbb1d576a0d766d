"""Helpers for integration tests: wait for a condition, push many dossiers, count the outcome."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from bus.amqp import OutgoingMessage
from bus.chaos.ledger import Ledger
from bus.chaos.ledger import read_ledger as read_store_ledger
from bus.dead_letters import DeadLetterKeeper
from bus.runtime import Runtime
from bus.settings import Settings
from bus.store.database import create_engine
from bus.store.dead_letters import DeadLetterQuery, matching_ids
from connectors.civil_status import SimulatorState
from contracts import sample_birth_dossier_json

ROOT = Path(__file__).resolve().parents[2]


async def wait_for(
    predicate: Callable[[], Awaitable[Any]], timeout: float = 20.0, interval: float = 0.05
) -> Any:
    """Poll an async predicate until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await predicate()
        if result:
            return result
        await asyncio.sleep(interval)
    raise AssertionError("condition not met in time")


@dataclass
class Pushed:
    """What the API answered to a stream of dossiers."""

    accepted: set[str] = field(default_factory=set)
    refused: Counter[str] = field(default_factory=Counter)


async def push_dossiers(
    client: httpx.AsyncClient,
    sequences: Iterable[int],
    *,
    concurrency: int = 16,
    on_accepted: Callable[[int], None] | None = None,
) -> Pushed:
    """POST a sample dossier per sequence number, ``concurrency`` at a time."""
    pushed = Pushed()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for sequence in sequences:
        queue.put_nowait(sequence)

    async def sender() -> None:
        while not queue.empty():
            sequence = queue.get_nowait()
            body = sample_birth_dossier_json(sequence=sequence)
            try:
                answer = await client.post(
                    "/v1/dossiers", json=body, headers={"Idempotency-Key": f"k-{sequence}"}
                )
            except httpx.HTTPError as exc:
                pushed.refused[type(exc).__name__] += 1
                continue
            if answer.status_code == 202:
                pushed.accepted.add(answer.json()["dossier_code"])
                if on_accepted is not None:
                    on_accepted(len(pushed.accepted))
            else:
                pushed.refused[str(answer.status_code)] += 1

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return pushed


async def wait_until_applied(state: SimulatorState, codes: set[str], timeout: float) -> None:
    """Wait until the partner has registered every one of ``codes``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        applied = set(state.stats()["applied_codes"])
        if codes <= applied:
            return
        await asyncio.sleep(0.2)
    missing = codes - set(state.stats()["applied_codes"])
    raise AssertionError(
        f"{len(missing)} accepted dossiers never reached the partner, e.g. {sorted(missing)[:3]}"
    )


async def read_ledger(settings: Settings, codes: set[str]) -> Ledger:
    """Count, per dossier, the delivered hops and the status events the bus committed."""
    engine = create_engine(settings.database_url)
    try:
        return await read_store_ledger(engine, codes)
    finally:
        await engine.dispose()


async def assert_exactly_once(settings: Settings, state: SimulatorState, codes: set[str]) -> Ledger:
    """Every accepted dossier registered by the partner once, delivered once, announced once."""
    stats = state.stats()
    assert stats["applied"] == len(set(stats["applied_codes"])), (
        "the partner applied a dossier twice"
    )
    assert set(stats["applied_codes"]) == codes, "the partner registered something not accepted"
    deadline = time.monotonic() + 30
    while True:
        ledger = await read_ledger(settings, codes)
        if (
            ledger.unsent_events == 0 and ledger.processed == len(codes)
        ) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert ledger.processed == len(codes), (
        f"{len(codes) - ledger.processed} dossiers not at status 9"
    )
    twice = {c: n for c, n in ledger.delivered_hops.items() if n != 1}
    assert not twice, (
        f"dossiers whose delivery was applied more than once: {list(twice.items())[:3]}"
    )
    assert set(ledger.delivered_hops) == codes
    announced_twice = {c: n for c, n in ledger.status_events.items() if n != 1}
    assert not announced_twice, (
        f"dossiers announced more than once: {list(announced_twice.items())[:3]}"
    )
    assert ledger.unsent_events == 0, f"{ledger.unsent_events} events still in the outbox"
    print(
        f"\n  in: {len(codes)} dossiers answered 202"
        f"\n  out: {len(set(stats['applied_codes']))} registered by the partner "
        f"({stats['duplicates']} repeated calls answered from its record, none applied twice), "
        f"{sum(ledger.delivered_hops.values())} delivered hops, "
        f"{sum(ledger.status_events.values())} status events, 0 left in the outbox"
    )
    return ledger


async def park_dead_letter(settings: Settings, dossier_code: str) -> int:
    """Park a submitted-dossier event of ``dossier_code`` as a worker would (on the dead-letter
    exchange, with its failure headers), let a keeper take it into the store; its id."""
    runtime = await Runtime.open(settings, name="test-park")
    keeper = DeadLetterKeeper(runtime)
    try:
        await runtime.broker.publish(
            OutgoingMessage(
                exchange=runtime.names.dead,
                routing_key=f"dossier.submitted.{dossier_code}",
                body=orjson.dumps(
                    {"id": f"parked-{dossier_code}", "subject": dossier_code, "type": "test"}
                ),
                message_id=f"parked-{dossier_code}",
                headers={
                    "x-bus-reason": "the partner refused it",
                    "x-bus-fault-code": "PARTNER_REJECTED",
                    "x-bus-error-class": "permanent",
                    "x-bus-connector": "civil_status",
                    "x-bus-queue": runtime.names.connector_queue("civil_status"),
                    "x-bus-attempts": 1,
                    "x-bus-parked-at": datetime.now(UTC).isoformat(),
                },
            )
        )
        await keeper.start()
        query = DeadLetterQuery(dossier_code=dossier_code)
        [found] = await wait_for(lambda: matching_ids(runtime.engine, query, limit=2))
        return found
    finally:
        await keeper.stop()
        await runtime.close()


def worker_process(
    settings: Settings,
    log: Path,
    connectors: Sequence[str] = ("civil_status",),
    *options: str,
) -> subprocess.Popen[str]:
    """A ``bus worker`` process for ``connectors`` (with the command's ``options``), returned
    once it says it is consuming."""
    env = {**os.environ, **settings.as_environment()}
    chosen = [arg for connector in connectors for arg in ("--connector", connector)]
    with log.open("a") as stderr:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "bus.cli", "worker", *chosen, *options],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert process.stdout is not None
    for line in process.stdout:  # blocks until the worker says it is consuming
        if line.startswith("worker ready"):
            process.stdout.close()
            return process
    process.stdout.close()
    tail = log.read_text()[-3000:]
    raise AssertionError(f"worker exited with {process.wait()} before it was ready:\n{tail}")
