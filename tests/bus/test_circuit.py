"""The circuit breaker: opens after repeated transient failures, probes once, then closes."""

from __future__ import annotations

from bus.circuit import CircuitBreaker, CircuitState
from bus.connector import CircuitPolicy


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: Clock, threshold: int = 3, open_seconds: float = 10) -> CircuitBreaker:
    return CircuitBreaker(
        CircuitPolicy(failure_threshold=threshold, open_seconds=open_seconds), clock=clock
    )


def test_it_opens_after_the_threshold_of_consecutive_failures() -> None:
    """Three transient failures in a row open the circuit; calls are then refused."""
    breaker = _breaker(Clock())
    for _ in range(2):
        breaker.record_failure()
        assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    assert not breaker.allow()
    assert breaker.opened == 1


def test_a_success_resets_the_count() -> None:
    """Failures separated by a success never reach the threshold."""
    breaker = _breaker(Clock())
    for _ in range(5):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state is CircuitState.CLOSED


def test_after_the_pause_one_probe_is_let_through() -> None:
    """Once open_seconds have passed, exactly one call probes the partner."""
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 9.9
    assert not breaker.allow()
    assert breaker.retry_in > 0
    clock.now += 0.2
    assert breaker.allow()
    assert breaker.state is CircuitState.HALF_OPEN
    assert not breaker.allow()  # a second call waits for the probe's result


def test_a_failed_probe_opens_it_again_and_a_good_one_closes_it() -> None:
    """The probe decides: failure re-opens for another pause, success closes."""
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 11
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    assert breaker.opened == 2
    assert not breaker.allow()
    clock.now += 11
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.allow()
    assert breaker.allow()


def test_a_late_failure_does_not_push_back_the_probe() -> None:
    """A call let through before the circuit opened, failing after, keeps the pause as it was."""
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 6
    breaker.record_failure()  # the fourth call in flight when the third one failed
    assert breaker.state is CircuitState.OPEN and breaker.opened == 1
    assert breaker.retry_in == 4
    clock.now += 4
    assert breaker.allow()


def test_asking_whether_it_accepts_does_not_claim_the_probe() -> None:
    """`accepting` answers like allow() would, but leaves the one probe to the caller of allow()."""
    clock = Clock()
    breaker = _breaker(clock)
    assert breaker.accepting
    for _ in range(3):
        breaker.record_failure()
    assert not breaker.accepting
    clock.now += 10
    assert breaker.accepting and breaker.accepting
    assert breaker.state is CircuitState.OPEN
    assert breaker.allow()
    assert not breaker.accepting  # the probe is out
    breaker.record_success()
    assert breaker.accepting
