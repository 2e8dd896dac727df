"""A uvicorn server on a background thread: the demo's sample upstream, and tests' real servers."""

from __future__ import annotations

import threading
import time
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

from gateway.serving import uvicorn_options
from gateway.settings import Settings


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
