"""A reference line: bare Strawberry over the gateway's schema, the page served from memory.

What the issue calls "bare Strawberry" (about 370 requests/s against a 7,500 ceiling, and the
basis of its `miss` target, "about 3 times bare Strawberry"): Strawberry's own ASGI view
(`strawberry.asgi.GraphQL`) and stock executor, no extensions, no caches, and the upstream page
answered from memory by an `httpx.MockTransport` (no network), under the same uvicorn.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from strawberry.asgi import GraphQL
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from benchmarks.fixed_upstream import answer
from gateway.caller import Caller, UpstreamBudget
from gateway.context import RequestContext, is_bearer
from gateway.schema import build_schema
from gateway.settings import Settings
from gateway.upstream import CircuitBreaker, UpstreamClient

SETTINGS = Settings.from_env(
    {"GATEWAY_UPSTREAM_URL": "http://memory.invalid", "GATEWAY_CACHE_TTL": "0"}
)


def _from_memory(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200, content=answer(request.url.query), headers={"content-type": "application/json"}
    )


UPSTREAM = UpstreamClient(
    httpx.MockTransport(_from_memory),
    SETTINGS,
    CircuitBreaker(SETTINGS.breaker_failures, SETTINGS.breaker_cooldown),
)
SCHEMA = build_schema()  # no settings: no extensions
SCHEMA.execution_context_class = StrawberryGraphQLCoreExecutionContext


class BareGraphQL(GraphQL[RequestContext, None]):
    """Strawberry's ASGI view, with the context the gateway's resolvers read."""

    async def get_context(self, request: Any, response: Any) -> RequestContext:
        authorization = request.headers.get("authorization")
        return RequestContext(
            settings=SETTINGS,
            upstream=UPSTREAM,
            authorization_header=authorization,
            bearer=Caller(
                authorization=authorization,
                credential="",  # no cache here
                deadline=time.monotonic() + SETTINGS.request_deadline,
                budget=UpstreamBudget(SETTINGS.upstream_call_budget),
            )
            if is_bearer(authorization)
            else None,
        )


app = BareGraphQL(SCHEMA, graphql_ide=None)
