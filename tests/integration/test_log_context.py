"""Across processes: the trace a client starts reaches the partner, and every log line of the
worker process about a dossier names it, in JSON."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from bus.settings import Settings
from connectors.civil_status.simulator import SimulatorFaults
from contracts import sample_birth_dossier_json
from tests.integration.conftest import Simulator
from tests.integration.helpers import wait_for, worker_process

pytestmark = pytest.mark.broker

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def _lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for text in log.read_text().splitlines():
        if text.startswith("{"):
            lines.append(orjson.loads(text))
    return lines


async def test_the_clients_trace_reaches_the_partner_and_every_log_line(
    client: httpx.AsyncClient, settings: Settings, simulator: Simulator, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    json_logs = settings.model_copy(update={"log_format": "json"})
    process = await asyncio.to_thread(worker_process, json_logs, log, ("civil_status",))
    try:
        simulator.state.set_faults(SimulatorFaults(client_fault=True))
        body = sample_birth_dossier_json(91)
        answer = await client.post("/v1/dossiers", json=body, headers={"traceparent": CLIENT_SPAN})
        assert answer.status_code == 202, answer.text
        event_id = answer.json()["event_id"]

        def parked_line() -> dict[str, Any] | None:
            found = [line for line in _lines(log) if "parked" in line["message"]]
            return found[0] if found else None

        line = await wait_for(lambda: asyncio.to_thread(parked_line), timeout=30)
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 15)
    # The worker's line names the dossier, the message, the run and the client's trace.
    assert line["level"] == "warning" and line["process"] == "worker"
    assert line["dossier"] == body["code"]
    assert line["message_id"] == event_id
    assert line["trace_id"] == TRACE_ID
    assert line["correlation_id"]
    # The partner was called in the same trace, as a span of its own.
    recorded = simulator.state.last_request
    assert recorded is not None
    version, trace_id, span_id, _ = recorded.headers["traceparent"].split("-")
    assert (version, trace_id) == ("00", TRACE_ID)
    assert span_id not in (CLIENT_SPAN.split("-")[2], line["span_id"])
    # The worker froze its start-up objects before taking work (bus.heap).
    assert any("start-up objects frozen" in entry["message"] for entry in _lines(log))
    # Every line of the process is JSON, and none names another dossier.
    assert all(entry.get("dossier") in (None, body["code"]) for entry in _lines(log))
