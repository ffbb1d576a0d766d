"""Server-Sent Events over real HTTP: live events, pattern filtering, resume, heartbeats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.api.app import create_app
from bus.api.events_stream import REPLAY_UNAVAILABLE
from bus.settings import Settings
from bus.store.database import create_engine
from bus.store.schema import outbox
from bus.testing import serve_app
from bus.topology import Names
from bus.worker import ConnectorWorker
from contracts import (
    EVENT_DOSSIER_STATUS_CHANGED,
    EVENT_DOSSIER_SUBMITTED,
    sample_birth_dossier_json,
)
from tests.conftest import AUTH, make_settings
from tests.integration.conftest import Simulator
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.broker


@pytest.fixture
def settings(
    namespace: str, sqlite_url: str, simulator: Simulator, broker_cleanup: list[str]
) -> Settings:
    """A bus whose idle streams send a heartbeat every 0.3 s."""
    return make_settings(
        namespace,
        sqlite_url,
        connector_endpoints={"civil_status": simulator.url},
        sse_heartbeat_seconds=0.3,
    )


@dataclass
class Frame:
    """One SSE frame: its fields, or the comment it carries."""

    id: str | None = None
    event: str | None = None
    data: list[str] = field(default_factory=list)
    comment: str | None = None

    @property
    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads("\n".join(self.data))
        return value


class Stream:
    """An open event stream, read frame by frame."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 15.0) -> Frame:
        """The next frame (a comment line counts as a frame)."""
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> Frame:
        frame = Frame()
        async for line in self._lines:
            if line == "":
                if frame.id or frame.event or frame.data:
                    return frame
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                return Frame(comment=value)
            if name == "id":
                frame.id = value
            elif name == "event":
                frame.event = value
            elif name == "data":
                frame.data.append(value)
        raise AssertionError("the stream ended")

    async def events(self, count: int) -> list[Frame]:
        """The next ``count`` event frames, skipping heartbeats."""
        found: list[Frame] = []
        while len(found) < count:
            frame = await self.next()
            if frame.comment is None:
                found.append(frame)
        return found

    async def until_live(self) -> list[Frame]:
        """Every event replayed before the ``: live`` comment."""
        replayed: list[Frame] = []
        while (frame := await self.next()).comment != "live":
            if frame.comment is None:
                replayed.append(frame)
        return replayed


@asynccontextmanager
async def open_stream(
    api: str, *patterns: str, last_event_id: str | None = None
) -> AsyncIterator[Stream]:
    """GET /v1/events/stream with its own connection, closed (the client leaves) on exit."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    params = [("routing_key", p) for p in patterns]
    async with (
        httpx.AsyncClient(
            base_url=api, timeout=httpx.Timeout(5.0, read=30.0), headers=AUTH
        ) as client,
        client.stream("GET", "/v1/events/stream", params=params, headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Stream(response)


async def _submit(client: httpx.AsyncClient, sequence: int) -> str:
    body = sample_birth_dossier_json(sequence=sequence)
    answer = await client.post("/v1/dossiers", json=body)
    assert answer.status_code == 202, answer.text
    return str(body["code"])


async def _settled(client: httpx.AsyncClient, code: str) -> bool:
    """The dossier is processed and every event of it was published."""
    view = (await client.get(f"/v1/dossiers/{code}")).json()
    return view["state"]["status"] == 9 and all(e["sent_at"] for e in view["events"])


async def test_live_events_carry_id_type_and_the_cloudevent(
    api: str, client: httpx.AsyncClient, workers: list[ConnectorWorker]
) -> None:
    """A frame's `id:` is the event id, `event:` its type, `data:` the CloudEvent JSON."""
    async with open_stream(api, "dossier.status.#") as stream:
        assert await stream.until_live() == []
        code = await _submit(client, 1)
        # Only the status event: the submitted one does not match the pattern.
        [frame] = await stream.events(1)
    event = frame.json
    assert frame.id == event["id"] and frame.event == event["type"]
    assert event["type"] == EVENT_DOSSIER_STATUS_CHANGED and event["subject"] == code
    assert event["specversion"] == "1.0" and event["data"]["status"] == 9


async def test_a_stream_resumes_after_last_event_id_from_the_outbox(
    api: str, client: httpx.AsyncClient, workers: list[ConnectorWorker]
) -> None:
    """Reconnecting with Last-Event-ID replays what was missed, then goes live, each event once."""
    async with open_stream(api, "dossier.#") as stream:
        await stream.until_live()
        first = await _submit(client, 1)
        seen = await stream.events(2)
    assert [f.json["subject"] for f in seen] == [first, first]

    # While the client is away, two more dossiers travel.
    missed = [await _submit(client, 2), await _submit(client, 3)]
    for code in missed:
        await wait_for(lambda c=code: _settled(client, c))

    async with open_stream(api, "dossier.#", last_event_id=seen[-1].id) as stream:
        replayed = await stream.until_live()
        last = await _submit(client, 4)
        live = await stream.events(2)
    # In commit order: across dossiers they interleave, but each dossier's come in sequence.
    assert sorted((f.json["subject"], f.json["dossierseq"], f.event) for f in replayed) == [
        (code, seq, kind)
        for code in missed
        for seq, kind in ((1, EVENT_DOSSIER_SUBMITTED), (2, EVENT_DOSSIER_STATUS_CHANGED))
    ]
    for code in missed:
        assert [f.json["dossierseq"] for f in replayed if f.json["subject"] == code] == [1, 2]
    assert [f.json["subject"] for f in live] == [last, last]
    ids = [f.id for f in seen + replayed + live]
    assert len(ids) == len(set(ids)) == 8


async def test_resume_replays_only_the_requested_pattern(
    api: str, client: httpx.AsyncClient, workers: list[ConnectorWorker]
) -> None:
    """Events missed while away are filtered by the stream's pattern, like live ones."""
    first = await _submit(client, 1)
    await wait_for(lambda: _settled(client, first))
    view = (await client.get(f"/v1/dossiers/{first}")).json()
    submitted_id = view["events"][0]["event_id"]
    second = await _submit(client, 2)
    await wait_for(lambda: _settled(client, second))

    async with open_stream(api, "dossier.status.#", last_event_id=submitted_id) as stream:
        replayed = await stream.until_live()
    assert [(f.json["subject"], f.event) for f in replayed] == [
        (first, EVENT_DOSSIER_STATUS_CHANGED),
        (second, EVENT_DOSSIER_STATUS_CHANGED),
    ]


async def test_an_unknown_last_event_id_is_reported_then_the_stream_goes_live(
    api: str, client: httpx.AsyncClient
) -> None:
    """A purged or foreign Last-Event-ID gets a replay_unavailable event, then live events."""
    async with open_stream(api, last_event_id="no-such-event") as stream:
        [notice] = await stream.until_live()
    assert notice.event == REPLAY_UNAVAILABLE and notice.id is None
    assert notice.json["last_event_id"] == "no-such-event"


async def test_an_idle_stream_sends_heartbeat_comments(api: str) -> None:
    """With nothing to send, a comment line keeps proxies and clients from timing out."""
    async with open_stream(api, "dossier.status.#") as stream:
        await stream.until_live()
        loop = asyncio.get_running_loop()
        started = loop.time()
        comments = [(await stream.next(timeout=2)).comment for _ in range(2)]
        elapsed = loop.time() - started
    assert comments == ["heartbeat", "heartbeat"]
    assert 0.5 <= elapsed < 2


async def test_a_malformed_pattern_is_refused(client: httpx.AsyncClient) -> None:
    """An invalid routing_key pattern is a 422 problem naming the parameter, not a stream."""
    answer = await client.get(
        "/v1/events/stream", params=[("routing_key", "dossier.#"), ("routing_key", "a..b")]
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in answer.json()["errors"]] == ["routing_key[1]"]


async def test_a_resume_returns_what_followed_in_commit_order_even_a_lower_id(
    namespace: str, database_url: str, simulator: Simulator, broker_cleanup: list[str]
) -> None:
    """An event whose transaction commits late (on PostgreSQL: with a lower id) is not skipped.

    A slow transaction writes an event, then a dossier's event commits and is streamed; the
    client leaves, the slow one commits, a second dossier follows. Resuming after the streamed
    event returns exactly the slow event and the second dossier's, in the stream's order (the
    order the relays confirmed them: the API hands its own event to its relay at once, another
    writer's waits for a claim). On SQLite writers take turns, so the slow event simply commits
    after the client left.
    """
    settings = make_settings(
        namespace, database_url, connector_endpoints={"civil_status": simulator.url}
    )
    engine = create_engine(database_url)
    slow_event_id = f"late-{namespace}"
    with serve_app(create_app(settings), lifespan="on") as api:
        try:
            async with (
                httpx.AsyncClient(base_url=api, timeout=30, headers=AUTH) as client,
                engine.connect() as slow,
            ):
                interleaved = engine.dialect.name == "postgresql"
                if interleaved:
                    await slow.begin()
                    await slow.execute(
                        sa.insert(outbox).values(_outbox_row(slow_event_id, settings))
                    )
                async with open_stream(api, "dossier.#") as stream:
                    await stream.until_live()
                    first = await _submit(client, 1)
                    [seen] = await stream.events(1)
                assert seen.json["subject"] == first

                if interleaved:
                    await slow.commit()
                else:
                    async with engine.begin() as connection:
                        await connection.execute(
                            sa.insert(outbox).values(_outbox_row(slow_event_id, settings))
                        )
                second = await _submit(client, 2)
                ids = await wait_for(lambda: _sent_ids(engine, seen.id, slow_event_id, second))
                if interleaved:
                    assert ids[slow_event_id] < ids[seen.id], "the scenario needs a lower id"

                async with open_stream(api, "dossier.#", last_event_id=seen.id) as stream:
                    replayed = await stream.until_live()
            in_stream_order = sorted([slow_event_id, ids["second"]], key=ids["place"].get)
            assert [f.id for f in replayed] == in_stream_order
            assert next(f for f in replayed if f.id == ids["second"]).json["subject"] == second
        finally:
            await engine.dispose()


def _outbox_row(event_id: str, settings: Settings) -> dict[str, Any]:
    """An event another bus process is writing: on no connector's route, so nobody else acts."""
    body = {
        "specversion": "1.0",
        "id": event_id,
        "type": "vn.lienthong.test.late",
        "source": "/tests",
        "subject": "LATE-1",
        "data": {},
    }
    return {
        "event_id": event_id,
        "dossier_code": "LATE-1",
        "exchange": Names(settings.namespace).events,
        "routing_key": "dossier.test.late",
        "mandatory": False,
        "payload": orjson.dumps(body),
        "created_at": datetime.now(UTC),
    }


async def _sent_ids(
    engine: AsyncEngine, first_id: str, slow_id: str, second_code: str
) -> dict[str, Any] | None:
    """Outbox ids of the three events, and their places in the stream, once all are placed."""
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                sa.select(
                    outbox.c.event_id, outbox.c.id, outbox.c.dossier_code, outbox.c.stream_batch
                ).where(
                    sa.or_(
                        outbox.c.event_id.in_([first_id, slow_id]),
                        outbox.c.dossier_code == second_code,
                    ),
                    outbox.c.stream_batch.is_not(None),
                )
            )
        ).all()
    if len(rows) != 3:
        return None
    ids: dict[str, Any] = {row.event_id: row.id for row in rows}
    ids["place"] = {row.event_id: (row.stream_batch, row.id) for row in rows}
    ids["second"] = next(row.event_id for row in rows if row.dossier_code == second_code)
    return ids
