"""The dashboard's reads on SQLite and PostgreSQL: the day's flow and each connector's activity."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.store.connector_health import ConnectorActivity, connector_activity
from bus.store.database import create_engine, writer
from bus.store.flow import FlowCount, received_on
from bus.store.migrate import upgrade_async
from bus.store.schema import dead_letters, dossiers, hops
from contracts import VN_TZ

DESK, OTHER_DESK = "000.00.10.H12", "000.00.11.H12"
JUSTICE = "000.00.20.H12"
DAY = date(2026, 12, 7)
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=VN_TZ)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated store, as its writer engine."""
    await upgrade_async(database_url)
    engine = create_engine(database_url)
    yield writer(engine)
    await engine.dispose()


def _dossier(
    code: str, received_at: datetime, status: int, receiving: str = DESK
) -> dict[str, Any]:
    return {
        "code": code,
        "procedure_code": "1.001193",
        "receiving_agency": receiving,
        "handling_agency": JUSTICE,
        "commune_code": "00001",
        "channel": 2,
        "status": status,
        "sequence": 1,
        "received_at": received_at,
        "content_hash": "0" * 64,
        "accepted_event_id": f"e-{code}",
        "document": {},
        "created_at": received_at,
        "updated_at": received_at,
    }


def _hop(recipient: str, outcome: str, done_at: datetime, kind: str = "deliver") -> dict[str, Any]:
    return {
        "message_id": f"m-{recipient}-{outcome}-{done_at.timestamp()}",
        "dossier_code": "000.00.10.H12-261207-0001",
        "correlation_id": "c",
        "kind": kind,
        "sender": "bus",
        "recipient": recipient,
        "done_at": done_at,
        "outcome": outcome,
        "request_bytes": 0,
        "response_bytes": 0,
        "attempt": 1,
    }


def _dead_letter(n: int, connector: str, state: str = "parked") -> dict[str, Any]:
    return {
        "fingerprint": f"{n:064d}",
        "message_id": f"dl-{n}",
        "dossier_code": None,
        "connector": connector,
        "routing_key": "k",
        "error_class": "permanent",
        "fault_code": "SOAP_CLIENT",
        "reason": "refused",
        "attempts": 1,
        "replays": 0,
        "parked_at": NOW,
        "headers": {},
        "body": b"{}",
        "state": state,
    }


async def _insert(engine: AsyncEngine, table: Any, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as connection:
        await connection.execute(table.insert(), rows)


async def test_the_flow_counts_the_local_day_by_agency_and_status(engine: AsyncEngine) -> None:
    """Dossiers received from local midnight to the next count, grouped; the minute before
    midnight (17:00 UTC the day before) and the next day do not."""
    midnight = datetime(2026, 12, 7, 0, 0, tzinfo=VN_TZ)
    await _insert(
        engine,
        dossiers,
        [
            _dossier("a-1", midnight, 9),
            _dossier("a-2", midnight + timedelta(hours=23, minutes=59), 9),
            _dossier("a-3", midnight + timedelta(hours=9), 4),
            _dossier("b-1", midnight + timedelta(hours=10), 4, receiving=OTHER_DESK),
            _dossier("x-before", midnight - timedelta(minutes=1), 9),
            _dossier("x-after", midnight + timedelta(days=1), 9),
        ],
    )
    assert await received_on(engine, DAY) == [
        FlowCount(DESK, JUSTICE, 4, 1),
        FlowCount(DESK, JUSTICE, 9, 2),
        FlowCount(OTHER_DESK, JUSTICE, 4, 1),
    ]
    assert await received_on(engine, DAY + timedelta(days=2)) == []


async def test_connector_activity_counts_the_window_and_finds_the_last_success(
    engine: AsyncEngine,
) -> None:
    """In the window: delivered, failed (retry + parked) and retries per connector; the last
    success however old; parked dead letters, also of a connector the bus no longer runs."""
    hour_ago = NOW - timedelta(hours=1)
    await _insert(
        engine,
        hops,
        [
            _hop("civil_status", "delivered", NOW - timedelta(days=3)),
            _hop("civil_status", "delivered", NOW - timedelta(hours=2)),  # before the window
            _hop("civil_status", "retry", NOW - timedelta(minutes=30)),
            _hop("civil_status", "retry", NOW - timedelta(minutes=20)),
            _hop("civil_status", "parked", NOW - timedelta(minutes=10)),
            _hop("civil_status", "replayed", NOW - timedelta(minutes=5), kind="replay"),
            _hop("residence", "delivered", NOW - timedelta(minutes=40)),
            _hop("residence", "delivered", NOW - timedelta(minutes=5)),
            _hop("residence", "duplicate", NOW - timedelta(minutes=4)),
            _hop("bus", "accepted", NOW, kind="ingest"),
        ],
    )
    await _insert(
        engine,
        dead_letters,
        [
            _dead_letter(1, "civil_status"),
            _dead_letter(2, "civil_status", state="replayed"),
            _dead_letter(3, "retired_partner"),
        ],
    )
    found = await connector_activity(
        engine, ["civil_status", "residence", "portal"], since=hour_ago
    )
    assert found == [
        ConnectorActivity(
            "civil_status",
            delivered=0,
            failed=3,
            retries=2,
            last_success_at=(NOW - timedelta(hours=2)).astimezone(UTC),
            last_failure_at=(NOW - timedelta(minutes=10)).astimezone(UTC),
            parked=1,
        ),
        ConnectorActivity("portal", 0, 0, 0, None, None, 0),
        ConnectorActivity(
            "residence",
            delivered=2,
            failed=0,
            retries=0,
            last_success_at=(NOW - timedelta(minutes=5)).astimezone(UTC),
            last_failure_at=None,
            parked=0,
        ),
        ConnectorActivity("retired_partner", 0, 0, 0, None, None, 1),
    ]
    assert await connector_activity(engine, [], since=hour_ago) == [
        ConnectorActivity(
            "civil_status", 0, 3, 2, found[0].last_success_at, found[0].last_failure_at, 1
        ),
        ConnectorActivity("retired_partner", 0, 0, 0, None, None, 1),
    ]
