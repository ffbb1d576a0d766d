"""Linkage bundles end to end: API → engine → each agency's simulator → one answer per dossier.

On the real broker and store (SQLite and PostgreSQL): the birth bundle's three workers run
against their simulators; dossiers go in through the API, and the test counts what each partner
applied and what the dossier and its run became. Faults are real: a partner answering 503, the
workers of the later steps stopped while orders wait, the same order delivered twice.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import httpx
import orjson
import pytest

from bus.runtime import Runtime
from bus.settings import Settings
from bus.worker import run_workers
from connectors.residence.simulator import SimulatorFaults as ResidenceFaults
from contracts import sample_birth_dossier_json, sample_death_dossier_json
from tests.conftest import ALL_BUNDLES, make_settings
from tests.integration.conftest import LinkagePartners, Simulator
from tests.integration.helpers import push_dossiers, wait_for

pytestmark = [pytest.mark.broker]

ALL_STEPS = ["civil_status", "residence", "social_insurance"]


@pytest.fixture
def settings(
    namespace: str,
    database_url: str,
    simulator: Simulator,
    partners: LinkagePartners,
    broker_cleanup: list[str],
) -> Settings:
    """The integration bus, on SQLite and on PostgreSQL."""
    return make_settings(
        namespace,
        database_url,
        connector_endpoints={"civil_status": simulator.url, **partners.endpoints},
        linkage_bundles=ALL_BUNDLES,
    )


async def _view(client: httpx.AsyncClient, code: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/dossiers/{code}")
    assert answer.status_code == 200, answer.text
    view: dict[str, Any] = answer.json()
    return view


async def _finished(client: httpx.AsyncClient, codes: set[str]) -> list[dict[str, Any]]:
    """Every dossier's view once all runs ended and their events were confirmed."""

    async def check() -> list[dict[str, Any]] | None:
        views = [await _view(client, code) for code in codes]
        done = all(
            v["linkage"]["state"] != "open" and all(e["sent_at"] for e in v["events"])
            for v in views
        )
        return views if done else None

    views: list[dict[str, Any]] = await wait_for(check, timeout=60)
    return views


async def test_a_birth_linkage_runs_all_three_agencies_once(
    client: httpx.AsyncClient,
    workers: list[Any],
    simulator: Simulator,
    partners: LinkagePartners,
    portal_queue: aio_pika.abc.AbstractQueue,
) -> None:
    """Civil status, then residence and health insurance with its certificate number: status 9,
    every step reported to a portal in order."""
    answer = await client.post("/v1/dossiers", json=sample_birth_dossier_json(sequence=41))
    assert answer.status_code == 202, answer.text
    code = answer.json()["dossier_code"]
    [view] = await _finished(client, {code})

    linkage = view["linkage"]
    assert linkage["state"] == "done" and view["state"]["status"] == 9
    steps = {s["step"]: s for s in linkage["steps"]}
    certificate = steps["birth_registration"]["result_reference"]
    assert certificate and view["state"]["partner_reference"] == certificate
    assert all(s["state"] == "done" for s in steps.values())
    assert simulator.state.applied_codes == [code]
    assert partners.residence.applied_codes == [code]
    assert partners.social_insurance.applied_codes == [code]
    # The later steps could only be sent with the certificate number civil status issued
    # (without it they fail FORM_INVALID before any call); the store test checks its value.

    received: list[dict[str, Any]] = []

    async def four_events() -> bool:
        message = await portal_queue.get(fail=False)
        if message is not None:
            await message.ack()
            received.append(orjson.loads(message.body))
        return len(received) >= 4

    await wait_for(four_events, timeout=10)
    # Started (4), civil status done (4), one later step done (4), the other done (9).
    assert [e["dossierseq"] for e in received] == [2, 3, 4, 5]
    assert [e["data"]["status"] for e in received] == [4, 4, 4, 9]
    assert received[1]["data"]["partner_reference"] == certificate


async def test_a_death_linkage_runs_its_three_steps_in_sequence(
    client: httpx.AsyncClient,
    workers: list[Any],
    simulator: Simulator,
    partners: LinkagePartners,
) -> None:
    """Death registration, then residence removal, then the funeral allowance: status 9."""
    answer = await client.post("/v1/dossiers", json=sample_death_dossier_json(sequence=42))
    assert answer.status_code == 202, answer.text
    code = answer.json()["dossier_code"]
    [view] = await _finished(client, {code})
    linkage = view["linkage"]
    assert (linkage["bundle"], linkage["state"], view["state"]["status"]) == ("death", "done", 9)
    steps = [s["step"] for s in sorted(linkage["steps"], key=lambda s: s["requested_at"])]
    assert steps == ["death_registration", "residence_removal", "funeral_allowance"]
    assert simulator.state.applied_codes == [code]
    assert partners.residence.applied_codes == [code]
    assert partners.social_insurance.applied_codes == [code]


async def test_a_partner_down_delays_its_step_and_nothing_is_applied_twice(
    client: httpx.AsyncClient,
    workers: list[Any],
    simulator: Simulator,
    partners: LinkagePartners,
) -> None:
    """Residence answers 503 to every call for a while: its steps wait in retries; once it is
    back, 12 dossiers finish with exactly one registration each at every agency."""
    partners.residence.faults = ResidenceFaults(error_rate=1.0)
    pushed = await push_dossiers(client, range(100, 112))
    assert len(pushed.accepted) == 12

    async def step_one_done() -> bool:
        return len(simulator.state.applied_codes) == 12 and partners.residence.requests >= 3

    await wait_for(step_one_done, timeout=30)
    partners.residence.faults = ResidenceFaults()
    views = await _finished(client, pushed.accepted)
    assert {v["state"]["status"] for v in views} == {9}
    for state in (simulator.state, partners.residence, partners.social_insurance):
        assert sorted(state.applied_codes) == sorted(pushed.accepted)
    retried = [
        h
        for v in views
        for h in v["history"]
        if h["recipient"] == "residence" and h["outcome"] == "retry"
    ]
    assert retried, [
        (h["recipient"], h["outcome"], h["fault_code"]) for v in views for h in v["history"]
    ]


async def test_orders_wait_for_stopped_workers_and_resume(
    settings: Settings,
    api: str,
    client: httpx.AsyncClient,
    simulator: Simulator,
    partners: LinkagePartners,
) -> None:
    """Only civil status runs at first: every dossier's later steps wait as orders in their
    queues; a worker process that starts afterwards (a restart) finishes every run once."""
    runtime = await Runtime.open(settings, name="test-worker-a")
    first = await run_workers(runtime, ["civil_status"])
    pushed = await push_dossiers(client, range(200, 210))

    async def registered() -> bool:
        return len(simulator.state.applied_codes) == 10

    await wait_for(registered, timeout=30)
    await asyncio.sleep(0.3)
    for worker in first:
        await worker.stop()
    await runtime.close()
    views = [await _view(client, code) for code in pushed.accepted]
    assert all(v["linkage"]["state"] == "open" for v in views)
    assert partners.residence.applied == partners.social_insurance.applied == 0

    runtime = await Runtime.open(settings, name="test-worker-b")
    second = await run_workers(runtime, ALL_STEPS)
    try:
        views = await _finished(client, pushed.accepted)
    finally:
        for worker in second:
            await worker.stop()
        await runtime.close()
    assert {v["state"]["status"] for v in views} == {9}
    assert len(simulator.state.applied_codes) == 10
    assert sorted(partners.residence.applied_codes) == sorted(pushed.accepted)
    assert sorted(partners.social_insurance.applied_codes) == sorted(pushed.accepted)
