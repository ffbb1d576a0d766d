"""A connector's health in one word, from what the store recorded of its deliveries.

The rule reads the transaction log only, so every API process gives the same answer without
asking the workers: the circuit breaker's state lives in a worker's memory, but its effect
(failed attempts, then none) is in the log.

- **idle**: no delivery attempt in the window (nothing to send, or every worker stopped);
- **failing**: the newest attempt in the window failed (retried or parked), i.e. no success
  came after the last failure;
- **ok**: the newest attempt in the window succeeded.

Dead letters still parked are counted beside the word, not in it: they wait for an operator
whatever the partner's state now.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Final

from bus.store.connector_health import ConnectorActivity

__all__ = ["HEALTH_WINDOW", "Health", "health_of"]

HEALTH_WINDOW: Final = timedelta(hours=1)
"""How far back the counts and the word look."""


class Health(StrEnum):
    """A connector's state in one word."""

    OK = "ok"
    FAILING = "failing"
    IDLE = "idle"


def health_of(activity: ConnectorActivity) -> Health:
    """The word for ``activity`` (counted over :data:`HEALTH_WINDOW`)."""
    if activity.delivered == 0 and activity.failed == 0:
        return Health.IDLE
    if activity.last_failure_at is None:
        return Health.OK
    if activity.last_success_at is None or activity.last_success_at < activity.last_failure_at:
        return Health.FAILING
    return Health.OK
