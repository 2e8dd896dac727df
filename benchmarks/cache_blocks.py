"""Which upstream block size should the cache fetch? Measures calls, rows and time per pattern.

    .venv/bin/python benchmarks/cache_blocks.py [--latency 0.08] [--per-row 0.0005]

The sample upstream runs on loopback with a latency model (a fixed cost per call plus a cost per
row: a remote API that pays per request and per job it serialises). For each block size, each
browsing pattern runs on a fresh gateway with the cache on; the table shows upstream calls, rows
transferred and wall time, median of 3 runs. Block 0 is "fetch exact windows".
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from gateway.app import create_app
from gateway.background import BackgroundServer
from gateway.pagination import encode_cursor
from gateway.sample_upstream import SampleUpstream
from gateway.settings import Settings
from gateway.testing import in_process_client

Query = Callable[[str], Awaitable[dict[str, object]]]


def page(first: int, after: int | None) -> str:
    cursor = f', after: "{encode_cursor(after)}"' if after is not None else ""
    return f"{{ jobs(first: {first}{cursor}) {{ nodes {{ jobId }} pageInfo {{ hasNextPage }} }} }}"


async def forward_walk(query: Query) -> None:
    """A list view paging forward 20 at a time through all 237 jobs."""
    after = None
    while True:
        body = await query(page(20, after))
        if not body["data"]["jobs"]["pageInfo"]["hasNextPage"]:  # type: ignore[index]
            return
        after = (after if after is not None else -1) + 20


async def back_and_forth(query: Query) -> None:
    """A user flipping pages: 1, 2, 1, 2, 3, 2, 3, 4."""
    for number in (1, 2, 1, 2, 3, 2, 3, 4):
        await query(page(20, None if number == 1 else 20 * (number - 1) - 1))


async def dashboard(query: Query) -> None:
    """One screen, three widgets asking for the top of the list at once, twice."""
    for _ in range(2):
        await asyncio.gather(query(page(5, None)), query(page(10, None)), query(page(20, None)))


async def first_page_only(query: Query) -> None:
    """A user who looks at page 1 and leaves: the price of fetching whole blocks."""
    await query(page(20, None))


PATTERNS = {
    "forward walk": forward_walk,
    "back and forth": back_and_forth,
    "dashboard": dashboard,
    "first page only": first_page_only,
}


async def measure(
    upstream_url: str, sample: SampleUpstream, block: int, pattern: str
) -> tuple[int, int, float]:
    settings = Settings.from_env(
        {
            "GATEWAY_UPSTREAM_URL": upstream_url,
            "GATEWAY_CACHE_TTL": "60",
            "GATEWAY_CACHE_BLOCK_SIZE": str(block),
        }
    )
    async with in_process_client(create_app(settings)) as client:

        async def query(text: str) -> dict[str, object]:
            response = await client.post(
                "/graphql", json={"query": text}, headers={"authorization": "Bearer demo-token"}
            )
            return response.json()  # type: ignore[no-any-return]

        sample.seen.clear()
        started = time.perf_counter()
        await PATTERNS[pattern](query)
        elapsed = time.perf_counter() - started
    rows = 0
    for request in sample.seen:
        params = dict(part.split("=") for part in request.query.split("&"))
        rows += max(0, min(int(params["limit"]), 237 - int(params["skip"])))
    return len(sample.seen), rows, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.08, help="seconds per upstream call")
    parser.add_argument("--per-row", type=float, default=0.0005, help="seconds per row returned")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sample = SampleUpstream(latency=args.latency, latency_per_row=args.per_row)
    with BackgroundServer(sample.app()) as upstream:
        model = f"{args.latency * 1000:.0f} ms per call + {args.per_row * 1000:.2f} ms per row"
        print(f"latency model: {model}; median of {args.runs}")
        print(f"{'pattern':<16} {'block':>5} {'calls':>6} {'rows':>6} {'time ms':>8}")
        for pattern in PATTERNS:
            for block in (0, 20, 50, 100):
                runs = [
                    asyncio.run(measure(upstream.url, sample, block, pattern))
                    for _ in range(args.runs)
                ]
                calls, rows = runs[0][0], runs[0][1]
                elapsed = statistics.median(run[2] for run in runs)
                print(f"{pattern:<16} {block:>5} {calls:>6} {rows:>6} {elapsed * 1000:>8.0f}")


if __name__ == "__main__":
    main()
