"""The upstream circuit breaker: fail fast while the Jobs API is down, probe, recover.

    closed ──(N consecutive failures)──> open ──(cool-down passed)──> half-open
      ^                                    ^                             │
      └───────────(probe succeeds)─────────┼──────(probe fails)──────────┘

Closed: every call goes through; a success resets the failure count. Open: calls fail at once
with `UPSTREAM_UNAVAILABLE` (and `retryAfter`, the seconds left of the cool-down), so requests do
not pile up on a dead upstream. Half-open: one call at a time is let through as a probe; its
success closes the circuit, its failure opens it for another cool-down. Calls that arrive while
the probe is out are refused with `probe_pending`; the upstream client lets them wait for the
probe's outcome (`probe_settled`) within their deadline, so a recovered upstream serves them
all instead of one.

Only failures that say the upstream itself is unwell count: connection errors, timeouts and 5xx.
A 4xx or a 429 is about one caller's request or token, and says the upstream is alive.
One breaker guards one upstream for the whole process, whichever token a call carries.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable

from gateway.errors import UpstreamUnavailableError


class CircuitOpenError(UpstreamUnavailableError):
    """Raised instead of calling the upstream while the circuit is open, or while the one
    half-open probe is out (`probe_pending`: its outcome is worth waiting for)."""

    def __init__(self, message: str, *, retry_after: float, probe_pending: bool) -> None:
        super().__init__(message, retry_after=retry_after)
        self.probe_pending = probe_pending


class CircuitState(enum.Enum):
    """Where the breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive upstream failures and opens for `cooldown` seconds after `threshold`.

    A `threshold` of 0 disables the breaker: every call goes through.
    """

    def __init__(
        self,
        threshold: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[CircuitState], None] | None = None,
    ) -> None:
        self._threshold = threshold
        self._on_change = on_change
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._state = CircuitState.CLOSED
        self._probe_in_flight = False
        self._probe_settled: asyncio.Event | None = None

    def _become(self, state: CircuitState) -> None:
        if state is not self._state and self._on_change is not None:
            self._on_change(state)
        self._state = state

    @property
    def state(self) -> CircuitState:
        """The state now (an open circuit whose cool-down passed reads as half-open)."""
        if self._state is CircuitState.OPEN and self._cooled_down():
            return CircuitState.HALF_OPEN
        return self._state

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self._cooldown

    def before_call(self) -> None:
        """Let a call through, or raise `UpstreamUnavailableError` while the circuit is open."""
        if self._threshold == 0 or self._state is CircuitState.CLOSED:
            return
        if self._state is CircuitState.OPEN and self._cooled_down():
            self._become(CircuitState.HALF_OPEN)
            self._probe_in_flight = False
        if self._state is CircuitState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            self._probe_settled = asyncio.Event()
            return
        probing = self._state is CircuitState.HALF_OPEN
        remaining = max(0.0, self._cooldown - (self._clock() - self._opened_at))
        raise CircuitOpenError(
            "The Jobs API is failing; the gateway stopped calling it for a moment "
            "(circuit breaker open). Retry shortly",
            # While a probe is out, its answer is at most an upstream timeout away.
            retry_after=1.0 if probing else round(remaining, 1),
            probe_pending=probing,
        )

    async def probe_settled(self) -> None:
        """Return once the probe that is out has settled (at once if none is)."""
        settled = self._probe_settled
        if settled is not None:
            await settled.wait()

    def _probe_over(self) -> None:
        self._probe_in_flight = False
        if self._probe_settled is not None:
            self._probe_settled.set()
            self._probe_settled = None

    def allows_call(self) -> bool:
        """`before_call` as a question: True lets the call through (and counts it)."""
        try:
            self.before_call()
        except CircuitOpenError:
            return False
        return True

    def record_success(self) -> None:
        """A call got an answer from a healthy upstream: close the circuit."""
        self._failures = 0
        self._become(CircuitState.CLOSED)
        self._probe_over()

    def record_failure(self) -> None:
        """A call failed because the upstream is unwell: count it, open at the threshold."""
        if self._threshold == 0:
            return
        self._failures += 1
        if self._state is CircuitState.HALF_OPEN or self._failures >= self._threshold:
            self._become(CircuitState.OPEN)
            self._opened_at = self._clock()
            self._probe_over()

    def record_abandoned(self) -> None:
        """A call let through was cancelled before it ended: free the probe slot, count nothing."""
        self._probe_over()

    def record_neutral(self) -> None:
        """A call ended in a way that says nothing about upstream health (a 4xx, a 429)."""
        if self._state is CircuitState.HALF_OPEN:
            # The probe got an answer, so the upstream is reachable again.
            self.record_success()
