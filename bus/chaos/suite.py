"""Running scenarios one after the other, each on a fresh rig, and collecting their tallies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from pathlib import Path

from bus.chaos.rig import Rig, Tally
from bus.chaos.scenarios import Scenario, Size
from bus.testing.cluster import RabbitNodes, rabbitmq_available

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def _private_nodes(scenario: Scenario, workdir: Path) -> AsyncIterator[RabbitNodes]:
    """The RabbitMQ nodes a scenario stops, started for it alone and stopped after it."""
    if not rabbitmq_available():
        raise RuntimeError("rabbitmq-server is not installed: private broker nodes cannot start")
    nodes = RabbitNodes(scenario.nodes, base_port=scenario.base_port, workdir=workdir / "rabbitmq")
    await asyncio.to_thread(nodes.start)
    try:
        yield nodes
    finally:
        await asyncio.to_thread(nodes.stop)


async def run_scenario(
    scenario: Scenario,
    size: Size,
    *,
    workdir: Path,
    amqp_url: str,
    database_server: str | None = None,
) -> Tally:
    """Run ``scenario`` at ``size`` on a fresh rig in ``workdir``; a scenario that breaks
    before it can count gives a tally saying why, never an exception.

    ``amqp_url``: the shared broker, for scenarios that do not stop one (those start nodes of
    their own). ``database_server``: a PostgreSQL URL to make each rig's database on.
    """
    started = time.monotonic()
    try:
        async with contextlib.AsyncExitStack() as stack:
            nodes: RabbitNodes | None = None
            url = amqp_url
            if scenario.nodes:
                nodes = await stack.enter_async_context(_private_nodes(scenario, workdir))
                url = nodes.url
            rig = await stack.enter_async_context(
                Rig.open(
                    workdir,
                    amqp_url=url,
                    database_server=database_server,
                    nodes=nodes,
                    retry_delays=scenario.retry_delays,
                )
            )
            tally = await scenario.run(rig, size)
    except Exception as exc:
        log.exception("scenario %s did not run", scenario.name)
        return Tally.failed_to_run(
            scenario.title, f"{type(exc).__name__}: {exc}", time.monotonic() - started
        )
    return replace(tally, scenario=scenario.title)


async def run_suite(
    scenarios: Sequence[Scenario],
    size: Size,
    *,
    workdir: Path,
    amqp_url: str,
    database_server: str | None = None,
    on_tally: Callable[[Tally], None] | None = None,
) -> list[Tally]:
    """Run each scenario in turn, each in its own folder of ``workdir`` (logs, store)."""
    tallies = []
    for scenario in scenarios:
        tally = await run_scenario(
            scenario,
            size,
            workdir=workdir / scenario.name,
            amqp_url=amqp_url,
            database_server=database_server,
        )
        tallies.append(tally)
        if on_tally is not None:
            on_tally(tally)
    return tallies
