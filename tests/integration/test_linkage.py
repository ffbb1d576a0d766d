"""Linkage bundles end to end: API → engine → each agency's simulator → one answer per dossier.

On the real broker and store (SQLite and PostgreSQL): the birth bundle's three workers run
against their simulators; dossiers go in through the API, and the test counts what each partner
applied and what the dossier and its run became. Faults are real: a partner answering 503, the
workers of the later steps stopped while orders wait, the same order delivered twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

import aio_pika
import httpx
import orjson
import pytest

from bus.deadlines import DeadlineScheduler
from bus.runtime import Runtime
from bus.settings import Settings
from bus.topology import Names
from bus.worker import run_workers
from connectors.residence.simulator import SimulatorFaults as ResidenceFaults
from contracts import VN_TZ, sample_birth_dossier_json, sample_death_dossier_json
from tests.conftest import ALL_BUNDLES, AMQP_URL, AUTH
from tests.integration.conftest import LinkagePartners, Simulator, partner_settings
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
    return partner_settings(
        namespace, database_url, simulator, partners, linkage_bundles=ALL_BUNDLES
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


async def _steps(client: httpx.AsyncClient, code: str) -> dict[str, dict[str, Any]]:
    view = await _view(client, code)
    return {s["step"]: s for s in view["linkage"]["steps"]}


async def _portal_statuses(queue: aio_pika.abc.AbstractQueue, last: int) -> list[int]:
    """The statuses a portal hears, in order, up to ``last``."""
    heard: list[int] = []

    async def reached() -> bool:
        message = await queue.get(fail=False)
        if message is not None:
            await message.ack()
            heard.append(orjson.loads(message.body)["data"]["status"])
        return bool(heard) and heard[-1] == last

    await wait_for(reached, timeout=20)
    return heard


async def test_a_supplement_pauses_the_step_until_the_partner_pushes_its_outcome(
    api: str,
    client: httpx.AsyncClient,
    workers: list[Any],
    simulator: Simulator,
    partners: LinkagePartners,
    portal_queue: aio_pika.abc.AbstractQueue,
) -> None:
    """Residence asks for a supplement: the dossier waits in 5 while health insurance finishes;
    the citizen brings it to residence, whose software pushes its registration to
    /v1/inbound/residence, and the run ends at 9 with residence applied once."""
    partners.residence.faults = ResidenceFaults(ask_supplement=True)
    answer = await client.post("/v1/dossiers", json=sample_birth_dossier_json(sequence=44))
    assert answer.status_code == 202, answer.text
    code = answer.json()["dossier_code"]

    async def waiting_for_supplement() -> dict[str, Any] | None:
        view = await _view(client, code)
        steps = {s["step"]: s for s in view["linkage"]["steps"]}
        paused = (
            steps["permanent_residence"]["state"] == "supplement"
            and steps["health_insurance_card"]["state"] == "done"
        )
        return view if paused else None

    view = await wait_for(waiting_for_supplement, timeout=30)
    assert view["state"]["status"] == 5 and view["linkage"]["state"] == "open"
    residence_step = next(s for s in view["linkage"]["steps"] if s["step"] == "permanent_residence")
    assert residence_step["result_status"] == 5 and "bổ sung" in residence_step["result_note"]
    assert partners.residence.applied == 0 and code in partners.residence.held

    async with httpx.AsyncClient(base_url=partners.residence_url, timeout=10) as residence:
        brought = await residence.post(
            f"/_sim/supplements/{code}",
            json={"push_to": f"{api}/v1/inbound/residence", "push_headers": AUTH},
        )
    assert brought.status_code == 200, brought.text
    assert brought.json()["pushed"] == 200, brought.json()

    [view] = await _finished(client, {code})
    assert (view["linkage"]["state"], view["state"]["status"]) == ("done", 9)
    steps = {s["step"]: s for s in view["linkage"]["steps"]}
    done = steps["permanent_residence"]
    assert (
        done["state"] == "done" and done["result_reference"] == brought.json()["answer"]["soHoKhau"]
    )
    # The supplement came the same day: no working day waited, the step's due date stands.
    assert done["due_on"] == residence_step["due_on"]
    assert partners.residence.applied_codes == [code]
    assert partners.social_insurance.applied_codes == [code]
    statuses = await _portal_statuses(portal_queue, last=9)
    # From the supplement request on, the dossier stays in 5 (health insurance's answer is
    # reported in 5 when it comes after) until residence's registration ends the run.
    waited = statuses[statuses.index(5) :]
    assert set(waited[:-1]) == {5} and waited[-1] == 9, statuses


@dataclass
class FixedClock:
    """The scheduler's clock, set by the test."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


async def test_a_partner_down_until_its_step_is_at_risk_raises_one_alert(
    settings: Settings,
    client: httpx.AsyncClient,
    workers: list[Any],
    simulator: Simulator,
    partners: LinkagePartners,
) -> None:
    """Residence answers 503 to every call: its step keeps retrying, and on the step's due date
    the scheduler raises dossier.at_risk for it once, to a queue and the API; once residence is
    back the run finishes and a scan the day after raises nothing."""
    partners.residence.faults = ResidenceFaults(error_rate=1.0)
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    alerts = await channel.declare_queue(exclusive=True, auto_delete=True)
    for pattern in ("dossier.at_risk.#", "dossier.overdue.#"):
        await alerts.bind(Names(settings.namespace).events, routing_key=pattern)
    runtime = await Runtime.open(settings, name="test-scheduler")
    try:
        # Received now, so that only the step, not the whole dossier, can be at risk first.
        received_at = datetime.now(VN_TZ).replace(microsecond=0)
        dossier = sample_birth_dossier_json(sequence=45, received_at=received_at)
        answer = await client.post("/v1/dossiers", json=dossier)
        assert answer.status_code == 202, answer.text
        code = answer.json()["dossier_code"]

        async def retrying() -> dict[str, Any] | None:
            steps = await _steps(client, code)
            retried = partners.residence.requests >= 2
            ready = retried and steps["health_insurance_card"]["state"] == "done"
            return steps["permanent_residence"] if ready else None

        step = await wait_for(retrying, timeout=30)
        assert step["state"] == "requested"
        due_on = date.fromisoformat(step["due_on"])
        clock = FixedClock(datetime.combine(due_on, time(10), tzinfo=VN_TZ))
        scheduler = DeadlineScheduler(runtime, clock=clock)

        raised = await scheduler.scan_once()
        assert [(a.dossier_code, a.scope, a.kind) for a in raised] == [
            (code, "step:permanent_residence", "at_risk")
        ]
        assert await scheduler.scan_once() == []  # once only

        async def alerted() -> aio_pika.abc.AbstractIncomingMessage | None:
            return await alerts.get(fail=False)

        message = await wait_for(alerted, timeout=10)
        await message.ack()
        alert = orjson.loads(message.body)
        agency = runtime.registry.get("residence").config.agency
        # Routed by the receiving desk (it answers the citizen); the agency that must act is named.
        assert message.routing_key == "dossier.at_risk.000.00.10.H12"
        assert alert["data"]["step"] == "permanent_residence" and alert["data"]["agency"] == agency
        listed = (await client.get(f"/v1/dossiers/{code}/alerts")).json()
        assert [(a["kind"], a["step"]) for a in listed["alerts"]] == [
            ("at_risk", "permanent_residence")
        ]

        partners.residence.faults = ResidenceFaults()
        [view] = await _finished(client, {code})
        assert view["state"]["status"] == 9
        assert partners.residence.applied_codes == [code]
        clock.now = datetime.combine(due_on, time(23), tzinfo=VN_TZ)
        assert await scheduler.scan_once() == []
        await asyncio.sleep(0.5)  # time for a wrongly raised alert to arrive
        assert await alerts.get(fail=False) is None
    finally:
        await runtime.close()
        await connection.close()
