"""The framework's ceiling: a plain Starlette route answering the benchmark's POST with the very
bytes the gateway would send, precomputed (path in BENCH_RESPONSE_FILE)."""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = Path(os.environ["BENCH_RESPONSE_FILE"]).read_bytes()


async def graphql(request: Request) -> Response:
    await request.body()
    return Response(BODY, media_type="application/json")


app = Starlette(routes=[Route("/graphql", graphql, methods=["POST"])])
