"""Whole-response reuse: per credential, never past its pages, never with errors."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from .conftest import PerTokenUpstream, asgi_client, bearer, graphql, in_process_gateway, page

pytestmark = pytest.mark.anyio


def response_hits(app: Any) -> float:
    value = app.state.metrics.registry.get_sample_value(
        "gateway_cache_operations_total", {"backend": "response", "result": "hit"}
    )
    return value or 0.0


async def test_a_repeated_query_is_answered_from_the_kept_response() -> None:
    """The second identical request is a response hit: same bytes, no upstream call."""
    upstream = PerTokenUpstream()
    app = in_process_gateway(upstream.transport(), cache_ttl=5)
    async with asgi_client(app) as client:
        first = await graphql(client, page(3), headers=bearer("alice"))
        second = await graphql(client, page(3), headers=bearer("alice"))
    assert first == second
    assert (upstream.total, response_hits(app)) == (1, 1)


async def test_responses_are_never_shared_between_credentials() -> None:
    """Bob asking Alice's exact query gets his own data, fetched with his token."""
    upstream = PerTokenUpstream()
    app = in_process_gateway(upstream.transport(), cache_ttl=5)
    async with asgi_client(app) as client:
        await graphql(client, page(3), headers=bearer("alice"))
        bob = await graphql(client, page(3), headers=bearer("bob"))
    assert {node["team"] for node in bob["data"]["jobs"]["nodes"]} == {"bob"}
    assert response_hits(app) == 0


async def test_a_kept_response_expires_with_its_pages() -> None:
    """With a 0.3 s cache, the response is reused before and refetched after."""
    upstream = PerTokenUpstream()
    app = in_process_gateway(upstream.transport(), cache_ttl=0.3)
    async with asgi_client(app) as client:
        await graphql(client, page(3), headers=bearer("alice"))
        await graphql(client, page(3), headers=bearer("alice"))
        await asyncio.sleep(0.35)
        await graphql(client, page(3), headers=bearer("alice"))
    assert (upstream.total, response_hits(app)) == (2, 1)


async def test_answers_with_errors_or_unkept_pages_are_not_reused() -> None:
    """A field error, or a page the upstream marked no-store, means no response reuse."""
    bad_rows = [{"jobId": "a", "excluded": "not a boolean"}]
    app = in_process_gateway(
        httpx.MockTransport(lambda request: httpx.Response(200, json=bad_rows)), cache_ttl=5
    )
    query = "{ jobs(first: 1) { nodes { jobId excluded } } }"
    async with asgi_client(app) as client:
        for _ in range(2):
            body = await graphql(client, query, headers=bearer("alice"))
            assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_BAD_RESPONSE"
    assert response_hits(app) == 0
    upstream = PerTokenUpstream(cache_control="no-store")
    app = in_process_gateway(upstream.transport(), cache_ttl=5)
    async with asgi_client(app) as client:
        for _ in range(2):
            await graphql(client, page(3), headers=bearer("alice"))
    assert (upstream.total, response_hits(app)) == (2, 0)


async def test_variables_and_media_type_are_part_of_the_key() -> None:
    """Other variables, or another Accept, are other responses."""
    upstream = PerTokenUpstream()
    app = in_process_gateway(upstream.transport(), cache_ttl=5)
    query = "query($n: Int) { jobs(first: $n) { nodes { jobId } } }"
    async with asgi_client(app) as client:
        two = await graphql(client, query, {"n": 2}, headers=bearer("alice"))
        three = await graphql(client, query, {"n": 3}, headers=bearer("alice"))
        await client.post(
            "/graphql",
            json={"query": query, "variables": {"n": 2}},
            headers={**bearer("alice"), "accept": "application/graphql-response+json"},
        )
    assert len(two["data"]["jobs"]["nodes"]) == 2
    assert len(three["data"]["jobs"]["nodes"]) == 3
    assert response_hits(app) == 0
