"""Webhook subscriptions and the log of every attempt to deliver an event to one of them.

The log doubles as the dispatcher's dedup record: an event already delivered to a subscription
is not POSTed to it again when the broker redelivers the message.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.store.database import write_transaction
from bus.store.schema import subscriptions, webhook_deliveries

AttemptOutcome = Literal["delivered", "retry", "failed"]


@dataclass(frozen=True, slots=True)
class Target:
    """An active subscription, as the dispatcher needs it."""

    id: str
    url: str
    routing_keys: tuple[str, ...]
    secret: str


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST of one event to one subscription, and how it ended."""

    subscription_id: str
    event_id: str
    routing_key: str
    attempt: int
    outcome: AttemptOutcome
    status_code: int | None
    error: str | None
    duration_ms: int
    attempted_at: datetime


_PUBLIC_COLUMNS = [c for c in subscriptions.c if c.name != "secret"]


async def create(
    engine: AsyncEngine,
    *,
    url: str,
    routing_keys: Sequence[str],
    description: str | None,
    secret: str,
    owner: str | None = None,
) -> dict[str, Any]:
    """Store a new, active subscription of client ``owner``; returns its row without the secret."""
    row = {
        "id": str(uuid.uuid4()),
        "url": url,
        "routing_keys": list(routing_keys),
        "description": description,
        "secret": secret,
        "active": True,
        "consecutive_failures": 0,
        "created_at": datetime.now(UTC),
        "last_delivered_at": None,
        "disabled_at": None,
        "disabled_reason": None,
        "owner": owner,
    }
    async with write_transaction(engine) as connection:
        await connection.execute(sa.insert(subscriptions).values(row))
    return {k: v for k, v in row.items() if k != "secret"}


async def list_all(engine: AsyncEngine, *, owner: str | None = None) -> list[dict[str, Any]]:
    """Every subscription (of client ``owner`` when given), oldest first, without secrets."""
    query = sa.select(*_PUBLIC_COLUMNS).order_by(subscriptions.c.created_at, subscriptions.c.id)
    if owner is not None:
        query = query.where(subscriptions.c.owner == owner)
    async with engine.connect() as connection:
        rows = await connection.execute(query)
        return [dict(row._mapping) for row in rows]


async def get(engine: AsyncEngine, subscription_id: str) -> dict[str, Any] | None:
    """One subscription without its secret, or ``None``."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(*_PUBLIC_COLUMNS).where(subscriptions.c.id == subscription_id)
            )
        ).first()
    return dict(row._mapping) if row is not None else None


async def enable(engine: AsyncEngine, subscription_id: str) -> dict[str, Any] | None:
    """Re-activate a disabled subscription with a fresh run of failures; ``None`` if unknown.

    An active one is left as it is: its current run of failures is real evidence, which an
    operator's second click should not erase.
    """
    async with write_transaction(engine) as connection:
        await connection.execute(
            sa.update(subscriptions)
            .where(subscriptions.c.id == subscription_id, subscriptions.c.active.is_(False))
            .values(active=True, consecutive_failures=0, disabled_at=None, disabled_reason=None)
        )
        row = (
            await connection.execute(
                sa.select(*_PUBLIC_COLUMNS).where(subscriptions.c.id == subscription_id)
            )
        ).first()
    return dict(row._mapping) if row is not None else None


async def recent_attempts(
    engine: AsyncEngine, subscription_id: str, *, limit: int = 20
) -> list[dict[str, Any]]:
    """The latest delivery attempts to a subscription, newest first."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.select(
                webhook_deliveries.c.event_id,
                webhook_deliveries.c.routing_key,
                webhook_deliveries.c.attempt,
                webhook_deliveries.c.outcome,
                webhook_deliveries.c.status_code,
                webhook_deliveries.c.error,
                webhook_deliveries.c.duration_ms,
                webhook_deliveries.c.attempted_at,
            )
            .where(webhook_deliveries.c.subscription_id == subscription_id)
            .order_by(webhook_deliveries.c.id.desc())
            .limit(limit)
        )
        return [dict(row._mapping) for row in rows]


async def delete(engine: AsyncEngine, subscription_id: str) -> bool:
    """Remove a subscription and its log; whether it existed."""
    async with write_transaction(engine) as connection:
        result = await connection.execute(
            sa.delete(subscriptions).where(subscriptions.c.id == subscription_id)
        )
        await connection.execute(
            sa.delete(webhook_deliveries).where(
                webhook_deliveries.c.subscription_id == subscription_id
            )
        )
    return bool(result.rowcount)


async def active_targets(engine: AsyncEngine, *, ids: Sequence[str] | None = None) -> list[Target]:
    """Every active subscription (or those of ``ids``), with its secret, for the dispatcher."""
    query = sa.select(
        subscriptions.c.id,
        subscriptions.c.url,
        subscriptions.c.routing_keys,
        subscriptions.c.secret,
    ).where(subscriptions.c.active.is_(True))
    if ids is not None:
        query = query.where(subscriptions.c.id.in_(set(ids)))
    async with engine.connect() as connection:
        rows = await connection.execute(query)
        return [Target(row.id, row.url, tuple(row.routing_keys), row.secret) for row in rows]


async def still_due(
    engine: AsyncEngine, subscription_ids: Sequence[str], event_id: str
) -> set[str]:
    """Which of these subscriptions are still active and have not received ``event_id`` yet."""
    if not subscription_ids:
        return set()
    delivered = (
        sa.select(webhook_deliveries.c.subscription_id)
        .where(
            webhook_deliveries.c.event_id == event_id,
            webhook_deliveries.c.outcome == "delivered",
        )
        .scalar_subquery()
    )
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.select(subscriptions.c.id).where(
                subscriptions.c.id.in_(set(subscription_ids)),
                subscriptions.c.active.is_(True),
                subscriptions.c.id.not_in(delivered),
            )
        )
        return {row[0] for row in rows}


async def record_attempts(
    engine: AsyncEngine, attempts: Sequence[Attempt], *, disable_after: int
) -> list[str]:
    """Log the attempts and keep each subscription's run of failed events.

    A delivered event resets the run; a failed one (no retry left) extends it, and a
    subscription whose run reaches ``disable_after`` is disabled. Returns the ids disabled now.
    """
    if not attempts:
        return []
    now = datetime.now(UTC)
    delivered = sorted({a.subscription_id for a in attempts if a.outcome == "delivered"})
    failed = sorted({a.subscription_id for a in attempts if a.outcome == "failed"})
    async with write_transaction(engine) as connection:
        await connection.execute(
            sa.insert(webhook_deliveries),
            [
                {
                    "subscription_id": a.subscription_id,
                    "event_id": a.event_id,
                    "routing_key": a.routing_key,
                    "attempt": a.attempt,
                    "outcome": a.outcome,
                    "status_code": a.status_code,
                    "error": a.error[:2000] if a.error else None,
                    "duration_ms": a.duration_ms,
                    "attempted_at": a.attempted_at,
                }
                for a in attempts
            ],
        )
        if delivered:
            await connection.execute(
                sa.update(subscriptions)
                .where(subscriptions.c.id.in_(delivered))
                .values(consecutive_failures=0, last_delivered_at=now)
            )
        if not failed:
            return []
        await connection.execute(
            sa.update(subscriptions)
            .where(subscriptions.c.id.in_(failed))
            .values(consecutive_failures=subscriptions.c.consecutive_failures + 1)
        )
        disabled = (
            await connection.execute(
                sa.update(subscriptions)
                .where(
                    subscriptions.c.id.in_(failed),
                    subscriptions.c.active.is_(True),
                    subscriptions.c.consecutive_failures >= disable_after,
                )
                .values(
                    active=False,
                    disabled_at=now,
                    disabled_reason=f"{disable_after} events in a row could not be delivered",
                )
                .returning(subscriptions.c.id)
            )
        ).all()
    return [row[0] for row in disabled]


async def purge_attempts(engine: AsyncEngine, *, older_than_seconds: float) -> int:
    """Delete log rows older than the retention; returns how many."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
    async with write_transaction(engine) as connection:
        result = await connection.execute(
            sa.delete(webhook_deliveries).where(webhook_deliveries.c.attempted_at < cutoff)
        )
    return int(result.rowcount or 0)
