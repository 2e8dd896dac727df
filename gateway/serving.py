"""Running the ASGI apps: under uvicorn on a background thread (demo, tests), or in process."""

from __future__ import annotations

import contextlib
import functools
import gc
import threading
import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.http_protocol import ConnectionLimits, GuardedHttpToolsProtocol
from gateway.settings import Settings

# A young-generation collection every 10,000 net allocations instead of 700. One cache miss
# decodes and projects a few thousand objects, so the default collected several times per
# request; most were still in flight (32 concurrent requests) and so were promoted and scanned
# again. Measured in process on a `jobs(first: 20)` miss: 965-1095 µs of CPU per request with
# the defaults, 800-870 µs with this and the freeze.
_YOUNG_THRESHOLD = 10_000


# A request line's own words (method, path, version) on top of its query string.
_REQUEST_LINE_OVERHEAD = 1024


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for serving the gateway: its connection bounds (`http_protocol`),
    connection cap and keep-alive time, from `settings`. `serve`, the demo and the tests'
    real servers all use these."""
    limits = ConnectionLimits(
        max_head_bytes=settings.max_header_bytes + settings.max_body_bytes + _REQUEST_LINE_OVERHEAD,
        read_timeout=settings.client_timeout,
        max_header_bytes=settings.max_header_bytes,
        max_query_bytes=settings.max_body_bytes,
    )
    return {
        "http": functools.partial(GuardedHttpToolsProtocol, limits=limits),
        "limit_concurrency": settings.max_connections,
        "timeout_keep_alive": settings.keepalive_timeout,
    }


def prepare_serving_process() -> None:
    """Tune the garbage collector for a long-running server, once its app is built.

    `gc.freeze()` moves everything alive now (modules, the schema, the app) out of the
    collector's sight, so full collections no longer walk it; the larger young threshold makes
    collections rarer. Called by `serve` and by each worker, never on import or in tests.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(_YOUNG_THRESHOLD, 20, 20)


class BackgroundServer:
    """A uvicorn server on its own thread and event loop, started and stopped as a context.

    Bind port 0 to get a free port; `url` says which one was taken. Used for the demo's sample
    upstream, and by the tests for real servers on real sockets; given the gateway's `settings`,
    it serves with the same connection bounds as `serve`.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        settings: Settings | None = None,
    ) -> None:
        options = uvicorn_options(settings) if settings is not None else {}
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="on",
            access_log=False,
            **options,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="uvicorn", daemon=True)

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        server = self._server.servers[0]
        return int(server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`: the server's base URL."""
        return f"http://{self._server.config.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        """Start serving; return once the socket is bound and the app's lifespan has started."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server stopped while starting (is the port taken?)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start within {timeout} s")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, finish what is in flight, and wait for the thread to end."""
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.asynccontextmanager
async def in_process_client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling `app` in process (no sockets), with its lifespan running.

    For tests and benchmarks that want the whole app without a server in the way.
    """
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            # What uvicorn does with lifespan state: every request gets a shallow copy.
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield client
