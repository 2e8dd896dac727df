"""The page cache: isolation per credential, TTL, no errors cached, dedupe, Redis shared and
failing, aligned blocks. Redis is a real redis-server; the upstream answers per token."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.background import BackgroundServer
from gateway.cache import GuardedBackend, backend_for
from gateway.memory_store import MemoryStore
from gateway.metrics import Metrics
from gateway.pagination import encode_cursor
from gateway.sample_upstream import SampleUpstream

from .conftest import (
    PerTokenUpstream,
    asgi_client,
    bearer,
    graphql,
    in_process_gateway,
    network_gateway,
    page,
)
from .faulty_upstream import Fault, FaultyUpstream
from .redis_process import RedisProcess, free_port

pytestmark = pytest.mark.anyio

SECRET = "test-cache-key-secret"
PAGE = "{ jobs(first: 5) { nodes { jobId team } } }"


PAGE_INFO = "pageInfo { hasNextPage endCursor }"


def cached_app(upstream: PerTokenUpstream, **settings: object) -> Any:
    return in_process_gateway(upstream.transport(), **{"cache_ttl": 5, **settings})


def teams_of(body: dict[str, Any]) -> set[str]:
    return {node["team"] for node in body["data"]["jobs"]["nodes"]}


async def test_pages_are_cached_per_credential() -> None:
    """A repeat with the same token is served from cache; another token never is."""
    upstream = PerTokenUpstream()
    async with asgi_client(cached_app(upstream)) as client:
        first = await graphql(client, PAGE, headers=bearer("alice"))
        again = await graphql(client, PAGE, headers=bearer("alice"))
        other = await graphql(client, PAGE, headers=bearer("bob"))
    assert first == again
    assert teams_of(other) == {"bob"}
    assert upstream.calls == Counter(
        {("alice", "skip=0&limit=100"): 1, ("bob", "skip=0&limit=100"): 1}
    )


async def test_the_whole_header_is_the_credential() -> None:
    """`Bearer x` and `bearer x` are different headers, so they never share an entry."""
    upstream = PerTokenUpstream()
    async with asgi_client(cached_app(upstream)) as client:
        await graphql(client, PAGE, headers={"authorization": "Bearer same"})
        await graphql(client, PAGE, headers={"authorization": "bearer same"})
    assert upstream.total == 2


async def test_entries_expire_after_the_ttl() -> None:
    """GATEWAY_CACHE_TTL=1: a hit before, a new upstream call after (1 s, not less: a fresh
    app's first two requests once took over 0.3 s on a loaded CI machine)."""
    upstream = PerTokenUpstream()
    async with asgi_client(cached_app(upstream, cache_ttl=1)) as client:
        await graphql(client, PAGE, headers=bearer("alice"))
        await graphql(client, page(4), headers=bearer("alice"))
        assert upstream.total == 1
        await asyncio.sleep(1.1)
        await graphql(client, PAGE, headers=bearer("alice"))
    assert upstream.total == 2


async def test_errors_are_never_cached() -> None:
    """A failed page is fetched again next time, and then cached once it succeeds."""
    upstream = PerTokenUpstream()
    upstream.failing = True
    async with asgi_client(cached_app(upstream, upstream_retries=0)) as client:
        failed = await graphql(client, PAGE, headers=bearer("alice"))
        assert failed["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
        upstream.failing = False
        await graphql(client, PAGE, headers=bearer("alice"))
        await graphql(client, PAGE, headers=bearer("alice"))
    assert upstream.total == 2


@pytest.mark.parametrize(
    ("cache_control", "redis_backed", "calls"),
    [
        ("no-store", False, 2),
        ("no-cache", False, 2),
        ("max-age=0", False, 2),
        ("private, max-age=60", False, 1),
        ("private", True, 2),
        ("public, max-age=60", True, 1),
    ],
)
async def test_upstream_cache_control_is_respected(
    cache_control: str, redis_backed: bool, calls: int, redis_server: RedisProcess
) -> None:
    """no-store/no-cache/max-age=0 are never stored; private only in a per-process cache."""
    upstream = PerTokenUpstream(cache_control=cache_control)
    settings: dict[str, object] = {}
    if redis_backed:
        redis_server.command("FLUSHALL")
        settings = {"cache_url": redis_server.url, "cache_key_secret": SECRET}
    async with asgi_client(cached_app(upstream, **settings)) as client:
        for _ in range(2):
            await graphql(client, PAGE, headers=bearer("alice"))
    assert upstream.total == calls


async def test_concurrent_identical_queries_share_one_upstream_call() -> None:
    """50 identical queries at once cost 1 upstream call; everyone gets the page."""
    upstream = PerTokenUpstream(delay=0.2)
    async with asgi_client(cached_app(upstream)) as client:
        bodies = await asyncio.gather(
            *(graphql(client, PAGE, headers=bearer("alice")) for _ in range(50))
        )
    assert upstream.total == 1
    assert all(body == bodies[0] for body in bodies)
    assert len(bodies[0]["data"]["jobs"]["nodes"]) == 5


async def test_a_shared_failure_reaches_every_waiter_and_is_not_cached() -> None:
    """10 waiters on one failing call all get its error; the next query calls again."""
    upstream = PerTokenUpstream(delay=0.2)
    upstream.failing = True
    async with asgi_client(cached_app(upstream, upstream_retries=0)) as client:
        bodies = await asyncio.gather(
            *(graphql(client, PAGE, headers=bearer("alice")) for _ in range(10))
        )
        assert upstream.total == 1
        assert {body["errors"][0]["extensions"]["code"] for body in bodies} == {
            "UPSTREAM_UNAVAILABLE"
        }
        upstream.failing = False
        await graphql(client, PAGE, headers=bearer("alice"))
    assert upstream.total == 2


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_no_cross_token_leak_under_concurrency(
    backend: str, redis_server: RedisProcess
) -> None:
    """300 concurrent queries, 30 random tokens, random pages: every row a caller gets was
    fetched with its own token, from memory, Redis, a shared in-flight call or the upstream."""
    rng = random.Random(4486)
    tokens = [f"tok-{rng.getrandbits(64):x}" for _ in range(30)]
    upstream = PerTokenUpstream(delay=0.02)
    settings: dict[str, object] = {}
    if backend == "redis":
        redis_server.command("FLUSHALL")
        settings = {"cache_url": redis_server.url, "cache_key_secret": SECRET}

    async def one(client: httpx.AsyncClient, token: str) -> None:
        first = rng.choice([5, 20, 50])
        after = rng.choice([None, 0, 19, 99, 140])
        arguments = f"first: {first}" + (
            f', after: "{encode_cursor(after)}"' if after is not None else ""
        )
        body = await graphql(
            client, f"{{ jobs({arguments}) {{ nodes {{ jobId team }} }} }}", headers=bearer(token)
        )
        nodes = body["data"]["jobs"]["nodes"]
        assert nodes, body
        assert {node["team"] for node in nodes} == {token}
        assert all(node["jobId"].startswith(f"{token}:") for node in nodes)

    async with asgi_client(cached_app(upstream, **settings)) as client:
        await asyncio.gather(*(one(client, rng.choice(tokens)) for _ in range(300)))
    assert upstream.total < 300  # the cache and the dedupe did serve some of them


async def test_redis_keys_hold_no_token(redis: RedisProcess) -> None:
    """Keys carry a keyed digest of the credential, never the token itself."""
    upstream = PerTokenUpstream()
    async with asgi_client(
        cached_app(upstream, cache_url=redis.url, cache_key_secret=SECRET)
    ) as client:
        await graphql(client, PAGE, headers=bearer("very-secret-token-123"))
    keys = redis.command("KEYS", "*")
    assert b"jobs-gateway:v2:page:" in keys
    assert b"very-secret-token-123" not in keys
    for unkeyed in (hashlib.sha256, hashlib.blake2b):
        digest = unkeyed(b"Bearer very-secret-token-123").hexdigest().encode()
        assert digest[:64] not in keys  # keyed: a plain hash of a guessed token matches nothing


async def test_walking_forward_reuses_aligned_blocks() -> None:
    """first: 20 page after page over 237 jobs costs one call per 100-row block: 3, not 12."""
    sample = SampleUpstream()
    async with asgi_client(in_process_gateway(sample.app(), cache_ttl=30)) as client:
        sample.seen.clear()
        after, collected = None, []
        while True:
            arguments = "first: 20" + (f', after: "{after}"' if after else "")
            connection = (
                await graphql(
                    client,
                    f"{{ jobs({arguments}) {{ nodes {{ jobId }} {PAGE_INFO} }} }}",
                )
            )["data"]["jobs"]
            collected += [node["jobId"] for node in connection["nodes"]]
            if not connection["pageInfo"]["hasNextPage"]:
                break
            after = connection["pageInfo"]["endCursor"]
    assert collected == [job["jobId"] for job in sample.jobs_of("apiteam")]
    assert [request.query for request in sample.seen] == [
        "skip=0&limit=100",
        "skip=100&limit=100",
        "skip=200&limit=100",
    ]


async def test_a_redis_that_is_down_costs_nothing_but_the_cache(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing listens on the Redis port: every query is served from the upstream, and one
    warning (not one per query) says so."""
    caplog.set_level(logging.WARNING)
    upstream = PerTokenUpstream()
    dead = f"redis://127.0.0.1:{free_port()}/0"
    async with asgi_client(cached_app(upstream, cache_url=dead, cache_key_secret=SECRET)) as client:
        for size in range(1, 6):
            body = await graphql(client, page(size), headers=bearer("alice"))
            assert teams_of(body) == {"alice"}
    assert upstream.total == 5
    warnings = [record for record in caplog.records if record.name == "gateway.cache"]
    assert len(warnings) == 1
    assert "serving from the upstream" in warnings[0].getMessage()


async def test_a_redis_that_hangs_is_cut_off_by_its_timeout() -> None:
    """A Redis that accepts and never answers adds at most GATEWAY_CACHE_TIMEOUT per call."""
    upstream = PerTokenUpstream()
    with FaultyUpstream([Fault(delay=60)]) as silent:
        url = silent.url.replace("http://", "redis://") + "/0"
        app = cached_app(upstream, cache_url=url, cache_key_secret=SECRET, cache_timeout=0.1)
        async with asgi_client(app) as client:
            started = time.monotonic()
            body = await graphql(client, PAGE, headers=bearer("alice"))
            elapsed = time.monotonic() - started
    assert teams_of(body) == {"alice"}
    assert elapsed < 1.0


async def test_caching_resumes_when_redis_comes_back(caplog: pytest.LogCaptureFixture) -> None:
    """Redis killed mid-run: queries keep working from the upstream; restarted on the same
    port, it caches again by itself."""
    caplog.set_level(logging.WARNING)
    server = RedisProcess().start()
    upstream = PerTokenUpstream()
    try:
        app = cached_app(upstream, cache_url=server.url, cache_key_secret=SECRET)
        async with asgi_client(app) as client:
            await graphql(client, page(1), headers=bearer("alice"))
            await graphql(client, page(2), headers=bearer("alice"))
            assert upstream.total == 1
            server.stop()
            for size in (3, 4, 5):
                body = await graphql(client, page(size), headers=bearer("alice"))
                assert teams_of(body) == {"alice"}
            assert upstream.total == 4
            server.start()
            await asyncio.sleep(2.1)  # the cache leaves a failed backend alone for 2 s
            await graphql(client, page(6), headers=bearer("alice"))
            await graphql(client, page(7), headers=bearer("alice"))
            assert upstream.total == 5
    finally:
        server.stop()
    assert any("Cache backend failed" in record.getMessage() for record in caplog.records)


@pytest.fixture
def two_gateways(redis: RedisProcess, sample_server: BackgroundServer) -> Iterator[tuple[str, str]]:
    """Two `python -m gateway serve` processes sharing one Redis, over the sample upstream."""
    ports = [free_port(), free_port()]
    environ = {
        **{key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")},
        "GATEWAY_UPSTREAM_URL": sample_server.url,
        "GATEWAY_CACHE_URL": redis.url,
        "GATEWAY_CACHE_KEY_SECRET": SECRET,
        "GATEWAY_CACHE_TTL": "30",
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--port", str(port)],
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        urls = [f"http://127.0.0.1:{port}/graphql" for port in ports]
        for url in urls:
            for _ in range(200):
                try:
                    httpx.get(url, params={"query": "{__typename}"})
                    break
                except httpx.ConnectError:
                    time.sleep(0.05)
        yield urls[0], urls[1]
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


def test_a_second_process_answers_from_the_shared_redis(
    two_gateways: tuple[str, str], seen: SampleUpstream
) -> None:
    """A page fetched through gateway 1 is served by gateway 2 without an upstream call."""
    first, second = two_gateways
    query = {"query": "{ jobs(first: 3) { nodes { jobId } } }"}
    one = httpx.post(first, json=query, headers=bearer("demo-token")).json()
    assert len(seen.seen) == 1
    two = httpx.post(second, json=query, headers=bearer("demo-token")).json()
    assert two == one
    assert len(seen.seen) == 1
    other = httpx.post(second, json=query, headers=bearer("demo-token-fieldteam")).json()
    assert other != one
    assert len(seen.seen) == 2


async def test_network_gateway_with_memory_cache_over_tcp(
    sample_server: BackgroundServer, seen: SampleUpstream
) -> None:
    """The default cache over real TCP: the second identical query makes no upstream call."""
    async with asgi_client(network_gateway(sample_server.url, cache_ttl=5)) as client:
        await graphql(client, PAGE)
        await graphql(client, PAGE)
    assert len(seen.seen) == 1


async def test_a_burst_of_redis_calls_does_not_look_like_an_outage(redis: RedisProcess) -> None:
    """500 Redis reads at once, five times redis-py 8's default pool: none fails, so a burst
    of requests does not look like an outage that switches the cache off."""
    metrics = Metrics()
    store = GuardedBackend(backend_for(redis.url, timeout=2.0, store=MemoryStore(1 << 20)), metrics)
    try:
        await store.write("k", {"rows": []}, 60.0)
        values = await asyncio.gather(*(store.read("k") for _ in range(500)))
        counters = await asyncio.gather(*(store.counter("generation") for _ in range(500)))
    finally:
        await store.close()
    assert values == [{"rows": []}] * 500
    assert counters == [0] * 500
    assert (
        metrics.registry.get_sample_value(
            "gateway_cache_operations_total", {"backend": "redis", "result": "error"}
        )
        is None
    )
