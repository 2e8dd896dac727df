"""Which compression level should a GraphQL answer get? CPU and bytes per encoding and level.

    .venv/bin/python benchmarks/compression_levels.py [--repeat 200]

Real answers of the gateway (the sample upstream's jobs, `first` 5, 20 and 100, the fields a
list view selects), compressed in process with each encoding at a few levels: the median time of
`--repeat` compressions and the size. `gateway.compression` runs each encoding at the level this
table argues for; `benchmarks/run.py`'s `hit gzip` ... `miss zstd` scenarios measure the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import zlib
from collections.abc import Callable

import brotli
import httpx
import zstandard

from gateway.app import create_app
from gateway.sample_upstream import SampleUpstream
from gateway.settings import Settings
from gateway.testing import in_process_client

FIELDS = (
    "edges { cursor node { jobId metadata { jobTitle status created updated workflowId "
    "clientJobId } completedSteps { singleStep { stepTitle stepType completed } } } } "
    "pageInfo { hasNextPage endCursor }"
)


def gzip_at(level: int) -> Callable[[bytes], bytes]:
    def compress(body: bytes) -> bytes:
        compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
        return compressor.compress(body) + compressor.flush()

    return compress


CANDIDATES: dict[str, Callable[[bytes], bytes]] = {
    "zstd 1": zstandard.ZstdCompressor(level=1).compress,
    "zstd 3": zstandard.ZstdCompressor(level=3).compress,
    "br 1": lambda body: brotli.compress(body, quality=1),
    "br 4": lambda body: brotli.compress(body, quality=4),
    "br 5": lambda body: brotli.compress(body, quality=5),
    "gzip 1": gzip_at(1),
    "gzip 6": gzip_at(6),
}


async def answers() -> dict[int, bytes]:
    """The gateway's answers to the list query for 5, 20 and 100 jobs, uncompressed."""
    sample = SampleUpstream()
    settings = Settings.from_env(
        {"GATEWAY_UPSTREAM_URL": "http://upstream.test", "GATEWAY_COMPRESSION": "none"}
    )
    app = create_app(settings, upstream_transport=httpx.ASGITransport(app=sample.app()))
    bodies = {}
    async with in_process_client(app) as client:
        for first in (5, 20, 100):
            response = await client.post(
                "/graphql",
                json={"query": f"{{ jobs(first: {first}) {{ {FIELDS} }} }}"},
                headers={"authorization": "Bearer demo-token"},
            )
            bodies[first] = response.content
    return bodies


def median_microseconds(compress: Callable[[bytes], bytes], body: bytes, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        compress(body)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200, help="compressions per median")
    args = parser.parse_args()
    for first, body in asyncio.run(answers()).items():
        print(f"\njobs(first: {first}): {len(body)} bytes")
        print(f"{'encoding':<10}{'us':>9}{'bytes':>9}{'ratio':>8}")
        for name, compress in CANDIDATES.items():
            size = len(compress(body))
            spent = median_microseconds(compress, body, args.repeat)
            print(f"{name:<10}{spent:>9.1f}{size:>9}{len(body) / size:>8.1f}")


if __name__ == "__main__":
    main()
