"""Automatic persisted queries: the protocol over raw HTTP, with Apollo Client, across replicas."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.background import BackgroundServer
from gateway.metrics import Metrics
from gateway.sample_upstream import SampleUpstream

from .conftest import DEMO_AUTH, asgi_client, in_process_gateway, network_gateway, run_node
from .redis_process import RedisProcess

pytestmark = pytest.mark.anyio

QUERY = "query Few { jobs(first: 2) { nodes { jobId } } }"
DIGEST = hashlib.sha256(QUERY.encode()).hexdigest()
SECRET = "apq-test-secret"


def persisted(digest: str = DIGEST, version: int = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": digest}}


def codes(response: httpx.Response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json().get("errors", [])]


async def test_the_apq_round_trip_over_post_and_get() -> None:
    """Hash alone: not found. Hash and query: runs and is kept. Then the hash alone runs, by
    POST and by GET (so it can be cached by URL at the edge, were it not private data)."""
    sample = SampleUpstream()
    async with asgi_client(in_process_gateway(sample.app())) as client:
        unknown = await client.post("/graphql", json={"extensions": persisted()}, headers=DEMO_AUTH)
        assert (unknown.status_code, codes(unknown)) == (200, ["PERSISTED_QUERY_NOT_FOUND"])
        assert unknown.json()["errors"][0]["message"] == "PersistedQueryNotFound"
        registered = await client.post(
            "/graphql", json={"query": QUERY, "extensions": persisted()}, headers=DEMO_AUTH
        )
        assert len(registered.json()["data"]["jobs"]["nodes"]) == 2
        by_post = await client.post("/graphql", json={"extensions": persisted()}, headers=DEMO_AUTH)
        by_get = await client.get(
            "/graphql",
            params={"extensions": orjson.dumps(persisted()).decode(), "operationName": "Few"},
            headers=DEMO_AUTH,
        )
    assert by_post.json() == registered.json()
    assert by_get.json() == registered.json()


async def test_a_hash_that_does_not_match_is_refused() -> None:
    """A query sent with another query's hash: 400, nothing run, nothing stored."""
    sample = SampleUpstream()
    wrong = hashlib.sha256(b"{ __typename }").hexdigest()
    async with asgi_client(in_process_gateway(sample.app())) as client:
        mismatch = await client.post(
            "/graphql", json={"query": QUERY, "extensions": persisted(wrong)}, headers=DEMO_AUTH
        )
        after = await client.post(
            "/graphql", json={"extensions": persisted(wrong)}, headers=DEMO_AUTH
        )
    assert (mismatch.status_code, codes(mismatch)) == (400, ["BAD_REQUEST"])
    assert mismatch.json()["errors"][0]["message"] == "provided sha does not match query"
    assert codes(after) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert len(sample.seen) == 0


@pytest.mark.parametrize(
    ("extensions", "code"),
    [
        (persisted(version=2), "PERSISTED_QUERY_NOT_SUPPORTED"),
        (persisted("not-a-hash"), "BAD_REQUEST"),
        ({"persistedQuery": "yes"}, "PERSISTED_QUERY_NOT_SUPPORTED"),
    ],
)
async def test_malformed_persisted_queries_are_400(extensions: dict[str, Any], code: str) -> None:
    """Unknown versions and malformed hashes are request errors."""
    async with asgi_client(in_process_gateway(SampleUpstream().app())) as client:
        response = await client.post("/graphql", json={"extensions": extensions}, headers=DEMO_AUTH)
    assert (response.status_code, codes(response)) == (400, [code])


async def test_invalid_queries_are_not_kept() -> None:
    """A registration whose query does not validate is answered, but not remembered."""
    bad = "{ jobs { nope } }"
    digest = hashlib.sha256(bad.encode()).hexdigest()
    async with asgi_client(in_process_gateway(SampleUpstream().app())) as client:
        first = await client.post("/graphql", json={"query": bad, "extensions": persisted(digest)})
        again = await client.post("/graphql", json={"extensions": persisted(digest)})
    assert codes(first) == ["GRAPHQL_VALIDATION_FAILED"]
    assert codes(again) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_persisted_queries_can_be_switched_off() -> None:
    """GATEWAY_APQ_TTL=0: the extension is ignored and a query is simply run."""
    app = in_process_gateway(SampleUpstream().app(), apq_ttl=0)
    async with asgi_client(app) as client:
        hashed_only = await client.post(
            "/graphql", json={"extensions": persisted()}, headers=DEMO_AUTH
        )
        with_query = await client.post(
            "/graphql", json={"query": QUERY, "extensions": persisted()}, headers=DEMO_AUTH
        )
    assert hashed_only.status_code == 400
    assert "data" in with_query.json()


async def test_replicas_share_persisted_queries_through_redis(redis: RedisProcess) -> None:
    """Registered through one gateway, the hash alone works on another behind the same Redis."""
    sample = SampleUpstream()
    shared = {"cache_url": redis.url, "cache_key_secret": SECRET}
    async with asgi_client(in_process_gateway(sample.app(), **shared)) as first:
        await first.post(
            "/graphql", json={"query": QUERY, "extensions": persisted()}, headers=DEMO_AUTH
        )
    async with asgi_client(in_process_gateway(sample.app(), **shared)) as second:
        response = await second.post(
            "/graphql", json={"extensions": persisted()}, headers=DEMO_AUTH
        )
    assert len(response.json()["data"]["jobs"]["nodes"]) == 2
    assert f"jobs-gateway:v1:apq:{DIGEST}".encode() in redis.command("KEYS", "*apq*")


@pytest.fixture
def apq_gateway(
    sample_server: BackgroundServer,
) -> Iterator[tuple[BackgroundServer, Metrics]]:
    app = network_gateway(sample_server.url)
    with BackgroundServer(app) as server:
        yield server, app.state.metrics


@pytest.mark.e2e
@pytest.mark.parametrize("method", ["post", "get"])
def test_apollo_clients_persisted_query_link_round_trips(
    node_clients: Path, apq_gateway: tuple[BackgroundServer, Metrics], method: str
) -> None:
    """Apollo Client 4 with PersistedQueryLink runs a query twice: the first time it learns
    the hash is unknown and sends the query; the second time the hash alone is enough."""
    server, metrics = apq_gateway
    result = run_node("apq.mjs", f"{server.url}/graphql", "demo-token", method)
    titles = [node["metadata"]["jobTitle"] for node in result["first"]["jobs"]["nodes"]]
    assert titles == ["Safety Audit #1", "Safety Audit #2", "Site Inspection #3"]
    assert result["second"] == result["first"]
    counts = {
        result: metrics.registry.get_sample_value(
            "gateway_persisted_queries_total", {"result": result}
        )
        for result in ("miss", "registered", "hit")
    }
    assert counts == {"miss": 1.0, "registered": 1.0, "hit": 1.0}


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Basic dXNlcjpwdw=="}, {"authorization": "Bearer not-a-known-token"}],
)
async def test_only_a_caller_with_an_accepted_token_registers(headers: dict[str, str]) -> None:
    """Without a bearer token, or with one the upstream refuses (a field error, not a request
    error), the query runs but is not remembered: anonymous traffic cannot fill the store."""
    sample = SampleUpstream()
    async with asgi_client(in_process_gateway(sample.app())) as client:
        sent = await client.post(
            "/graphql", json={"query": QUERY, "extensions": persisted()}, headers=headers
        )
        assert "UNAUTHENTICATED" in codes(sent)
        after = await client.post("/graphql", json={"extensions": persisted()}, headers=DEMO_AUTH)
    assert codes(after) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_a_query_answered_from_the_response_cache_is_registered_too() -> None:
    """A query sent in full, then in full with its hash (answered from the whole-response
    cache), is found by its hash at once: registration does not depend on executing."""
    sample = SampleUpstream()
    async with asgi_client(in_process_gateway(sample.app(), cache_ttl=30)) as client:
        await client.post("/graphql", json={"query": QUERY}, headers=DEMO_AUTH)
        cached = await client.post(
            "/graphql", json={"query": QUERY, "extensions": persisted()}, headers=DEMO_AUTH
        )
        by_hash = await client.post("/graphql", json={"extensions": persisted()}, headers=DEMO_AUTH)
    assert len(sample.seen) == 1  # the second answer came from the response cache
    assert by_hash.json() == cached.json()


async def test_persisted_queries_in_memory_count_every_byte_against_the_budget() -> None:
    """Comment-padded documents (cheap in tokens, 60 KB each) are stored by their whole size:
    registering 50 of them keeps the process store within GATEWAY_CACHE_MAX_BYTES."""
    sample = SampleUpstream()
    budget = 1 << 20
    app = in_process_gateway(sample.app(), cache_max_bytes=budget)
    async with asgi_client(app) as client:
        for n in range(50):
            padded = f"#{n} " + "x" * 60_000 + "\n" + QUERY
            digest = hashlib.sha256(padded.encode()).hexdigest()
            response = await client.post(
                "/graphql",
                json={"query": padded, "extensions": persisted(digest)},
                headers=DEMO_AUTH,
            )
            assert "errors" not in response.json()
    assert 60_000 * 10 < app.state.memory.bytes_used <= budget
