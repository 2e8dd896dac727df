"""CPU per GraphQL request in process: the app driven through ASGI, without a server or wrk.

    .venv/bin/python benchmarks/in_process.py              # miss and hit, 3 rounds each
    .venv/bin/python benchmarks/in_process.py --profile    # and the top of a cProfile of each
    .venv/bin/python benchmarks/in_process.py --wide       # run.py's `wide` query instead
    .venv/bin/python benchmarks/in_process.py --accept-encoding gzip   # compressed answers

The gateway app is called directly with 32 requests in flight (the `run.py` query), against the
fixed upstream served by uvicorn over TCP on 127.0.0.1. With no HTTP server in the way, the
figure is the app's own CPU per request (process time / requests), which is steadier than
requests/s on a shared machine and shows a change of a few microseconds. `miss` runs with the
cache off; `hit` with it on, so every request after the first is a response-cache hit. The
collector is tuned as in a serving process (`prepare_serving_process`).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import os
import pstats
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import orjson
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import (  # noqa: E402
    NARROW_QUERY,
    every_field_query,
    free_port,
    process,
    uvicorn,
    wait_for,
)
from gateway.app import create_app  # noqa: E402
from gateway.logs import configure_logging  # noqa: E402
from gateway.serving import prepare_serving_process  # noqa: E402
from gateway.settings import Settings  # noqa: E402

IN_FLIGHT = 32
BODY = orjson.dumps({"query": NARROW_QUERY})  # or the wide query, with --wide
EXTRA_HEADERS: list[tuple[bytes, bytes]] = []  # Accept-Encoding, with --accept-encoding


def request_scope(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"gateway.test"),
            (b"content-type", b"application/json"),
            (b"authorization", b"Bearer bench-0"),
            (b"content-length", str(len(BODY)).encode()),
            *EXTRA_HEADERS,
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": dict(state),
    }


async def start_lifespan(app: Any, state: dict[str, Any]) -> tuple[Any, asyncio.Task[None]]:
    """Run `app`'s lifespan startup; return its message queue and task (to shut it down)."""
    lifespan: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    started = asyncio.Event()

    async def lifespan_send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    await lifespan.put({"type": "lifespan.startup"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}
    task = asyncio.create_task(app(scope, lifespan.get, lifespan_send))
    await started.wait()
    return lifespan, task


async def one_request(app: Any, state: dict[str, Any]) -> None:
    """One POST of BODY through the app, checked."""
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await asyncio.sleep(3600)  # never disconnects
        raise AssertionError("unreachable")

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(request_scope(state), receive, send)
    if sent[0]["status"] != 200 or b'"errors"' in sent[1]["body"]:
        raise RuntimeError(f"unexpected answer: {sent[1]['body'][:300]!r}")


async def cpu_per_request(
    request: Callable[[], Awaitable[None]], requests: int, profiler: cProfile.Profile | None
) -> float:
    """Microseconds of process time per request, `requests` of them with IN_FLIGHT at once."""
    started_cpu = time.process_time()
    if profiler:
        profiler.enable()
    await asyncio.gather(*(request() for _ in range(requests)))
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return (time.process_time() - started_cpu) / requests * 1e6


async def measure(upstream: str, cache_ttl: str, requests: int, rounds: int, profile: bool) -> None:
    settings = Settings.from_env({"GATEWAY_UPSTREAM_URL": upstream, "GATEWAY_CACHE_TTL": cache_ttl})
    app = create_app(settings)
    prepare_serving_process()  # as `serve` does, once the app is built
    state: dict[str, Any] = {}
    lifespan, lifespan_task = await start_lifespan(app, state)
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def limited() -> None:
        async with slots:
            await one_request(app, state)

    for _ in range(300):  # warm-up: caches, pools, plans
        await limited()
    figures = [await cpu_per_request(limited, requests, None) for _ in range(rounds)]
    if profile:
        await cpu_per_request(limited, requests, cProfile.Profile())
    name = "miss" if cache_ttl == "0" else "hit"
    runs = " ".join(f"{figure:.1f}" for figure in figures)
    print(f"{name}: {statistics.median(figures):.1f} µs of CPU per request (rounds: {runs})")
    await lifespan.put({"type": "lifespan.shutdown"})
    await lifespan_task


def main() -> None:
    parser = argparse.ArgumentParser(description="CPU per GraphQL request, in process.")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of each")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (median)")
    parser.add_argument("--wide", action="store_true", help="100 jobs, every field")
    parser.add_argument("--accept-encoding", help="the client's Accept-Encoding, e.g. gzip")
    args = parser.parse_args()
    if args.accept_encoding:
        EXTRA_HEADERS.append((b"accept-encoding", args.accept_encoding.encode()))
    if args.wide:
        global BODY
        BODY = orjson.dumps({"query": every_field_query()})
    configure_logging("INFO")
    # The request log lines are written, as by a server, but to /dev/null (as in run.py).
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the run

    port = free_port()
    with process(uvicorn("benchmarks.fixed_upstream:app", port)):
        upstream = f"http://127.0.0.1:{port}"
        wait_for(upstream + "/jobs/v1/")
        uvloop.run(measure(upstream, "0", 3_000, args.rounds, args.profile))
        uvloop.run(measure(upstream, "60", 20_000, args.rounds, args.profile))


if __name__ == "__main__":
    main()
