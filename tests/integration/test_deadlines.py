"""Deadline alerts on the real store (SQLite and PostgreSQL) and the real broker.

Dossiers and linkage steps are written straight into their tables, as the ingest and the
linkage engine leave them; the scheduler scans with a fixed clock. Each alert must reach a queue
bound to ``dossier.at_risk.#`` / ``dossier.overdue.#`` exactly once, however often and however
many schedulers look, and the API must list what was raised.

November 2026: Monday 16 to Friday 20 are working days.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import aio_pika
import httpx
import pytest
import sqlalchemy as sa
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bus import events
from bus.api.app import create_app
from bus.deadlines import DeadlineScheduler
from bus.runtime import Runtime
from bus.settings import Settings
from bus.store import subscriptions
from bus.store.database import create_engine, writer
from bus.store.deadlines import AlertToRaise, raise_alerts
from bus.store.migrate import upgrade_async
from bus.store.schema import (
    deadline_alerts,
    dossiers,
    linkage_runs,
    linkage_steps,
    outbox,
    status_history,
)
from bus.testing import serve_app
from bus.webhooks import SIGNATURE_HEADER, WebhookDispatcher, verify_signature
from contracts import VN_TZ, DeadlineAlert, DossierStatus, make_dossier_code
from tests.conftest import AMQP_URL, AUTH, make_settings
from tests.integration.helpers import wait_for

AGENCY = "000.00.10.H12"
HANDLING = "000.00.20.H12"
PROCEDURE = "1.001193"
STEP = "permanent_residence"


def local(day: int, hour: int = 10) -> datetime:
    """An instant of November 2026, local time."""
    return datetime(2026, 11, day, hour, tzinfo=VN_TZ)


@dataclass
class FixedClock:
    """The scheduler's clock, moved by the test."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def settings(namespace: str, database_url: str, broker_cleanup: list[str]) -> Settings:
    """A bus of this test: its namespace, its store (SQLite, then PostgreSQL)."""
    return make_settings(namespace, database_url, at_risk_grace_seconds=900.0)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """A worker process's runtime: store, broker, topology and outbox relay."""
    opened = await Runtime.open(settings, name="test-deadlines")
    yield opened
    await opened.close()


@pytest.fixture
async def alert_queue(runtime: Runtime) -> AsyncIterator[AbstractQueue]:
    """A queue bound to every deadline alert, as a dashboard would bind one."""
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    for pattern in ("dossier.at_risk.#", "dossier.overdue.#"):
        await queue.bind(runtime.names.events, routing_key=pattern)
    yield queue
    await connection.close()


async def add_dossier(
    engine: AsyncEngine,
    number: int,
    *,
    due_on: date,
    status: DossierStatus = DossierStatus.PROCESSING,
) -> str:
    """A dossier received Monday 16 at 09:00, accepted, then moved to ``status`` at 10:00."""
    received_at = local(16, 9)
    code = make_dossier_code(AGENCY, received_at.date(), number)
    due_at = datetime.combine(due_on, datetime.max.time(), tzinfo=VN_TZ).replace(microsecond=0)
    async with engine.begin() as connection:
        await connection.execute(
            dossiers.insert(),
            {
                "code": code,
                "procedure_code": PROCEDURE,
                "receiving_agency": AGENCY,
                "handling_agency": HANDLING,
                "channel": 2,
                "status": int(status),
                "sequence": 2,
                "received_at": received_at,
                "due_at": due_at,
                "finished_at": local(16, 10) if status is DossierStatus.PROCESSED else None,
                "content_hash": "0" * 64,
                "accepted_event_id": f"accepted-{number}",
                "document": {"code": code},
                "created_at": received_at,
                "updated_at": received_at,
            },
        )
        await connection.execute(
            status_history.insert(),
            [
                {
                    "dossier_code": code,
                    "sequence": 1,
                    "status": int(DossierStatus.ACCEPTED),
                    "changed_at": received_at,
                    "recorded_at": received_at,
                },
                {
                    "dossier_code": code,
                    "sequence": 2,
                    "status": int(status),
                    "changed_at": local(16, 10),
                    "recorded_at": local(16, 10),
                },
            ],
        )
    return code


async def add_step(
    engine: AsyncEngine,
    code: str,
    *,
    due_on: date,
    state: str = "requested",
    run_state: str = "open",
) -> None:
    """The dossier's birth run, its residence step asked on Monday 16 at 11:00."""
    async with engine.begin() as connection:
        await connection.execute(
            linkage_runs.insert(),
            {
                "dossier_code": code,
                "bundle_id": "birth",
                "state": run_state,
                "dossier_status": int(DossierStatus.PROCESSING),
                "started_at": local(16, 9),
                "due_on": date(2026, 11, 20),
                "updated_at": local(16, 11),
            },
        )
        await connection.execute(
            linkage_steps.insert(),
            {
                "dossier_code": code,
                "step_id": STEP,
                "connector": "residence",
                "state": state,
                "requested_at": local(16, 11),
                "due_on": due_on,
                "updated_at": local(16, 11),
            },
        )


async def receive(queue: AbstractQueue, count: int, timeout: float = 20.0) -> list[Any]:
    """``count`` messages from ``queue``, then a second of silence: no more must come."""
    received: list[AbstractIncomingMessage] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(received) < count:
        message = await queue.get(no_ack=True, fail=False)
        if message is not None:
            received.append(message)
        elif loop.time() > deadline:
            raise AssertionError(f"{len(received)} of {count} alert events arrived in time")
        else:
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    extra = await queue.get(no_ack=True, fail=False)
    assert extra is None, f"an alert event came more than once: {extra.routing_key}"
    return received


def keys(raised: Sequence[AlertToRaise]) -> set[tuple[str, str, str]]:
    """(dossier, scope, kind) of each raised alert."""
    return {alert.key for alert in raised}


async def count_rows(engine: AsyncEngine, statement: sa.Select[Any]) -> int:
    """The number of rows ``statement`` selects."""
    counted = sa.select(sa.func.count()).select_from(statement.subquery())
    async with engine.connect() as connection:
        return int((await connection.execute(counted)).scalar_one())


@pytest.mark.broker
async def test_each_alert_is_raised_once_and_reaches_a_bound_queue(
    runtime: Runtime, alert_queue: AbstractQueue
) -> None:
    """Scanning twice a day for two days: one at_risk and one overdue event per open item."""
    engine = runtime.engine
    due_today = await add_dossier(engine, 1, due_on=date(2026, 11, 19))
    late = await add_dossier(engine, 2, due_on=date(2026, 11, 18))
    waiting = await add_dossier(
        engine, 3, due_on=date(2026, 11, 16), status=DossierStatus.SUPPLEMENT_REQUESTED
    )
    finished = await add_dossier(
        engine, 4, due_on=date(2026, 11, 16), status=DossierStatus.PROCESSED
    )
    linked = await add_dossier(engine, 5, due_on=date(2026, 11, 20))
    await add_step(engine, linked, due_on=date(2026, 11, 19))
    step_paused = await add_dossier(engine, 6, due_on=date(2026, 11, 27))
    await add_step(engine, step_paused, due_on=date(2026, 11, 16), state="supplement")
    run_stopped = await add_dossier(engine, 7, due_on=date(2026, 11, 27))
    await add_step(engine, run_stopped, due_on=date(2026, 11, 16), run_state="stopped")

    clock = FixedClock(local(19))
    scheduler = DeadlineScheduler(runtime, clock=clock)
    step_scope = f"step:{STEP}"
    assert keys(await scheduler.scan_once()) == {
        (due_today, "dossier", "at_risk"),
        (late, "dossier", "overdue"),
        (linked, step_scope, "at_risk"),
    }
    assert await scheduler.scan_once() == []
    clock.now = local(20)
    assert keys(await scheduler.scan_once()) == {
        (due_today, "dossier", "overdue"),
        (linked, step_scope, "overdue"),
        (linked, "dossier", "at_risk"),
    }
    assert await scheduler.scan_once() == []

    messages = await receive(alert_queue, 6)
    seen = Counter[tuple[str, str, str]]()
    for message in messages:
        event = events.decode(message.body)
        alert = DeadlineAlert.model_validate(event.data)
        scope = "dossier" if alert.step is None else f"step:{alert.step}"
        seen[(alert.dossier_code, scope, alert.kind)] += 1
        assert message.routing_key == f"dossier.{alert.kind}.{AGENCY}"
        assert message.message_id == event.id
        assert event.type == f"vn.lienthong.dossier.{alert.kind}"
        assert (event.subject, event.dossierseq, event.source) == (alert.dossier_code, 2, AGENCY)
        assert event.correlationid == f"accepted-{int(alert.dossier_code[-4:])}"
    assert sorted(seen.values()) == [1] * 6
    assert not {waiting, finished, step_paused, run_stopped} & {code for code, _, _ in seen}
    step_alert = next(
        DeadlineAlert.model_validate(events.decode(m.body).data)
        for m in messages
        if b'"step"' in m.body and b"overdue" in m.body
    )
    assert (step_alert.connector, step_alert.agency, step_alert.working_days_late) == (
        "residence",
        runtime.registry.get("residence").config.agency,
        1,
    )


@pytest.mark.broker
@pytest.mark.slow
async def test_two_schedulers_at_once_raise_each_alert_once(
    settings: Settings, runtime: Runtime, alert_queue: AbstractQueue
) -> None:
    """Two worker processes scanning the same store at the same instant: still one event each."""
    codes = {await add_dossier(runtime.engine, n, due_on=date(2026, 11, 18)) for n in range(1, 41)}
    other = await Runtime.open(settings, name="test-deadlines-2")
    try:
        clock = FixedClock(local(19))
        first = DeadlineScheduler(runtime, clock=clock)
        second = DeadlineScheduler(other, clock=clock)
        raised: list[AlertToRaise] = []
        for _ in range(3):
            for batch in await asyncio.gather(first.scan_once(), second.scan_once()):
                raised += batch
        assert len(raised) == 40
        assert keys(raised) == {(code, "dossier", "overdue") for code in codes}
        messages = await receive(alert_queue, 40)
    finally:
        await other.close()
    assert {events.decode(m.body).subject for m in messages} == codes
    assert await count_rows(runtime.engine, sa.select(deadline_alerts)) == 40
    alert_events = sa.select(outbox).where(outbox.c.routing_key.like("dossier.overdue.%"))
    assert await count_rows(runtime.engine, alert_events) == 40


@pytest.mark.broker
async def test_an_overdue_alert_reaches_a_webhook_subscription(runtime: Runtime) -> None:
    """A portal subscribed to ``dossier.overdue.#`` gets the alert POSTed once, signed."""
    posted: list[tuple[dict[str, str], bytes]] = []
    lock = threading.Lock()

    async def hook(request: Request) -> Response:
        with lock:
            posted.append((dict(request.headers), await request.body()))
        return Response(status_code=204)

    late = await add_dossier(runtime.engine, 1, due_on=date(2026, 11, 18))
    await add_dossier(runtime.engine, 2, due_on=date(2026, 11, 19))  # at_risk: not subscribed
    dispatcher = WebhookDispatcher(runtime)
    with serve_app(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as url:
        await subscriptions.create(
            runtime.writer,
            url=f"{url}/hook",
            routing_keys=["dossier.overdue.#"],
            description="deadline dashboard",
            secret="whsec_test",
        )
        await dispatcher.start()
        try:
            await DeadlineScheduler(runtime, clock=FixedClock(local(19))).scan_once()

            async def delivered() -> bool:
                with lock:
                    return bool(posted)

            await wait_for(delivered)
            await asyncio.sleep(0.5)  # nothing else may follow
        finally:
            await dispatcher.stop()
    [(headers, body)] = posted
    assert headers["x-bus-event-type"] == "vn.lienthong.dossier.overdue"
    assert verify_signature("whsec_test", body, headers[SIGNATURE_HEADER.lower()])
    event = events.decode(body)
    assert (event.subject, event.data["kind"]) == (late, "overdue")


@pytest.mark.broker
async def test_the_api_lists_the_raised_alerts(settings: Settings, runtime: Runtime) -> None:
    """``GET /v1/alerts`` lists alerts newest first, by kind and since; a dossier has its own."""
    due_today = await add_dossier(runtime.engine, 1, due_on=date(2026, 11, 19))
    linked = await add_dossier(runtime.engine, 2, due_on=date(2026, 11, 27))
    await add_step(runtime.engine, linked, due_on=date(2026, 11, 19))
    clock = FixedClock(local(19))
    scheduler = DeadlineScheduler(runtime, clock=clock)
    await scheduler.scan_once()
    clock.now = local(20)
    await scheduler.scan_once()

    with serve_app(create_app(settings), lifespan="on") as api:
        async with httpx.AsyncClient(base_url=api, timeout=30, headers=AUTH) as client:
            listed = (await client.get("/v1/alerts")).json()["alerts"]
            overdue = (await client.get("/v1/alerts", params={"kind": "overdue"})).json()
            since = (await client.get("/v1/alerts", params={"since": local(20).isoformat()})).json()
            first = (await client.get("/v1/alerts", params={"limit": 1})).json()
            of_linked = await client.get(f"/v1/dossiers/{linked}/alerts")
            unknown = await client.get(f"/v1/dossiers/{AGENCY}-261116-0099/alerts")
            malformed = await client.get("/v1/dossiers/not-a-code/alerts")
            bad_kind = await client.get("/v1/alerts", params={"kind": "late"})
            naive = await client.get("/v1/alerts", params={"since": "2026-11-20T10:00:00"})

    assert [(a["dossier_code"], a["scope"], a["kind"]) for a in listed] == [
        (due_today, "dossier", "overdue"),
        (linked, "step", "overdue"),
        (due_today, "dossier", "at_risk"),
        (linked, "step", "at_risk"),
    ]
    step_alert = listed[1]
    assert (step_alert["step"], step_alert["connector"], step_alert["due_on"]) == (
        STEP,
        "residence",
        "2026-11-19",
    )
    assert (step_alert["procedure_code"], step_alert["receiving_agency"]) == (PROCEDURE, AGENCY)
    assert (step_alert["handling_agency"], step_alert["status"]) == (HANDLING, 4)
    assert step_alert["status_label"] == "Processing"
    assert listed[0]["step"] is None and listed[0]["connector"] is None
    assert {a["kind"] for a in overdue["alerts"]} == {"overdue"} and len(overdue["alerts"]) == 2
    assert len(since["alerts"]) == 2
    assert first["alerts"] == listed[:1]
    assert of_linked.status_code == 200
    assert [(a["scope"], a["kind"]) for a in of_linked.json()["alerts"]] == [
        ("step", "overdue"),
        ("step", "at_risk"),
    ]
    assert unknown.status_code == 404
    assert malformed.status_code == 422
    assert bad_kind.status_code == 422
    assert naive.status_code == 422


async def test_an_alert_about_a_dossier_that_moved_waits_for_the_next_scan(
    database_url: str,
) -> None:
    """A dossier that moved between the scan's read and its commit gets no stale event."""
    await upgrade_async(database_url)
    engine = create_engine(database_url)
    try:
        code = await add_dossier(engine, 1, due_on=date(2026, 11, 18))
        alert = DeadlineAlert(
            dossier_code=code,
            kind="overdue",
            scope="dossier",
            status=DossierStatus.PROCESSING,
            due_on=date(2026, 11, 18),
            detected_at=local(19),
            working_days_late=1,
        )

        def candidate(sequence: int) -> AlertToRaise:
            row = events.alert_outbox_row(
                alert,
                event_id=f"alert-{sequence}",
                sequence=sequence,
                receiving_agency=AGENCY,
                correlation_id="accepted-1",
                exchange="bus.events",
            )
            return AlertToRaise(
                dossier_code=code,
                scope="dossier",
                kind="overdue",
                due_on=alert.due_on,
                event_id=f"alert-{sequence}",
                raised_at=local(19),
                sequence=sequence,
                outbox_row=row,
            )

        assert await raise_alerts(writer(engine), [candidate(1)]) == []
        assert await count_rows(engine, sa.select(deadline_alerts)) == 0
        assert keys(await raise_alerts(writer(engine), [candidate(2)])) == {
            (code, "dossier", "overdue")
        }
        assert await raise_alerts(writer(engine), [candidate(2)]) == []
        assert await count_rows(engine, sa.select(outbox)) == 1
    finally:
        await engine.dispose()
