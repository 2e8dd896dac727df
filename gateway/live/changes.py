"""What changed between two polls of a list window: pure functions, no I/O.

A window is remembered as a `Baseline`: each job's `jobId` and a digest of its whole JSON, in
list order. Comparing the next poll's rows with it gives the changes, in this order:

- walking the new rows in list order, each job that was not in the window is ADDED and each
  whose digest differs is UPDATED (any value changed, not a chosen few fields);
- then each job of the baseline that is no longer in the window is REMOVED (deleted, or pushed
  out by newer jobs), in the order it had.

A row without a usable `jobId` (not an object, or no non-empty string id) cannot be followed
from poll to poll, so it is left out of both. A job listed twice counts once, where it first
appears.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson


class ChangeKind(enum.Enum):
    """How a job's place in the window changed."""

    ADDED = "ADDED"
    UPDATED = "UPDATED"
    REMOVED = "REMOVED"


@dataclass(frozen=True, slots=True)
class Change:
    """One job's change: its id and, unless it was removed, its JSON as polled."""

    kind: ChangeKind
    job_id: str
    job: dict[str, Any] | None


def job_digest(job: dict[str, Any]) -> bytes:
    """A digest of the job's whole JSON, independent of key order."""
    try:
        encoded = orjson.dumps(job, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:
        # Deeper than orjson writes (254 levels): digest its repr, still a pure function of it.
        encoded = repr(job).encode()
    return hashlib.blake2b(encoded, digest_size=16).digest()


def _identified(rows: Sequence[Any]) -> dict[str, tuple[bytes, dict[str, Any]]]:
    """Each followable row by its jobId, in list order, the first of duplicates kept."""
    window: dict[str, tuple[bytes, dict[str, Any]]] = {}
    for row in rows:
        if not isinstance(row, dict):
            continue
        job_id = row.get("jobId")
        if isinstance(job_id, str) and job_id and job_id not in window:
            window[job_id] = (job_digest(row), row)
    return window


@dataclass(frozen=True, slots=True)
class Baseline:
    """A window as last seen: jobId to digest, in list order."""

    digests: dict[str, bytes]

    @classmethod
    def of(cls, rows: Sequence[Any]) -> Baseline:
        """The baseline of a polled window (the first poll: no changes are reported)."""
        return cls({job_id: digest for job_id, (digest, _) in _identified(rows).items()})

    def changes(self, rows: Sequence[Any]) -> tuple[Baseline, list[Change]]:
        """The baseline of `rows`, and what changed since this one, in the module's order."""
        window = _identified(rows)
        changes: list[Change] = []
        for job_id, (digest, row) in window.items():
            before = self.digests.get(job_id)
            if before is None:
                changes.append(Change(ChangeKind.ADDED, job_id, row))
            elif before != digest:
                changes.append(Change(ChangeKind.UPDATED, job_id, row))
        changes.extend(
            Change(ChangeKind.REMOVED, job_id, None)
            for job_id in self.digests
            if job_id not in window
        )
        return Baseline({job_id: digest for job_id, (digest, _) in window.items()}), changes
