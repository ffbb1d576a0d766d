"""The fault suite's bounded subset: every scenario of ``bus chaos`` at its small size.

Each test starts a bus of real processes (API, worker, partner simulator), injects its fault for
real and counts: every dossier answered 202 is registered by the partner once and finished, or
parked where the scenario expects it. ``bus chaos --size full`` runs the same at full size.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from bus.chaos import SCENARIOS, SMALL, Tally, run_scenario
from bus.chaos.report import print_notes, table
from bus.testing.cluster import rabbitmq_available
from tests.conftest import AMQP_URL, POSTGRES_ADMIN_DSN

pytestmark = [pytest.mark.broker, pytest.mark.slow]

#: The broker scenarios stop RabbitMQ nodes of their own, never the shared broker.
needs_private_nodes = pytest.mark.skipif(
    not rabbitmq_available(), reason="rabbitmq-server is not installed: no private nodes"
)


async def _run(name: str, workdir: Path, *, database_server: str | None = None) -> Tally:
    """Run scenario ``name`` at small size, print its row, and check its count."""
    tally = await run_scenario(
        SCENARIOS[name],
        SMALL,
        workdir=workdir,
        amqp_url=AMQP_URL,
        database_server=database_server,
    )
    console = Console(width=160)
    console.print(table([tally], title=f"{name} ({SMALL.name})"))
    print_notes(console, [tally])
    assert tally.error is None, f"{name} did not run: {tally.error} (logs in {workdir})"
    assert tally.accepted == tally.offered, tally.problems
    assert tally.lost == 0, tally.notes
    assert tally.applied_twice == 0, tally.notes
    assert tally.parked == tally.expected_parked, tally.notes
    assert tally.passed, tally.problems
    return tally


async def test_a_worker_killed_mid_batch_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """A worker SIGKILLed with a batch in hand: a new worker delivers every dossier once."""
    tally = await _run("worker-kill", tmp_path)
    assert tally.delivered == SMALL.dossiers


async def test_an_api_killed_between_commit_and_publish_loses_nothing(tmp_path: Path) -> None:
    """An API killed after its commit: retried pushes are replays, its outbox rows go out once."""
    tally = await _run("api-kill", tmp_path)
    assert tally.delivered == SMALL.dossiers


@needs_private_nodes
async def test_a_broker_stopped_and_restarted_loses_nothing(tmp_path: Path) -> None:
    """The API answers 202 while the only broker node is down; every dossier lands once."""
    tally = await _run("broker-stop", tmp_path)
    assert tally.delivered == SMALL.dossiers


@needs_private_nodes
async def test_a_cluster_node_stopped_mid_run_loses_nothing(tmp_path: Path) -> None:
    """With one of three cluster nodes stopped mid-run, every dossier still lands once."""
    tally = await _run("node-stop", tmp_path)
    assert tally.delivered == SMALL.dossiers


async def test_a_partner_down_then_back_gets_every_dossier_once(tmp_path: Path) -> None:
    """Dossiers meant for a partner whose link is cut all land once when it is back."""
    tally = await _run("partner-down", tmp_path)
    assert tally.delivered == SMALL.dossiers


async def test_a_flaky_partner_gets_every_dossier_once(tmp_path: Path) -> None:
    """With one call in five answered 503, every dossier is registered once through retries."""
    tally = await _run("partner-flaky", tmp_path)
    assert tally.delivered == SMALL.dossiers


async def test_poison_is_parked_with_its_reason_and_blocks_nothing(tmp_path: Path) -> None:
    """Two poison dossiers among 1,000 are parked with their reasons; the 1,000 land once."""
    tally = await _run("poison", tmp_path)
    assert (tally.delivered, tally.parked) == (SMALL.poison_among, 2)


@pytest.mark.postgres
async def test_a_worker_killed_mid_batch_loses_nothing_on_postgresql(tmp_path: Path) -> None:
    """The worker SIGKILL scenario on a store in the local PostgreSQL: nothing lost or doubled."""
    tally = await _run("worker-kill", tmp_path, database_server=POSTGRES_ADMIN_DSN)
    assert tally.delivered == SMALL.dossiers
