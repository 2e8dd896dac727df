"""Prometheus metrics: what the gateway does and how the upstream and the caches behave.

Each app owns a `Metrics` on its own `CollectorRegistry`, so apps in one process (tests) do
not collide. With several workers (`serve --workers N`), prometheus-client's multiprocess mode
aggregates them: `PROMETHEUS_MULTIPROC_DIR` must name an empty directory before the workers
start (the CLI sets one up), and `/metrics` then reports the sum over all workers.

Label values are bounded: operation names are kept for the first `MAX_OPERATION_NAMES`
distinct well-formed names of a process and folded into `other` after that (`anonymous` for
unnamed operations), so a client sending random names cannot blow up the series count.
"""

from __future__ import annotations

import os
import re
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MAX_OPERATION_NAMES: Final = 100
_OPERATION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CIRCUIT_STATES: Final = {"closed": 0, "half_open": 1, "open": 2}


def multiprocess_dir() -> str | None:
    """The multiprocess directory prometheus-client uses in this process, if any."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """The gateway's collectors, registered in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._operations: set[str] = set()
        self._request_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._cache_children: dict[tuple[str, str], Any] = {}
        registry = self.registry
        self.graphql_requests = Counter(
            "gateway_graphql_requests",
            "GraphQL requests by operation name and outcome "
            "(ok, field_error, request_error, rejected, client_disconnect, internal_error).",
            ["operation", "outcome"],
            registry=registry,
        )
        self.graphql_duration = Histogram(
            "gateway_graphql_request_duration_seconds",
            "Time to answer a GraphQL request, by operation name.",
            ["operation"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._add_upstream_collectors(registry)
        self._add_cache_collectors(registry)
        self._add_live_collectors(registry)

    def _add_upstream_collectors(self, registry: CollectorRegistry) -> None:
        self.upstream_requests = Counter(
            "gateway_upstream_requests",
            "Upstream attempts by endpoint and status class (2xx, 4xx, 5xx, timeout, network).",
            ["endpoint", "status_class"],
            registry=registry,
        )
        self.upstream_duration = Histogram(
            "gateway_upstream_request_duration_seconds",
            "Time of one upstream attempt, by endpoint.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.upstream_bad_responses = Counter(
            "gateway_upstream_bad_responses",
            "Upstream answers that were not what the endpoint documents, by endpoint and reason "
            "(encoding, too_large, cut_short, not_json, wrong_shape, status).",
            ["endpoint", "reason"],
            registry=registry,
        )
        self.upstream_retries = Counter(
            "gateway_upstream_retries",
            "Upstream attempts retried, by the code of the failure that caused the retry.",
            ["reason"],
            registry=registry,
        )
        self.circuit_state = Gauge(
            "gateway_upstream_circuit_state",
            "The upstream circuit breaker: 0 closed, 1 half-open, 2 open (max over workers).",
            registry=registry,
            multiprocess_mode="max",
        )

    def _add_cache_collectors(self, registry: CollectorRegistry) -> None:
        self.cache_up = Gauge(
            "gateway_cache_backend_up",
            "1 while the cache backend answers, 0 while it fails (min over workers).",
            ["backend"],
            registry=registry,
            multiprocess_mode="min",
        )
        self.cache_operations = Counter(
            "gateway_cache_operations",
            "Page-cache lookups and stores by backend and result "
            "(hit, miss, store, error, not_stored, invalidation).",
            ["backend", "result"],
            registry=registry,
        )
        self.dedupe_joins = Counter(
            "gateway_cache_dedupe_joins",
            "Upstream calls saved because an identical call was already in flight.",
            registry=registry,
        )
        self.filter_rows_scanned = Counter(
            "gateway_filter_rows_scanned",
            "Rows of the underlying lists that filtered pages scanned.",
            registry=registry,
        )
        self.filter_matches = Counter(
            "gateway_filter_matches",
            "Jobs that filtered pages returned.",
            registry=registry,
        )
        self.prefetches = Counter(
            "gateway_cache_prefetches",
            "Next-block prefetches by result (fetched, hit: already kept, failed, busy: skipped "
            "because the process ran as many as it may).",
            ["result"],
            registry=registry,
        )
        self.persisted_queries = Counter(
            "gateway_persisted_queries",
            "Automatic persisted query lookups by result (hit, miss, registered).",
            ["result"],
            registry=registry,
        )

    def _add_live_collectors(self, registry: CollectorRegistry) -> None:
        self.live_subscriptions = Gauge(
            "gateway_live_subscriptions",
            "`jobChanged` subscriptions open now (summed over workers).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.live_pollers = Gauge(
            "gateway_live_pollers",
            "`jobChanged` pollers running now, one per token and `first` (summed over workers).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.live_polls = Counter(
            "gateway_live_polls",
            "Polls of `jobChanged` pollers by outcome (ok, error, refused: 401 or 403).",
            ["outcome"],
            registry=registry,
        )
        self.live_events = Counter(
            "gateway_live_events",
            "`jobChanged` events sent to subscribers, by kind (ADDED, UPDATED, REMOVED, ERROR).",
            ["kind"],
            registry=registry,
        )

    def count_live_poll(self, outcome: str) -> None:
        """Count one poll of a `jobChanged` poller."""
        self.live_polls.labels(outcome).inc()

    def count_live_events(self, kind: str, subscribers: int) -> None:
        """Count one change (or outage) sent to `subscribers` subscribers."""
        if subscribers:
            self.live_events.labels(kind).inc(subscribers)

    def count_request(self, operation: str, outcome: str, seconds: float) -> None:
        """Count one GraphQL request and its duration (children cached: this runs per request)."""
        children = self._request_children.get((operation, outcome))
        if children is None:
            children = (
                self.graphql_requests.labels(operation, outcome),
                self.graphql_duration.labels(operation),
            )
            self._request_children[(operation, outcome)] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_filtering(self, rows_scanned: int, matches: int) -> None:
        """Count what filtered pages scanned and returned (nothing for unfiltered requests)."""
        if rows_scanned:
            self.filter_rows_scanned.inc(rows_scanned)
            self.filter_matches.inc(matches)

    def count_prefetch(self, result: str) -> None:
        """Count one next-block prefetch's result."""
        self.prefetches.labels(result).inc()

    def count_cache(self, backend: str, result: str) -> None:
        """Count one cache operation (children cached, like `count_request`)."""
        child = self._cache_children.get((backend, result))
        if child is None:
            child = self._cache_children[(backend, result)] = self.cache_operations.labels(
                backend, result
            )
        child.inc()

    def operation_label(self, name: str | None) -> str:
        """A bounded label for an operation name (see the module doc)."""
        if not name:
            return "anonymous"
        if name in self._operations:
            return name
        if _OPERATION_NAME.fullmatch(name) is None or len(self._operations) >= MAX_OPERATION_NAMES:
            return "other"
        self._operations.add(name)
        return name

    def set_circuit_state(self, state: str) -> None:
        """Record the breaker's state (`closed`, `half_open`, `open`)."""
        self.circuit_state.set(CIRCUIT_STATES[state])

    def set_cache_up(self, backend: str, *, up: bool) -> None:
        """Record whether the cache backend (`memory`, `redis`) answers."""
        self.cache_up.labels(backend).set(1 if up else 0)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric (summed over workers in multiprocess mode)."""
        directory = multiprocess_dir()
        if directory is None:
            return generate_latest(self.registry)
        aggregated = CollectorRegistry()
        MultiProcessCollector(aggregated, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(aggregated)
