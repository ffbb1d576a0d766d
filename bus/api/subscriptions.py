"""``/v1/subscriptions``: portals register webhooks that receive the events they select."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from bus.api.auth import Caller, require_subscription_rights
from bus.api.body import read_json_model
from bus.api.problems import PROBLEM_JSON, Problem
from bus.security.clients import AgencyClient
from bus.settings import Settings
from bus.store import subscriptions as store
from bus.topics import TOPIC_PATTERN
from bus.webhooks import new_secret

router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"])

_PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "Problem details (RFC 9457)"}

TopicPattern = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=TOPIC_PATTERN,
        description="AMQP topic pattern: words separated by dots, `*` one word, `#` any number",
        examples=["dossier.status.#"],
    ),
]


class SubscriptionRequest(BaseModel):
    """A webhook to register: where to POST, and which events."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[AnyHttpUrl, Field(max_length=2000)] = Field(
        description="The receiver: an http(s) URL that answers 2xx to each event it accepts",
        examples=["https://portal.example.gov.vn/hooks/lienthong"],
    )
    routing_keys: list[TopicPattern] = Field(
        min_length=1,
        max_length=20,
        description="Routing-key patterns of the events to receive (any of them matches)",
        examples=[["dossier.status.#"]],
    )
    description: str | None = Field(default=None, max_length=500)


class Subscription(BaseModel):
    """A registered webhook and its health (its secret is shown only when it is created)."""

    id: str
    url: str
    routing_keys: list[str]
    description: str | None
    active: bool = Field(description="False once disabled after too many failed events")
    consecutive_failures: int = Field(description="Events in a row that could not be delivered")
    created_at: datetime
    last_delivered_at: datetime | None
    disabled_at: datetime | None
    disabled_reason: str | None
    owner: str | None = Field(description="The client that registered it")


class CreatedSubscription(Subscription):
    """The answer to a new subscription: the only time the signing secret is shown."""

    secret: str = Field(
        description="HMAC-SHA256 key of the X-Bus-Signature header; store it, it is not shown again"
    )


class DeliveryAttempt(BaseModel):
    """One POST of one event to the subscription."""

    event_id: str
    routing_key: str
    attempt: int
    outcome: str = Field(description="delivered, retry (tried again later) or failed")
    status_code: int | None
    error: str | None
    duration_ms: int
    attempted_at: datetime


class SubscriptionDetail(Subscription):
    """A subscription with its latest delivery attempts, newest first."""

    recent_attempts: list[DeliveryAttempt]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@router.post(
    "",
    status_code=201,
    response_model=CreatedSubscription,
    summary="Register a webhook",
    responses={400: _PROBLEM, 413: _PROBLEM, 415: _PROBLEM, 422: _PROBLEM, 503: _PROBLEM},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SubscriptionRequest.model_json_schema()}},
        }
    },
)
async def create_subscription(
    request: Request, response: Response, caller: Caller
) -> CreatedSubscription:
    """Register a URL to receive, signed, every event whose routing key matches a pattern.

    The answer carries the signing secret; it is never shown again.
    """
    wanted = await read_json_model(request, SubscriptionRequest, title="Invalid subscription")
    require_subscription_rights(caller, wanted.routing_keys)
    secret = new_secret()
    row = await store.create(
        request.app.state.runtime.engine,
        url=str(wanted.url),
        routing_keys=wanted.routing_keys,
        description=wanted.description,
        secret=secret,
        owner=caller.id,
    )
    response.headers["Location"] = f"/v1/subscriptions/{row['id']}"
    return CreatedSubscription(**row, secret=secret)


@router.get("", response_model=list[Subscription], summary="Every webhook subscription")
async def list_subscriptions(request: Request, caller: Caller) -> list[Subscription]:
    """The caller's subscriptions (an operator's: every one), oldest first, with their health;
    secrets are not shown."""
    owner = None if caller.operator else caller.id
    rows = await store.list_all(request.app.state.runtime.engine, owner=owner)
    return [Subscription(**row) for row in rows]


@router.get(
    "/{subscription_id}",
    response_model=SubscriptionDetail,
    summary="One webhook subscription and its latest delivery attempts",
    responses={404: _PROBLEM, 422: _PROBLEM},
)
async def get_subscription(
    request: Request, caller: Caller, subscription_id: str
) -> SubscriptionDetail:
    """The subscription, its health and its 20 latest delivery attempts."""
    engine = request.app.state.runtime.engine
    row = await _owned(request, caller, subscription_id)
    attempts = await store.recent_attempts(engine, subscription_id)
    return SubscriptionDetail(
        **row, recent_attempts=[DeliveryAttempt(**attempt) for attempt in attempts]
    )


@router.post(
    "/{subscription_id}/enable",
    response_model=Subscription,
    summary="Re-enable a webhook subscription disabled after repeated failures",
    responses={404: _PROBLEM, 422: _PROBLEM},
)
async def enable_subscription(
    request: Request, caller: Caller, subscription_id: str
) -> Subscription:
    """Make a disabled subscription active again, its count of failed events back at 0.

    Call it once the receiver is fixed. Deliveries resume with events published after this
    call, within `BUS_WEBHOOK_REFRESH_SECONDS`; the events published while it was disabled are
    not sent again (a client catches up from `GET /v1/events/stream` with `Last-Event-ID`, or
    from the dossiers' state). Enabling an active subscription changes nothing.
    """
    await _owned(request, caller, subscription_id)
    row = await store.enable(request.app.state.runtime.writer, subscription_id)
    if row is None:
        raise _not_found(subscription_id)
    return Subscription(**row)


@router.delete(
    "/{subscription_id}",
    status_code=204,
    summary="Remove a webhook subscription",
    responses={404: _PROBLEM, 422: _PROBLEM},
)
async def delete_subscription(request: Request, caller: Caller, subscription_id: str) -> Response:
    """Stop deliveries to this subscription (an attempt already under way may still land)."""
    await _owned(request, caller, subscription_id)
    if not await store.delete(request.app.state.runtime.writer, subscription_id):
        raise _not_found(subscription_id)
    return Response(status_code=204)


async def _owned(request: Request, caller: AgencyClient, subscription_id: str) -> dict[str, Any]:
    """The subscription, if the caller registered it or is an operator; else 404."""
    row = (
        await store.get(request.app.state.runtime.engine, subscription_id)
        if _is_subscription_id(subscription_id)
        else None
    )
    if row is None or not (caller.operator or row["owner"] == caller.id):
        raise _not_found(subscription_id)
    return row


def _is_subscription_id(value: str) -> bool:
    """Whether ``value`` is written as the store writes ids (a UUID). Anything else names no
    subscription and is not worth a query, nor always sendable (PostgreSQL refuses a NUL)."""
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _not_found(subscription_id: str) -> Problem:
    return Problem(
        404, "Not found", f"no subscription {subscription_id[:40]} on this bus", kind="not-found"
    )
