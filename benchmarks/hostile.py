"""The hostile-input benchmark: what attacks cost the gateway, in time and memory.

    .venv/bin/python benchmarks/hostile.py                 # this checkout
    .venv/bin/python benchmarks/hostile.py --against REV   # and commit REV, side by side

1. **Documents.** The largest document of each known denial-of-service shape that fits the
   default limits (2,000 tokens, 64 KiB): parse, limits and validation through the gateway's
   schema, in process. Median and worst of 5 runs each, milliseconds.
2. **Memory.** A real gateway (`python -m gateway serve`, default settings) over a fixed
   upstream that accepts any token, on loopback; its RSS (VmRSS, and VmHWM for the peak)
   before and after each load:
   - `many tokens`: 2,000 tokens each asking once for `jobs(first: 100)` (32 at a time);
   - `huge headers`: 32 concurrent requests with a 4 MiB Authorization header, twice;
   - `gzip bomb`: 8 requests whose upstream answers 2 GiB of spaces in 2 MB of gzip.

With `--against REV` the same runs are made for commit REV from a temporary git worktree with
this virtualenv, for before and after figures from one session.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.run import (
    PYTHON,
    ROOT,
    current_rss_mb,
    free_port,
    peak_rss_mb,
    process,
    uvicorn,
    wait_for,
    worktree,
)

SHAPES: dict[str, str] = {
    "fragment doubling (23 levels)": "{ jobs { nodes { ...F0 } } }\n"
    + "".join(f"fragment F{i} on Job {{ ...F{i + 1} ...F{i + 1} }}\n" for i in range(23))
    + "fragment F23 on Job { jobId }",
    "1,990 copies of a field": "{ jobs { nodes { " + "jobId " * 1990 + "} } }",
    "490 copies with selections": "{ jobs { nodes { " + "metadata { jobTitle } " * 490 + "} } }",
    "10 copies each of 45 fields": "{ jobs { nodes { "
    + "metadata { jobTitle status } " * 10
    + " ".join(f"a{i}: jobId" for i in range(15))
    + " } } }",
    "270 directives": "{ jobs { nodes { jobId " + "@include(if: true) " * 270 + "} } }",
    "300 operations": "".join(f"query Q{i} {{ ...F }}\n" for i in range(300))
    + "fragment F on Query { __typename }",
    "lists nested 990 deep": "{ jobs(first: "
    + "[" * 990
    + "1"
    + "]" * 990
    + ") { nodes { jobId } } }",
    "a chain of 280 fragments": "{ jobs { nodes { ...F0 } } }\n"
    + "".join(f"fragment F{i} on Job {{ ...F{i + 1} }}\n" for i in range(280))
    + "fragment F280 on Job { jobId }",
    "60 KB of comments": "#" + "x" * 60_000 + "\n{ jobs { nodes { jobId } } }",
}


def document_times(root: Path) -> dict[str, tuple[float, float]]:
    """Median and worst parse-and-validate milliseconds per shape, for the checkout at `root`
    (in a subprocess, so each commit's own gateway package is imported)."""
    program = f"""
import asyncio, gc, json, time, sys
sys.path.insert(0, {str(root)!r})
from gateway.schema import build_schema
from gateway.settings import Settings
shapes = json.loads(sys.stdin.read())
settings = Settings.from_env({{"GATEWAY_UPSTREAM_URL": "http://upstream.invalid"}})
out = {{}}
for name, query in shapes.items():
    times = []
    for run in range(5):
        schema = build_schema(settings)  # a fresh document cache: every run parses and checks
        gc.collect()
        started = time.perf_counter()
        asyncio.run(schema.execute(query, operation_name="Q1" if "query Q" in query else None))
        times.append((time.perf_counter() - started) * 1000)
        if times[-1] > 5000:
            break  # exponential: one run says enough
    out[name] = times
print(json.dumps(out))
"""
    finished = subprocess.run(
        [PYTHON, "-c", program],
        input=json.dumps(SHAPES),
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        timeout=1800,
    )
    measured: dict[str, list[float]] = json.loads(finished.stdout.strip().splitlines()[-1])
    return {name: (statistics.median(times), max(times)) for name, times in measured.items()}


class BombUpstream:
    """A raw TCP upstream answering every request with 2 GiB of spaces, gzipped."""

    def __init__(self) -> None:
        packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        block = b" " * (1 << 20)
        self.body = b"".join(packer.compress(block) for _ in range(2048)) + packer.flush()
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        start = asyncio.start_server(self._serve, "127.0.0.1", self.port)
        asyncio.run_coroutine_threadsafe(start, self._loop).result(5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                head = (
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    f"content-encoding: gzip\r\ncontent-length: {len(self.body)}\r\n\r\n"
                )
                writer.write(head.encode() + self.body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def send_raw(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        try:
            connection.sendall(data)
            while connection.recv(65536):
                pass
        except OSError:
            pass


def memory_loads(root: Path, upstream: str, bomb: BombUpstream) -> dict[str, tuple[float, ...]]:
    """(RSS before, RSS after, peak) in MB for each load, for the gateway at `root`."""
    results: dict[str, tuple[float, ...]] = {}
    loads: dict[str, Callable[[str, int], None]] = {
        "many tokens": many_tokens,
        "huge headers": huge_headers,
        "gzip bomb": lambda url, port: gzip_bombs(url),
    }
    for name, load in loads.items():
        port = free_port()
        target = f"http://127.0.0.1:{bomb.port}" if name == "gzip bomb" else upstream
        environ = {"GATEWAY_UPSTREAM_URL": target, "GATEWAY_PORT": str(port)}
        with process([PYTHON, "-m", "gateway", "serve"], environ, root) as gateway:
            url = f"http://127.0.0.1:{port}"
            wait_for(f"{url}/healthz")
            httpx.post(f"{url}/graphql", json={"query": "{ __typename }"})
            before = current_rss_mb(gateway.pid)
            load(url, port)
            time.sleep(1)
            results[name] = (before, current_rss_mb(gateway.pid), peak_rss_mb(gateway.pid))
    return results


def many_tokens(url: str, _port: int) -> None:
    query = {"query": "{ jobs(first: 100) { nodes { jobId team metadata { jobTitle } } } }"}

    def ask(n: int) -> None:
        headers = {"authorization": f"Bearer token-{n}"}
        response = httpx.post(f"{url}/graphql", json=query, headers=headers, timeout=60)
        assert "errors" not in response.json(), response.text[:300]

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(ask, range(2000)))


def huge_headers(_url: str, port: int) -> None:
    request = (
        "POST /graphql HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {'x' * (4 << 20)}\r\ncontent-length: 2\r\n\r\n{{}}"
    ).encode()
    for _ in range(2):
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda _: send_raw(port, request), range(32)))


def gzip_bombs(url: str) -> None:
    query = {"query": "{ jobs(first: 1) { nodes { jobId } } }"}
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda _: httpx.post(
                    f"{url}/graphql", json=query, headers={"authorization": "Bearer b"}, timeout=120
                ),
                range(8),
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="What hostile input costs the gateway.")
    parser.add_argument("--against", metavar="REV", help="also measure commit REV")
    parser.add_argument("--skip-memory", action="store_true", help="documents only")
    args = parser.parse_args()
    with worktree(args.against) as other:
        roots = {"this": ROOT} | ({args.against: other} if other else {})
        print("parse + limits + validation, ms (median / worst of 5), default limits")
        times = {label: document_times(root) for label, root in roots.items()}
        header = "".join(f"{label[:12]:>22}" for label in roots)
        print(f"{'shape':<32}{header}")
        for name in SHAPES:
            row = "".join(
                f"{times[label][name][0]:>10.1f} /{times[label][name][1]:>9.1f}" for label in roots
            )
            print(f"{name:<32}{row}")
        if args.skip_memory:
            return
        upstream_port = free_port()
        bomb = BombUpstream()
        with process(uvicorn("benchmarks.fixed_upstream:app", upstream_port)):
            upstream = f"http://127.0.0.1:{upstream_port}"
            wait_for(upstream + "/jobs/v1/")
            print("\ngateway RSS, MB: before / after / peak")
            for label, root in roots.items():
                for name, (before, after, peak) in memory_loads(root, upstream, bomb).items():
                    print(f"{label[:12]:<14}{name:<16}{before:>8.0f}{after:>8.0f}{peak:>8.0f}")


if __name__ == "__main__":
    main()
