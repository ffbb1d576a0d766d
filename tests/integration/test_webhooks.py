"""Webhooks against the real RabbitMQ: signed deliveries, retries, disabling, patterns, deletion."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bus.runtime import Runtime
from bus.settings import Settings
from bus.testing import serve_app
from bus.webhooks import WebhookDispatcher, verify_signature
from bus.worker import ConnectorWorker
from contracts import (
    EVENT_DOSSIER_STATUS_CHANGED,
    EVENT_DOSSIER_SUBMITTED,
    sample_birth_dossier_json,
)
from tests.conftest import make_settings
from tests.integration.conftest import Simulator
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.broker


@dataclass(frozen=True)
class Call:
    """One POST the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = orjson.loads(self.body)
        return event


@dataclass
class Receiver:
    """A portal's webhook endpoint: records every call; answers each path's configured status."""

    url: str = ""
    calls: list[Call] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def to(self, path: str) -> list[Call]:
        """The calls made to one path, in arrival order."""
        with self.lock:
            return [c for c in self.calls if c.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver over real HTTP on a free loopback port."""
    state = Receiver()

    async def hook(request: Request) -> Response:
        call = Call(request.url.path, dict(request.headers), await request.body(), time.monotonic())
        with state.lock:
            state.calls.append(call)
        return Response(status_code=state.status.get(call.path, 204))

    with serve_app(Starlette(routes=[Route("/{name}", hook, methods=["POST"])])) as url:
        state.url = url
        yield state


@pytest.fixture
def settings(
    request: pytest.FixtureRequest,
    namespace: str,
    sqlite_url: str,
    simulator: Simulator,
    broker_cleanup: list[str],
) -> Settings:
    """A bus that retries a webhook twice (0.2 s, 0.4 s) and disables it after 2 failed events.

    A test may override settings with ``@pytest.mark.parametrize("settings", [{...}],
    indirect=True)``.
    """
    overrides: dict[str, Any] = {
        "webhook_max_attempts": 3,
        "webhook_disable_after": 2,
        "webhook_refresh_seconds": 0.1,
        "webhook_timeout": 2.0,
        **getattr(request, "param", {}),
    }
    return make_settings(
        namespace, sqlite_url, connector_endpoints={"civil_status": simulator.url}, **overrides
    )


@pytest.fixture
async def dispatcher(settings: Settings, api: str) -> AsyncIterator[WebhookDispatcher]:
    """The webhook dispatcher, as a worker process runs it (after the API declared topology)."""
    runtime = await Runtime.open(settings, name="test-webhooks")
    dispatcher = WebhookDispatcher(runtime)
    await dispatcher.start()
    yield dispatcher
    await dispatcher.stop()
    await runtime.close()


async def _subscribe(
    client: httpx.AsyncClient, url: str, *patterns: str, description: str | None = None
) -> dict[str, Any]:
    answer = await client.post(
        "/v1/subscriptions",
        json={"url": url, "routing_keys": list(patterns), "description": description},
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    assert answer.headers["location"] == f"/v1/subscriptions/{created['id']}"
    return created


async def _submit(client: httpx.AsyncClient, sequence: int) -> str:
    body = sample_birth_dossier_json(sequence=sequence)
    answer = await client.post("/v1/dossiers", json=body)
    assert answer.status_code == 202, answer.text
    return str(body["code"])


async def _attempts(client: httpx.AsyncClient, subscription_id: str) -> list[dict[str, Any]]:
    answer = await client.get(f"/v1/subscriptions/{subscription_id}")
    assert answer.status_code == 200, answer.text
    attempts: list[dict[str, Any]] = answer.json()["recent_attempts"]
    return attempts


async def test_a_status_event_arrives_signed_and_verifiable(
    client: httpx.AsyncClient,
    workers: list[ConnectorWorker],
    dispatcher: WebhookDispatcher,
    receiver: Receiver,
) -> None:
    """The receiver gets the CloudEvent with a signature its secret verifies, and the event id."""
    created = await _subscribe(client, f"{receiver.url}/portal", "dossier.status.#")
    code = await _submit(client, 1)

    [call] = await wait_for(lambda: _async(receiver.to("/portal")))
    assert call.headers["content-type"] == "application/cloudevents+json"
    assert verify_signature(created["secret"], call.body, call.headers["x-bus-signature"])
    assert not verify_signature(
        created["secret"], call.body + b" ", call.headers["x-bus-signature"]
    )
    event = call.event
    assert call.headers["x-bus-event-id"] == event["id"]
    assert event["type"] == EVENT_DOSSIER_STATUS_CHANGED and event["subject"] == code
    assert event["data"]["status"] == 9

    [attempt] = await wait_for(lambda: _attempts(client, created["id"]))
    assert attempt["event_id"] == event["id"] and attempt["outcome"] == "delivered"
    assert attempt["routing_key"] == "dossier.status.9.000.00.10.H12"
    view = (await client.get(f"/v1/subscriptions/{created['id']}")).json()
    assert view["active"] and view["last_delivered_at"] and "secret" not in view


async def test_a_failing_receiver_is_retried_then_disabled(
    client: httpx.AsyncClient,
    workers: list[ConnectorWorker],
    dispatcher: WebhookDispatcher,
    receiver: Receiver,
) -> None:
    """Each event is POSTed 3 times with back-off; 2 failed events in a row disable the hook."""
    receiver.status["/down"] = 503
    failing = await _subscribe(client, f"{receiver.url}/down", "dossier.status.#")
    control = await _subscribe(client, f"{receiver.url}/up", "dossier.status.#")
    for sequence in (1, 2):
        await _submit(client, sequence)

    async def disabled() -> dict[str, Any] | None:
        view: dict[str, Any] = (await client.get(f"/v1/subscriptions/{failing['id']}")).json()
        return None if view["active"] else view

    view = await wait_for(disabled)
    assert view["consecutive_failures"] == 2 and view["disabled_at"]
    assert "2 events in a row" in view["disabled_reason"]
    calls = receiver.to("/down")
    by_event: dict[str, list[Call]] = {}
    for call in calls:
        by_event.setdefault(call.headers["x-bus-event-id"], []).append(call)
    assert len(by_event) == 2
    for event_calls in by_event.values():
        assert [c.headers["x-bus-attempt"] for c in event_calls] == ["1", "2", "3"]
        gaps = [b.at - a.at for a, b in itertools.pairwise(event_calls)]
        assert gaps[0] >= 0.2 * 0.9 and gaps[1] >= 0.4 * 0.9, gaps
    outcomes = sorted(a["outcome"] for a in await _attempts(client, failing["id"]))
    assert outcomes == ["failed", "failed", "retry", "retry", "retry", "retry"]

    # Disabled: a later event reaches the healthy subscription only.
    await _submit(client, 3)
    await wait_for(lambda: _async(len(receiver.to("/up")) == 3))
    await wait_for(lambda: _delivered_count(client, control["id"], 3))
    assert len(receiver.to("/down")) == len(calls)


@pytest.mark.parametrize(
    "settings", [{"webhook_max_attempts": 4, "webhook_disable_after": 1}], indirect=True
)
async def test_retries_past_the_last_tier_wait_the_last_tier_again(
    client: httpx.AsyncClient,
    workers: list[ConnectorWorker],
    dispatcher: WebhookDispatcher,
    receiver: Receiver,
) -> None:
    """With more attempts than tiers, each retry beyond them waits the longest tier again."""
    receiver.status["/down"] = 503
    failing = await _subscribe(client, f"{receiver.url}/down", "dossier.status.#")
    await _submit(client, 1)

    view = await wait_for(lambda: _disabled(client, failing["id"]))
    assert view["consecutive_failures"] == 1
    calls = receiver.to("/down")
    assert [c.headers["x-bus-attempt"] for c in calls] == ["1", "2", "3", "4"]
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    assert all(g >= d * 0.9 for g, d in zip(gaps, (0.2, 0.4, 0.4), strict=True)), gaps


async def test_only_failures_in_a_row_disable_a_subscription(
    client: httpx.AsyncClient,
    workers: list[ConnectorWorker],
    dispatcher: WebhookDispatcher,
    receiver: Receiver,
) -> None:
    """A delivered event resets the run: fail, succeed, fail leaves it active; a second fails it.

    The receiver answers 410, which fails an event at once (no retry), so each step is quick.
    """
    flaky = await _subscribe(client, f"{receiver.url}/flaky", "dossier.status.#")

    async def after_event(sequence: int, status: int) -> dict[str, Any]:
        receiver.status["/flaky"] = status
        await _submit(client, sequence)
        await wait_for(lambda: _async(len(receiver.to("/flaky")) == sequence))
        await wait_for(lambda: _logged(client, flaky["id"], sequence))
        view: dict[str, Any] = (await client.get(f"/v1/subscriptions/{flaky['id']}")).json()
        return view

    assert (await after_event(1, 410))["consecutive_failures"] == 1
    assert (await after_event(2, 204))["consecutive_failures"] == 0
    view = await after_event(3, 410)
    assert view["active"] and view["consecutive_failures"] == 1
    view = await after_event(4, 410)
    assert not view["active"] and view["consecutive_failures"] == 2
    outcomes = [a["outcome"] for a in reversed(await _attempts(client, flaky["id"]))]
    assert outcomes == ["failed", "delivered", "failed", "failed"]


async def test_a_disabled_subscription_is_enabled_again_with_a_fresh_count(
    settings: Settings,
    client: httpx.AsyncClient,
    workers: list[ConnectorWorker],
    dispatcher: WebhookDispatcher,
    receiver: Receiver,
) -> None:
    """POST .../enable re-activates it with no failures on record; later events reach it."""
    receiver.status["/fixed"] = 410
    hook = await _subscribe(client, f"{receiver.url}/fixed", "dossier.status.#")
    for sequence in (1, 2):
        await _submit(client, sequence)
    disabled = await wait_for(lambda: _disabled(client, hook["id"]))
    assert disabled["consecutive_failures"] == 2 and disabled["disabled_reason"]

    receiver.status["/fixed"] = 204
    answer = await client.post(f"/v1/subscriptions/{hook['id']}/enable")
    assert answer.status_code == 200, answer.text
    enabled = answer.json()
    assert enabled["active"] and enabled["consecutive_failures"] == 0
    assert enabled["disabled_at"] is None and enabled["disabled_reason"] is None
    assert "secret" not in enabled
    assert enabled["created_at"] == disabled["created_at"] and enabled["id"] == hook["id"]
    view = (await client.get(f"/v1/subscriptions/{hook['id']}")).json()
    assert {k: v for k, v in view.items() if k != "recent_attempts"} == enabled

    # The promise is "events published after the call, within the refresh interval": the
    # dispatcher may still hold the list it read before the call for that long.
    await asyncio.sleep(settings.webhook_refresh_seconds)
    code = await _submit(client, 3)
    await wait_for(lambda: _delivered_count(client, hook["id"], 1))
    [call] = [c for c in receiver.to("/fixed") if c.event["subject"] == code]
    assert verify_signature(hook["secret"], call.body, call.headers["x-bus-signature"])

    # Enabling an active subscription changes nothing; an unknown one is a 404 problem.
    again = await client.post(f"/v1/subscriptions/{hook['id']}/enable")
    assert again.status_code == 200 and again.json()["active"]
    missing = await client.post("/v1/subscriptions/no-such-subscription/enable")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_the_enable_route_is_documented(client: httpx.AsyncClient) -> None:
    """OpenAPI describes the enable route: its answer is a Subscription, 404 a problem."""
    schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"]["/v1/subscriptions/{subscription_id}/enable"]["post"]
    assert "disabled" in operation["summary"] and operation["description"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Subscription"
    }
    assert "application/problem+json" in operation["responses"]["404"]["content"]


async def test_only_events_matching_the_patterns_are_delivered(
    client: httpx.AsyncClient,
    workers: list[ConnectorWorker],
    dispatcher: WebhookDispatcher,
    receiver: Receiver,
) -> None:
    """Each subscription gets exactly the events its patterns select, and nothing else."""
    submitted = await _subscribe(client, f"{receiver.url}/submitted", "dossier.submitted.#")
    processed = await _subscribe(client, f"{receiver.url}/processed", "dossier.status.9.#")
    await _subscribe(client, f"{receiver.url}/other-agency", "dossier.status.*.000.00.10.H99")
    await _subscribe(client, f"{receiver.url}/processing", "dossier.status.4.#", "x.#")
    both = await _subscribe(
        client, f"{receiver.url}/both", "dossier.submitted.#", "dossier.status.*.*.*.*.H12"
    )
    await _submit(client, 1)

    # Once both events are logged for every subscription that wants them, all POSTs are done.
    for subscription, count in ((submitted, 1), (processed, 1), (both, 2)):
        await wait_for(lambda s=subscription, n=count: _delivered_count(client, s["id"], n))
    assert [c.event["type"] for c in receiver.to("/submitted")] == [EVENT_DOSSIER_SUBMITTED]
    assert [c.event["type"] for c in receiver.to("/processed")] == [EVENT_DOSSIER_STATUS_CHANGED]
    assert sorted(c.event["type"] for c in receiver.to("/both")) == sorted(
        [EVENT_DOSSIER_SUBMITTED, EVENT_DOSSIER_STATUS_CHANGED]
    )
    assert receiver.to("/other-agency") == [] and receiver.to("/processing") == []


# The dispatcher would not reload its subscriptions within the test: the store has the last word.
@pytest.mark.parametrize("settings", [{"webhook_refresh_seconds": 600}], indirect=True)
async def test_deleting_a_subscription_stops_deliveries(
    client: httpx.AsyncClient,
    workers: list[ConnectorWorker],
    dispatcher: WebhookDispatcher,
    receiver: Receiver,
) -> None:
    """After DELETE the subscription gets no further event, at once; the others still do."""
    doomed = await _subscribe(client, f"{receiver.url}/doomed", "dossier.status.#")
    control = await _subscribe(client, f"{receiver.url}/control", "dossier.status.#")
    await _submit(client, 1)
    await wait_for(lambda: _delivered_count(client, doomed["id"], 1))
    await wait_for(lambda: _delivered_count(client, control["id"], 1))

    assert (await client.delete(f"/v1/subscriptions/{doomed['id']}")).status_code == 204
    assert (await client.get(f"/v1/subscriptions/{doomed['id']}")).status_code == 404
    assert (await client.delete(f"/v1/subscriptions/{doomed['id']}")).status_code == 404
    listed = (await client.get("/v1/subscriptions")).json()
    assert [s["id"] for s in listed] == [control["id"]]

    await _submit(client, 2)
    await wait_for(lambda: _delivered_count(client, control["id"], 2))
    assert len(receiver.to("/doomed")) == 1 and len(receiver.to("/control")) == 2


async def test_the_secret_is_shown_once_and_bad_subscriptions_are_refused(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    """Only the creation answer holds the secret; malformed URLs and patterns get a 422."""
    created = await _subscribe(client, f"{receiver.url}/a", "dossier.#", description="Cổng DVC")
    assert created["secret"].startswith("whsec_") and created["description"] == "Cổng DVC"
    listed = (await client.get("/v1/subscriptions")).json()
    assert [s["id"] for s in listed] == [created["id"]] and "secret" not in listed[0]

    for body, field_name in (
        ({"url": "ftp://portal.example/x", "routing_keys": ["#"]}, "url"),
        ({"url": f"{receiver.url}/a", "routing_keys": ["dossier..status"]}, "routing_keys[0]"),
        ({"url": f"{receiver.url}/a", "routing_keys": []}, "routing_keys"),
        ({"url": f"{receiver.url}/a", "routing_keys": ["#"], "secret": "mine"}, "secret"),
    ):
        answer = await client.post("/v1/subscriptions", json=body)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in answer.json()["errors"]] == [field_name]
    assert (await client.get("/v1/subscriptions/unknown")).status_code == 404


async def _async(value: Any) -> Any:
    return value


async def _delivered_count(client: httpx.AsyncClient, subscription_id: str, count: int) -> bool:
    attempts = await _attempts(client, subscription_id)
    return sum(a["outcome"] == "delivered" for a in attempts) >= count


async def _disabled(client: httpx.AsyncClient, subscription_id: str) -> dict[str, Any] | None:
    view: dict[str, Any] = (await client.get(f"/v1/subscriptions/{subscription_id}")).json()
    return None if view["active"] else view


async def _logged(client: httpx.AsyncClient, subscription_id: str, count: int) -> bool:
    return len(await _attempts(client, subscription_id)) >= count
