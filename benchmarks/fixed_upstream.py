"""A fixed, fast Jobs API for benchmarks: precomputed JSON per query string, any bearer token.

A bare ASGI app (no framework) so that the upstream is never the bottleneck of a benchmark.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.sample_jobs import sample_team_jobs

JOBS = sample_team_jobs("apiteam", 237)
_ANSWERS: dict[bytes, bytes] = {}
_HEADERS = [(b"content-type", b"application/json")]


def answer(query: bytes) -> bytes:
    """The JSON body for a `skip=N&limit=M` query string (computed once per query string)."""
    body = _ANSWERS.get(query)
    if body is None:
        params = dict(part.split(b"=", 1) for part in query.split(b"&") if b"=" in part)
        skip, limit = int(params.get(b"skip", b"0")), int(params.get(b"limit", b"20"))
        body = _ANSWERS[query] = orjson.dumps(JOBS[skip : skip + limit])
    return body


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = answer(scope["query_string"])
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": body})
