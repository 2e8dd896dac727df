"""Shared fixtures: settings from dicts, the sample upstream, gateways in process and on sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp

from gateway.app import create_app
from gateway.background import BackgroundServer
from gateway.cache import new_page_cache
from gateway.caller import Caller, UpstreamBudget
from gateway.context import RequestContext, is_bearer
from gateway.memory_store import MemoryStore
from gateway.metrics import Metrics
from gateway.sample_upstream import DEMO_TOKEN, SampleUpstream
from gateway.schema import build_schema
from gateway.settings import Settings
from gateway.testing import in_process_client
from gateway.upstream import CircuitBreaker, UpstreamClient

from .redis_process import RedisProcess, free_port

DEMO_AUTH = {"authorization": f"Bearer {DEMO_TOKEN}"}
ROOT = Path(__file__).resolve().parent.parent
"""The repository's root."""
SCHEMA = build_schema()
"""The schema without settings (no limits): what `execute` runs by default."""
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_settings(
    upstream_url: str = "http://upstream.invalid", /, **overrides: object
) -> Settings:
    """Settings as the environment would give them, from a plain dict: the defaults a user
    gets (the cache on), but for what the test overrides."""
    environ = {"GATEWAY_UPSTREAM_URL": upstream_url}
    environ.update({f"GATEWAY_{key.upper()}": str(value) for key, value in overrides.items()})
    return Settings.from_env(environ)


def bearer_caller(
    authorization: str = f"Bearer {DEMO_TOKEN}", *, budget: int = 30, deadline: float = 10.0
) -> Caller:
    """A `Caller` as the HTTP layer builds it for a bearer token (the digest is a test's)."""
    return Caller(
        authorization=authorization,
        credential=f"test-digest-of-{len(authorization)}-{hash(authorization):x}",
        deadline=time.monotonic() + deadline,
        budget=UpstreamBudget(budget),
    )


def request_context(
    transport: httpx.AsyncBaseTransport,
    authorization: str | None = f"Bearer {DEMO_TOKEN}",
    **overrides: object,
) -> RequestContext:
    """The context the HTTP layer would build, over `transport` (usually a MockTransport)."""
    settings = make_settings(**overrides)
    breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown)
    caller = None
    if is_bearer(authorization):
        assert authorization is not None
        caller = bearer_caller(
            authorization,
            budget=settings.upstream_call_budget,
            deadline=settings.request_deadline,
        )
    cache = new_page_cache(settings, Metrics(), MemoryStore(settings.cache_max_bytes))
    return RequestContext(
        settings=settings,
        upstream=UpstreamClient(transport, settings, breaker, cache),
        authorization_header=authorization,
        bearer=caller,
    )


asgi_client = in_process_client


def network_gateway(upstream_url: str, **overrides: object) -> Any:
    """The gateway app calling `upstream_url` over real TCP (served in process here)."""
    return create_app(make_settings(upstream_url, **overrides))


def in_process_gateway(upstream: ASGIApp | httpx.AsyncBaseTransport, **overrides: object) -> Any:
    """The gateway app whose upstream is `upstream` (an ASGI app or a transport), no sockets."""
    transport = (
        upstream
        if isinstance(upstream, httpx.AsyncBaseTransport)
        else httpx.ASGITransport(app=upstream)
    )
    return create_app(make_settings(**overrides), upstream_transport=transport)


async def post(app: Any, body: object, **headers: str) -> httpx.Response:
    """POST `body` as JSON to the app's /graphql with the demo token and `headers`."""
    async with asgi_client(app) as client:
        return await client.post("/graphql", json=body, headers={**DEMO_AUTH, **headers})


async def graphql(
    client: httpx.AsyncClient,
    query: str,
    variables: Mapping[str, object] | None = None,
    headers: Mapping[str, str] | None = DEMO_AUTH,
) -> dict[str, Any]:
    """POST a query; assert HTTP 200 and JSON; return the decoded body."""
    body: dict[str, object] = {"query": query}
    if variables is not None:
        body["variables"] = dict(variables)
    response = await client.post("/graphql", json=body, headers=dict(headers or {}))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    decoded: dict[str, Any] = response.json()
    return decoded


@pytest.fixture(scope="session")
def sample_upstream() -> SampleUpstream:
    """The default sample data: team apiteam with 237 jobs, fieldteam with 64."""
    return SampleUpstream()


@pytest.fixture(scope="session")
def sample_server(sample_upstream: SampleUpstream) -> Iterator[BackgroundServer]:
    """The sample upstream on a real loopback socket, for the whole session."""
    with BackgroundServer(sample_upstream.app()) as server:
        yield server


@pytest.fixture
def seen(sample_upstream: SampleUpstream) -> SampleUpstream:
    """The sample upstream with its request log emptied, to count what one test causes."""
    sample_upstream.seen.clear()
    return sample_upstream


@contextlib.contextmanager
def served_gateway(upstream_url: str, **overrides: object) -> Iterator[BackgroundServer]:
    """A real uvicorn gateway on a loopback socket, calling `upstream_url` over TCP."""
    settings = make_settings(upstream_url, **overrides)
    with BackgroundServer(create_app(settings), settings=settings) as server:
        yield server


@pytest.fixture
def gateway_server(sample_server: BackgroundServer) -> Iterator[BackgroundServer]:
    """A gateway with the default settings (its cache empty), talking to the sample upstream."""
    with served_gateway(sample_server.url) as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    """A real redis-server for the session (emptied by `redis`)."""
    server = RedisProcess().start()
    yield server
    server.stop()


@pytest.fixture
def redis(redis_server: RedisProcess) -> RedisProcess:
    """The session's redis-server, empty."""
    redis_server.command("FLUSHALL")
    return redis_server


NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="session")
def node_clients() -> Path:
    """tests/node with its npm packages (graphql-http, Apollo Client) installed from the lock."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed for the client and spec-audit tests (Node 20 is on the machine)")
    installed = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--silent"],
            cwd=NODE_DIR,
            check=True,
            timeout=300,
        )
    return NODE_DIR


def run_node(script: str, *arguments: str) -> Any:
    """Run tests/node/`script` with `arguments`; return its JSON output."""
    node = shutil.which("node") or "node"
    finished = subprocess.run(
        [node, str(NODE_DIR / script), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    return json.loads(finished.stdout)


class PerTokenUpstream:
    """An upstream whose every row names the token that fetched it; counts calls."""

    def __init__(
        self, size: int = 250, delay: float = 0.0, cache_control: str | None = None
    ) -> None:
        self.size = size
        self.delay = delay
        self.cache_control = cache_control
        self.calls: Counter[tuple[str, str]] = Counter()
        self.failing = False

    async def handle(self, request: httpx.Request) -> httpx.Response:
        token = request.headers["authorization"].partition(" ")[2]
        self.calls[(token, request.url.query.decode())] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failing:
            return httpx.Response(503)
        skip, limit = int(request.url.params["skip"]), int(request.url.params["limit"])
        rows = [
            {"jobId": f"{token}:{n}", "team": token}
            for n in range(skip, min(skip + limit, self.size))
        ]
        headers = {"cache-control": self.cache_control} if self.cache_control else {}
        return httpx.Response(200, json=rows, headers=headers)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    @property
    def total(self) -> int:
        return sum(self.calls.values())


class Clock:
    """A clock that moves only when a test moves it (`now`)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """An httpx transport that answers with `handler` and keeps every request it saw."""

    def __init__(self, handler: Handler) -> None:
        self.requests: list[httpx.Request] = []
        self._handler = handler

    def transport(self) -> httpx.MockTransport:
        def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return self._handler(request)

        return httpx.MockTransport(record)


async def execute(
    transport: httpx.AsyncBaseTransport,
    query: str,
    variables: dict[str, Any] | None = None,
    authorization: str | None = "Bearer demo-token",
    schema: Any = None,
    **overrides: object,
) -> Any:
    context = request_context(transport, authorization, **overrides)
    return await (schema or SCHEMA).execute(query, variable_values=variables, context_value=context)


def job_page(jobs: Sequence[object]) -> Handler:
    return lambda request: httpx.Response(200, json=jobs)


def page(size: int) -> str:
    """A page of `size` jobs: another query (so no whole-response reuse), the same block."""
    return f"{{ jobs(first: {size}) {{ nodes {{ jobId team }} }} }}"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def run_serve(environ: dict[str, str], *arguments: str) -> subprocess.Popen[str]:
    """`python -m gateway serve` in a child process, with only `environ`'s GATEWAY_ variables."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GATEWAY_", "PROMETHEUS_"))
    }
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", *arguments],
        env={**clean, **environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_until_up(url: str) -> None:
    """Wait until `url`/healthz answers 200."""
    for _ in range(200):
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not come up")


@contextlib.contextmanager
def serving(upstream_url: str, **variables: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`serve` in a child process over `upstream_url` on a free port, once it answers: the
    process and its URL; killed afterwards if it still runs."""
    port = free_port()
    environ = {"GATEWAY_UPSTREAM_URL": upstream_url, "GATEWAY_PORT": str(port), **variables}
    process = run_serve(environ)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
