"""The sample upstream's own activity in demo mode: a few jobs change by themselves now and then.

So a `jobChanged` subscription opened in the demo's GraphiQL shows events within a minute. Every
`interval` seconds, in each team: one unfinished job near the top of the list moves on (a step
done, or the job completed), and now and then a new job is started at the top, which pushes
the window's last job out. Off unless asked (`SampleUpstream(churn_interval=...)`): tests
change the sample data themselves.
"""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import Callable
from typing import Any

from gateway.sample_writes import now_timestamp

_UNFINISHED = frozenset({"Active", "InProgress", "Paused"})
_WATCHED_ROWS = 10
"""How far down the list the activity reaches (the top of every dashboard's window)."""


def move_on(jobs: list[dict[str, Any]], rng: random.Random) -> None:
    """One unfinished job among the first rows goes to its next state."""
    unfinished = [
        job for job in jobs[:_WATCHED_ROWS] if job["metadata"].get("status") in _UNFINISHED
    ]
    if not unfinished:
        return
    metadata = rng.choice(unfinished)["metadata"]
    metadata["status"] = "InProgress" if metadata["status"] != "InProgress" else "Completed"
    metadata["updated"] = metadata["modified"] = now_timestamp()
    if metadata["status"] == "Completed":
        metadata["currentStep"] = None


def start_one(jobs: list[dict[str, Any]], rng: random.Random, serial: int) -> None:
    """A new job at the top of the list, like one just started on a device."""
    if not jobs:
        return
    job = copy.deepcopy(rng.choice(jobs))
    job["jobId"] = f"{0xDE30000000 + serial:024x}"
    metadata = job["metadata"]
    metadata["clientJobId"] = f"demo-{serial:08d}"
    metadata["status"] = "Active"
    metadata["created"] = metadata["updated"] = metadata["modified"] = now_timestamp()
    job["completedSteps"] = job["cancelledSteps"] = None
    jobs.insert(0, job)


async def churn(
    teams: Callable[[], list[list[dict[str, Any]]]], interval: float, seed: int = 0
) -> None:
    """Change the lists `teams()` returns every `interval` seconds, until cancelled."""
    rng = random.Random(seed)
    serial = 0
    while True:
        await asyncio.sleep(interval)
        for jobs in teams():
            move_on(jobs, rng)
            if rng.random() < 0.3:
                serial += 1
                start_one(jobs, rng, serial)
