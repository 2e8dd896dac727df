"""Operating the gateway: health, readiness, metrics, JSON logs, tracing, shutdown, workers."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.types import ASGIApp

from gateway.background import BackgroundServer
from gateway.health import shutdown_watch
from gateway.logs import JsonFormatter, utc_timestamp
from gateway.sample_upstream import Grant, SampleUpstream

from .conftest import (
    DEMO_AUTH,
    asgi_client,
    graphql,
    in_process_gateway,
    network_gateway,
    run_serve,
    serving,
    wait_until_up,
)
from .redis_process import RedisProcess, free_port

pytestmark = pytest.mark.anyio

QUERY = "query FirstJobs { jobs(first: 3) { nodes { jobId } } }"


def sample_value(app: Any, name: str, **labels: str) -> float:
    value = app.state.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else float(value)


async def test_liveness_needs_no_token_and_no_upstream() -> None:
    """GET /healthz: 200 and a small JSON body, with no upstream call."""
    sample = SampleUpstream()
    async with asgi_client(in_process_gateway(sample.app())) as client:
        response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert len(sample.seen) == 0


async def test_readiness_reports_the_cache_but_stays_ready_without_it(
    redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis outage leaves the instance ready (requests are still served, from the upstream):
    /readyz names the cache unavailable, /metrics shows gateway_cache_backend_up 0, the log
    says so; once Redis is back all three say so too."""
    caplog.set_level(logging.INFO)
    server = RedisProcess().start()
    app = in_process_gateway(
        SampleUpstream().app(), cache_ttl=5, cache_url=server.url, cache_key_secret="k"
    )
    up = {"backend": "redis"}
    try:
        async with asgi_client(app) as client:
            ready = await client.get("/readyz")
            server.stop()
            gone = await client.get("/readyz")
            served = await graphql(client, QUERY)
            down_gauge = sample_value(app, "gateway_cache_backend_up", **up)
            server.start()
            back = await client.get("/readyz")  # its ping finds Redis back at once
            await graphql(client, QUERY)
            up_gauge = sample_value(app, "gateway_cache_backend_up", **up)
    finally:
        server.stop()
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ready", "checks": {"upstream_circuit": "closed", "cache": "ok"}},
    )
    assert (gone.status_code, gone.json()["checks"]["cache"]) == (200, "unavailable")
    assert len(served["data"]["jobs"]["nodes"]) == 3
    assert (down_gauge, up_gauge) == (0.0, 1.0)
    assert back.json()["checks"]["cache"] == "ok"
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith("Cache backend failed") for message in messages)
    assert "Cache backend answers again; caching resumed" in messages


async def test_readiness_reports_the_upstream_circuit_but_stays_ready() -> None:
    """An open circuit is reported (callers get UPSTREAM_UNAVAILABLE at once with retryAfter),
    not a reason to take the instance out of service."""
    transport = httpx.MockTransport(lambda request: httpx.Response(503))
    app = in_process_gateway(
        transport, breaker_failures=2, breaker_cooldown=0.3, upstream_retries=0
    )
    async with asgi_client(app) as client:
        assert (await client.get("/readyz")).status_code == 200
        for _ in range(2):
            await graphql(client, QUERY)
        opened = await client.get("/readyz")
        await asyncio.sleep(0.35)
        probing = await client.get("/readyz")
    assert (opened.status_code, opened.json()["checks"]["upstream_circuit"]) == (200, "open")
    assert (probing.status_code, probing.json()["checks"]["upstream_circuit"]) == (200, "half_open")


async def test_readiness_fails_while_starting_and_while_draining() -> None:
    """Before the lifespan has started: 503 starting. Once draining: 503 draining."""
    app = in_process_gateway(SampleUpstream().app())
    transport = httpx.ASGITransport(app=app)  # no lifespan: the app has not started
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        starting = await client.get("/readyz")
    async with asgi_client(app) as client:
        ready = await client.get("/readyz")
        app.state.lifecycle.draining()
        draining = await client.get("/readyz")
    assert (starting.status_code, starting.json()) == (503, {"status": "starting"})
    assert ready.status_code == 200
    assert (draining.status_code, draining.json()) == (503, {"status": "draining"})


def test_a_shutdown_signal_marks_draining_then_reaches_the_server() -> None:
    """The watch calls its hook, then the handler that was there (uvicorn's), and puts that
    handler back when it ends."""
    calls: list[str] = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: calls.append("server"))
    try:
        with shutdown_watch(lambda: calls.append("draining"), (signal.SIGUSR1,)):
            signal.raise_signal(signal.SIGUSR1)
        signal.raise_signal(signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert calls == ["draining", "server", "server"]


async def test_metrics_count_requests_upstream_calls_and_the_cache() -> None:
    """After known traffic, /metrics shows exactly it, in the Prometheus text format."""
    sample = SampleUpstream()
    app = in_process_gateway(sample.app(), cache_ttl=5)
    async with asgi_client(app) as client:
        for _ in range(3):
            await graphql(client, QUERY)
        await graphql(client, "query Other { jobs(first: 5) { nodes { team } } }")
        await graphql(client, "{ jobs { nodes { nope } } }")
        await graphql(client, QUERY, headers={"authorization": "Bearer unknown"})
        exposition = await client.get("/metrics")
    assert exposition.headers["content-type"].startswith("text/plain")
    text = exposition.text
    assert 'gateway_graphql_requests_total{operation="FirstJobs",outcome="ok"} 3.0' in text
    assert (
        'gateway_graphql_requests_total{operation="anonymous",outcome="request_error"} 1.0' in text
    )
    assert 'gateway_graphql_requests_total{operation="FirstJobs",outcome="field_error"} 1.0' in text
    assert (
        sample_value(
            app, "gateway_upstream_requests_total", endpoint="jobs_list", status_class="2xx"
        )
        == 1
    )
    assert (
        sample_value(
            app, "gateway_upstream_requests_total", endpoint="jobs_list", status_class="4xx"
        )
        == 1
    )
    # The repeats are whole-response hits; `Other` reads the cached page; `unknown` misses.
    assert (
        sample_value(app, "gateway_cache_operations_total", backend="response", result="hit") == 2
    )
    assert sample_value(app, "gateway_cache_operations_total", backend="memory", result="hit") == 1
    assert sample_value(app, "gateway_cache_operations_total", backend="memory", result="miss") == 2
    assert (
        sample_value(app, "gateway_graphql_request_duration_seconds_count", operation="FirstJobs")
        == 4
    )
    assert sample_value(app, "gateway_upstream_circuit_state") == 0


async def test_metrics_count_retries_dedupe_joins_and_the_breaker() -> None:
    """Retries by reason, calls saved by deduplication, and the breaker's state."""
    answers = iter([httpx.Response(503), httpx.Response(200, json=[])])
    app = in_process_gateway(
        httpx.MockTransport(lambda request: next(answers)), upstream_retry_backoff=0.01
    )
    async with asgi_client(app) as client:
        await graphql(client, QUERY)
    assert sample_value(app, "gateway_upstream_retries_total", reason="UPSTREAM_UNAVAILABLE") == 1

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.1)
        return httpx.Response(200, json=[])

    app = in_process_gateway(httpx.MockTransport(slow), cache_ttl=5)
    async with asgi_client(app) as client:
        await asyncio.gather(*(graphql(client, QUERY) for _ in range(5)))
    assert sample_value(app, "gateway_cache_dedupe_joins_total") == 4

    app = in_process_gateway(
        httpx.MockTransport(lambda request: httpx.Response(500)),
        breaker_failures=1,
        upstream_retries=0,
    )
    async with asgi_client(app) as client:
        await graphql(client, QUERY)
        await client.get("/metrics")
    assert sample_value(app, "gateway_upstream_circuit_state") == 2


async def test_operation_names_are_bounded() -> None:
    """Past 100 distinct names, and for malformed ones, operations are counted as `other`."""
    app = in_process_gateway(SampleUpstream().app())
    async with asgi_client(app) as client:
        for number in range(105):
            await client.post(
                "/graphql",
                json={"query": f"query Q{number} {{ __typename }}", "operationName": f"Q{number}"},
            )
    assert sample_value(app, "gateway_graphql_requests_total", operation="Q99", outcome="ok") == 1
    assert sample_value(app, "gateway_graphql_requests_total", operation="other", outcome="ok") == 5


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Everything logged at DEBUG, as the gateway's JSON lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)


async def test_one_json_line_per_request_with_its_request_id(json_logs: io.StringIO) -> None:
    """Each GraphQL request logs one JSON summary; its X-Request-ID is echoed and sent upstream."""
    sample = SampleUpstream()
    async with asgi_client(in_process_gateway(sample.app())) as client:
        given = await client.post(
            "/graphql", json={"query": QUERY}, headers={**DEMO_AUTH, "x-request-id": "req-123.abc"}
        )
        made = await client.post(
            "/graphql", json={"query": "{ jobs { nodes { nope } } }"}, headers=DEMO_AUTH
        )
        hostile = await client.post(
            "/graphql", json={"query": QUERY}, headers={**DEMO_AUTH, "x-request-id": "x" * 65}
        )
    assert given.headers["x-request-id"] == "req-123.abc"
    assert len(made.headers["x-request-id"]) == 32
    assert hostile.headers["x-request-id"] != "x" * 65
    assert sample.seen[0].header("x-request-id") == "req-123.abc"
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    summaries = [line for line in lines if line.get("event") == "graphql_request"]
    assert len(summaries) == 3
    first = summaries[0]
    assert {
        key: first[key]
        for key in (
            "request_id",
            "operation",
            "outcome",
            "status",
            "upstream_calls",
            "cache_hits",
            "error_codes",
        )
    } == {
        "request_id": "req-123.abc",
        "operation": "FirstJobs",
        "outcome": "ok",
        "status": 200,
        "upstream_calls": 1,
        "cache_hits": 0,
        "error_codes": [],
    }
    assert first["duration_ms"] > 0
    assert summaries[1]["error_codes"] == ["GRAPHQL_VALIDATION_FAILED"]


async def test_no_token_authorization_or_cookie_in_any_log_line(json_logs: io.StringIO) -> None:
    """At DEBUG, across successes, failures and a bug, no line holds the credentials."""
    secret, cookie = "tok-9f8e7d6c5b4a", "session=cookie-value-42"
    headers = {"authorization": f"Bearer {secret}", "cookie": cookie}
    transports: list[ASGIApp | httpx.AsyncBaseTransport] = [
        SampleUpstream(grants={secret: Grant("apiteam")}).app(),
        httpx.MockTransport(lambda request: httpx.Response(401, text=f"bad token {secret}")),
        httpx.MockTransport(
            lambda request: (_ for _ in ()).throw(RuntimeError(f"bug with {secret}"))
        ),
    ]
    for upstream in transports:
        async with asgi_client(in_process_gateway(upstream)) as client:
            await client.post("/graphql", json={"query": QUERY}, headers=headers)
    output = json_logs.getvalue()
    assert "graphql_request" in output
    assert "RuntimeError" in output
    for forbidden in (secret, "cookie-value-42", "Bearer tok"):
        assert forbidden not in output


def test_upstream_calls_are_child_spans_of_the_graphql_operation(
    sample_server: BackgroundServer,
) -> None:
    """With GATEWAY_TRACING=true the upstream call is a client span inside the operation's trace."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with BackgroundServer(network_gateway(sample_server.url, tracing="true")) as gateway:
        response = httpx.post(f"{gateway.url}/graphql", json={"query": QUERY}, headers=DEMO_AUTH)
    assert len(response.json()["data"]["jobs"]["nodes"]) == 3
    spans = {span.name: span for span in exporter.get_finished_spans()}
    operation = next(span for name, span in spans.items() if name.startswith("GraphQL Query"))
    upstream = next(span for span in spans.values() if span.kind == trace.SpanKind.CLIENT)
    assert upstream.context.trace_id == operation.context.trace_id
    ancestors, parent = set(), upstream.parent
    by_id = {span.context.span_id: span for span in spans.values()}
    while parent is not None and parent.span_id in by_id:
        ancestors.add(parent.span_id)
        parent = by_id[parent.span_id].parent
    assert operation.context.span_id in ancestors


@pytest.mark.e2e
def test_sigterm_lets_a_slow_request_finish() -> None:
    """SIGTERM during a 1.5 s request: the request completes with its data, then the process
    ends having run its lifespan shutdown (client and cache closed), and stops listening."""
    slow = SampleUpstream(latency=1.5)
    answer: dict[str, Any] = {}
    with (
        BackgroundServer(slow.app()) as upstream,
        serving(upstream.url, GATEWAY_SHUTDOWN_GRACE="10") as (process, url),
    ):

        def call() -> None:
            answer["response"] = httpx.post(
                f"{url}/graphql", json={"query": QUERY}, headers=DEMO_AUTH, timeout=10
            )

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        caller.join(10)
        # uvicorn re-raises the SIGTERM once shut down, so the exit says what stopped it.
        assert process.wait(10) in (0, -signal.SIGTERM)
    output = process.stdout.read() if process.stdout else ""
    assert len(answer["response"].json()["data"]["jobs"]["nodes"]) == 3
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz")
    assert "Application shutdown complete" in output
    assert "Draining: readiness now fails" in output


@pytest.mark.e2e
def test_several_workers_share_redis_and_one_metrics_view(
    redis: RedisProcess, sample_server: BackgroundServer, seen: SampleUpstream
) -> None:
    """`serve --workers 2`: both workers answer, the Redis cache is shared (one upstream call
    for 12 identical queries), and /metrics sums the counters of both workers."""
    port = free_port()
    process = run_serve(
        {
            "GATEWAY_UPSTREAM_URL": sample_server.url,
            "GATEWAY_CACHE_URL": redis.url,
            "GATEWAY_CACHE_KEY_SECRET": "workers-test",
            "GATEWAY_CACHE_TTL": "30",
        },
        "--port",
        str(port),
        "--workers",
        "2",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url)
        for _ in range(12):
            with httpx.Client() as client:  # a new connection each time, to reach both workers
                assert (
                    client.post(
                        f"{url}/graphql", json={"query": QUERY}, headers=DEMO_AUTH
                    ).status_code
                    == 200
                )
        text = httpx.get(f"{url}/metrics").text
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)
    assert len(seen.seen) == 1
    assert 'gateway_graphql_requests_total{operation="FirstJobs",outcome="ok"} 12.0' in text


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@given(created=st.floats(min_value=0, max_value=4e9) | st.integers(0, 4 * 10**9).map(float))
async def test_log_times_are_datetimes_iso_form_with_milliseconds(created: float) -> None:
    """The per-second cached log timestamp is exactly what datetime writes, rounding included."""
    expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    assert utc_timestamp(created) == expected
