"""Webhooks: POST every event to the subscriptions whose patterns match it, signed with HMAC.

The dispatcher runs in worker processes and consumes ``<ns>.webhooks``. For each event it finds
the active subscriptions whose routing-key patterns match, POSTs the CloudEvent JSON to each,
and records every attempt. A failed POST (5xx, 408, 429, timeout, refused connection) is tried
again through the retry tiers (a copy of the message addressed to that one subscription), up to
``BUS_WEBHOOK_MAX_ATTEMPTS``; then, or at once for another answer, the event counts as failed
for that subscription, and ``BUS_WEBHOOK_DISABLE_AFTER`` failed events in a row disable it.
The message is acked only after the attempts are logged and the retries are on the broker.

Delivery is at least once: receivers deduplicate on ``X-Bus-Event-Id`` (the CloudEvent ``id``).

Signature, Stripe-style: ``X-Bus-Signature: t=<unix seconds>,v1=<hex>`` where ``<hex>`` is
HMAC-SHA256 with the subscription's secret over ``"<t>." + body``. A receiver recomputes it
over the raw body (:func:`verify_signature`) and refuses timestamps that are too old.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx
import orjson
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from bus.amqp import CLOUDEVENTS_JSON, OutgoingMessage
from bus.runtime import Runtime
from bus.store import subscriptions as store
from bus.store.subscriptions import Attempt, AttemptOutcome, Target
from bus.tasks import cancel_and_wait
from bus.topics import topic_matches

__all__ = [
    "SIGNATURE_HEADER",
    "SIGNATURE_TOLERANCE_SECONDS",
    "WebhookDispatcher",
    "new_secret",
    "sign",
    "verify_signature",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER: Final = "X-Bus-Signature"
EVENT_ID_HEADER: Final = "X-Bus-Event-Id"
SIGNATURE_TOLERANCE_SECONDS: Final = 300
"""How old a signature's timestamp a receiver should accept (replay protection)."""

#: On a message sent back through a retry tier: which attempt it is and for which subscription.
ATTEMPT_HEADER: Final = "x-bus-attempt"
SUBSCRIPTION_HEADER: Final = "x-bus-subscription"
#: A message coming back from a retry tier carries the tier's routing key; this keeps the event's.
ROUTING_KEY_HEADER: Final = "x-bus-routing-key"

_RETRYABLE_STATUS = frozenset({408, 429})


def new_secret() -> str:
    """A fresh signing secret (shown to the subscriber once)."""
    return f"whsec_{secrets.token_urlsafe(32)}"


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The ``X-Bus-Signature`` value for ``body``: ``t=<unix seconds>,v1=<hex HMAC-SHA256>``."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_digest(secret, t, body)}"


def verify_signature(
    secret: str,
    body: bytes,
    header: str,
    *,
    tolerance: float = SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether ``header`` signs exactly ``body`` with ``secret``, at most ``tolerance`` s ago.

    What a receiver does with every delivery (the README shows the same in a few lines).
    Several ``v1`` values are accepted, so a secret can be rotated without a gap.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = _digest(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


@dataclass(frozen=True, slots=True)
class _Result:
    outcome: AttemptOutcome | None  # None: transient, to be decided (retry or failed)
    status_code: int | None
    error: str | None
    duration_ms: int


class WebhookDispatcher:
    """Consumes ``<ns>.webhooks`` and POSTs each event to its matching subscriptions."""

    def __init__(
        self, runtime: Runtime, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._runtime = runtime
        self._settings = runtime.settings
        self.queue_name = runtime.names.webhooks
        self._client = httpx.AsyncClient(
            timeout=self._settings.webhook_timeout,
            # A receiver answers itself: a redirect could point the signed event anywhere.
            follow_redirects=False,
            headers={"User-Agent": "lienthong-bus-webhooks/1"},
            transport=transport,
        )
        self._targets: list[Target] = []
        self._loaded_at = -float("inf")
        self._load_lock = asyncio.Lock()
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._housekeeping: asyncio.Task[None] | None = None
        self.counts: dict[str, int] = {"delivered": 0, "retried": 0, "failed": 0, "disabled": 0}

    async def start(self) -> None:
        """Start consuming the webhooks queue."""
        channel = await self._runtime.broker.connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=self._settings.prefetch)
        self._channel = channel
        self._queue = await channel.get_queue(self.queue_name, ensure=True)
        self._consumer_tag = await self._queue.consume(self._on_message, no_ack=False)
        self._housekeeping = asyncio.create_task(self._purge_log(), name="webhook-log-purge")
        log.info("webhook dispatcher consuming %s", self.queue_name)

    async def stop(self) -> None:
        """Stop consuming, finish the events in hand, close the HTTP client."""
        if self._queue is not None and self._consumer_tag is not None:
            try:
                await self._queue.cancel(self._consumer_tag)
            except Exception:  # the channel may already be gone; unacked messages come back
                log.debug("cancel of %s failed", self._consumer_tag, exc_info=True)
        await self._idle.wait()
        await cancel_and_wait(self._housekeeping)
        if self._channel is not None:
            await self._channel.close()
        await self._client.aclose()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._in_flight += 1
        self._idle.clear()
        try:
            await self._handle(message)
        except Exception:
            # The store or the broker failed under us: the broker redelivers the message, and
            # the log keeps subscriptions that already have the event from getting it twice.
            log.exception(
                "webhook event %s not settled; it will be redelivered", message.message_id
            )
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        headers = message.headers or {}
        routing_key = _text(headers.get(ROUTING_KEY_HEADER)) or message.routing_key or ""
        only = _text(headers.get(SUBSCRIPTION_HEADER))
        attempt = headers.get(ATTEMPT_HEADER, 1)
        attempt = attempt if isinstance(attempt, int) and attempt >= 1 else 1
        identity = _event_identity(message.body)
        if identity is None:
            log.warning("webhooks: message %s is not a bus event; parked", message.message_id)
            await message.reject(requeue=False)  # dead-letters to the parking queue
            return
        event_id, event_type = identity

        if only is not None:
            # A retry, for its subscription alone: read from the store, whatever the cache says.
            candidates = await store.active_targets(self._runtime.engine, ids=[only])
        else:
            candidates = [t for t in await self._active() if _matches(t, routing_key)]
        if candidates:
            # The cache may be a moment old: a subscription deleted or disabled since, or one
            # that already has this event (a redelivery), is skipped.
            due = await store.still_due(self._runtime.engine, [t.id for t in candidates], event_id)
            targets = [t for t in candidates if t.id in due]
            if targets:
                await self._deliver(message, targets, event_id, event_type, routing_key, attempt)
        await message.ack()

    async def _deliver(
        self,
        message: AbstractIncomingMessage,
        targets: Sequence[Target],
        event_id: str,
        event_type: str,
        routing_key: str,
        attempt: int,
    ) -> None:
        attempted_at = datetime.now(UTC)
        results = await asyncio.gather(
            *(self._post(t, message.body, event_id, event_type, attempt) for t in targets)
        )
        can_retry = attempt < self._settings.webhook_max_attempts and bool(
            self._settings.retry_delays
        )
        attempts: list[Attempt] = []
        retries: list[Target] = []
        for target, result in zip(targets, results, strict=True):
            outcome = result.outcome or ("retry" if can_retry else "failed")
            if outcome == "retry":
                retries.append(target)
            attempts.append(
                Attempt(
                    subscription_id=target.id,
                    event_id=event_id,
                    routing_key=routing_key,
                    attempt=attempt,
                    outcome=outcome,
                    status_code=result.status_code,
                    error=result.error,
                    duration_ms=result.duration_ms,
                    attempted_at=attempted_at,
                )
            )
            self.counts[outcome if outcome != "retry" else "retried"] += 1
        disabled = await store.record_attempts(
            self._runtime.writer, attempts, disable_after=self._settings.webhook_disable_after
        )
        if disabled:
            self.counts["disabled"] += len(disabled)
            self._targets = [t for t in self._targets if t.id not in disabled]
            for subscription_id in disabled:
                log.warning(
                    "webhook subscription %s disabled after %d failed events in a row",
                    subscription_id,
                    self._settings.webhook_disable_after,
                )
        for target in retries:
            await self._retry_later(message, target, event_id, routing_key, attempt)

    async def _post(
        self, target: Target, body: bytes, event_id: str, event_type: str, attempt: int
    ) -> _Result:
        """One POST; httpx's errors are classified here and nowhere else."""
        headers = {
            "Content-Type": CLOUDEVENTS_JSON,
            SIGNATURE_HEADER: sign(target.secret, body),
            EVENT_ID_HEADER: event_id,
            "X-Bus-Event-Type": event_type,
            "X-Bus-Subscription": target.id,
            "X-Bus-Attempt": str(attempt),
        }
        started = time.monotonic()

        def elapsed() -> int:
            return round((time.monotonic() - started) * 1000)

        try:
            # Streamed and never read: the receiver's answer body is not needed, however large.
            async with self._client.stream("POST", target.url, content=body, headers=headers) as r:
                code = r.status_code
        except httpx.TimeoutException as exc:
            return _Result(None, None, f"no answer in time ({type(exc).__name__})", elapsed())
        except httpx.HTTPError as exc:  # refused, reset, protocol error: try again later
            return _Result(None, None, f"{type(exc).__name__}: {exc}", elapsed())
        if 200 <= code < 300:
            return _Result("delivered", code, None, elapsed())
        if code >= 500 or code in _RETRYABLE_STATUS:
            return _Result(None, code, f"HTTP {code}", elapsed())
        # Another answer (a redirect, 4xx) will not change on a retry: the event failed.
        return _Result("failed", code, f"HTTP {code}", elapsed())

    async def _retry_later(
        self,
        message: AbstractIncomingMessage,
        target: Target,
        event_id: str,
        routing_key: str,
        attempt: int,
    ) -> None:
        """Send a copy for this subscription alone through the next retry tier (confirmed)."""
        delays = self._settings.retry_delays
        delay = delays[min(attempt, len(delays)) - 1]
        await self._runtime.broker.publish(
            OutgoingMessage(
                exchange=self._runtime.names.retry(delay),
                # The tier dead-letters back through the default exchange, to this queue.
                routing_key=self.queue_name,
                body=message.body,
                message_id=event_id,
                correlation_id=message.correlation_id,
                content_type=message.content_type or CLOUDEVENTS_JSON,
                headers={
                    ATTEMPT_HEADER: attempt + 1,
                    SUBSCRIPTION_HEADER: target.id,
                    ROUTING_KEY_HEADER: routing_key,
                },
            )
        )

    async def _active(self) -> list[Target]:
        """The active subscriptions, reloaded from the store every refresh interval."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._loaded_at < self._settings.webhook_refresh_seconds:
            return self._targets
        async with self._load_lock:
            if loop.time() - self._loaded_at >= self._settings.webhook_refresh_seconds:
                # Stamped when the read starts, not when it returns: a read slowed down by a
                # busy store must not pass for fresher than the state it saw.
                started = loop.time()
                self._targets = await store.active_targets(self._runtime.engine)
                self._loaded_at = started
        return self._targets

    async def _purge_log(self) -> None:
        while True:
            await asyncio.sleep(60)
            try:
                await store.purge_attempts(
                    self._runtime.writer,
                    older_than_seconds=self._settings.webhook_log_retention_seconds,
                )
            except Exception:
                log.warning("purging the webhook delivery log failed", exc_info=True)


def _matches(target: Target, routing_key: str) -> bool:
    return any(topic_matches(pattern, routing_key) for pattern in target.routing_keys)


def _event_identity(body: bytes) -> tuple[str, str] | None:
    """The event's id and type, or ``None`` when the body is not a CloudEvent."""
    try:
        event: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict):
        return None
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
        return None
    return event_id, event_type


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None
