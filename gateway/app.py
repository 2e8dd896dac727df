"""The HTTP app: Starlette routes, middleware and the lifespan that owns shared resources.

The lifespan opens every resource that holds connections or watches the process: the one
pooled upstream transport, the circuit breaker, the page cache, the persisted-query store, the
subscriptions' pollers (`gateway.live`) and the shutdown watch. It hands requests the upstream
client, the store and the pollers as typed state, and closes them on shutdown. The factory
builds only what holds no connection: the schema, the metrics, the byte-bounded memory and
the response cache in it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import tracing
from gateway.cache import credential_secret, new_page_cache
from gateway.caller import CredentialDigests
from gateway.cors import GatewayCORS
from gateway.graphiql import ASSETS_PATH, GraphiQLAssets, assets_dir, favicon, graphiql_page
from gateway.graphql_http import AppState, GraphQLEndpoint
from gateway.graphql_request import error_body, json_response
from gateway.health import Lifecycle, circuit_reporter, readiness, shutdown_watch
from gateway.live import LiveHub, LiveView
from gateway.logs import configure_logging
from gateway.memory_store import MemoryStore
from gateway.metrics import Metrics
from gateway.persisted_queries import new_persisted_queries
from gateway.redaction import install_log_redaction
from gateway.response_cache import ResponseCache
from gateway.schema import GatewaySchema, build_schema
from gateway.serving import prepare_serving_process
from gateway.settings import Settings, SettingsError
from gateway.trusted_documents import ManifestError, TrustedDocuments, load_trusted_documents
from gateway.upstream import CircuitBreaker, UpstreamClient, UpstreamTransport

_HTTP_ERROR_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
GRAPHQL_PATH = "/graphql"


async def _http_error(_request: Request, error: Exception) -> Response:
    """Starlette's own 404/405 in the gateway's JSON error shape."""
    assert isinstance(error, HTTPException)
    code = _HTTP_ERROR_CODES.get(error.status_code, "BAD_REQUEST")
    response = json_response(error_body(error.detail, code), error.status_code)
    response.headers.update(error.headers or {})
    return response


def _lifespan(
    settings: Settings,
    metrics: Metrics,
    memory: MemoryStore,
    responses: ResponseCache | None,
    lifecycle: Lifecycle,
    upstream_transport: httpx.AsyncBaseTransport | None,
) -> Callable[[Starlette], AbstractAsyncContextManager[AppState]]:
    """The lifespan: opens the breaker, the page cache, the persisted-query store and the
    upstream transport, hands requests the client and the store, and closes them all."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[AppState]:
        breaker = CircuitBreaker(
            settings.breaker_failures,
            settings.breaker_cooldown,
            on_change=circuit_reporter(metrics),
        )
        metrics.set_circuit_state(breaker.state.value)
        cache = new_page_cache(settings, metrics, memory, responses)
        persisted_queries = new_persisted_queries(settings, metrics, memory)
        try:
            transport = upstream_transport or UpstreamTransport()
            if settings.tracing:
                transport = tracing.traced_transport(transport)
            async with transport:
                upstream = UpstreamClient(transport, settings, breaker, cache, metrics)
                live = LiveHub(upstream, settings, metrics)

                def drain() -> None:
                    lifecycle.draining()
                    live.drain()  # every subscription completes before uvicorn closes sockets

                with shutdown_watch(drain):
                    lifecycle.started()
                    yield {
                        "upstream": upstream,
                        "persisted_queries": persisted_queries,
                        "live": live,
                    }
                    drain()
        finally:
            await cache.close()
            if persisted_queries is not None:
                await persisted_queries.close()

    return lifespan


def _operations_routes(metrics: Metrics, lifecycle: Lifecycle) -> list[BaseRoute]:
    """`/` (to GraphiQL), `/healthz`, `/readyz` and `/metrics`."""

    async def root(_request: Request) -> Response:
        return RedirectResponse("/graphql")

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        status, body = await readiness(lifecycle, getattr(request.state, "upstream", None))
        return JSONResponse(body, status_code=status)

    async def metrics_endpoint(request: Request) -> Response:
        upstream: UpstreamClient | None = getattr(request.state, "upstream", None)
        if upstream is not None:
            metrics.set_circuit_state(upstream.breaker.state.value)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/", root, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]


class GatewayApp(Starlette):
    """Starlette, with `/graphql` sent straight to its endpoint (WebSockets to `live`).

    The middleware stack and router only pass a GraphQL request on: the endpoint answers its
    own errors (every method, JSON bodies, 405 with Allow), and CORS, when configured, wraps it
    here too. Going around them is worth 12 to 13% of requests/s on the `hit` and
    `many-tokens` benchmark scenarios (benchmarks/README.md, issue 13), above the 10% a speed
    trick must earn. Everything else (other paths, `/graphql/`, the lifespan) goes through
    Starlette as usual; `/graphql` is also a route, so `url_for` and redirects know it.
    """

    def __init__(self, graphql: ASGIApp, live: ASGIApp, **options: Any) -> None:
        super().__init__(**options)
        self._graphql = graphql
        self._live = live

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan" and scope["path"] == GRAPHQL_PATH:
            scope["app"] = self
            graphql = self._graphql if scope["type"] == "http" else self._live
            await graphql(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
    graphiql_headers: dict[str, str] | None = None,
) -> GatewayApp:
    """The gateway as an ASGI app, configured by `settings`.

    `upstream_transport` replaces the network under the upstream client (tests only);
    `graphiql_headers` fills GraphiQL's headers editor (the demo's token: never under `serve`).
    """
    install_log_redaction()
    if settings.tracing:
        tracing.require_tracing()
        tracing.ensure_tracer_provider()
    metrics = Metrics()
    memory = MemoryStore(settings.cache_max_bytes)
    lifecycle = Lifecycle()
    local_assets = assets_dir(settings.graphiql_assets_dir) if settings.graphiql else None
    assets = GraphiQLAssets(local_assets) if local_assets is not None else None
    graphiql_html = graphiql_page(assets, headers=graphiql_headers) if settings.graphiql else None
    responses = ResponseCache(memory) if settings.cache_ttl > 0 else None
    credentials = CredentialDigests(credential_secret(settings))
    schema = build_schema(settings)
    live = LiveView(schema, settings, credentials)
    endpoint = GraphQLEndpoint(
        schema,
        settings,
        graphiql_html,
        metrics,
        credentials,
        responses,
        trusted_documents_of(settings, schema),
        live,
    )
    # No methods: the endpoint answers every method itself (405 with Allow, in JSON).
    routes: list[BaseRoute] = [
        Route(GRAPHQL_PATH, endpoint),
        *_operations_routes(metrics, lifecycle),
    ]
    if assets is not None:
        routes.append(Mount(ASSETS_PATH, assets, name="graphiql-assets"))
    if settings.graphiql:
        routes.append(Route("/favicon.ico", favicon, methods=["GET"]))
    cors = bool(settings.cors_origins)
    app = GatewayApp(
        GatewayCORS(endpoint, settings) if cors else endpoint,
        live,
        routes=routes,
        middleware=[Middleware(GatewayCORS, settings=settings)] if cors else [],
        exception_handlers={HTTPException: _http_error},
        lifespan=_lifespan(settings, metrics, memory, responses, lifecycle, upstream_transport),
    )
    app.state.metrics = metrics
    app.state.memory = memory
    app.state.lifecycle = lifecycle
    return app


def trusted_documents_of(
    settings: Settings, schema: GatewaySchema | None = None
) -> TrustedDocuments | None:
    """The trusted documents `settings` name, checked against the schema and pinned in its
    document map; None when unset. `SettingsError` names a bad manifest or document."""
    if not settings.trusted_documents:
        return None
    schema = schema or build_schema(settings)
    assert schema.documents is not None
    assert schema.checks is not None
    try:
        return load_trusted_documents(
            Path(settings.trusted_documents), schema._schema, schema.documents, schema.checks
        )
    except ManifestError as error:
        raise SettingsError(f"GATEWAY_TRUSTED_DOCUMENTS: {error}") from None


def create_app_from_environment() -> GatewayApp:
    """The app as each `serve --workers N` worker builds it, from `GATEWAY_*` variables."""
    settings = Settings.from_env(os.environ)
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    prepare_serving_process()
    return app
