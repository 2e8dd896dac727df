"""A frontend session at the real API's latency: per-step p50/p99, the gateway beside Apollo.

    .venv/bin/python benchmarks/session.py                  # 30 sessions per system, 10 at once
    .venv/bin/python benchmarks/session.py --sessions 60 --latency-ms 50 --think-ms 300

The upstream is `fixed_upstream.py` with its latency model (`--latency-ms`, 50, give or take
`--jitter-ms`, 10, per call). Each session is one person with a token of their own, so every
cache starts cold for them, and a pause of half to one and a half times `--think-ms` (300)
before each step, so sessions running at once do not click in step:

    1  open the first page            jobs(first: 20), run.py's narrow query
    2-6  page forward five times      after: the previous endCursor
    7  refetch one job of the page    the gateway: node(id:); Apollo's schema has no node, so
                                      its app reads the page holding the job again
    -  wait past the TTL (5 s)        not timed
    8  reload                         the first page again

Systems, each a fresh process over the same upstream: the gateway of this tree (`serve`, TTL
5 s, everything else default); the same with the stale window and prefetch off
(`GATEWAY_CACHE_STALE=0`, `GATEWAY_PREFETCH_CONCURRENCY=0`), to show what they buy; and the
Apollo peer at TTL 5 (`apollo_peer.py`). Reported: each step's p50 and p99 in ms, and the
session's time spent waiting on requests (steps 1 to 8, think time and the TTL wait left out),
p50, with its ratio to Apollo's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import apollo_peer  # noqa: E402
from benchmarks.run import NARROW_QUERY, free_port, process, uvicorn, wait_for  # noqa: E402

TTL = 5.0
STEPS = ("first page", "page 2", "page 3", "page 4", "page 5", "page 6", "refetch job", "reload")
PAGE = NARROW_QUERY.replace("query Bench", "query Page($after: String)").replace(
    "jobs(first: 20)", "jobs(first: 20, after: $after)"
)
GATEWAY_PAGE = PAGE.replace("node { jobId", "node { id jobId")
NODE = "query Job($id: ID!) { node(id: $id) { ... on Job { jobId metadata { jobTitle status } } } }"


class Session:
    """One person's walk through the steps, timing each request."""

    def __init__(self, client: httpx.AsyncClient, url: str, token: str, gateway: bool) -> None:
        self.client = client
        self.url = url
        self.headers = {"authorization": f"Bearer {token}"}
        self.gateway = gateway
        self.times: list[float] = []

    async def ask(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        response = await self.client.post(
            self.url, json={"query": query, "variables": variables}, headers=self.headers
        )
        self.times.append((time.perf_counter() - started) * 1000)
        body: dict[str, Any] = response.json()
        assert "errors" not in body, str(body)[:300]
        return body

    async def run(self, think: float) -> list[float]:
        def pause() -> Any:
            # People do not click in step: half to one and a half times the think time.
            return asyncio.sleep(think * random.uniform(0.5, 1.5))  # noqa: S311

        page = GATEWAY_PAGE if self.gateway else PAGE
        await pause()
        first = await self.ask(page, {"after": None})
        after = first["data"]["jobs"]["pageInfo"]["endCursor"]
        for _ in range(5):
            await pause()
            answer = await self.ask(page, {"after": after})
            after = answer["data"]["jobs"]["pageInfo"]["endCursor"]
        await pause()
        job = first["data"]["jobs"]["edges"][3]["node"]
        if self.gateway:
            await self.ask(NODE, {"id": job["id"]})
        else:
            await self.ask(page, {"after": None})
        await asyncio.sleep(TTL + 0.5)
        await self.ask(page, {"after": None})
        return self.times


async def sessions(
    url: str, gateway: bool, count: int, at_once: int, think: float
) -> list[list[float]]:
    """`count` sessions, `at_once` at a time, each with a token of its own."""
    slots = asyncio.Semaphore(at_once)
    limits = httpx.Limits(max_connections=at_once * 2)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one(number: int) -> list[float]:
            async with slots:
                token = f"session-{number}-{time.monotonic_ns()}"
                return await Session(client, url, token, gateway).run(think)

        return await asyncio.gather(*(one(number) for number in range(count)))


@contextlib.contextmanager
def gateway(upstream: str, **variables: str) -> Iterator[str]:
    port = free_port()
    environ = {
        "GATEWAY_UPSTREAM_URL": upstream,
        "GATEWAY_PORT": str(port),
        "GATEWAY_CACHE_TTL": f"{TTL:g}",
        "GATEWAY_LOG_LEVEL": "warning",
        **variables,
    }
    with process([sys.executable, "-m", "gateway", "serve"], environ, ROOT):
        wait_for(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}/graphql"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def report(results: dict[str, list[list[float]]]) -> None:
    names = list(results)
    print("\nper step: p50 / p99 ms")
    print(f"{'step':<14}" + "".join(f"{name:>26}" for name in names))
    for index, step in enumerate(STEPS):
        cells = []
        for name in names:
            values = [times[index] for times in results[name]]
            cells.append(f"{statistics.median(values):>12.1f} / {percentile(values, 0.99):<10.1f}")
        print(f"{step:<14}" + "".join(f"{cell:>26}" for cell in cells))
    totals = {name: statistics.median(sum(times) for times in results[name]) for name in names}
    apollo = totals.get("apollo ttl 5")
    print("\nsession total (time waiting on requests), p50 ms")
    for name, total in totals.items():
        ratio = f"  ({total / apollo:.2f} of apollo ttl 5)" if apollo else ""
        print(f"{name:<28}{total:>9.1f}{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--at-once", type=int, default=10)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--jitter-ms", type=float, default=10)
    parser.add_argument("--think-ms", type=float, default=300)
    args = parser.parse_args()
    think = args.think_ms / 1000
    port = free_port()
    model = {
        "BENCH_UPSTREAM_DELAY_MS": f"{args.latency_ms:g}",
        "BENCH_UPSTREAM_JITTER_MS": f"{args.jitter_ms:g}",
    }
    results: dict[str, list[list[float]]] = {}
    with process(uvicorn("benchmarks.fixed_upstream:app", port), model, ROOT):
        upstream = f"http://127.0.0.1:{port}"
        wait_for(upstream + "/jobs/v1/")
        systems: list[tuple[str, bool, Any]] = [
            ("gateway", True, lambda: gateway(upstream)),
            (
                "gateway, no stale/prefetch",
                True,
                lambda: gateway(
                    upstream, GATEWAY_CACHE_STALE="0", GATEWAY_PREFETCH_CONCURRENCY="0"
                ),
            ),
        ]
        if apollo_peer.available():
            systems.append(
                ("apollo ttl 5", False, lambda: apollo_peer.peer(upstream, free_port(), TTL))
            )
        else:
            print(f"apollo peer: not found at {apollo_peer.SOURCE}; left out")
        for name, is_gateway, start in systems:
            with start() as url:
                asyncio.run(sessions(url, is_gateway, 2, 2, 0.05))  # warm-up: imports, JIT
                results[name] = asyncio.run(
                    sessions(url, is_gateway, args.sessions, args.at_once, think)
                )
    print(
        f"\n{args.sessions} sessions per system, {args.at_once} at once; upstream "
        f"{args.latency_ms:g} +- {args.jitter_ms:g} ms per call; think time {args.think_ms:g} ms"
    )
    report(results)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
