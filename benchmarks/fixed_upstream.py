"""A fixed, fast Jobs API for benchmarks: precomputed JSON per query string, any bearer token.

A bare ASGI app (no framework) so that the upstream is never the bottleneck of a benchmark. It
answers the list (`/jobs/v1/?skip=&limit=`) and single jobs (`/jobs/v1/bson/{jobId}`).

The latency model: `BENCH_UPSTREAM_DELAY_MS` holds every answer back that long, give or take
`BENCH_UPSTREAM_JITTER_MS` (uniformly), as a real API tens of milliseconds away would; both 0
by default (the throughput scenarios). `benchmarks/session.py` runs it at 50 +- 10 ms.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

import orjson

from gateway.sample_jobs import sample_team_jobs

JOBS = sample_team_jobs("apiteam", 237)
_BY_ID = {job["jobId"]: orjson.dumps(job) for job in JOBS}
_ANSWERS: dict[bytes, bytes] = {}
_HEADERS = [(b"content-type", b"application/json")]
_DELAY = float(os.environ.get("BENCH_UPSTREAM_DELAY_MS", "0")) / 1000
_JITTER = float(os.environ.get("BENCH_UPSTREAM_JITTER_MS", "0")) / 1000


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
    path: str = scope["path"]
    status, body = 200, b""
    if path.startswith("/jobs/v1/bson/"):
        found = _BY_ID.get(path.rsplit("/", 1)[1])
        status, body = (200, found) if found is not None else (404, b'{"message": "not found"}')
    else:
        body = answer(scope["query_string"])
    if _DELAY:
        await asyncio.sleep(max(0.0, _DELAY + random.uniform(-_JITTER, _JITTER)))  # noqa: S311
    await send({"type": "http.response.start", "status": status, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": body})
