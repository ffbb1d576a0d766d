"""A circuit breaker per connector: stop calling a partner that keeps failing, probe, resume.

Closed: calls go through; consecutive transient failures are counted. Open (after
``failure_threshold`` of them): no calls for ``open_seconds``; the worker stops taking messages,
so they wait in their queue without spending attempts. Half-open: one probe call is let
through; its success closes the circuit, its failure opens it again.

Written by hand because it is a dozen lines of state tied to the worker's consume/pause cycle;
the usual libraries wrap a function call and know nothing of queues.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

from bus.connector import CircuitPolicy


class CircuitOpen(Exception):
    """Internal to the worker: the circuit refused a call; the message waits, attempt unspent."""


class CircuitState(StrEnum):
    """Where the breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """The breaker of one partner; not thread-safe (one event loop owns it)."""

    def __init__(
        self, policy: CircuitPolicy, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self.state = CircuitState.CLOSED
        self.opened = 0  # how many times it opened, for metrics and tests

    @property
    def retry_in(self) -> float:
        """Seconds until a probe may be made (0 when calls may go through)."""
        if self.state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._policy.open_seconds - self._clock())

    @property
    def accepting(self) -> bool:
        """Whether :meth:`allow` would let a call through now, without claiming the probe.

        For a message that must first wait for a free partner slot: it is deferred at once when
        this is false, and asks :meth:`allow` only once it holds the slot, since the circuit
        may open while it waits.
        """
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN:
            return self.retry_in == 0
        return not self._probing

    def allow(self) -> bool:
        """Whether a call may be made now; in half-open state only one probe at a time."""
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN:
            if self.retry_in > 0:
                return False
            self.state = CircuitState.HALF_OPEN
        if self._probing:
            return False
        self._probing = True
        return True

    def record_success(self) -> None:
        """A call succeeded (or failed permanently: the partner answered): close the circuit."""
        self._failures = 0
        self._probing = False
        self.state = CircuitState.CLOSED

    def record_failure(self) -> None:
        """A call failed transiently: count it; open the circuit at the threshold or on a probe."""
        self._failures += 1
        was_probe = self._probing
        self._probing = False
        if self.state is CircuitState.OPEN:
            # A call let through before the circuit opened, failing late: the pause already
            # runs from the opening, and pushing it back would leave the worker's resume timer
            # to find the circuit still open.
            return
        if was_probe or self._failures >= self._policy.failure_threshold:
            self.opened += 1
            self.state = CircuitState.OPEN
            self._opened_at = self._clock()
