"""Which kept list block last held a job, per credential: how `node(id:)` answers a job of a
page just read without a call.

The upstream answers `GET /jobs/v1/bson/{jobId}` with the same object its list holds, so a job
the caller has just seen in a list need not be fetched again while that list's block is fresh.
This index remembers, in process, the block resource of each listed job, keyed like cache
entries (credential digest and write generation, never the token); the rows stay in the page
cache, read from there (fresh only) when asked. It is bounded: the oldest entries make way.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

from gateway.caller import Caller

MAX_LISTED: Final = 50_000
"""Jobs remembered at most (about 200 bytes each): 500 callers' first 100-row blocks."""


class ListedJobs:
    """jobId -> the block resource that listed it last, per credential and generation."""

    def __init__(self, max_entries: int = MAX_LISTED) -> None:
        self._max = max_entries
        self._blocks: OrderedDict[tuple[str, int, str], str] = OrderedDict()

    def note(self, caller: Caller, resource: str, rows: list[Any]) -> None:
        """Remember that `resource`'s rows, fetched for `caller`, list these jobs."""
        if caller.generation < 0:
            return
        blocks = self._blocks
        for row in rows:
            job_id = row.get("jobId") if isinstance(row, dict) else None
            if isinstance(job_id, str):
                key = (caller.credential, caller.generation, job_id)
                blocks[key] = resource
                blocks.move_to_end(key)
        while len(blocks) > self._max:
            blocks.popitem(last=False)

    def block_of(self, caller: Caller, job_id: str) -> str | None:
        """The block resource that last listed `job_id` for `caller`, if remembered."""
        return self._blocks.get((caller.credential, caller.generation, job_id))
