"""The circuit breaker's state machine, on a fake clock."""

from __future__ import annotations

import pytest

from gateway.upstream.breaker import CircuitBreaker, CircuitOpenError, CircuitState

from .conftest import Clock


def state(breaker: CircuitBreaker) -> CircuitState:
    """The breaker's state, read afresh (a property the type checker would narrow)."""
    return breaker.state


def test_it_opens_after_consecutive_failures_only() -> None:
    """A success in between resets the count; the threshold-th consecutive failure opens."""
    clock = Clock()
    breaker = CircuitBreaker(3, cooldown=10, clock=clock)
    for outcome in ("fail", "fail", "ok", "fail", "fail"):
        breaker.before_call()
        breaker.record_failure() if outcome == "fail" else breaker.record_success()
    assert state(breaker) is CircuitState.CLOSED
    breaker.before_call()
    breaker.record_failure()
    assert state(breaker) is CircuitState.OPEN
    with pytest.raises(CircuitOpenError) as raised:
        breaker.before_call()
    assert raised.value.extensions == {"code": "UPSTREAM_UNAVAILABLE", "retryAfter": 10.0}


def test_after_the_cooldown_one_probe_at_a_time() -> None:
    """Half-open lets exactly one call through until it settles."""
    clock = Clock()
    breaker = CircuitBreaker(1, cooldown=5, clock=clock)
    breaker.before_call()
    breaker.record_failure()
    clock.now += 5
    assert state(breaker) is CircuitState.HALF_OPEN
    breaker.before_call()  # the probe
    with pytest.raises(CircuitOpenError):
        breaker.before_call()  # a second caller meanwhile
    breaker.record_success()
    assert state(breaker) is CircuitState.CLOSED
    breaker.before_call()


def test_a_failed_probe_reopens_for_a_full_cooldown() -> None:
    """The probe's failure opens the circuit again, counted from then."""
    clock = Clock()
    breaker = CircuitBreaker(2, cooldown=5, clock=clock)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    clock.now += 6
    breaker.before_call()
    breaker.record_failure()
    clock.now += 4
    assert state(breaker) is CircuitState.OPEN
    clock.now += 1
    assert state(breaker) is CircuitState.HALF_OPEN


def test_an_abandoned_probe_frees_the_slot() -> None:
    """A probe cancelled midway (deadline, client gone) lets the next caller probe."""
    clock = Clock()
    breaker = CircuitBreaker(1, cooldown=1, clock=clock)
    breaker.before_call()
    breaker.record_failure()
    clock.now += 1
    breaker.before_call()
    breaker.record_abandoned()
    breaker.before_call()


def test_neutral_answers_close_a_half_open_circuit_and_do_not_count() -> None:
    """A 4xx proves the upstream answers: it closes a half-open circuit, never opens one."""
    clock = Clock()
    breaker = CircuitBreaker(1, cooldown=1, clock=clock)
    for _ in range(5):
        breaker.before_call()
        breaker.record_neutral()
    assert state(breaker) is CircuitState.CLOSED
    breaker.before_call()
    breaker.record_failure()
    clock.now += 1
    breaker.before_call()
    breaker.record_neutral()
    assert state(breaker) is CircuitState.CLOSED


def test_a_zero_threshold_disables_it() -> None:
    """GATEWAY_BREAKER_FAILURES=0: failures never open the circuit."""
    breaker = CircuitBreaker(0, cooldown=1)
    for _ in range(100):
        breaker.before_call()
        breaker.record_failure()
    assert state(breaker) is CircuitState.CLOSED
