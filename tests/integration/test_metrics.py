"""Prometheus metrics of a bus at work: the API's /metrics (its counters and the store's
figures) and a ``bus worker`` process's own metrics port, counted against what was pushed."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from bus.cli import app
from bus.settings import Settings, get_settings
from bus.topology import Names
from bus.worker import ConnectorWorker
from connectors.civil_status.simulator import SimulatorFaults
from contracts import sample_birth_dossier_json
from tests.integration.conftest import Simulator
from tests.integration.helpers import wait_for, worker_process

pytestmark = pytest.mark.broker

BIRTH = "1.001193"
runner = CliRunner()


Page = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""A scraped page: each sample's value by metric name and labels."""


def samples(text: str) -> Page:
    """Every sample of a Prometheus text page, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(page: Page, name: str, **labels: str) -> float:
    return page.get((name, frozenset(labels.items())), 0.0)


async def _scrape(client: httpx.AsyncClient) -> Page:
    answer = await client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return samples(answer.text)


async def _submit(client: httpx.AsyncClient, sequences: range) -> list[str]:
    codes = []
    for sequence in sequences:
        answer = await client.post("/v1/dossiers", json=sample_birth_dossier_json(sequence))
        assert answer.status_code == 202, answer.text
        codes.append(answer.json()["dossier_code"])
    return codes


async def test_the_api_counts_what_flows_and_reads_the_store(
    client: httpx.AsyncClient, workers: list[ConnectorWorker], simulator: Simulator
) -> None:
    """Counters are per process (the workers run in this one here), so they are compared with
    a scrape before; the store's figures are of this test's store alone."""
    before = await _scrape(client)
    codes = await _submit(client, range(61, 66))

    async def registered() -> bool:
        return value(await _scrape(client), "bus_dossiers", status="9") == 5

    await wait_for(registered, timeout=30)
    ready = (await client.get("/readyz")).json()
    assert ready["checks"] == {"broker": True, "database": True}
    assert ready["partners"]["civil_status"] == "ok"
    assert ready["partners"]["residence"] == "idle"
    simulator.state.set_faults(SimulatorFaults(client_fault=True))
    refused = await _submit(client, range(66, 68))

    parked = {"connector": "civil_status", "procedure": BIRTH, "outcome": "parked"}

    async def settled() -> Page | None:
        page = await _scrape(client)
        registered = value(page, "bus_dossiers", status="9") == 5
        confirmed = value(page, "bus_outbox_pending") == 0
        both_parked = (
            value(page, "bus_deliveries_total", **parked)
            - value(before, "bus_deliveries_total", **parked)
            == 2
        )
        return page if registered and confirmed and both_parked else None

    after = await wait_for(settled, timeout=30)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("bus_dossiers_accepted_total", procedure=BIRTH) == len(codes) + len(refused)
    delivered = {"connector": "civil_status", "procedure": BIRTH, "outcome": "delivered"}
    assert grew("bus_deliveries_total", **delivered) == 5
    assert grew("bus_partner_call_seconds_count", connector="civil_status") == 5
    assert grew("bus_hop_seconds_count", connector="civil_status") == 5
    assert grew("bus_partner_call_seconds_sum", connector="civil_status") > 0
    # The store's figures: 5 registered, 2 still waiting (parked), no event waiting.
    assert value(after, "bus_dossiers", status="9") == 5
    assert value(after, "bus_outbox_pending") == 0 and value(after, "bus_outbox_lag_seconds") == 0
    assert value(after, "bus_dossiers_overdue") == 0
    # The partner refused the last two: the log shows it failing (the API stays ready).
    ready_answer = await client.get("/readyz")
    assert ready_answer.status_code == 200
    assert ready_answer.json()["partners"]["civil_status"] == "failing"


async def test_only_monitoring_clients_and_operators_read_the_metrics(
    client: httpx.AsyncClient, api: str
) -> None:
    async with httpx.AsyncClient(base_url=api) as anonymous:
        assert (await anonymous.get("/metrics")).status_code == 401
    assert (await client.get("/metrics")).status_code == 200  # the test operator


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_a_worker_process_serves_its_own_metrics(
    client: httpx.AsyncClient, settings: Settings, simulator: Simulator, tmp_path: Path
) -> None:
    """``bus worker --metrics-port``: its deliveries and latencies, on its own port."""
    port = _free_port()
    process = await asyncio.to_thread(
        worker_process, settings, tmp_path / "worker.log", ("civil_status",),
        "--metrics-port", str(port),
    )  # fmt: skip
    try:
        await _submit(client, range(71, 74))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as scraper:

            async def delivered() -> float:
                page = samples((await scraper.get("/metrics")).text)
                count = value(
                    page, "bus_deliveries_total", connector="civil_status", procedure=BIRTH,
                    outcome="delivered",
                )  # fmt: skip
                return count if count == 3 else 0.0

            assert await wait_for(delivered, timeout=30) == 3
            page = samples((await scraper.get("/metrics")).text)
        assert value(page, "bus_partner_call_seconds_count", connector="civil_status") == 3
        assert value(page, "bus_circuit_open", connector="civil_status") == 0
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 15)


async def test_bus_status_shows_the_bus_at_a_glance(
    client: httpx.AsyncClient,
    workers: list[ConnectorWorker],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``bus status --json`` against the running bus; exit 1 when the broker does not answer."""
    await _submit(client, range(81, 84))

    async def registered() -> bool:
        return value(await _scrape(client), "bus_dossiers", status="9") == 3

    await wait_for(registered, timeout=30)
    for name, setting in settings.as_environment().items():
        monkeypatch.setenv(name, setting)
    get_settings.cache_clear()
    try:
        shown = await asyncio.to_thread(runner.invoke, app, ["status", "--json"])
        assert shown.exit_code == 0, shown.output
        found = orjson.loads(shown.output)
        assert (found["store"], found["broker"]) == ("ok", "ok")
        assert found["dossiers"] == {"9": 3} and found["overdue"] == 0
        assert found["partners"]["civil_status"] == "ok"
        assert found["queues"][Names(settings.namespace).connector_queue("civil_status")] == 0
        monkeypatch.setenv("BUS_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/")
        get_settings.cache_clear()
        down = await asyncio.to_thread(runner.invoke, app, ["status"])
        assert down.exit_code == 1 and "unreachable" in down.output
    finally:
        get_settings.cache_clear()
