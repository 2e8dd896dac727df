"""End to end: a real uvicorn gateway talking to the sample upstream over TCP."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from gateway.background import BackgroundServer
from gateway.pagination import encode_cursor
from gateway.sample_upstream import SampleUpstream

from .conftest import served_gateway

pytestmark = pytest.mark.e2e

PAGE = (
    "edges { cursor node { jobId metadata { jobTitle } } } "
    "pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"
)


def post(server: BackgroundServer, query: str, token: str = "demo-token", **extra: Any) -> Any:
    headers = {"authorization": f"Bearer {token}", **extra.pop("headers", {})}
    response = httpx.post(
        f"{server.url}/graphql", json={"query": query, **extra}, headers=headers, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_the_issue_example_query(gateway_server: BackgroundServer, seen: SampleUpstream) -> None:
    """The README's first query answers with the first 20 jobs from one call: the first
    100-row block, which the cache keeps for the pages after it."""
    body = post(
        gateway_server,
        "query { jobs(first: 20) { edges { cursor node { jobId metadata { jobTitle status "
        "created currentStep { singleStep { stepTitle stepNumber } } } } } "
        "pageInfo { hasNextPage endCursor } } }",
    )
    edges = body["data"]["jobs"]["edges"]
    expected = seen.jobs_of("apiteam")[:20]
    assert [edge["node"]["jobId"] for edge in edges] == [job["jobId"] for job in expected]
    assert edges[3]["node"]["metadata"]["jobTitle"] == expected[3]["metadata"]["jobTitle"]
    assert body["data"]["jobs"]["pageInfo"] == {"hasNextPage": True, "endCursor": encode_cursor(19)}
    assert [(request.path, request.query) for request in seen.seen] == [
        ("/jobs/v1/", "skip=0&limit=100")
    ]


@pytest.mark.parametrize("cache_ttl", [5, 0], ids=["default", "uncached"])
def test_walking_forward_returns_every_job_once_in_order(
    sample_server: BackgroundServer, seen: SampleUpstream, cache_ttl: float
) -> None:
    """`first: 7` page after page over 237 jobs: each job once, in order; one call per 100-row
    block with the cache on (the default), one call per page without it."""
    with served_gateway(sample_server.url, cache_ttl=cache_ttl) as gateway:
        pages, collected = walk_forward(gateway)
    assert collected == [job["jobId"] for job in seen.jobs_of("apiteam")]
    assert pages == math.ceil(237 / 7)
    calls = [request.query for request in seen.seen]
    if cache_ttl:
        assert calls == [f"skip={start}&limit=100" for start in (0, 100, 200)]
    else:
        assert calls == [f"skip={7 * page}&limit=8" for page in range(pages)]


def walk_forward(gateway_server: BackgroundServer) -> tuple[int, list[str]]:
    """Page through the demo team's jobs with `first: 7`: how many pages, and their jobs."""
    collected: list[str] = []
    after = None
    pages = 0
    while True:
        arguments = "first: 7" + (f', after: "{after}"' if after else "")
        connection = post(gateway_server, f"{{ jobs({arguments}) {{ {PAGE} }} }}")["data"]["jobs"]
        pages += 1
        collected += [edge["node"]["jobId"] for edge in connection["edges"]]
        assert connection["pageInfo"]["hasPreviousPage"] == (pages > 1)
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    return pages, collected


def test_walking_backward_returns_every_job_once_in_order(
    gateway_server: BackgroundServer, seen: SampleUpstream
) -> None:
    """`last: 7, before:` from the last job back to the first: each job once, in order, from
    the three 100-row blocks, each fetched once."""
    jobs = [job["jobId"] for job in seen.jobs_of("apiteam")]
    before = encode_cursor(236)  # the last job's cursor, as a forward walk would have found it
    collected: list[str] = []
    while True:
        connection = post(gateway_server, f'{{ jobs(last: 7, before: "{before}") {{ {PAGE} }} }}')[
            "data"
        ]["jobs"]
        collected = [edge["node"]["jobId"] for edge in connection["edges"]] + collected
        assert connection["pageInfo"]["hasNextPage"]
        if not connection["pageInfo"]["hasPreviousPage"]:
            break
        before = connection["pageInfo"]["startCursor"]
    assert collected == jobs[:236]
    assert sorted(request.query for request in seen.seen) == [
        f"skip={start}&limit=100" for start in (0, 100, 200)
    ]


def test_the_upstream_sees_exactly_the_callers_authorization(
    gateway_server: BackgroundServer, seen: SampleUpstream
) -> None:
    """Only the caller's Authorization header travels upstream: no cookie, no other header of
    the caller's (the request id is the gateway's own, for correlating logs)."""
    post(
        gateway_server,
        "{ jobs(first: 1) { nodes { jobId } } }",
        token="demo-token-fieldteam",
        headers={"cookie": "session=secret", "x-tenant": "other", "x-forwarded-for": "10.0.0.1"},
    )
    (request,) = seen.seen
    assert request.header("authorization") == "Bearer demo-token-fieldteam"
    assert {name for name, _ in request.headers} == {
        "host",
        "accept",
        "accept-encoding",
        "user-agent",
        "authorization",
        "x-request-id",
    }


def test_teams_see_their_own_jobs(gateway_server: BackgroundServer, seen: SampleUpstream) -> None:
    """Two tokens of two teams get two different lists."""
    query = "{ jobs(first: 100) { nodes { jobId team } } }"
    api = post(gateway_server, query)["data"]["jobs"]["nodes"]
    field = post(gateway_server, query, token="demo-token-fieldteam")["data"]["jobs"]["nodes"]
    assert {node["team"] for node in api} == {"apiteam"}
    assert len(api) == 100
    assert {node["team"] for node in field} == {"fieldteam"}
    assert len(field) == 64
    assert not {node["jobId"] for node in api} & {node["jobId"] for node in field}


@pytest.mark.parametrize(
    ("token", "code", "status"),
    [("expired-or-unknown", "UNAUTHENTICATED", 401), ("demo-token-read-only", "FORBIDDEN", 403)],
)
def test_upstream_auth_failures_are_coded(
    gateway_server: BackgroundServer, token: str, code: str, status: int
) -> None:
    """Upstream 401 and 403 reach the client as UNAUTHENTICATED and FORBIDDEN, with the status."""
    body = post(gateway_server, "{ jobs { nodes { jobId } } }", token=token)
    assert body["data"] == {"jobs": None}
    assert body["errors"][0]["extensions"] == {"code": code, "upstreamStatus": status}
    assert token not in str(body)


def test_an_unreachable_upstream_is_a_coded_error_not_a_500(
    sample_server: BackgroundServer,
) -> None:
    """With nothing listening upstream the gateway answers UPSTREAM_UNAVAILABLE, HTTP 200."""
    from gateway.app import create_app

    from .conftest import make_settings

    with BackgroundServer(create_app(make_settings("http://127.0.0.1:9"))) as gateway:
        body = post(gateway, "{ jobs { nodes { jobId } } }")
    assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
