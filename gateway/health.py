"""Readiness, and the health of what the gateway depends on, reported where operators look.

Readiness (`GET /readyz`) answers one question: should the load balancer send this process
requests? Only two states say no: **starting** (the lifespan has not opened the upstream
transport and caches yet) and **draining** (a SIGTERM or SIGINT arrived; requests in flight are
finishing). A failing Redis or an open upstream circuit does not: every request is still
answered (from the upstream without a cache; at once, coded, while the circuit is open), and
taking every replica out of service together would turn one dependency's outage into a total
one. Their health goes into the body of `/readyz` (`checks`), into `/metrics`
(`gateway_cache_backend_up`, `gateway_upstream_circuit_state`) and into the logs, on each change.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from gateway.metrics import Metrics
from gateway.upstream import CircuitState, UpstreamClient

logger = logging.getLogger(__name__)

SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Phase(enum.Enum):
    """Where the process is in its life."""

    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"


class Lifecycle:
    """The process's phase: starting until the lifespan has started, draining once asked to
    stop."""

    def __init__(self) -> None:
        self.phase = Phase.STARTING

    def started(self) -> None:
        """The lifespan opened every resource: requests may come."""
        if self.phase is Phase.STARTING:
            self.phase = Phase.READY

    def draining(self) -> None:
        """The process was asked to stop: finish what is in flight, take nothing new."""
        if self.phase is not Phase.DRAINING:
            logger.info("Draining: readiness now fails while requests in flight finish")
        self.phase = Phase.DRAINING


@contextlib.contextmanager
def shutdown_watch(
    on_signal: Callable[[], None], signals: tuple[signal.Signals, ...] = SHUTDOWN_SIGNALS
) -> Iterator[None]:
    """Within this block, call `on_signal` when one of `signals` arrives, then whatever handled
    it before (uvicorn installs its handlers before the app's lifespan starts); the previous
    handlers are back afterwards. Only the main thread can install handlers; elsewhere (a
    server on a test thread) this does nothing."""
    installed: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for number in signals:
            previous = signal.getsignal(number)
            if not callable(previous):
                continue  # not a server's handler: leave the default behaviour alone

            def chained(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
                on_signal()
                previous(signum, frame)

            signal.signal(number, chained)
            installed[number] = (previous, chained)
    try:
        yield
    finally:
        for number, (previous, chained) in installed.items():
            if signal.getsignal(number) is chained:
                signal.signal(number, previous)


def circuit_reporter(metrics: Metrics) -> Callable[[CircuitState], None]:
    """What the upstream breaker calls on each change: the gauge, and a log line."""

    def report(state: CircuitState) -> None:
        metrics.set_circuit_state(state.value)
        if state is CircuitState.OPEN:
            logger.warning("The upstream circuit opened: calls fail fast until a probe succeeds")
        elif state is CircuitState.CLOSED:
            logger.info("The upstream circuit closed: the upstream answers again")

    return report


async def readiness(lifecycle: Lifecycle, upstream: UpstreamClient | None) -> tuple[int, Any]:
    """The status code and body of `/readyz`."""
    if upstream is None or lifecycle.phase is not Phase.READY:
        phase = Phase.STARTING if upstream is None else lifecycle.phase
        return 503, {"status": phase.value}
    checks = {"upstream_circuit": upstream.breaker.state.value, "cache": "off"}
    answers = await upstream.cache.ping()
    if answers is not None:
        checks["cache"] = "ok" if answers else "unavailable"
    return 200, {"status": "ready", "checks": checks}
