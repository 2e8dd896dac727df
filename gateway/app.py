"""The HTTP app: a Starlette app serving GraphQL (and GraphiQL) on `/graphql`.

The lifespan opens the one pooled `httpx.AsyncClient` the app shares and closes it on shutdown;
each GraphQL request gets a `RequestContext` holding it, the settings and the caller's
Authorization header.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import TypedDict

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from gateway.circuit_breaker import CircuitBreaker
from gateway.context import RequestContext
from gateway.schema import build_schema
from gateway.settings import Settings
from gateway.upstream import UpstreamClient, new_http_client


class AppState(TypedDict):
    """What the lifespan hands every request (as `request.state`)."""

    upstream: UpstreamClient


class GraphQLEndpoint(GraphQL[RequestContext, None]):
    """Strawberry's ASGI view, wired to the gateway's context and orjson."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(build_schema(), graphql_ide="graphiql", allow_queries_via_get=True)
        self._settings = settings

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> RequestContext:
        return RequestContext(
            settings=self._settings,
            upstream=request.state.upstream,
            authorization_header=request.headers.get("authorization"),
            deadline=time.monotonic() + self._settings.request_deadline,
        )

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)


def create_app(
    settings: Settings, *, upstream_transport: httpx.AsyncBaseTransport | None = None
) -> Starlette:
    """The gateway as an ASGI app, configured by `settings`.

    `upstream_transport` replaces the network under the upstream client (tests only).
    """

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[AppState]:
        breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown)
        async with new_http_client(settings, upstream_transport) as http:
            yield {"upstream": UpstreamClient(http, settings, breaker)}

    async def root(_request: Request) -> Response:
        return RedirectResponse("/graphql")

    graphql = GraphQLEndpoint(settings)
    return Starlette(
        routes=[
            Route("/", root, methods=["GET"]),
            Route("/graphql", graphql, methods=["GET", "POST"]),
        ],
        lifespan=lifespan,
    )
