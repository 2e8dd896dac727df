"""`jobChanged` end to end: a real uvicorn gateway, the sample upstream over TCP, and a real
WebSocket client (`websockets`) speaking graphql-transport-ws, or httpx reading multipart HTTP.

Each test that changes jobs runs its own sample upstream, so the session's data stays as the
other tests expect it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.asyncio.client import ClientConnection

from gateway.background import BackgroundServer
from gateway.sample_upstream import DEMO_TOKEN, WRITER_TOKEN, SampleUpstream

from .conftest import DEMO_AUTH, run_node, served_gateway, serving

pytestmark = pytest.mark.e2e

WATCH = (
    "subscription Watch($first: Int) { jobChanged(first: $first) "
    "{ kind jobId job { jobId metadata { status } } } }"
)
DEMO_INIT = {"Authorization": f"Bearer {DEMO_TOKEN}"}
FAST = {"live_poll_interval": 0.1, "cache_ttl": 0, "upstream_retries": 0}


@contextlib.contextmanager
def live_stack(
    sample: SampleUpstream | None = None,
    wrap: Callable[[ASGIApp], ASGIApp] | None = None,
    **overrides: object,
) -> Iterator[tuple[SampleUpstream, str]]:
    """A sample upstream of its own (optionally wrapped) and a gateway over it: their data
    and the gateway's URL."""
    sample = sample or SampleUpstream()
    app = sample.app()
    with (
        BackgroundServer(wrap(app) if wrap else app) as upstream,
        served_gateway(upstream.url, **{**FAST, **overrides}) as gateway,
    ):
        yield sample, gateway.url


@contextlib.asynccontextmanager
async def connected(
    url: str, payload: object = DEMO_INIT, headers: dict[str, str] | None = None
) -> AsyncIterator[ClientConnection]:
    """A graphql-transport-ws socket to the gateway, initialised and acknowledged."""
    async with websockets.connect(
        url.replace("http://", "ws://") + "/graphql",
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
        additional_headers=headers,
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}
        yield ws


async def subscribe(
    ws: ClientConnection, operation_id: str, first: int = 5, query: str = WATCH
) -> None:
    message = {"query": query, "variables": {"first": first}}
    await ws.send(json.dumps({"id": operation_id, "type": "subscribe", "payload": message}))


async def receive(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    """The next `count` messages, each within 5 s."""
    return [json.loads(await asyncio.wait_for(ws.recv(), 5.0)) for _ in range(count)]


async def close_code(ws: ClientConnection) -> int | None:
    """The code the gateway closes the socket with, waiting at most 5 s for it."""
    try:
        await asyncio.wait_for(ws.recv(), 5)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
    raise AssertionError("the socket is still open, with a message")


async def quiet(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Whatever arrives within `seconds` (nothing, when the test expects silence)."""
    arrived: list[dict[str, Any]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                arrived.append(json.loads(await ws.recv()))
    return arrived


def list_calls(sample: SampleUpstream) -> int:
    return sum(1 for request in sample.seen if request.path == "/jobs/v1/")


async def polled(sample: SampleUpstream, times: int = 1) -> None:
    """Wait until the sample upstream served `times` more list calls (a poll's baseline)."""
    target = list_calls(sample) + times
    for _ in range(200):
        if list_calls(sample) >= target:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the poller did not poll")


def events(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (
            message["payload"]["data"]["jobChanged"]["kind"],
            message["payload"]["data"]["jobChanged"]["jobId"],
        )
        for message in messages
    ]


def test_each_kind_of_change_arrives_in_list_order() -> None:
    """After the baseline (no events), an update, a deletion and the job it lets into the
    window arrive as UPDATED, ADDED, REMOVED, with the job as polled (null when removed)."""

    async def scenario(sample: SampleUpstream, url: str) -> None:
        jobs = sample.jobs_of("apiteam")
        async with connected(url) as ws:
            await subscribe(ws, "1")
            await polled(sample, 2)
            assert await quiet(ws, 0.2) == []
            jobs[1]["metadata"]["status"] = "Completed"
            removed, entering = jobs[2], jobs[5]
            del jobs[2]
            messages = await receive(ws, 3)
        assert events(messages) == [
            ("UPDATED", jobs[1]["jobId"]),
            ("ADDED", entering["jobId"]),
            ("REMOVED", removed["jobId"]),
        ]
        assert {message["id"] for message in messages} == {"1"}
        assert messages[0]["payload"]["data"]["jobChanged"]["job"] == {
            "jobId": jobs[1]["jobId"],
            "metadata": {"status": "Completed"},
        }
        assert messages[2]["payload"]["data"]["jobChanged"]["job"] is None

    with live_stack() as (sample, url):
        asyncio.run(scenario(sample, url))


def test_an_events_job_resolves_upstream_fields_with_the_subscribers_credential() -> None:
    """`job { snapshots }` in an event is fetched for that event with the subscriber's token
    (the sample's snapshots of the job: one earlier version after one write)."""

    async def scenario(sample: SampleUpstream, url: str) -> None:
        query = "subscription { jobChanged(first: 3) { kind job { snapshots } } }"
        async with connected(url) as ws:
            await subscribe(ws, "1", query=query)
            await polled(sample, 2)
            job = sample.jobs_of("apiteam")[0]
            sample.writes.snapshots[job["metadata"]["clientJobId"]] = [{"version": 1}]
            job["metadata"]["status"] = "Completed!"
            (event,) = await receive(ws, 1)
        assert event["payload"] == {
            "data": {"jobChanged": {"kind": "UPDATED", "job": {"snapshots": [{"version": 1}]}}}
        }
        (call,) = [request for request in sample.seen if "/snapshots/" in request.path]
        assert call.header("authorization") == f"Bearer {DEMO_TOKEN}"

    with live_stack() as (sample, url):
        asyncio.run(scenario(sample, url))


def test_a_new_job_pushes_the_last_one_out() -> None:
    """A job created at the top of the list is ADDED and the window's last job REMOVED."""

    async def scenario(sample: SampleUpstream, url: str) -> None:
        jobs = sample.jobs_of("apiteam")
        async with connected(url) as ws:
            await subscribe(ws, "1", first=3)
            await polled(sample, 2)
            pushed_out = jobs[2]
            jobs.insert(0, {**jobs[10], "jobId": "f" * 24})
            assert events(await receive(ws, 2)) == [
                ("ADDED", "f" * 24),
                ("REMOVED", pushed_out["jobId"]),
            ]

    with live_stack() as (sample, url):
        asyncio.run(scenario(sample, url))


def test_the_upgrade_requests_header_is_a_credential_too() -> None:
    """A client that sets Authorization on the upgrade request may send an empty
    connection_init; its subscription works as with the payload."""

    async def scenario(sample: SampleUpstream, url: str) -> None:
        async with connected(url, {}, headers=DEMO_AUTH) as ws:
            await subscribe(ws, "1")
            await polled(sample, 2)
            sample.jobs_of("apiteam")[0]["metadata"]["status"] = "Paused!"
            assert events(await receive(ws, 1)) == [
                ("UPDATED", sample.jobs_of("apiteam")[0]["jobId"])
            ]

    with live_stack() as (sample, url):
        asyncio.run(scenario(sample, url))


@pytest.mark.parametrize(
    "payload",
    [
        {},
        None,
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
        {"Authorization": 7},
        {"Authorization": "Bearer t\u00f6ken"},
    ],
)
def test_no_bearer_token_closes_the_socket_with_4401_and_calls_nothing(payload: object) -> None:
    """connection_init without a bearer credential: close code 4401, no upstream call."""

    async def scenario(sample: SampleUpstream, url: str) -> None:
        async with websockets.connect(
            url.replace("http://", "ws://") + "/graphql",
            subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
        ) as ws:
            message: dict[str, Any] = {"type": "connection_init"}
            if payload is not None:
                message["payload"] = payload
            await ws.send(json.dumps(message))
            assert await close_code(ws) == 4401
        assert sample.seen == type(sample.seen)()

    with live_stack() as (sample, url):
        asyncio.run(scenario(sample, url))


def test_a_subscribe_before_connection_init_closes_4401_and_other_protocols_4406() -> None:
    """The protocol's own rules hold: subscribe first is 4401; an unknown subprotocol 4406."""

    async def scenario(url: str) -> None:
        socket_url = url.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(
            socket_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
        ) as ws:
            await subscribe(ws, "1")
            assert await close_code(ws) == 4401
        async with websockets.connect(
            socket_url, subprotocols=[websockets.Subprotocol("graphql-ws")]
        ) as ws:
            assert await close_code(ws) == 4406

    with live_stack() as (_sample, url):
        asyncio.run(scenario(url))


MALFORMED_MESSAGES = [
    "not an object",
    ["subscribe"],
    {"id": ["1"], "type": "subscribe", "payload": {"query": WATCH}},
    {"id": "", "type": "subscribe", "payload": {"query": WATCH}},
    {"id": "1", "type": "subscribe", "payload": "query"},
    {"id": "1", "type": "subscribe", "payload": {"query": 7}},
    {"id": "1", "type": "subscribe", "payload": {"query": WATCH, "variables": 5}},
    {"id": "1", "type": "subscribe", "payload": {"query": WATCH, "operationName": 5}},
    {"id": "1", "type": "subscribe", "payload": {"query": WATCH, "extensions": []}},
    {"id": "1", "type": "unknown"},
]


def test_a_malformed_message_closes_the_socket_with_4400() -> None:
    """A message Strawberry could trip on is answered as the protocol says (close 4400),
    never with an internal error or a dropped connection."""

    async def scenario(url: str) -> None:
        for message in MALFORMED_MESSAGES:
            async with connected(url) as ws:
                await ws.send(json.dumps(message))
                assert await close_code(ws) == 4400, message

    with live_stack() as (_sample, url):
        asyncio.run(scenario(url))


def test_a_message_nested_past_any_parser_closes_the_socket_with_4400() -> None:
    """30,000 nested arrays in one message: refused as invalid JSON (4400), not a recursion
    error that drops the connection."""

    async def scenario(url: str) -> None:
        async with connected(url) as ws:
            await ws.send("[" * 30_000 + "]" * 30_000)
            assert await close_code(ws) == 4400

    with live_stack() as (_sample, url):
        asyncio.run(scenario(url))


def test_bad_variables_and_documents_get_coded_errors() -> None:
    """A variable of the wrong type, an unknown field, two root fields, a document past the
    request limits and a syntax error each get an `error` message with their code; the socket
    stays open."""
    cases = [
        ({"query": WATCH, "variables": {"first": "x"}}, "BAD_USER_INPUT"),
        ({"query": "subscription { jobChanged { nope } }"}, "GRAPHQL_VALIDATION_FAILED"),
        (
            {"query": "subscription { a: jobChanged { kind } b: jobChanged { kind } }"},
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            {"query": "subscription { jobChanged { " + "kind " * 50 + "} }"},
            "TOO_MANY_REPEATED_FIELDS",
        ),
        ({"query": "subscription {"}, "GRAPHQL_PARSE_FAILED"),
    ]

    async def scenario(url: str) -> None:
        async with connected(url) as ws:
            for number, (payload, code) in enumerate(cases):
                await ws.send(
                    json.dumps({"id": str(number), "type": "subscribe", "payload": payload})
                )
                (answer,) = await receive(ws, 1)
                assert answer["type"] == "error"
                assert answer["payload"][0]["extensions"]["code"] == code
            await ws.ping()

    with live_stack() as (_sample, url):
        asyncio.run(scenario(url))


def test_a_message_larger_than_a_request_body_closes_the_socket() -> None:
    """A WebSocket message over `GATEWAY_MAX_BODY_BYTES` is refused by closing with 1009
    (message too big), before it is parsed."""

    async def scenario(url: str) -> None:
        async with connected(url) as ws:
            await ws.send(
                json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "#" * 70_000}})
            )
            assert await close_code(ws) == 1009

    with live_stack() as (_sample, url):
        asyncio.run(scenario(url))


def test_a_thousand_subscribers_of_one_caller_share_one_call_per_interval() -> None:
    """1,000 subscriptions of one token (50 sockets of 20) cost one upstream call per
    interval, all get the change, and the metrics count one poller and 1,000 subscriptions."""

    async def scenario(sample: SampleUpstream, url: str) -> None:
        async with contextlib.AsyncExitStack() as stack:
            sockets = [await stack.enter_async_context(connected(url)) for _ in range(50)]
            for number, ws in enumerate(sockets):
                for index in range(20):
                    await subscribe(ws, f"{number}-{index}")
            await polled(sample, 2)
            metrics = (await asyncio.to_thread(httpx.get, f"{url}/metrics")).text
            assert "gateway_live_pollers 1.0" in metrics
            assert "gateway_live_subscriptions 1000.0" in metrics
            before, started = list_calls(sample), time.monotonic()
            await asyncio.sleep(1.0)
            calls, elapsed = list_calls(sample) - before, time.monotonic() - started
            assert calls <= elapsed / 0.1 + 1
            sample.jobs_of("apiteam")[0]["metadata"]["status"] = "Completed!"
            for ws in sockets:
                assert {message["id"] for message in await receive(ws, 20)} == {
                    f"{sockets.index(ws)}-{index}" for index in range(20)
                }
        await asyncio.sleep(0.3)
        metrics = (await asyncio.to_thread(httpx.get, f"{url}/metrics")).text
        assert "gateway_live_pollers 0.0" in metrics
        assert "gateway_live_subscriptions 0.0" in metrics
        assert 'gateway_live_events_total{kind="UPDATED"} 1000.0' in metrics

    with live_stack() as (sample, url):
        asyncio.run(scenario(sample, url))


def test_polls_go_through_the_page_cache_shared_with_queries() -> None:
    """With the page cache on, a query for the same window right after a poll costs no call:
    the poller's fetch is the query's cache hit."""

    async def scenario(sample: SampleUpstream, url: str) -> None:
        async with connected(url) as ws:
            await subscribe(ws, "1", first=10)
            await polled(sample)
            before = list_calls(sample)
            query = {"query": "{ jobs(first: 10) { nodes { jobId } } }"}
            response = await asyncio.to_thread(
                httpx.post, f"{url}/graphql", json=query, headers=DEMO_AUTH
            )
            assert len(response.json()["data"]["jobs"]["nodes"]) == 10
            assert list_calls(sample) == before

    with live_stack(cache_ttl=30, live_poll_interval=5) as (sample, url):
        asyncio.run(scenario(sample, url))


def test_two_teams_never_see_each_others_events() -> None:
    """Subscribers of two credentials each get only their own team's changes."""

    async def scenario(sample: SampleUpstream, url: str) -> None:
        field_init = {"Authorization": "Bearer demo-token-fieldteam"}
        async with connected(url) as api, connected(url, field_init) as field:
            await subscribe(api, "1")
            await subscribe(field, "1")
            await polled(sample, 4)
            sample.jobs_of("fieldteam")[0]["metadata"]["status"] = "Completed!"
            assert events(await receive(field, 1)) == [
                ("UPDATED", sample.jobs_of("fieldteam")[0]["jobId"])
            ]
            assert await quiet(api, 0.5) == []
            sample.jobs_of("apiteam")[3]["metadata"]["status"] = "Completed!"
            assert events(await receive(api, 1)) == [
                ("UPDATED", sample.jobs_of("apiteam")[3]["jobId"])
            ]
            assert await quiet(field, 0.5) == []

    with live_stack() as (sample, url):
        asyncio.run(scenario(sample, url))


class Outage:
    """ASGI wrapper: answers 503 while `down`, else passes to the sample upstream."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.down = False
        self.refused = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.down:
            self.refused += 1
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"down"})
            return
        await self.app(scope, receive, send)


def test_an_outage_is_reported_once_and_the_subscription_resumes_without_false_events() -> None:
    """While the upstream answers 503 the subscriber gets one error event (data null,
    UPSTREAM_UNAVAILABLE) however many polls fail, polls back off, and afterwards only the real
    change arrives: the baseline survived."""
    outages: list[Outage] = []

    def wrap(app: ASGIApp) -> ASGIApp:
        outages.append(Outage(app))
        return outages[0]

    async def scenario(sample: SampleUpstream, url: str) -> None:
        outage = outages[0]
        async with connected(url) as ws:
            await subscribe(ws, "1")
            await polled(sample, 2)
            outage.down = True
            (error,) = await receive(ws, 1)
            assert error["payload"]["data"] is None
            assert error["payload"]["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
            assert await quiet(ws, 1.0) == []
            assert 2 <= outage.refused <= 5  # 0.2 s, 0.4 s, 0.8 s apart: backing off
            sample.jobs_of("apiteam")[4]["metadata"]["status"] = "Completed!"
            outage.down = False
            assert events(await receive(ws, 1)) == [
                ("UPDATED", sample.jobs_of("apiteam")[4]["jobId"])
            ]
            assert await quiet(ws, 0.3) == []

    with live_stack(wrap=wrap, breaker_failures=1000) as (sample, url):
        asyncio.run(scenario(sample, url))


@pytest.mark.parametrize(
    ("token", "code"),
    [("not-a-granted-token", "UNAUTHENTICATED"), ("demo-token-read-only", "FORBIDDEN")],
)
def test_upstream_401_and_403_end_the_subscription_with_their_code(token: str, code: str) -> None:
    """A credential the upstream refuses ends its subscriptions: one error, then complete."""

    async def scenario(url: str) -> None:
        async with connected(url, {"Authorization": f"Bearer {token}"}) as ws:
            await subscribe(ws, "1")
            error, complete = await receive(ws, 2)
        assert error["type"] == "next"
        assert error["payload"]["errors"][0]["extensions"]["code"] == code
        assert complete == {"id": "1", "type": "complete"}

    with live_stack() as (_sample, url):
        asyncio.run(scenario(url))


def test_limits_and_arguments_are_refused_with_codes_before_any_poll() -> None:
    """Past the per-connection or per-process limit, `first` out of range, or a query over the
    socket: an `error` message with a stable code, and no poller started for it."""

    async def scenario(sample: SampleUpstream, url: str) -> None:
        async with connected(url) as ws:
            await subscribe(ws, "1")
            await subscribe(ws, "2")
            await subscribe(ws, "3")
            (third,) = await receive(ws, 1)
            assert third["id"] == "3"
            assert third["type"] == "error"
            assert third["payload"][0]["extensions"]["code"] == "SUBSCRIPTION_LIMIT_EXCEEDED"
            for operation_id, first in (("4", 101), ("5", 0)):
                await subscribe(ws, operation_id, first=first)
                (refused,) = await receive(ws, 1)
                assert refused["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
            await ws.send(
                json.dumps(
                    {
                        "id": "6",
                        "type": "subscribe",
                        "payload": {"query": "{ jobs { totalCount } }"},
                    }
                )
            )
            (query,) = await receive(ws, 1)
            assert query["type"] == "error"
            assert query["payload"][0]["extensions"]["code"] == "BAD_REQUEST"
            # The first socket's poller is the process's one allowed.
            async with connected(url, {"Authorization": "Bearer demo-token-fieldteam"}) as other:
                await subscribe(other, "1")
                (refused,) = await receive(other, 1)
                assert refused["payload"][0]["extensions"]["code"] == "POLLER_LIMIT_EXCEEDED"
        assert all(
            "fieldteam" not in (request.header("authorization") or "") for request in sample.seen
        )

    with live_stack(live_max_subscriptions=2, live_max_pollers=1) as (sample, url):
        asyncio.run(scenario(sample, url))


MULTIPART = 'multipart/mixed;boundary="graphql";subscriptionSpec="1.0",application/json'


def multipart_payloads(chunks: bytes) -> list[dict[str, Any]]:
    """The JSON payloads of a multipart subscription response (heartbeats `{}` left out)."""
    payloads = []
    for part in chunks.split(b"--graphql"):
        _head, _, body = part.partition(b"\r\n\r\n")
        if body.strip().startswith(b"{"):
            decoded = json.loads(body)
            if decoded:
                payloads.append(decoded)
    return payloads


def test_multipart_http_delivers_events_and_ends_cleanly() -> None:
    """Over HTTP with Accept multipart/mixed;subscriptionSpec=1.0: the events arrive as parts
    of one response (with X-Request-ID); a subscription sent as plain JSON is refused (400)."""
    with live_stack() as (sample, url):
        plain = httpx.post(f"{url}/graphql", json={"query": WATCH}, headers=DEMO_AUTH)
        assert plain.status_code == 400
        assert "multipart/mixed" in plain.json()["errors"][0]["message"]
        body = json.dumps({"query": WATCH, "variables": {"first": 5}})
        headers = {**DEMO_AUTH, "accept": MULTIPART, "content-type": "application/json"}
        received = b""
        with httpx.stream(
            "POST", f"{url}/graphql", content=body, headers=headers, timeout=5
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("multipart/mixed")
            assert response.headers["x-request-id"]
            changed = False
            for chunk in response.iter_bytes():
                received += chunk
                if not changed and list_calls(sample) >= 2:
                    sample.jobs_of("apiteam")[0]["metadata"]["status"] = "Completed!"
                    changed = True
                if b"UPDATED" in received:
                    break
        (event,) = multipart_payloads(received)
        assert event["payload"]["data"]["jobChanged"]["kind"] == "UPDATED"


BAD_MULTIPART = [
    (b"[]", "application/json", 400),
    (b'[{"query": "subscription { jobChanged { kind } }"}]', "application/json", 400),
    (b"{", "application/json", 400),
    (b'{"query": 7}', "application/json", 400),
    (
        b'{"query": "subscription { jobChanged { kind } }", "variables": 5}',
        "application/json",
        400,
    ),
    (b'{"query": "x"}', "text/plain", 415),
    (b'{"query": "' + b"x" * 70_000 + b'"}', "application/json", 413),
]


def test_a_bad_multipart_request_is_refused_in_the_json_error_shape() -> None:
    """Batches, bad JSON, wrong types, another media type or an oversized body: refused with
    the gateway's JSON error and code before Strawberry sees the request."""
    with live_stack() as (sample, url):
        for body, content_type, status in BAD_MULTIPART:
            headers = {**DEMO_AUTH, "accept": MULTIPART, "content-type": content_type}
            response = httpx.post(f"{url}/graphql", content=body, headers=headers, timeout=5)
            assert response.status_code == status, body[:40]
            assert response.json()["errors"][0]["extensions"]["code"]
        assert list(sample.seen) == []


def test_multipart_without_a_token_is_unauthenticated_without_a_call() -> None:
    """A multipart subscription with no Authorization header ends with UNAUTHENTICATED."""
    with live_stack() as (sample, url):
        headers = {"accept": MULTIPART, "content-type": "application/json"}
        response = httpx.post(f"{url}/graphql", json={"query": WATCH}, headers=headers, timeout=5)
        (refusal,) = multipart_payloads(response.content)
        assert refusal["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert list(sample.seen) == []


def test_a_socket_that_stops_answering_pings_is_closed() -> None:
    """A client that completes the handshake and then never reads or answers is closed after
    one unanswered ping, and its subscription is gone from the metrics."""
    with live_stack(live_ping_interval=0.2) as (_sample, url):
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as raw:
            raw.sendall(
                b"GET /graphql HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
            )
            raw.settimeout(5)
            started, received = time.monotonic(), b""
            while chunk := raw.recv(4096):
                received += chunk
            elapsed = time.monotonic() - started
        assert received.startswith(b"HTTP/1.1 101")
        assert elapsed < 3


def test_sigterm_completes_every_subscription_cleanly() -> None:
    """SIGTERM to `serve`: each open subscription gets `complete` before the socket closes, a
    multipart stream ends with its closing boundary, and the process exits."""
    streamed: list[bytes] = []

    def stream(url: str) -> None:
        headers = {**DEMO_AUTH, "accept": MULTIPART, "content-type": "application/json"}
        body = json.dumps({"query": WATCH})
        with httpx.stream("POST", f"{url}/graphql", content=body, headers=headers, timeout=10) as r:
            streamed.extend(r.iter_bytes())

    async def scenario(url: str) -> tuple[list[dict[str, Any]], Any]:
        async with connected(url) as ws:
            await subscribe(ws, "a")
            await subscribe(ws, "b")
            multipart = asyncio.create_task(asyncio.to_thread(stream, url))
            await asyncio.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            messages = []
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    messages.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            await asyncio.wait_for(multipart, 10)
            return messages, ws.close_code

    sample = SampleUpstream()
    with (
        BackgroundServer(sample.app()) as upstream,
        serving(upstream.url, GATEWAY_LIVE_POLL_INTERVAL="0.2") as (process, url),
    ):
        messages, close_code = asyncio.run(scenario(url))
        assert process.wait(10) in (0, -signal.SIGTERM)
    assert sorted(messages, key=lambda message: message["id"]) == [
        {"id": "a", "type": "complete"},
        {"id": "b", "type": "complete"},
    ]
    assert close_code is not None
    assert b"".join(streamed).endswith(b"--graphql--\r\n")


def test_apollo_client_subscribes_over_the_socket_and_over_multipart_http(
    node_clients: Path,
) -> None:
    """Apollo Client (GraphQLWsLink with graphql-ws, and HttpLink's multipart subscriptions)
    sees the UPDATED event of a job aborted by a mutation through the gateway: a caller's own
    write reaches its poller at the next poll."""
    with live_stack(live_poll_interval=0.2, cache_ttl=5) as (_sample, url):
        got = run_node("subscription.mjs", f"{url}/graphql", WRITER_TOKEN)
    for event in (got["socketEvent"], got["httpEvent"]):
        assert event["kind"] == "UPDATED"
        assert event["jobId"] == got["aborted"]
        assert event["job"]["metadata"]["status"] == "Aborted"
