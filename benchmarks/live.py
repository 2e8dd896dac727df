"""What live updates cost: upstream calls, delivery time and memory as subscribers grow.

    .venv/bin/python benchmarks/live.py                        # 1, 100, 1000 and 5000 subscribers
    .venv/bin/python benchmarks/live.py --subscribers 1,1000 --changes 5

For each count, a fresh `python -m gateway serve` (one worker, poll interval 0.1 s, page cache
off so every poll is an upstream call) over the sample upstream in this process; the
subscribers are one token's, 20 per WebSocket. Then `--changes` times: change one job in the
sample upstream and time until every subscriber has its UPDATED event. Reported, medians over
the changes:

- upstream list calls per poll interval while the subscribers wait (1.0: one poller for all);
- delivery: from the change to the first and to the last subscriber's event (the first
  includes waiting for the next poll, up to one interval);
- the gateway's RSS before subscribing and with every subscription open, and the difference
  per subscription.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.background import BackgroundServer  # noqa: E402
from gateway.sample_upstream import DEMO_TOKEN, SampleUpstream  # noqa: E402

INTERVAL = 0.1
PER_SOCKET = 20
WATCH = "subscription { jobChanged(first: 20) { kind jobId job { metadata { status } } } }"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def gateway(upstream_url: str) -> Any:
    port = free_port()
    environ = {
        **{key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")},
        "GATEWAY_UPSTREAM_URL": upstream_url,
        "GATEWAY_PORT": str(port),
        "GATEWAY_CACHE_TTL": "0",
        "GATEWAY_LIVE_POLL_INTERVAL": str(INTERVAL),
        "GATEWAY_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=environ, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            time.sleep(0.05)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(20)


@contextlib.asynccontextmanager
async def sockets(url: str, count: int) -> AsyncIterator[list[ClientConnection]]:
    async with contextlib.AsyncExitStack() as stack:
        opened = []
        for _ in range(-(-count // PER_SOCKET)):
            ws = await stack.enter_async_context(
                websockets.connect(
                    url.replace("http://", "ws://") + "/graphql",
                    subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
                    max_queue=None,
                )
            )
            init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {DEMO_TOKEN}"}}
            await ws.send(json.dumps(init))
            await ws.recv()
            opened.append(ws)
        yield opened


def list_calls(sample: SampleUpstream) -> int:
    return sum(1 for request in sample.seen if request.path == "/jobs/v1/")


async def measure(
    sample: SampleUpstream, url: str, pid: int, count: int, changes: int
) -> dict[str, float]:
    rss_before = rss_mb(pid)
    async with sockets(url, count) as opened:
        remaining = count
        for number, ws in enumerate(opened):
            for index in range(min(PER_SOCKET, remaining)):
                payload = {"query": WATCH}
                await ws.send(
                    json.dumps({"id": f"{number}-{index}", "type": "subscribe", "payload": payload})
                )
            remaining -= PER_SOCKET
        await asyncio.sleep(1.0)  # every subscription open, the baseline polled
        rss_open = rss_mb(pid)
        calls, started = list_calls(sample), time.monotonic()
        await asyncio.sleep(2.0)
        per_interval = (list_calls(sample) - calls) / ((time.monotonic() - started) / INTERVAL)
        firsts, lasts = [], []
        jobs = sample.jobs_of("apiteam")
        for change in range(changes):
            jobs[change % 20]["metadata"]["status"] = f"Changed {change}"
            changed = time.monotonic()
            arrivals = await asyncio.gather(
                *(arrival(ws, per) for ws, per in zip(opened, sizes(count), strict=True))
            )
            firsts.append(min(first for first, _ in arrivals) - changed)
            lasts.append(max(last for _, last in arrivals) - changed)
    return {
        "calls_per_interval": per_interval,
        "first_ms": statistics.median(firsts) * 1000,
        "last_ms": statistics.median(lasts) * 1000,
        "rss_before": rss_before,
        "rss_open": rss_open,
        "kb_per_subscription": (rss_open - rss_before) * 1024 / count,
    }


def sizes(count: int) -> list[int]:
    return [min(PER_SOCKET, count - start) for start in range(0, count, PER_SOCKET)]


async def arrival(ws: ClientConnection, expected: int) -> tuple[float, float]:
    """When this socket's first and last of `expected` events arrived."""
    times = []
    for _ in range(expected):
        await asyncio.wait_for(ws.recv(), 30)
        times.append(time.monotonic())
    return times[0], times[-1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", default="1,100,1000,5000")
    parser.add_argument("--changes", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for count in (int(value) for value in args.subscribers.split(",")):
        sample = SampleUpstream()
        with BackgroundServer(sample.app()) as upstream, gateway(upstream.url) as (url, pid):
            rows.append((count, asyncio.run(measure(sample, url, pid, count, args.changes))))
    columns = (
        "subscribers",
        "upstream calls per interval",
        "first event ms",
        "last event ms",
        "RSS MB before",
        "RSS MB open",
        "KB per subscription",
    )
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for count, row in rows:
        cells = [str(count)] + [
            f"{row[key]:.2f}" if key == "calls_per_interval" else f"{row[key]:.1f}"
            for key in ("calls_per_interval", "first_ms", "last_ms", "rss_before", "rss_open")
        ]
        cells.append(f"{row['kb_per_subscription']:.1f}")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
