"""The linkage engine on a real store (SQLite and PostgreSQL): runs started at ingest, moved by
answers in the same transactions as the dossier, orders sent once, nothing moved backwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bus import events
from bus.calendar import WorkingCalendar
from bus.ingest import Submission, build_ingest_request
from bus.linkage.book import LinkageBook
from bus.linkage.engine import LinkageEngine, order_event_id
from bus.store.database import create_engine, writer
from bus.store.deliveries import DeliveryRecord, StatusTransition, commit_deliveries
from bus.store.ingest import write_ingest_batch
from bus.store.linkage import read_run
from bus.store.migrate import upgrade_async
from bus.store.polls import PolledEntry, commit_pushed
from bus.store.schema import dossiers, outbox, status_history
from contracts import (
    VN_TZ,
    DossierStatus,
    EventEnvelope,
    StatusChange,
    StepOrder,
    sample_birth_dossier,
)

EXCHANGE = "t.events"
AGENCIES = {
    "civil_status": "000.00.00.G12",
    "residence": "000.23.10.H12",
    "social_insurance": "000.26.10.H12",
}
# The sample dossier is received Friday 15 March 2024 09:00; its answers come that day.
T0 = datetime(2024, 3, 15, 10, tzinfo=VN_TZ)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated store, as its writer engine."""
    await upgrade_async(database_url)
    engine = create_engine(database_url)
    yield writer(engine)
    await engine.dispose()


@pytest.fixture
def linkage() -> LinkageEngine:
    """The engine with the shipped bundles and Vietnam's calendar."""
    book = LinkageBook.load(WorkingCalendar())
    return LinkageEngine(book, exchange=EXCHANGE, agencies=AGENCIES)


async def _accept(store: AsyncEngine, linkage: LinkageEngine, sequence: int = 1) -> str:
    dossier = sample_birth_dossier(sequence=sequence)
    request = build_ingest_request(
        dossier,
        Submission(received_at=datetime.now(UTC), request_bytes=100),
        events_exchange=EXCHANGE,
        linked=True,
    )
    await write_ingest_batch(store, [request], linkage=linkage)
    return dossier.code


async def _outbox(store: AsyncEngine, code: str) -> list[tuple[str, EventEnvelope]]:
    """The dossier's outbox rows in order, as (routing key, event)."""
    async with store.connect() as connection:
        rows = await connection.execute(
            sa.select(outbox.c.routing_key, outbox.c.payload)
            .where(outbox.c.dossier_code == code)
            .order_by(outbox.c.id)
        )
        return [(row.routing_key, events.decode(row.payload)) for row in rows]


async def _state(store: AsyncEngine, code: str) -> tuple[int, int]:
    async with store.connect() as connection:
        row = (
            await connection.execute(
                sa.select(dossiers.c.status, dossiers.c.sequence).where(dossiers.c.code == code)
            )
        ).one()
        return row.status, row.sequence


async def _history(store: AsyncEngine, code: str) -> list[int]:
    async with store.connect() as connection:
        rows = await connection.execute(
            sa.select(status_history.c.status)
            .where(status_history.c.dossier_code == code)
            .order_by(status_history.c.sequence)
        )
        return [row.status for row in rows]


async def _order(store: AsyncEngine, code: str, step: str) -> EventEnvelope:
    [event] = [e for _, e in await _outbox(store, code) if e.id == order_event_id(code, step)]
    return event


def _status_row(
    record: DeliveryRecord, change: StatusChange, transition: StatusTransition
) -> dict[str, Any]:
    return events.status_outbox_row(
        change,
        sequence=transition.sequence,
        receiving_agency=transition.receiving_agency,
        exchange=EXCHANGE,
        cause=record.cause,
    )


async def _answer(
    store: AsyncEngine,
    linkage: LinkageEngine,
    order: EventEnvelope,
    status: DossierStatus,
    *,
    at: datetime = T0,
    reference: str | None = None,
    note: str | None = None,
) -> str:
    """A worker's commit of a partner's answer to a step order; returns its outcome."""
    step = StepOrder.model_validate(order.data)
    record = DeliveryRecord(
        consumer=step.connector,
        message_id=order.id,
        dossier_code=order.subject,
        hop_row=_hop(order, step.connector),
        new_status=status,
        partner_reference=reference,
        cause=order,
        agency=AGENCIES[step.connector],
        note=note,
        changed_at=at,
        step_id=step.step,
    )
    [outcome] = await commit_deliveries(store, [record], _status_row, linkage=linkage)
    return outcome


def _hop(order: EventEnvelope, recipient: str) -> dict[str, Any]:
    return {
        "message_id": order.id,
        "dossier_code": order.subject,
        "correlation_id": order.correlationid,
        "kind": "deliver",
        "sender": "bus",
        "recipient": recipient,
        "received_at": None,
        "sent_at": None,
        "answered_at": None,
        "request_bytes": 0,
        "response_bytes": 0,
        "fault_code": None,
        "fault_detail": None,
        "mapping_version": None,
        "attempt": 1,
    }


async def _push(
    store: AsyncEngine,
    linkage: LinkageEngine,
    code: str,
    connector: str,
    status: DossierStatus,
    at: datetime,
) -> str:
    """A partner's later answer pushed to /v1/inbound, as the inbound path commits it."""
    change = StatusChange(
        dossier_code=code, status=status, changed_at=at, agency=AGENCIES[connector], note="push"
    )
    entry = PolledEntry(
        connector, f"{code}/{int(status)}/{at.isoformat()}", _hop_push(code, connector), change
    )

    def event_row(change: StatusChange, transition: StatusTransition) -> dict[str, Any]:
        return events.status_outbox_row(
            change,
            sequence=transition.sequence,
            receiving_agency=transition.receiving_agency,
            exchange=EXCHANGE,
            correlation_id=transition.accepted_event_id,
        )

    [outcome] = await commit_pushed(store, [entry], event_row, linkage=linkage)
    return outcome


def _hop_push(code: str, connector: str) -> dict[str, Any]:
    return {
        **_hop(
            EventEnvelope.model_construct(id=f"push-{code}", subject=code, correlationid="c"),
            "bus",
        ),
        "kind": "receive",
        "sender": connector,
    }


async def test_accepting_a_birth_dossier_starts_its_run_and_orders_civil_status(
    store: AsyncEngine, linkage: LinkageEngine
) -> None:
    """Ingest commits the run with the dossier: status 4, one order to civil status only."""
    code = await _accept(store, linkage)
    rows = await _outbox(store, code)
    keys = [key for key, _ in rows]
    assert keys == [
        "dossier.submitted.000.00.10.H12.1.001193",
        "dossier.status.4.000.00.10.H12",
        "dossier.step.civil_status.birth_registration",
    ]
    submitted, started, order = (event for _, event in rows)
    assert started.causationid == submitted.id and order.causationid == submitted.id
    assert order.id == order_event_id(code, "birth_registration")
    step = StepOrder.model_validate(order.data)
    # Received Friday 15 March 2024 09:00, before the 15:00 cut-off: due the same day.
    assert (step.connector, step.agency, str(step.due_on)) == (
        "civil_status",
        "000.00.00.G12",
        "2024-03-15",
    )
    assert await _state(store, code) == (4, 2)
    run = await read_run(store, code)
    assert run is not None and run.state == "open" and str(run.due_on) == "2024-03-20"
    assert {s: r.state.value for s, r in run.run.steps.items()} == {
        "birth_registration": "requested",
        "permanent_residence": "waiting",
        "health_insurance_card": "waiting",
    }


async def test_the_certificate_number_is_passed_to_both_parallel_steps(
    store: AsyncEngine, linkage: LinkageEngine
) -> None:
    """Civil status done: residence and health insurance are ordered, each given the number."""
    code = await _accept(store, linkage)
    order = await _order(store, code, "birth_registration")
    assert (
        await _answer(store, linkage, order, DossierStatus.PROCESSED, reference="GKS-2024-77")
        == "applied"
    )
    for step_id in ("permanent_residence", "health_insurance_card"):
        step = StepOrder.model_validate((await _order(store, code, step_id)).data)
        assert step.passed == {"birth_certificate_number": "GKS-2024-77"}
        assert step.dossier.form["birth_certificate_number"] == "GKS-2024-77"
        assert str(step.due_on) == "2024-03-19"  # 2 working days after Friday 15 March
    # Still processing (4): the step is reported with its title and the certificate.
    status, sequence = await _state(store, code)
    assert (status, sequence) == (4, 3)
    _, progress = (await _outbox(store, code))[3]
    change = StatusChange.model_validate(progress.data)
    assert change.status == 4 and change.partner_reference == "GKS-2024-77"
    assert change.note is not None and change.note.startswith("Đăng ký khai sinh")


async def test_a_repeated_answer_applies_once(store: AsyncEngine, linkage: LinkageEngine) -> None:
    """The same order answered twice (a redelivery): one status event, one pair of orders."""
    code = await _accept(store, linkage)
    order = await _order(store, code, "birth_registration")
    assert (
        await _answer(store, linkage, order, DossierStatus.PROCESSED, reference="GKS-1")
        == "applied"
    )
    before = await _outbox(store, code)
    assert (
        await _answer(store, linkage, order, DossierStatus.PROCESSED, reference="GKS-1")
        == "duplicate"
    )
    assert await _outbox(store, code) == before
    assert len(before) == 6  # submitted, started, step 1 reported, two orders... and no more


async def test_supplement_pauses_then_the_bundle_finishes(
    store: AsyncEngine, linkage: LinkageEngine
) -> None:
    """Residence asks for a supplement (5), insurance finishes, then residence's pushed answer
    finishes the bundle (9); a stale push dated before changes nothing."""
    code = await _accept(store, linkage)
    await _answer(
        store,
        linkage,
        await _order(store, code, "birth_registration"),
        DossierStatus.PROCESSED,
        reference="GKS-9",
    )
    residence = await _order(store, code, "permanent_residence")
    insurance = await _order(store, code, "health_insurance_card")
    await _answer(
        store, linkage, residence, DossierStatus.SUPPLEMENT_REQUESTED, at=T0 + timedelta(hours=1)
    )
    assert (await _state(store, code))[0] == 5
    await _answer(store, linkage, insurance, DossierStatus.PROCESSED, at=T0 + timedelta(hours=2))
    assert (await _state(store, code))[0] == 5  # one step still waits for the citizen
    stale = await _push(store, linkage, code, "residence", DossierStatus.PROCESSING, T0)
    assert stale == "stale" and (await _state(store, code))[0] == 5
    # The supplement arrives on Tuesday 19 March: 2 working days waited, the step due date moves.
    resumed = T0 + timedelta(days=4)
    assert (
        await _push(store, linkage, code, "residence", DossierStatus.PROCESSING, resumed)
        == "applied"
    )
    run = await read_run(store, code)
    assert run is not None and str(run.run.steps["permanent_residence"].due_on) == "2024-03-21"
    done = await _push(
        store, linkage, code, "residence", DossierStatus.PROCESSED, resumed + timedelta(hours=1)
    )
    assert done == "applied"
    assert (await _state(store, code))[0] == 9
    run = await read_run(store, code)
    assert run is not None and run.state == "done"
    assert await _history(store, code) == [1, 4, 4, 5, 5, 4, 9]


async def test_a_refusal_of_the_first_step_is_not_accepted(
    store: AsyncEngine, linkage: LinkageEngine
) -> None:
    """Civil status refuses (3): the bundle stops with the reason; nothing else is ordered."""
    code = await _accept(store, linkage)
    order = await _order(store, code, "birth_registration")
    await _answer(store, linkage, order, DossierStatus.NOT_ACCEPTED, note="Thiếu giấy chứng sinh")
    assert (await _state(store, code))[0] == 3
    run = await read_run(store, code)
    assert run is not None and run.state == "stopped"
    assert run.run.stopped_reason == "Đăng ký khai sinh, cấp Giấy khai sinh: Thiếu giấy chứng sinh"
    assert [key for key, _ in await _outbox(store, code)][-1] == "dossier.status.3.000.00.10.H12"


async def test_a_refusal_after_step_one_stops_and_late_answers_change_nothing(
    store: AsyncEngine, linkage: LinkageEngine
) -> None:
    """Residence refuses after the birth was registered: stopped (8); insurance's answer that
    comes afterwards is recorded but moves nothing."""
    code = await _accept(store, linkage)
    await _answer(
        store,
        linkage,
        await _order(store, code, "birth_registration"),
        DossierStatus.PROCESSED,
        reference="GKS-5",
    )
    await _answer(
        store,
        linkage,
        await _order(store, code, "permanent_residence"),
        DossierStatus.STOPPED,
        note="Chỗ ở không hợp pháp",
    )
    assert (await _state(store, code))[0] == 8
    events_before = len(await _outbox(store, code))
    await _answer(
        store, linkage, await _order(store, code, "health_insurance_card"), DossierStatus.PROCESSED
    )
    assert (await _state(store, code))[0] == 8
    assert len(await _outbox(store, code)) == events_before


async def test_a_dossier_of_a_switched_off_bundle_starts_no_run(store: AsyncEngine) -> None:
    """With the birth bundle off, the dossier is stored as sent and no order is written."""
    linkage = LinkageEngine(LinkageBook.load(WorkingCalendar(), enabled=[]), exchange=EXCHANGE)
    code = await _accept(store, linkage)
    assert await read_run(store, code) is None
    assert [key for key, _ in await _outbox(store, code)] == [
        "dossier.submitted.000.00.10.H12.1.001193"
    ]


async def test_step_orders_carry_a_valid_envelope(
    store: AsyncEngine, linkage: LinkageEngine
) -> None:
    """The stored order decodes as a bus event whose data is a StepOrder with the dossier."""
    code = await _accept(store, linkage)
    async with store.connect() as connection:
        payload = (
            await connection.execute(
                sa.select(outbox.c.payload).where(
                    outbox.c.event_id == order_event_id(code, "birth_registration")
                )
            )
        ).scalar_one()
    body = orjson.loads(payload)
    assert body["type"] == "vn.lienthong.dossier.step_requested"
    assert body["data"]["dossier"]["code"] == code
