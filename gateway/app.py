"""The HTTP app: a Starlette app serving GraphQL (and GraphiQL) on `/graphql`.

The lifespan opens the one pooled `httpx.AsyncClient` the app shares and closes it on shutdown;
each GraphQL request gets a `RequestContext` holding it, the settings and the caller's
Authorization header.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, TypedDict

import httpx
import orjson
from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from gateway.cache import new_page_cache
from gateway.circuit_breaker import CircuitBreaker
from gateway.context import RequestContext
from gateway.error_contract import INTERNAL_ERROR_MESSAGE
from gateway.errors import INTERNAL_SERVER_ERROR
from gateway.redaction import install_log_redaction, redacting
from gateway.schema import build_schema
from gateway.settings import Settings
from gateway.upstream import UpstreamClient, new_http_client

logger = logging.getLogger(__name__)


class AppState(TypedDict):
    """What the lifespan hands every request (as `request.state`)."""

    upstream: UpstreamClient


_HTTP_ERROR_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


def request_error(status: int, message: str, code: str = "BAD_REQUEST") -> Response:
    """A GraphQL-shaped JSON error response for a request that never reached execution."""
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        with redacting(request.headers.get("authorization")):
            try:
                response = await self.run(request)
            except HTTPException as error:
                # Strawberry answers bad HTTP requests in plain text; clients expect GraphQL JSON.
                response = request_error(error.status_code, error.reason)
            except Exception:
                logger.exception("Unexpected error outside GraphQL execution")
                response = request_error(200, INTERNAL_ERROR_MESSAGE, code=INTERNAL_SERVER_ERROR)
        await response(scope, receive, send)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    def parse_json(self, data: str | bytes) -> Any:
        decoded = super().parse_json(data)
        if not isinstance(decoded, dict | list):
            raise HTTPException(400, "The request body must be a JSON object")
        return decoded


def create_app(
    settings: Settings, *, upstream_transport: httpx.AsyncBaseTransport | None = None
) -> Starlette:
    """The gateway as an ASGI app, configured by `settings`.

    `upstream_transport` replaces the network under the upstream client (tests only).
    """
    install_log_redaction()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[AppState]:
        breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown)
        cache = new_page_cache(settings)
        try:
            async with new_http_client(settings, upstream_transport) as http:
                yield {"upstream": UpstreamClient(http, settings, breaker, cache)}
        finally:
            if cache is not None:
                await cache.close()

    async def root(_request: Request) -> Response:
        return RedirectResponse("/graphql")

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        response = request_error(
            error.status_code,
            error.detail,
            code=_HTTP_ERROR_CODES.get(error.status_code, "BAD_REQUEST"),
        )
        response.headers.update(error.headers or {})
        return response

    graphql = GraphQLEndpoint(settings)
    return Starlette(
        routes=[
            Route("/", root, methods=["GET"]),
            Route("/graphql", graphql, methods=["GET", "POST"]),
        ],
        exception_handlers={StarletteHTTPException: http_error},
        lifespan=lifespan,
    )
