"""Hostile callers: ids that would reach other endpoints, tokens that cannot be forwarded.

Every id that becomes part of an upstream URL is refused (`BAD_USER_INPUT`, no call) when it
could mean another path, and otherwise travels as exactly one path segment: the upstream sees
exactly the path the gateway meant, checked with hypothesis over a real socket.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.circuit_breaker import CircuitBreaker
from gateway.limits import UpstreamBudget
from gateway.sample_upstream import SampleUpstream
from gateway.transport import UpstreamTransport
from gateway.upstream import Caller, UpstreamClient

from .conftest import DEMO_AUTH, asgi_client, graphql, in_process_gateway, make_settings
from .faulty_upstream import Fault, FaultyUpstream

pytestmark = pytest.mark.anyio

BAD_IDS = ["", ".", "..", "a/b", "../jobs", "a?skip=0", "a#b", "a\\b", "a\x00b", "a\nb", "x" * 201]


@pytest.fixture
def sample() -> SampleUpstream:
    return SampleUpstream()


@pytest.mark.parametrize("value", BAD_IDS)
@pytest.mark.parametrize(
    "query",
    [
        "query($id: ID!) { job(clientJobId: $id) { jobId } }",
        "query($id: ID!) { workflowJobs(workflowId: $id) { nodes { jobId } } }",
    ],
)
async def test_ids_that_could_name_another_path_are_refused_without_a_call(
    sample: SampleUpstream, query: str, value: str
) -> None:
    """`.`, `..`, separators, control characters and over-long ids: BAD_USER_INPUT, no call."""
    async with asgi_client(in_process_gateway(sample.app())) as client:
        body = await graphql(client, query, {"id": value})
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert not sample.seen


def request_path(head: bytes) -> str:
    """The path of a raw HTTP request head, as the upstream received it."""
    return head.split(b" ", 2)[1].decode("ascii")


ids = st.text(
    st.characters(codec="utf-8", exclude_characters="/?#\\", exclude_categories=("Cc", "Cs")),
    min_size=1,
    max_size=40,
).filter(lambda value: value not in (".", ".."))


@settings(max_examples=120, deadline=None)
@given(client_job_id=ids, workflow_id=ids)
def test_every_other_id_is_exactly_one_path_segment(client_job_id: str, workflow_id: str) -> None:
    """Whatever the id, the upstream receives `/jobs/v1/<segment>` (or `.../workflow/<segment>`)
    whose segment decodes back to the id: through the real transport, over TCP."""

    async def call(url: str) -> list[str]:
        settings = make_settings(url)
        transport = UpstreamTransport()
        client = UpstreamClient(transport, settings, CircuitBreaker(0, 1))
        caller = Caller("Bearer t0ken-value", time.monotonic() + 5, UpstreamBudget(10))
        try:
            await client.job_by_client_id(caller, client_job_id)
            await client.workflow_jobs(caller, workflow_id)
        finally:
            await transport.aclose()
        return [request_path(head) for head in upstream.requests]

    with FaultyUpstream([Fault(body=b"[]")]) as upstream:
        single, listed = asyncio.run(call(upstream.url))
    assert single.startswith("/jobs/v1/")
    assert listed.startswith("/jobs/v1/workflow/")
    for path, prefix, value in (
        (single, "/jobs/v1/", client_job_id),
        (listed, "/jobs/v1/workflow/", workflow_id),
    ):
        segment = path.removeprefix(prefix)
        assert "/" not in segment
        assert "?" not in segment
        assert unquote(segment) == value


@pytest.mark.parametrize(
    "authorization",
    [b"Bearer caf\xe9-token", b"Bearer tok\x7fen", "Bearer tøken".encode()],
)
async def test_a_token_with_bytes_beyond_ascii_is_unauthenticated(
    sample: SampleUpstream, authorization: bytes
) -> None:
    """A byte above 0x7E (or DEL) in the Authorization header: UNAUTHENTICATED, no call, no 500."""
    app = in_process_gateway(sample.app())
    async with asgi_client(app) as client:
        response = await client.post(
            "/graphql",
            json={"query": "{ jobs { nodes { jobId } } }"},
            headers={"authorization": authorization},
        )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert [error["extensions"]["code"] for error in body["errors"]] == ["UNAUTHENTICATED"]
    assert not sample.seen


async def test_a_plain_ascii_token_still_works(sample: SampleUpstream) -> None:
    """The check refuses nothing a real bearer token holds."""
    async with asgi_client(in_process_gateway(sample.app())) as client:
        body = await graphql(client, "{ jobs(first: 1) { nodes { jobId } } }", headers=DEMO_AUTH)
    assert "errors" not in body
    assert len(sample.seen) == 1
