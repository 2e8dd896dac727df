"""Hostile callers: ids that would reach other endpoints, tokens that cannot be forwarded.

Every id that becomes part of an upstream URL is refused (`BAD_USER_INPUT`, no call) when it
could mean another path, and otherwise travels as exactly one path segment: the upstream sees
exactly the path the gateway meant, checked with hypothesis over a real socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.app import create_app
from gateway.background import BackgroundServer
from gateway.http_protocol import ConnectionLimits
from gateway.sample_upstream import DEMO_TOKEN, SampleUpstream
from gateway.serving import uvicorn_options
from gateway.upstream import CircuitBreaker, UpstreamClient, UpstreamTransport

from .conftest import (
    DEMO_AUTH,
    asgi_client,
    bearer_caller,
    graphql,
    in_process_gateway,
    make_settings,
)
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
        caller = bearer_caller("Bearer t0ken-value", budget=10, deadline=5)
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
            headers=[(b"authorization", authorization)],
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


# Connections: bloated heads, slow clients, aborted uploads, over a real uvicorn socket.


@contextlib.contextmanager
def guarded_gateway(
    upstream_url: str = "http://127.0.0.1:9", **overrides: object
) -> Iterator[BackgroundServer]:
    """A real gateway served with `serve`'s connection bounds (`uvicorn_options`)."""
    settings = make_settings(upstream_url, **overrides)
    with BackgroundServer(create_app(settings), settings=settings) as server:
        yield server


def exchange(port: int, data: bytes, *, close_after_send: bool = False) -> bytes:
    """Send `data` on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        with contextlib.suppress(OSError):  # the server may close before all is sent
            connection.sendall(data)
        if close_after_send:
            return b""
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
        return received


def status_and_body(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def graphql_post(headers: str = "", body: bytes = b'{"query": "{ __typename }"}') -> bytes:
    return (
        f"POST /graphql HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n"
        f"content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{headers}\r\n"
    ).encode() + body


def test_a_huge_header_is_431_and_never_buffered_or_forwarded(
    sample_server: BackgroundServer, seen: SampleUpstream
) -> None:
    """32 concurrent requests with a 4 MB Authorization header: each gets 431 in the JSON
    error shape, the upstream sees none, and the server allocates far less than they sent."""
    huge = graphql_post(f"authorization: Bearer {'x' * (4 << 20)}\r\n")
    with guarded_gateway(sample_server.url) as gateway:
        tracemalloc.start()
        try:
            with ThreadPoolExecutor(32) as pool:
                answers = list(pool.map(lambda _: exchange(gateway.port, huge), range(32)))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    for answer in answers:
        status, body = status_and_body(answer)
        assert status == 431
        assert body["errors"][0]["extensions"]["code"] == "REQUEST_HEADER_FIELDS_TOO_LARGE"
    assert not seen.seen
    assert peak < 32 << 20, peak  # they sent 128 MiB


def test_headers_over_the_setting_are_431_before_the_endpoint(
    sample_server: BackgroundServer, seen: SampleUpstream
) -> None:
    """20 KB of headers (under the connection's bound, over GATEWAY_MAX_HEADER_BYTES): 431."""
    request = graphql_post(f"authorization: Bearer {DEMO_TOKEN}\r\nx-pad: {'p' * 20000}\r\n")
    with guarded_gateway(sample_server.url) as gateway:
        status, body = status_and_body(exchange(gateway.port, request))
    assert status == 431
    assert body["errors"][0]["extensions"]["code"] == "REQUEST_HEADER_FIELDS_TOO_LARGE"
    assert not seen.seen


def test_a_long_query_string_is_414() -> None:
    """A GET whose query string is over GATEWAY_MAX_BODY_BYTES is 414, `URI_TOO_LONG`."""
    line = f"GET /graphql?query={'a' * 5000} HTTP/1.1\r\n"
    request = (line + "host: gateway\r\nconnection: close\r\n\r\n").encode()
    with guarded_gateway(max_body_bytes=4096) as gateway:
        status, body = status_and_body(exchange(gateway.port, request))
    assert status == 414
    assert body["errors"][0]["extensions"]["code"] == "URI_TOO_LONG"


def test_headers_sent_slowly_get_408_and_the_connection_closes() -> None:
    """A client that stops halfway through its headers is answered 408 after
    GATEWAY_CLIENT_TIMEOUT, and its connection is closed."""
    with guarded_gateway(client_timeout=0.5) as gateway:
        started = time.monotonic()
        status, body = status_and_body(exchange(gateway.port, b"POST /graphql HTTP/1.1\r\nho"))
    assert status == 408
    assert body["errors"][0]["extensions"]["code"] == "REQUEST_TIMEOUT"
    assert 0.4 < time.monotonic() - started < 5


def test_a_connection_that_sends_nothing_is_closed() -> None:
    """An idle new connection does not stay open: it is closed after GATEWAY_CLIENT_TIMEOUT."""
    with guarded_gateway(client_timeout=0.5) as gateway:
        started = time.monotonic()
        assert exchange(gateway.port, b"") == b""
    assert time.monotonic() - started < 5


def test_a_trickling_body_is_cut_off_and_counted_as_the_clients_doing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A body that stops arriving is cut off at the timeout; the request counts as
    `client_disconnect`, logged at info, never as an internal error."""
    caplog.set_level(logging.INFO)
    partial = graphql_post(body=b'{"query": "{ __typename }"}')[:-10]
    with guarded_gateway(client_timeout=0.5) as gateway:
        exchange(gateway.port, partial)
        metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'outcome="client_disconnect"' in metrics
    assert 'outcome="internal_error"' not in metrics
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_an_aborted_upload_is_a_client_disconnect(caplog: pytest.LogCaptureFixture) -> None:
    """A client that closes mid-body: counted as `client_disconnect`, no ERROR, no traceback."""
    caplog.set_level(logging.INFO)
    partial = graphql_post(body=b'{"query": "{ __typename }"}')[:-10]
    with guarded_gateway() as gateway:
        exchange(gateway.port, partial, close_after_send=True)
        deadline = time.monotonic() + 5
        metrics = ""
        while 'outcome="client_disconnect"' not in metrics and time.monotonic() < deadline:
            time.sleep(0.05)
            metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'outcome="client_disconnect"' in metrics
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_serve_caps_connections_and_keep_alive_from_settings() -> None:
    """uvicorn gets GATEWAY_MAX_CONNECTIONS and GATEWAY_KEEPALIVE_TIMEOUT, and the bounded
    protocol with the head and time limits."""
    options = uvicorn_options(
        make_settings(max_connections=7, keepalive_timeout=3, client_timeout=4)
    )
    assert options["limit_concurrency"] == 7
    assert options["timeout_keep_alive"] == 3
    assert options["http"].keywords["limits"] == ConnectionLimits(
        max_head_bytes=16384 + 65536 + 1024, read_timeout=4
    )


async def test_variables_nested_past_the_json_writer_are_answered_not_crashed() -> None:
    """A query whose variables nest 400 levels deep (within the body limit): orjson reads them
    but will not write them back, so the whole-response cache does not key the request; it
    runs and answers as usual, never an internal error."""
    nested: object = "leaf"
    for _ in range(400):
        nested = {"a": nested}
    app = in_process_gateway(SampleUpstream().app())
    async with asgi_client(app) as client:
        response = await client.post(
            "/graphql",
            json={
                "query": "query($x: JSON) { jobs(first: 1) { totalCount } }",
                "variables": {"x": nested},
            },
            headers=DEMO_AUTH,
        )
    codes = [error["extensions"]["code"] for error in response.json().get("errors", [])]
    assert "INTERNAL_SERVER_ERROR" not in codes
    assert response.status_code == 200
