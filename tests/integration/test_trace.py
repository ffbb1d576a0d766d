"""A dossier's trace through the whole bus: a partner failing once, then answering; the trace
shows each attempt with its four timestamps, and the CLI prints the same from the store."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from bus.cli import app
from bus.settings import Settings, get_settings
from bus.trace import DossierTrace
from bus.worker import ConnectorWorker
from connectors.civil_status.simulator import SimulatorFaults
from contracts import sample_birth_dossier_json
from tests.integration.conftest import LinkagePartners, Simulator, partner_settings
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.broker

runner = CliRunner()


@pytest.fixture
def settings(
    namespace: str,
    sqlite_url: str,
    simulator: Simulator,
    partners: LinkagePartners,
    broker_cleanup: list[str],
) -> Settings:
    """Retries a second apart: time for the test to mend the partner before the next one."""
    return partner_settings(namespace, sqlite_url, simulator, partners, retry_delays=(1.0, 2.0))


async def test_the_trace_shows_every_attempt_with_its_times(
    client: httpx.AsyncClient,
    workers: list[ConnectorWorker],
    simulator: Simulator,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    simulator.state.set_faults(SimulatorFaults(error_rate=1.0))
    answer = await client.post("/v1/dossiers", json=sample_birth_dossier_json(51))
    code = answer.json()["dossier_code"]

    async def retried() -> bool:
        trace = (await client.get(f"/v1/dossiers/{code}/trace")).json()
        return any(hop["outcome"] == "retry" for hop in trace["hops"])

    await wait_for(retried, timeout=30)
    simulator.state.set_faults(SimulatorFaults())

    async def finished() -> dict[str, Any] | None:
        trace: dict[str, Any] = (await client.get(f"/v1/dossiers/{code}/trace")).json()
        done = trace["status"] == 9 and all(e["sent_at"] for e in trace["events"])
        return trace if done else None

    trace = DossierTrace.model_validate(await wait_for(finished, timeout=30))
    assert [(h.kind, h.outcome, h.attempt) for h in trace.hops] == [
        ("ingest", "accepted", 1),
        ("deliver", "retry", 1),
        ("deliver", "delivered", 2),
    ]
    assert [h.seq for h in trace.hops] == [1, 2, 3]
    assert trace.retries == 1 and trace.outcomes == {"accepted": 1, "retry": 1, "delivered": 1}
    failed, delivered = trace.hops[1], trace.hops[2]
    assert (failed.sender, failed.recipient) == ("bus", "civil_status")
    assert failed.fault_code is not None and failed.fault_code.startswith("SOAP")
    assert delivered.retries == 1 and delivered.fault_code is None
    assert delivered.mapping_version == "civil_status/1.0/birth-registration.out"
    assert delivered.received_at is not None and delivered.sent_at is not None
    assert delivered.answered_at is not None
    assert delivered.received_at <= delivered.sent_at <= delivered.answered_at
    assert delivered.answered_at <= delivered.done_at
    assert delivered.partner_ms is not None and delivered.partner_ms >= 0
    assert delivered.queued_ms is not None and delivered.recorded_ms is not None
    assert delivered.request_bytes > 0 and delivered.response_bytes > 0
    assert not delivered.signed
    assert failed.done_at < delivered.received_at  # the retry came after the failure
    assert {h.correlation_id for h in trace.hops} == {trace.hops[0].correlation_id}
    kinds = [e.routing_key.split(".")[1] for e in trace.events]
    assert kinds[0] == "submitted" and "status" in kinds
    assert all(e.publish_ms is not None and e.publish_ms >= 0 for e in trace.events)
    assert trace.elapsed_ms is not None and trace.elapsed_ms >= 1000  # the retry waited 1 s

    # The CLI reads the same from the store.
    monkeypatch.setenv("BUS_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    try:
        printed = await asyncio.to_thread(
            runner.invoke, app, ["trace", code], env={"COLUMNS": "250"}
        )
        assert printed.exit_code == 0, printed.output
        assert "3 hop(s), 1 retried" in printed.output
        assert "civil_status/1.0/birth-registration.out" in printed.output
        as_json = await asyncio.to_thread(runner.invoke, app, ["trace", code, "--json"])
        assert DossierTrace.model_validate_json(as_json.output) == trace
        unknown = await asyncio.to_thread(
            runner.invoke, app, ["trace", "000.00.10.H12-240315-9999"]
        )
        assert unknown.exit_code == 1 and "no dossier" in unknown.output
        malformed = await asyncio.to_thread(runner.invoke, app, ["trace", "not-a-code"])
        assert malformed.exit_code == 2 and "not a dossier code" in malformed.output
    finally:
        get_settings.cache_clear()


async def test_trace_of_unknown_or_malformed_codes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/dossiers/000.00.10.H12-240315-9999/trace")).status_code == 404
    assert (await client.get("/v1/dossiers/nope/trace")).status_code == 422
