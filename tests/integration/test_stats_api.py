"""``GET /v1/stats`` on a real store (SQLite and PostgreSQL) against the hand-computed fixture.

The dossiers and the expected numbers are those of ``tests/bus/test_stats.py``: here they are
stored as the bus stores them (a ``dossiers`` row, a ``status_history`` row per status), so the
store's selection and the API's shape are checked with the same arithmetic. The API is called
in-process over httpx's ASGI transport with the store and the clock given to the route; one
more test serves the whole app (lifespan, broker) to check the router is wired in for real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.api.app import create_app
from bus.api.stats import clock, store_engine
from bus.stats import Grouping
from bus.store.database import create_engine, write_transaction
from bus.store.migrate import upgrade_async
from bus.store.schema import dossiers, status_history
from bus.testing import serve_app
from contracts import FINISHED_STATUSES
from tests.bus.test_stats import (
    AGENCY_A,
    AGENCY_B,
    EXPECTED,
    EXPECTED_AGENCY_B_BY_COMMUNE,
    FIXTURE,
    NOW,
    P2,
    TOTAL,
    Case,
    Row,
    rate,
)
from tests.conftest import AUTH, make_settings

PROBLEM_JSON = "application/problem+json"
PERIOD_QUERY = {"from": "2026-12-14", "to": "2027-01-15"}


# --- storing the fixture -----------------------------------------------------------------------


def dossier_row(case: Case) -> dict[str, Any]:
    """The ``dossiers`` row of a fixture dossier, as ingest and status moves leave it."""
    finished = next((at for status, at in case.history if status in FINISHED_STATUSES), None)
    return {
        "code": case.code,
        "procedure_code": case.procedure,
        "receiving_agency": case.agency,
        "handling_agency": case.agency,
        "commune_code": case.commune,
        "channel": int(case.channel),
        "status": int(case.status),
        "sequence": len(case.history),
        "received_at": case.received_at,
        "due_at": case.due_at,
        "finished_at": finished,
        "partner_reference": None,
        "content_hash": "0" * 64,
        "idempotency_key": None,
        "accepted_event_id": f"event-{case.name}",
        "document": {"code": case.code},
        "created_at": case.received_at,
        "updated_at": case.history[-1][1],
    }


def history_rows(case: Case) -> list[dict[str, Any]]:
    """One ``status_history`` row per status the fixture dossier took."""
    return [
        {
            "dossier_code": case.code,
            "sequence": sequence,
            "status": int(status),
            "changed_at": at,
            "recorded_at": at,
        }
        for sequence, (status, at) in enumerate(case.history, start=1)
    ]


async def store_fixture(engine: AsyncEngine) -> None:
    """Write the 18 fixture dossiers and their histories."""
    async with write_transaction(engine) as connection:
        await connection.execute(dossiers.insert(), [dossier_row(case) for case in FIXTURE])
        await connection.execute(
            status_history.insert(), [row for case in FIXTURE for row in history_rows(case)]
        )


# --- the expected answers ------------------------------------------------------------------------


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def indicators(row: Row) -> dict[str, Any]:
    """The JSON the API gives for an expected row (hours and days to 2 decimals, rate to 4)."""
    return {
        "received": {
            "total": row.received,
            "in_person": row.in_person,
            "online": row.online,
            "postal": row.postal,
        },
        "finished": row.finished,
        "on_time": row.on_time,
        "late": row.late,
        "on_time_rate": _rounded(rate(row), 4),
        "overdue_now": row.overdue_now,
        "average_processing_hours": _rounded(row.hours, 2),
        "average_processing_working_days": _rounded(row.working_days, 2),
    }


def groups(expected: dict[str, Row]) -> list[dict[str, Any]]:
    """The ``groups`` array the API gives: one row per key, ordered by key."""
    return [{"key": key, **indicators(expected[key])} for key in sorted(expected)]


def assert_problem(answer: httpx.Response, field: str) -> dict[str, Any]:
    """A 422 problem document of this endpoint naming ``field``."""
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM_JSON
    problem: dict[str, Any] = answer.json()
    assert problem["type"] == "urn:lienthong:problem:validation"
    assert problem["title"] == "Invalid statistics query"
    assert problem["status"] == 422
    assert [error["field"] for error in problem["errors"]] == [field], problem
    return problem


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated store holding the fixture."""
    await upgrade_async(database_url)
    engine = create_engine(database_url)
    await store_fixture(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def stats_client(
    store: AsyncEngine, database_url: str, namespace: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API app whose stats route reads ``store`` and judges at NOW."""
    app = create_app(make_settings(namespace, database_url))
    app.dependency_overrides[store_engine] = lambda: store
    app.dependency_overrides[clock] = lambda: NOW
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bus", headers=AUTH
    ) as client:
        yield client


# --- the numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("grouping", list(Grouping))
async def test_stats_match_the_hand_computed_fixture(
    stats_client: httpx.AsyncClient, grouping: Grouping
) -> None:
    """Each grouping answers the hand-computed rows and total, from the stored dossiers."""
    answer = await stats_client.get("/v1/stats", params={**PERIOD_QUERY, "group_by": grouping})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["groups"] == groups(EXPECTED[grouping])
    assert body["total"] == indicators(TOTAL)
    assert body["group_by"] == grouping.value
    assert body["period"] == {
        "first_day": "2026-12-14",
        "last_day": "2027-01-15",
        "time_zone": "Asia/Ho_Chi_Minh",
    }
    assert datetime.fromisoformat(body["as_of"]) == NOW.astimezone(UTC)


async def test_agency_is_the_default_grouping(stats_client: httpx.AsyncClient) -> None:
    """Without group_by the rows are the handling agencies."""
    answer = await stats_client.get("/v1/stats", params=PERIOD_QUERY)
    assert answer.status_code == 200, answer.text
    assert [row["key"] for row in answer.json()["groups"]] == [AGENCY_A, AGENCY_B]


async def test_agency_filter_keeps_one_handling_agency(stats_client: httpx.AsyncClient) -> None:
    """agency= narrows the report to the dossiers that agency handles."""
    answer = await stats_client.get(
        "/v1/stats", params={**PERIOD_QUERY, "group_by": "commune", "agency": AGENCY_B}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["groups"] == groups(EXPECTED_AGENCY_B_BY_COMMUNE)
    assert body["total"] == indicators(EXPECTED[Grouping.AGENCY][AGENCY_B])
    assert body["filters"] == {"procedure": None, "agency": AGENCY_B}


async def test_procedure_filter_keeps_one_procedure(stats_client: httpx.AsyncClient) -> None:
    """procedure= narrows the report to one procedure: its total is that procedure's row."""
    answer = await stats_client.get("/v1/stats", params={**PERIOD_QUERY, "procedure": P2})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # P2 per agency: A has D08 (finished on time, received before the period, 120 h, 3 days)
    # and D13 (overdue); B has D03 D04 D11 D15 received, D03 on time, D04 late, D11 overdue.
    assert body["groups"] == groups(
        {
            AGENCY_A: Row(0, 0, 0, 0, 1, 1, 0, 1, 120, 3),
            AGENCY_B: Row(4, 2, 1, 1, 2, 1, 1, 1, (125 + 18) / 2, (5 + 0) / 2),
        }
    )
    assert body["total"] == indicators(EXPECTED[Grouping.PROCEDURE][P2])


async def test_a_period_without_dossiers_is_empty(stats_client: httpx.AsyncClient) -> None:
    """A period before every dossier still shows the overdue ones, which are a snapshot."""
    answer = await stats_client.get("/v1/stats", params={"from": "2026-01-01", "to": "2026-01-31"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # D11 and D13 are overdue now, whatever the period.
    assert body["groups"] == groups(
        {
            AGENCY_A: Row(0, 0, 0, 0, 0, 0, 0, 1, None, None),
            AGENCY_B: Row(0, 0, 0, 0, 0, 0, 0, 1, None, None),
        }
    )


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param({"from": "2027-01-15", "to": "2026-12-14"}, "to", id="from-after-to"),
        pytest.param({"from": "2026-01-01", "to": "2027-01-02"}, "to", id="367-days"),
        pytest.param({**PERIOD_QUERY, "group_by": "province"}, "group_by", id="unknown-group"),
        pytest.param({"from": "2026-12-1", "to": "2027-01-15"}, "from", id="short-date"),
        pytest.param({"from": "2026-02-30", "to": "2027-01-15"}, "from", id="no-such-day"),
        pytest.param({"from": "14/12/2026", "to": "2027-01-15"}, "from", id="dd-mm-yyyy"),
        pytest.param({"from": "1797206400", "to": "2027-01-15"}, "from", id="timestamp"),
        pytest.param({"from": "2026-12-14", "to": "2027-01-15T00:00:00"}, "to", id="datetime"),
        pytest.param({"to": "2027-01-15"}, "from", id="missing-from"),
        pytest.param({**PERIOD_QUERY, "agency": "H12"}, "agency", id="bad-agency"),
        pytest.param({**PERIOD_QUERY, "procedure": "1.00"}, "procedure", id="bad-procedure"),
    ],
)
async def test_bad_query_is_refused_with_a_problem(
    stats_client: httpx.AsyncClient, query: dict[str, str], field: str
) -> None:
    """A malformed or impossible query is a 422 problem naming the parameter at fault."""
    problem = assert_problem(await stats_client.get("/v1/stats", params=query), field)
    assert problem["errors"][0]["problem"]


async def test_unknown_group_by_says_what_is_allowed(stats_client: httpx.AsyncClient) -> None:
    """The refusal of an unknown grouping lists the three allowed ones, never the value sent."""
    answer = await stats_client.get("/v1/stats", params={**PERIOD_QUERY, "group_by": "xyzzy"})
    problem = assert_problem(answer, "group_by")
    allowed = problem["errors"][0]["allowed"]
    assert all(name in allowed for name in ("agency", "commune", "procedure"))
    assert "xyzzy" not in answer.text


async def test_a_leap_year_is_the_longest_period(stats_client: httpx.AsyncClient) -> None:
    """366 days, both ends included, are accepted."""
    answer = await stats_client.get("/v1/stats", params={"from": "2028-01-01", "to": "2028-12-31"})
    assert answer.status_code == 200, answer.text


async def test_the_endpoint_is_documented(stats_client: httpx.AsyncClient) -> None:
    """OpenAPI lists the parameters and describes the answer's fields."""
    spec = (await stats_client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/stats"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert names == {"from", "to", "group_by", "procedure", "agency"}
    indicators_schema = spec["components"]["schemas"]["Indicators"]["properties"]
    assert "766" in operation["summary"]
    assert all(
        field.get("description") for name, field in indicators_schema.items() if name != "received"
    )


# --- wired into the real app ----------------------------------------------------------------------


@pytest.mark.broker
async def test_the_served_app_answers_stats(
    namespace: str, sqlite_url: str, broker_cleanup: list[str]
) -> None:
    """The app as deployed (lifespan, runtime's store) serves /v1/stats from its own store."""
    app = create_app(make_settings(namespace, sqlite_url))
    app.dependency_overrides[clock] = lambda: NOW
    with serve_app(app, lifespan="on") as url:
        engine = create_engine(sqlite_url)  # the lifespan migrated it
        try:
            await store_fixture(engine)
        finally:
            await engine.dispose()
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=AUTH) as client:
            answer = await client.get("/v1/stats", params=PERIOD_QUERY)
    assert answer.status_code == 200, answer.text
    assert answer.json()["groups"] == groups(EXPECTED[Grouping.AGENCY])
