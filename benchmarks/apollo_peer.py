"""The Apollo peer as a reference line: the same jobs API served by Apollo Server 5 with
`@apollo/datasource-rest` 6 (`../shared/peers/apollo`, written as an Apollo user would).

`../shared/` may be read-only, so the peer is copied to a scratch directory and installed from
its lock (`npm ci`) once; `peer(...)` then starts it on a port with a cache TTL, waits until it
answers, and stops it afterwards. Node 20 or later is needed (it is on the machine).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

SOURCE = Path(__file__).resolve().parent.parent.parent / "shared" / "peers" / "apollo"
INSTALLED = Path("/tmp/apollo-peer-bench")  # noqa: S108 - a scratch copy, rebuilt when it differs


def available() -> bool:
    """Whether the peer's source and Node are there."""
    return (SOURCE / "src" / "server.js").exists() and shutil.which("node") is not None


def install() -> Path:
    """The peer, copied and installed once (again when its lock file changed)."""
    lock = (SOURCE / "package-lock.json").read_bytes()
    marker = INSTALLED / ".installed-lock"
    if marker.exists() and marker.read_bytes() == lock:
        return INSTALLED
    shutil.rmtree(INSTALLED, ignore_errors=True)
    shutil.copytree(SOURCE, INSTALLED, ignore=shutil.ignore_patterns("node_modules"))
    npm = shutil.which("npm") or "npm"
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=INSTALLED, check=True)
    marker.write_bytes(lock)
    return INSTALLED


@contextmanager
def peer(upstream: str, port: int, ttl: float) -> Iterator[str]:
    """The peer over `upstream` on 127.0.0.1:`port` with `PEER_CACHE_TTL=ttl`: its /graphql URL."""
    directory = install()
    environ = {
        **os.environ,
        "PEER_UPSTREAM_URL": upstream,
        "PEER_PORT": str(port),
        "PEER_HOST": "127.0.0.1",
        "PEER_CACHE_TTL": f"{ttl:g}",
        "NODE_ENV": "production",
    }
    node = shutil.which("node") or "node"
    process = subprocess.Popen(
        [node, "src/server.js"],
        cwd=directory,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        for _ in range(200):
            try:
                httpx.post(url, json={"query": "{ __typename }"}, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)
