"""The client-facing protocol: GraphQL-over-HTTP compliance, limits, switches, CORS, headers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.background import BackgroundServer
from gateway.graphiql import BUNDLED_ASSETS_DIR, GraphiQLAssets
from gateway.sample_upstream import SampleUpstream
from gateway.schema import build_schema

from .conftest import (
    DEMO_AUTH,
    asgi_client,
    in_process_gateway,
    make_settings,
    network_gateway,
    post,
    run_node,
)

pytestmark = pytest.mark.anyio

QUERY = "{ jobs(first: 2) { nodes { jobId } } }"
GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.fixture
def sample() -> SampleUpstream:
    return SampleUpstream(teams={"apiteam": 30})


async def preflight(
    client: httpx.AsyncClient, requested: str, origin: str = "https://app.example.com"
) -> httpx.Response:
    """A browser's CORS preflight for a POST with `requested` headers from `origin`."""
    return await client.options(
        "/graphql",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": requested,
        },
    )


@pytest.fixture
def audited_gateway(sample_server: BackgroundServer) -> Iterator[BackgroundServer]:
    with BackgroundServer(network_gateway(sample_server.url)) as server:
        yield server


@pytest.mark.e2e
def test_graphql_http_audit_passes_every_must_and_should(
    node_clients: Path, audited_gateway: BackgroundServer
) -> None:
    """graphql-http's serverAudits against a running gateway: no MUST or SHOULD fails."""
    results = run_node("audit.mjs", f"{audited_gateway.url}/graphql")
    assert len(results) > 50
    failing = [
        f"{result['status']}: {result['name']}: {result['reason']}"
        for result in results
        if result["status"] != "ok"
    ]
    assert failing == []


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
        (f"application/json, {GRAPHQL_RESPONSE};q=0.5", "application/json"),
    ],
)
async def test_the_response_media_type_is_negotiated(
    sample: SampleUpstream, accept: str | None, media_type: str
) -> None:
    """graphql-response+json when the client accepts it at least as well as JSON."""
    headers = {"accept": accept} if accept else {}
    response = await post(in_process_gateway(sample.app()), {"query": QUERY}, **headers)
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("{ jobs { nodes { jobId }", "GRAPHQL_PARSE_FAILED"),
        ("{ jobs { nodes { nope } } }", "GRAPHQL_VALIDATION_FAILED"),
    ],
)
async def test_request_errors_have_no_data_and_a_status_per_media_type(
    sample: SampleUpstream, query: str, code: str
) -> None:
    """A request error: no `data` key; 400 with graphql-response+json, 200 with JSON."""
    app = in_process_gateway(sample.app())
    for accept, status in ((GRAPHQL_RESPONSE, 400), ("application/json", 200)):
        response = await post(app, {"query": query}, accept=accept)
        assert response.status_code == status
        body = response.json()
        assert "data" not in body
        assert [error["extensions"]["code"] for error in body["errors"]] == [code]
    assert sample.seen == type(sample.seen)()


async def test_field_errors_keep_data_and_status_200(sample: SampleUpstream) -> None:
    """A field error is not a request error: 200 and `data` with null, for both media types."""
    app = in_process_gateway(sample.app())
    for accept in (GRAPHQL_RESPONSE, "application/json"):
        response = await post(app, {"query": QUERY}, accept=accept, authorization="Bearer nobody")
        assert response.status_code == 200
        assert response.json()["data"] == {"jobs": None}
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_graphql_responses_are_never_kept_by_shared_caches(sample: SampleUpstream) -> None:
    """Data, errors and request errors all carry Cache-Control: private, no-store."""
    app = in_process_gateway(sample.app())
    async with asgi_client(app) as client:
        responses = [
            await client.post("/graphql", json={"query": QUERY}, headers=DEMO_AUTH),
            await client.post("/graphql", json={"query": "{"}, headers=DEMO_AUTH),
            await client.get("/graphql", params={"query": QUERY}, headers=DEMO_AUTH),
            await client.post(
                "/graphql", content=b"nope", headers={"content-type": "application/json"}
            ),
        ]
    assert {response.headers["cache-control"] for response in responses} == {"private, no-store"}


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code"),
    [
        (
            {"content": b"{nope", "headers": {"content-type": "application/json"}},
            400,
            "BAD_REQUEST",
        ),
        (
            {"content": b'"text"', "headers": {"content-type": "application/json"}},
            400,
            "BAD_REQUEST",
        ),
        ({"json": {"query": 7}}, 400, "BAD_REQUEST"),
        ({"json": {"query": "{ __typename }", "variables": [1]}}, 400, "BAD_REQUEST"),
        ({"json": {}}, 400, "BAD_REQUEST"),
        (
            {"content": b"{ jobs }", "headers": {"content-type": "text/plain"}},
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
    ],
)
async def test_malformed_requests_get_coded_4xx_json(
    sample: SampleUpstream, request_kwargs: dict[str, Any], status: int, code: str
) -> None:
    """Bodies that are not GraphQL requests: a 4xx in the GraphQL error shape, never a 500."""
    async with asgi_client(in_process_gateway(sample.app())) as client:
        response = await client.post("/graphql", **request_kwargs)
    assert response.status_code == status
    assert response.json()["errors"][0]["extensions"]["code"] == code


async def test_mutations_over_get_and_other_methods_are_405(sample: SampleUpstream) -> None:
    """GET may only run queries; PUT is not GraphQL over HTTP at all."""
    async with asgi_client(in_process_gateway(sample.app())) as client:
        mutation = await client.get("/graphql", params={"query": "mutation { x }"})
        put = await client.put("/graphql", json={"query": QUERY})
        head = await client.head("/graphql", params={"query": QUERY})
    assert (head.status_code, head.headers["allow"]) == (405, "GET, POST")
    assert mutation.status_code == 405
    assert put.status_code == 405
    assert put.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


async def test_oversized_bodies_are_refused_before_parsing(sample: SampleUpstream) -> None:
    """Over GATEWAY_MAX_BODY_BYTES: 413, whether the length is declared or streamed."""
    app = in_process_gateway(sample.app(), max_body_bytes=1000)
    big = {"query": QUERY, "variables": {"pad": "x" * 2000}}
    async with asgi_client(app) as client:
        declared = await client.post("/graphql", json=big, headers=DEMO_AUTH)

        async def chunks() -> Any:
            for _ in range(30):
                yield b" " * 100

        streamed = await client.post(
            "/graphql", content=chunks(), headers={**DEMO_AUTH, "content-type": "application/json"}
        )
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert len(sample.seen) == 0


async def test_a_body_in_several_chunks_is_read_whole(sample: SampleUpstream) -> None:
    """A body streamed in pieces (no Content-Length) is joined before it is parsed."""
    body = json.dumps({"query": "{ jobs(first: 2) { nodes { jobId } } }"}).encode()

    async def pieces() -> Any:
        for start in range(0, len(body), 7):
            yield body[start : start + 7]

    async with asgi_client(in_process_gateway(sample.app())) as client:
        streamed = await client.post(
            "/graphql", content=pieces(), headers={**DEMO_AUTH, "content-type": "application/json"}
        )
        whole = await client.post(
            "/graphql", content=body, headers={**DEMO_AUTH, "content-type": "application/json"}
        )
    assert streamed.status_code == 200
    assert len(streamed.json()["data"]["jobs"]["nodes"]) == 2
    assert streamed.json() == whole.json()


# Six list fields whose sizes come from variables (worst case: 100 rows, 2 aligned blocks each).
MIXED_PAGES = (
    "query($n: Int) { "
    + " ".join(f"f{n}: jobs(first: $n) {{ nodes {{ jobId }} }}" for n in range(6))
    + " }"
)


# Two totalCounts: each is budgeted for lists of up to a million jobs (30 calls).
TWO_COUNTS = "{ a: jobs { totalCount } b: myJobs { totalCount } }"


def aliased_jobs(count: int) -> str:
    return (
        "{ "
        + " ".join(f"a{n}: jobs(first: 1) {{ nodes {{ jobId }} }}" for n in range(count))
        + " }"
    )


@pytest.mark.parametrize(
    ("settings", "query", "code"),
    [
        (
            {"max_depth": 3},
            "{ jobs { nodes { metadata { currentStep { singleStep { stepTitle } } } } } }",
            "QUERY_TOO_DEEP",
        ),
        ({"max_aliases": 2}, aliased_jobs(3), "TOO_MANY_ALIASES"),
        (
            {"max_tokens": 10},
            "{ jobs { nodes { jobId team excluded metadata { jobTitle status created } } } }",
            "TOO_MANY_TOKENS",
        ),
        (
            {"max_aliases": 50, "upstream_call_budget": 20},
            aliased_jobs(30),
            "UPSTREAM_BUDGET_EXCEEDED",
        ),
        (
            {"upstream_call_budget": 1},
            "{ jobs(first: 100) { nodes { jobId } } }",
            "UPSTREAM_BUDGET_EXCEEDED",
        ),
        ({"upstream_call_budget": 10}, MIXED_PAGES, "UPSTREAM_BUDGET_EXCEEDED"),
        ({}, TWO_COUNTS, "UPSTREAM_BUDGET_EXCEEDED"),
        ({}, "{ jobs(first: 101) { nodes { jobId } } }", "BAD_USER_INPUT"),
    ],
)
async def test_each_limit_has_its_code_and_costs_no_upstream_call(
    sample: SampleUpstream, settings: dict[str, object], query: str, code: str
) -> None:
    """Depth, aliases, tokens, the upstream-call budget and page size: coded, no call made."""
    response = await post(in_process_gateway(sample.app(), **settings), {"query": query})
    codes = {error["extensions"]["code"] for error in response.json()["errors"]}
    assert code in codes
    assert len(sample.seen) == 0


async def test_thirty_aliased_jobs_fields_are_refused_by_default(sample: SampleUpstream) -> None:
    """With default settings the fan-out query is refused before any call: too many aliases,
    and (the cache on, so windows are aligned blocks) more calls than the budget; uncached,
    the aliases alone."""
    uncached = in_process_gateway(sample.app(), cache_ttl=0)
    response = await post(uncached, {"query": aliased_jobs(30)})
    codes = sorted(error["extensions"]["code"] for error in response.json()["errors"])
    assert codes == ["TOO_MANY_ALIASES"]
    response = await post(in_process_gateway(sample.app()), {"query": aliased_jobs(30)})
    codes = sorted(error["extensions"]["code"] for error in response.json()["errors"])
    assert codes == ["TOO_MANY_ALIASES", "UPSTREAM_BUDGET_EXCEEDED"]
    assert "data" not in response.json()
    assert len(sample.seen) == 0


async def test_queries_within_the_limits_run(sample: SampleUpstream) -> None:
    """Ten aliased single pages fit the default budget and alias limit."""
    response = await post(in_process_gateway(sample.app()), {"query": aliased_jobs(5)})
    assert "errors" not in response.json()


async def test_repeated_documents_skip_parsing_and_validation() -> None:
    """The second run of a document takes its parse and checks from the document cache."""
    schema = build_schema(make_settings())
    assert schema.documents is not None
    query = "{ __typename }"
    first = await schema.execute(query)
    hits = schema.documents.hits
    second = await schema.execute(query)
    assert schema.documents.hits == hits + 1
    assert first.data == second.data == {"__typename": "Query"}


@pytest.mark.parametrize("enabled", [True, False])
async def test_introspection_switch(sample: SampleUpstream, enabled: bool) -> None:
    """GATEWAY_INTROSPECTION=false refuses schema introspection; on by default."""
    app = in_process_gateway(sample.app(), introspection=str(enabled).lower())
    response = await post(app, {"query": "{ __schema { queryType { name } } }"})
    if enabled:
        assert response.json() == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
    else:
        assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert "introspection" in response.json()["errors"][0]["message"].lower()


@pytest.mark.parametrize("enabled", [True, False])
async def test_graphiql_switch(sample: SampleUpstream, enabled: bool) -> None:
    """GATEWAY_GRAPHIQL=false: browsers get no IDE (and no assets), only the API."""
    app = in_process_gateway(sample.app(), graphiql=str(enabled).lower())
    version = GraphiQLAssets(BUNDLED_ASSETS_DIR).version
    async with asgi_client(app) as client:
        page = await client.get("/graphql", headers={"accept": "text/html"})
        asset = await client.get(f"/graphiql/assets/{version}/graphiql.min.css")
    assert page.headers["content-type"].startswith("text/html") is enabled
    assert (asset.status_code == 200) is enabled


async def test_cors_allows_nothing_by_default(sample: SampleUpstream) -> None:
    """No GATEWAY_CORS_ORIGINS: no browser origin gets Access-Control-Allow-Origin."""
    async with asgi_client(in_process_gateway(sample.app())) as client:
        response = await client.post(
            "/graphql",
            json={"query": QUERY},
            headers={**DEMO_AUTH, "origin": "https://evil.example"},
        )
    assert "access-control-allow-origin" not in response.headers


async def test_cors_allow_list_preflight_and_authorization(sample: SampleUpstream) -> None:
    """Listed origins pass the preflight with Authorization allowed; others are refused."""
    app = in_process_gateway(
        sample.app(), cors_origins="https://app.example.com,http://localhost:3000"
    )
    preflight_headers = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }
    async with asgi_client(app) as client:
        allowed = await client.options(
            "/graphql", headers={**preflight_headers, "origin": "https://app.example.com"}
        )
        refused = await client.options(
            "/graphql", headers={**preflight_headers, "origin": "https://evil.example"}
        )
        actual = await client.post(
            "/graphql",
            json={"query": QUERY},
            headers={**DEMO_AUTH, "origin": "http://localhost:3000"},
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    assert actual.headers["access-control-allow-origin"] == "http://localhost:3000"


CLIENT_HEADERS = (
    "authorization, content-type, x-request-id, apollographql-client-name, "
    "apollographql-client-version, apollo-require-preflight"
)


async def test_cors_allows_what_real_clients_send(sample: SampleUpstream) -> None:
    """A preflight for Apollo Client's and the README's headers passes and may be kept two
    hours; the answer lets the page read X-Request-ID."""
    app = in_process_gateway(sample.app(), cors_origins="https://app.example.com")
    origin = {"origin": "https://app.example.com"}
    async with asgi_client(app) as client:
        preflight = await client.options(
            "/graphql",
            headers={
                **origin,
                "access-control-request-method": "POST",
                "access-control-request-headers": CLIENT_HEADERS,
            },
        )
        actual = await client.post(
            "/graphql", json={"query": QUERY}, headers={**DEMO_AUTH, **origin}
        )
    assert preflight.status_code == 200
    allowed = {
        name.strip().lower()
        for name in preflight.headers["access-control-allow-headers"].split(",")
    }
    assert {name.strip() for name in CLIENT_HEADERS.split(",")} <= allowed
    assert preflight.headers["access-control-max-age"] == "7200"
    assert actual.headers["access-control-expose-headers"].lower() == "x-request-id"
    assert actual.headers["x-request-id"]


@pytest.mark.parametrize(
    ("origin", "requested", "refused"),
    [
        ("https://evil.example", "authorization", "origin"),
        ("https://app.example.com", "authorization, x-tenant", "headers"),
    ],
)
async def test_a_refused_preflight_is_a_coded_json_error(
    sample: SampleUpstream, origin: str, requested: str, refused: str
) -> None:
    """Another origin, or a header not allowed: 400 in the JSON error shape, saying which."""
    app = in_process_gateway(sample.app(), cors_origins="https://app.example.com")
    async with asgi_client(app) as client:
        response = await preflight(client, requested, origin)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": "CORS_PREFLIGHT_REFUSED"}
    assert refused in error["message"]
    assert "access-control-allow-origin" not in response.headers


async def test_the_allowed_headers_are_configurable(sample: SampleUpstream) -> None:
    """GATEWAY_CORS_ALLOW_HEADERS replaces the list: X-Tenant passes, X-Request-ID no longer."""
    app = in_process_gateway(
        sample.app(),
        cors_origins="https://app.example.com",
        cors_allow_headers="Authorization,Content-Type,X-Tenant",
    )
    async with asgi_client(app) as client:
        passed = await preflight(client, "authorization, x-tenant")
        refused = await preflight(client, "authorization, x-request-id")
    assert (passed.status_code, refused.status_code) == (200, 400)


async def test_a_hostile_preflight_is_refused_without_echoing_it(sample: SampleUpstream) -> None:
    """A preflight asking for 1,000 made-up headers (12 KB, under the head limit) is refused
    in the JSON shape, and the answer repeats none of them."""
    app = in_process_gateway(sample.app(), cors_origins="https://app.example.com")
    requested = ", ".join(f"x-evil-{n:04d}" for n in range(1000))
    async with asgi_client(app) as client:
        response = await preflight(client, requested)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"] == {"code": "CORS_PREFLIGHT_REFUSED"}
    assert "x-evil" not in response.text
    assert "x-evil" not in str(response.headers).lower()
