"""A mapping failure parks a dossier with a precise reason; fixed and replayed, it applies once."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from bus.api.app import create_app
from bus.dead_letters import DeadLetterKeeper
from bus.parking import replay_message
from bus.runtime import Runtime
from bus.settings import Settings
from bus.store.dead_letters import read_dead_letter
from bus.testing import serve_app
from bus.worker import run_workers
from contracts import sample_birth_dossier_json
from tests.conftest import AUTH
from tests.integration.conftest import Simulator
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
SPEC = "civil_status/1.0/birth-registration.out.yaml"
GOOD = "hoTen: {from: form.child_full_name, required: true}"
BROKEN = "hoTen: {from: form.child_name, required: true}"  # a typo an integrator could make


async def _start_worker(settings: Settings) -> tuple[Runtime, list]:  # type: ignore[type-arg]
    runtime = await Runtime.open(settings, name="test-worker")
    return runtime, await run_workers(runtime, ["civil_status"])


async def _stop_worker(runtime: Runtime, workers: list) -> None:  # type: ignore[type-arg]
    for worker in workers:
        await worker.stop()
    await runtime.close()


async def _kept(client: httpx.AsyncClient, code: str) -> list[dict[str, Any]]:
    """The dossier's dead letters, once the keeper has them."""

    async def listed() -> list[dict[str, Any]] | None:
        page = (await client.get("/v1/dead-letters", params={"dossier_code": code})).json()
        found: list[dict[str, Any]] = page["dead_letters"]
        return found or None

    result: list[dict[str, Any]] = await wait_for(listed)
    return result


async def test_a_dossier_parked_by_a_broken_mapping_is_applied_once_after_the_fix(
    settings: Settings, simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Broken spec → parked with mapping, path, field; fixed spec + replay (twice) → one effect."""
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    spec = mappings / SPEC
    spec.write_text(spec.read_text(encoding="utf-8").replace(GOOD, BROKEN), encoding="utf-8")
    monkeypatch.setenv("BUS_MAPPINGS_DIR", str(mappings))
    body = sample_birth_dossier_json(sequence=77)

    with serve_app(create_app(settings), lifespan="on") as api:
        async with httpx.AsyncClient(base_url=api, timeout=30, headers=AUTH) as client:
            runtime, workers = await _start_worker(settings)
            try:
                assert (await client.post("/v1/dossiers", json=body)).status_code == 202

                async def parked() -> bool:
                    view = (await client.get(f"/v1/dossiers/{body['code']}")).json()
                    return any(h["outcome"] == "parked" for h in view["history"])

                await wait_for(parked)
            finally:
                await _stop_worker(runtime, workers)

            # The worker's process keeps the parked message; the operator reads it.
            runtime, workers = await _start_worker(settings)
            keeper = DeadLetterKeeper(runtime)
            await keeper.start()
            try:
                [message] = await _kept(client, body["code"])
                assert message["error_class"] == "permanent"
                assert message["attempts"] == 1  # a mapping error is not retried
                assert message["fault_code"] == "FORM_INVALID"  # the mapping says how
                assert "civil_status/1.0/birth-registration.out" in message["reason"]
                assert "form.child_name" in message["reason"]
                assert "treEm.hoTen" in message["reason"]
                assert simulator.state.stats()["requests"] == 0
            finally:
                await keeper.stop()
                await _stop_worker(runtime, workers)

            # The integrator fixes the spec; workers restart with it; the operator replays.
            spec.write_text(
                spec.read_text(encoding="utf-8").replace(BROKEN, GOOD), encoding="utf-8"
            )
            runtime, workers = await _start_worker(settings)
            try:
                replayed = await client.post(
                    "/v1/dead-letters:replay", json={"filter": {"dossier_code": body["code"]}}
                )
                assert replayed.json() == {"done": [message["id"]], "skipped": [], "remaining": 0}

                async def delivered() -> bool:
                    view = (await client.get(f"/v1/dossiers/{body['code']}")).json()
                    return view["state"]["status"] == 9

                await wait_for(delivered)
                # The same message sent again (another operator's copy) changes nothing.
                row = await read_dead_letter(runtime.engine, message["id"])
                assert row is not None
                await runtime.broker.publish(replay_message(row))
                await asyncio.sleep(1.0)
            finally:
                await _stop_worker(runtime, workers)
            view = (await client.get(f"/v1/dossiers/{body['code']}")).json()

    outcomes = [h["outcome"] for h in view["history"] if h["kind"] == "deliver"]
    assert outcomes == ["parked", "delivered"]
    assert view["history"][-1]["mapping_version"] == "civil_status/1.0/birth-registration.out"
    assert simulator.state.stats()["applied"] == 1
    assert simulator.state.stats()["requests"] == 1
