"""Dead letters through the whole bus: a partner refuses, the worker parks, the keeper keeps,
and an operator lists, inspects, replays and discards them over the API and the CLI.

Counted at the end: every dossier parked was either applied once by the partner or discarded,
never both, never twice, however many times it was replayed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from bus.cli import app
from bus.dead_letters import DeadLetterKeeper
from bus.parking import replay_message
from bus.runtime import Runtime
from bus.settings import Settings, get_settings
from bus.store.dead_letters import read_dead_letter
from bus.worker import ConnectorWorker
from connectors.civil_status.simulator import SimulatorFaults
from contracts import sample_birth_dossier_json
from tests.integration.conftest import Simulator
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.broker

runner = CliRunner()


@pytest.fixture
async def runtime(settings: Settings, api: str) -> AsyncIterator[Runtime]:
    """A worker process's runtime (store and broker), after the API declared the topology."""
    runtime = await Runtime.open(settings, name="test-keeper")
    yield runtime
    await runtime.close()


@pytest.fixture
async def keeper(runtime: Runtime) -> AsyncIterator[DeadLetterKeeper]:
    """The dead-letter keeper, as every ``bus worker`` runs it."""
    keeper = DeadLetterKeeper(runtime)
    await keeper.start()
    yield keeper
    await keeper.stop()


async def _submit(client: httpx.AsyncClient, sequence: int) -> str:
    answer = await client.post("/v1/dossiers", json=sample_birth_dossier_json(sequence))
    assert answer.status_code == 202, answer.text
    code: str = answer.json()["dossier_code"]
    return code


async def _parked(client: httpx.AsyncClient, count: int, **params: Any) -> list[dict[str, Any]]:
    async def listed() -> list[dict[str, Any]] | None:
        page = (await client.get("/v1/dead-letters", params=params)).json()
        found: list[dict[str, Any]] = page["dead_letters"]
        return found if len(found) >= count else None

    result: list[dict[str, Any]] = await wait_for(listed, timeout=30)
    return result


async def _status(client: httpx.AsyncClient, code: str) -> int:
    status: int = (await client.get(f"/v1/dossiers/{code}")).json()["state"]["status"]
    return status


async def _history(client: httpx.AsyncClient, code: str) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = (await client.get(f"/v1/dossiers/{code}")).json()["history"]
    return history


async def test_parked_dossiers_are_listed_inspected_replayed_and_discarded(
    client: httpx.AsyncClient,
    workers: list[ConnectorWorker],
    keeper: DeadLetterKeeper,
    runtime: Runtime,
    simulator: Simulator,
) -> None:
    simulator.state.set_faults(SimulatorFaults(client_fault=True))
    codes = [await _submit(client, sequence) for sequence in (31, 32, 33, 34)]
    listed = await _parked(client, 4)
    assert {d["dossier_code"] for d in listed} == set(codes)
    assert simulator.state.stats()["applied"] == 0
    first = listed[-1]  # newest first: the last in the list was parked first
    assert first["connector"] == "civil_status"
    assert first["procedure_code"] == "1.001193"
    assert first["error_class"] == "permanent"
    assert first["state"] == "parked" and first["attempts"] == 1
    assert first["event_type"] == "vn.lienthong.dossier.submitted"
    assert first["fault_code"].startswith("SOAP")

    # Filters narrow the list; the page counts all that match.
    by_dossier = (await client.get("/v1/dead-letters", params={"dossier_code": codes[0]})).json()
    assert [d["dossier_code"] for d in by_dossier["dead_letters"]] == [codes[0]]
    later = {"parked_after": "2999-01-01T00:00:00+07:00"}
    assert (await client.get("/v1/dead-letters", params=later)).json()["total"] == 0
    transient = {"error_class": "transient"}
    assert (await client.get("/v1/dead-letters", params=transient)).json()["total"] == 0
    paged = (await client.get("/v1/dead-letters", params={"limit": 3})).json()
    assert paged["total"] == 4 and len(paged["dead_letters"]) == 3
    rest = await client.get(
        "/v1/dead-letters", params={"limit": 3, "before_id": paged["next_before_id"]}
    )
    assert len(rest.json()["dead_letters"]) == 1

    # Inspect one: the body as parked, the headers with the reason.
    detail = (await client.get(f"/v1/dead-letters/{first['id']}")).json()
    assert detail["body"]["subject"] == first["dossier_code"]
    assert detail["headers"]["x-bus-fault-code"] == first["fault_code"]
    assert detail["reason"] == detail["headers"]["x-bus-reason"]
    assert detail["body_base64"] is None

    # The partner is fixed. Replay one; it is applied. Replayed again: refused, 409.
    simulator.state.set_faults(SimulatorFaults())
    one = await client.post(f"/v1/dead-letters/{first['id']}/replay")
    assert one.status_code == 200 and one.json()["done"] == [first["id"]], one.text

    async def registered(code: str) -> bool:
        return await _status(client, code) == 9

    await wait_for(lambda: registered(first["dossier_code"]), timeout=30)
    again = await client.post(f"/v1/dead-letters/{first['id']}/replay")
    assert again.status_code == 409 and "replayed by test-operator" in again.json()["detail"]

    # The same message sent back three times (an operator's replay after a crash between
    # publish and record, say) is applied once: the consumer's dedup guard.
    second = listed[-2]
    row = await read_dead_letter(runtime.engine, second["id"])
    assert row is not None
    for _ in range(2):
        await runtime.broker.publish(replay_message(row))
    replayed = await client.post(f"/v1/dead-letters/{second['id']}/replay")
    assert replayed.json()["done"] == [second["id"]]
    await wait_for(lambda: registered(second["dossier_code"]), timeout=30)

    # Discard one, saying why: it stays on record and in its dossier's history.
    third = listed[-3]
    discarded = await client.post(
        f"/v1/dead-letters/{third['id']}/discard",
        json={"reason": "Công dân rút hồ sơ (withdrawn at the desk)"},
    )
    assert discarded.status_code == 200 and discarded.json()["done"] == [third["id"]]
    decision = (await _history(client, third["dossier_code"]))[-1]
    assert (decision["kind"], decision["outcome"]) == ("discard", "discarded")
    assert decision["fault_detail"] == "Công dân rút hồ sơ (withdrawn at the desk)"
    assert decision["sender"] == "test-operator"

    # The rest by filter: every parked one of the connector.
    bulk = await client.post(
        "/v1/dead-letters:replay", json={"filter": {"connector": "civil_status"}}
    )
    assert bulk.json() == {"done": [listed[0]["id"]], "skipped": [], "remaining": 0}
    await wait_for(lambda: registered(listed[0]["dossier_code"]), timeout=30)
    await asyncio.sleep(0.5)  # let any stray copy of a replayed message arrive

    stats = simulator.state.stats()
    assert stats["applied"] == 3  # three replayed, one discarded
    assert sorted(stats["applied_codes"]) == sorted(
        d["dossier_code"] for d in (first, second, listed[0])
    )
    assert await _status(client, third["dossier_code"]) != 9
    remaining = (await client.get("/v1/dead-letters")).json()
    assert remaining["total"] == 0
    everything = (await client.get("/v1/dead-letters", params={"state": "any"})).json()
    assert sorted(d["state"] for d in everything["dead_letters"]) == [
        "discarded", "replayed", "replayed", "replayed",
    ]  # fmt: skip
    replay_hops = [
        h for h in await _history(client, first["dossier_code"]) if h["kind"] == "replay"
    ]
    assert [h["sender"] for h in replay_hops] == ["test-operator"]


async def test_requests_that_cannot_be_answered(
    client: httpx.AsyncClient, keeper: DeadLetterKeeper
) -> None:
    """Unknown ids: 404. Bad filters and selections: 422, saying what is wrong."""
    assert (await client.get("/v1/dead-letters/999999")).status_code == 404
    assert (await client.post("/v1/dead-letters/999999/replay")).status_code == 404
    naive = await client.get("/v1/dead-letters", params={"parked_after": "2024-03-15T08:00:00"})
    assert naive.status_code == 422 and "offset" in naive.text
    unknown_state = await client.get("/v1/dead-letters", params={"state": "lost"})
    assert unknown_state.status_code == 422
    both = await client.post("/v1/dead-letters:replay", json={"ids": [1], "filter": {}})
    assert both.status_code == 422 and "either ids or filter" in both.text
    no_reason = await client.post("/v1/dead-letters:discard", json={"ids": [1], "reason": " "})
    assert no_reason.status_code == 422


async def test_the_cli_lists_shows_replays_and_discards(
    client: httpx.AsyncClient,
    workers: list[ConnectorWorker],
    keeper: DeadLetterKeeper,
    simulator: Simulator,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``bus dlq`` on the same store and broker: a bulk replay by filter, with its progress."""
    monkeypatch.setenv("BUS_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("BUS_AMQP_URL", settings.amqp_url)
    monkeypatch.setenv("BUS_NAMESPACE", settings.namespace)
    get_settings.cache_clear()
    simulator.state.set_faults(SimulatorFaults(client_fault=True))
    codes = [await _submit(client, sequence) for sequence in range(41, 46)]
    listed = await _parked(client, 5)
    simulator.state.set_faults(SimulatorFaults())

    async def cli(*args: str) -> tuple[int, str]:
        def invoke() -> tuple[int, str]:
            result = runner.invoke(app, ["dlq", *args], env={"COLUMNS": "200"})
            return result.exit_code, result.output

        return await asyncio.to_thread(invoke)

    try:
        exit_code, output = await cli("list", "--connector", "civil_status")
        assert exit_code == 0 and "5 dead letter(s), parked" in output, output
        assert all(code in output for code in codes)
        exit_code, output = await cli("show", str(listed[0]["id"]))
        assert exit_code == 0 and codes[-1] in output and "x-bus-reason" in output
        exit_code, output = await cli("replay")
        assert exit_code == 2 and "say what to replay" in output
        exit_code, output = await cli(
            "discard", str(listed[0]["id"]), "--reason", "duplicate filing"
        )
        assert exit_code == 0 and "1 of 1 discarded" in output, output
        exit_code, output = await cli("replay", "--fault", listed[1]["fault_code"])
        assert exit_code == 0 and "4 of 4 replayed" in output and "replaying" in output, output
        exit_code, output = await cli("replay", str(listed[1]["id"]))
        assert (
            "0 of 1 replayed" in output
            and f"skipped (no longer parked, or unknown): {listed[1]['id']}" in output
        )

        async def all_registered() -> bool:
            return all([await _status(client, code) == 9 for code in codes[:4]])

        await wait_for(all_registered, timeout=30)
        assert simulator.state.stats()["applied"] == 4
        operator = (await _history(client, codes[0]))[-2]
        assert operator["kind"] == "replay" and operator["sender"].startswith("cli:")
    finally:
        get_settings.cache_clear()
