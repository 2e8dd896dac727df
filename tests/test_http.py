"""The ASGI app over HTTP, in process: GraphiQL, POST and GET GraphQL, headers, lifespan."""

from __future__ import annotations

import pytest

from gateway.sample_upstream import SampleUpstream

from .conftest import DEMO_AUTH, asgi_client, graphql, in_process_gateway

pytestmark = pytest.mark.anyio


async def test_browsers_get_graphiql() -> None:
    """GET /graphql with Accept: text/html serves GraphiQL; / redirects there."""
    async with asgi_client(in_process_gateway(SampleUpstream().app())) as client:
        response = await client.get("/graphql", headers={"accept": "text/html"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "graphiql" in response.text.lower()
        root = await client.get("/")
        assert (root.status_code, root.headers["location"]) == (307, "/graphql")


async def test_post_and_get_answer_the_same() -> None:
    """A query over POST (JSON) and over GET (?query=) gives the same JSON result."""
    query = "{ jobs(first: 2) { nodes { jobId team } pageInfo { hasNextPage } } }"
    async with asgi_client(in_process_gateway(SampleUpstream().app())) as client:
        posted = await graphql(client, query)
        got = await client.get("/graphql", params={"query": query}, headers=DEMO_AUTH)
        assert got.status_code == 200
        assert got.json() == posted
        assert posted["data"]["jobs"]["pageInfo"] == {"hasNextPage": True}
        assert [node["team"] for node in posted["data"]["jobs"]["nodes"]] == ["apiteam"] * 2


async def test_field_errors_come_back_with_status_200_and_the_field_null() -> None:
    """An upstream 403 is a field error: HTTP 200, the field null, a coded error."""
    async with asgi_client(in_process_gateway(SampleUpstream().app())) as client:
        body = await graphql(
            client,
            "{ jobs { nodes { jobId } } }",
            headers={"authorization": "Bearer demo-token-read-only"},
        )
    assert body["data"] == {"jobs": None}
    assert [error["extensions"] for error in body["errors"]] == [
        {"code": "FORBIDDEN", "upstreamStatus": 403}
    ]


async def test_variables_and_operation_names_work() -> None:
    """Variables and a chosen operation of several are honoured."""
    document = (
        "query Small($n: Int!) { jobs(first: $n) { nodes { jobId } } } "
        "query Other { jobs(first: 1) { nodes { team } } }"
    )
    async with asgi_client(in_process_gateway(SampleUpstream().app())) as client:
        response = await client.post(
            "/graphql",
            json={"query": document, "variables": {"n": 3}, "operationName": "Small"},
            headers=DEMO_AUTH,
        )
    assert len(response.json()["data"]["jobs"]["nodes"]) == 3
