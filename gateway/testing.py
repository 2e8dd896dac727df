"""The app in process, for tests and benchmarks that want it whole without a server in the way."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send


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
