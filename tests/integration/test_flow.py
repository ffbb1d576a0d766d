"""A dossier travels end to end: API → store → RabbitMQ → worker → simulator → status event."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import aio_pika
import httpx
import pytest
from cloudevents.core.bindings import rabbitmq as ce_rabbitmq
from cloudevents.core.formats.json import JSONFormat

from bus.worker import ConnectorWorker
from contracts import EVENT_DOSSIER_STATUS_CHANGED, VN_TZ, sample_birth_dossier_json
from tests.integration.conftest import Simulator
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.broker


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A healthy flow logs no error: anything at ERROR level fails the test."""
    caplog.set_level(logging.INFO)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


async def test_a_dossier_reaches_the_partner_and_its_status_comes_back(
    client: httpx.AsyncClient,
    workers: list[ConnectorWorker],
    simulator: Simulator,
    portal_queue: aio_pika.abc.AbstractQueue,
) -> None:
    """The simulator registers the birth once and a portal receives the status-changed event."""
    body = sample_birth_dossier_json(sequence=1)
    answer = await client.post("/v1/dossiers", json=body)
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert accepted["dossier_code"] == body["code"] and not accepted["replayed"]
    assert answer.headers["location"] == f"/v1/dossiers/{body['code']}"

    async def delivered() -> dict[str, Any] | None:
        view = (await client.get(f"/v1/dossiers/{body['code']}")).json()
        return (
            view
            if view["state"]["status"] == 9 and all(e["sent_at"] for e in view["events"])
            else None
        )

    view = await wait_for(delivered)
    assert [h["kind"] for h in view["history"]] == ["ingest", "deliver"]
    deliver = view["history"][1]
    assert deliver["outcome"] == "delivered" and deliver["recipient"] == "civil_status"
    assert deliver["sent_at"] and deliver["answered_at"] and deliver["request_bytes"] > 0
    assert deliver["mapping_version"] == "civil_status/1.0/birth-registration.out"
    assert view["state"]["partner_reference"].startswith("KS/")
    assert simulator.state.stats()["applied"] == 1
    # Sent without a due date, received Friday 15 March 2024 at 09:00: birth registration is
    # same-day (procedures.json), so the bus made it due at the end of that day.
    assert body.get("due_at") is None
    due = datetime(2024, 3, 15, 23, 59, 59, tzinfo=VN_TZ)
    assert datetime.fromisoformat(view["state"]["due_at"]) == due
    assert view["dossier"]["due_at"] == "2024-03-15T23:59:59+07:00"

    message = await wait_for(lambda: portal_queue.get(fail=False))
    await message.ack()
    assert message.routing_key == "dossier.status.9.000.00.10.H12"
    event = ce_rabbitmq.from_rabbitmq(
        ce_rabbitmq.RabbitMQMessage(
            headers={}, content_type=message.content_type, body=message.body
        ),
        JSONFormat(),
    )
    assert event.get_type() == EVENT_DOSSIER_STATUS_CHANGED
    assert event.get_subject() == body["code"]
    assert event.get_source() == "000.00.00.G12"
    assert event.get_extension("causationid") == accepted["event_id"]
    assert event.get_extension("dossierseq") == 2
    assert event.get_extension("traceparent").startswith("00-")
    assert event.get_extension("mappingid") == deliver["mapping_version"]
    assert event.get_data()["status"] == 9  # type: ignore[index]


async def test_the_same_dossier_twice_is_one_dossier(
    client: httpx.AsyncClient, workers: list[ConnectorWorker], simulator: Simulator
) -> None:
    """A repeated request gets the original answer and the partner is called for one dossier."""
    body = sample_birth_dossier_json(sequence=2)
    first = await client.post("/v1/dossiers", json=body, headers={"Idempotency-Key": "k-2"})
    second = await client.post("/v1/dossiers", json=body, headers={"Idempotency-Key": "k-2"})
    third = await client.post("/v1/dossiers", json=body)
    assert first.status_code == second.status_code == third.status_code == 202
    assert first.json()["event_id"] == second.json()["event_id"] == third.json()["event_id"]
    assert second.json()["replayed"] and third.json()["replayed"]

    async def done() -> bool:
        return bool(
            (await client.get(f"/v1/dossiers/{body['code']}")).json()["state"]["status"] == 9
        )

    await wait_for(done)
    await asyncio.sleep(0.3)
    assert simulator.state.stats()["applied"] == 1
    assert simulator.state.stats()["requests"] == 1
