"""Filtered pages over an API that cannot filter: `jobs(filter:)` by a bounded scan of the list.

The Jobs API only pages its lists, newest first. A filtered page scans the underlying list in
aligned blocks (the cache's blocks: a filtered and an unfiltered query of the same rows share
their fetches) and keeps the jobs that match, so:

- every edge's cursor is its job's position in the underlying list, as in unfiltered pages,
  and `after`/`before` resume the scan there; `first`/`last` count matching jobs;
- one request scans at most `GATEWAY_FILTER_SCAN_ROWS` rows. When the scan stops there (or the
  request's upstream-call budget runs out) before the page is full, the page holds what was
  found, `hasNextPage` (forward) or `hasPreviousPage` (backward) is true, and `endCursor`
  (forward) or `startCursor` (backward) is the cursor of the last row scanned, even with no
  edges: a client paging on it simply continues the scan. That is the one departure from
  "`endCursor` is the last edge's cursor";
- a value that is not what it claims (an unparseable timestamp, a status that is not a
  string) never matches a filter on that field and never fails the page.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import strawberry

from gateway.caller import UpstreamBudgetExceededError
from gateway.errors import BadUserInputError
from gateway.pagination import check_count, decode_cursor, encode_cursor
from gateway.scalars import DateTime

_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,7}))?Z")


@strawberry.input(
    description="Which jobs a list shows: every field given must hold (AND); none: all jobs."
)
class JobFilter:
    status: list[str] | None = strawberry.field(
        default=None, description="Any of these statuses, exactly as the Jobs API spells them."
    )
    workflowId: strawberry.ID | None = strawberry.field(
        default=None, description="Jobs of this workflow (`metadata.workflowId`)."
    )
    username: str | None = strawberry.field(
        default=None, description="Jobs of this user (`metadata.username`, case-insensitive)."
    )
    titleContains: str | None = strawberry.field(
        default=None,
        description="Jobs whose `metadata.jobTitle` contains this text (case-insensitive).",
    )
    excluded: bool | None = strawberry.field(default=None, description="Excluded or not.")
    createdAfter: DateTime | None = strawberry.field(
        default=None, description="Created at or after this instant (`metadata.created`)."
    )
    createdBefore: DateTime | None = strawberry.field(
        default=None, description="Created at or before this instant."
    )
    updatedAfter: DateTime | None = strawberry.field(
        default=None, description="Changed at or after this instant (`metadata.updated`)."
    )


def instant(value: object) -> datetime | None:
    """The UTC instant of an RFC 3339 timestamp as the Jobs API writes them (`Z`, 0 to 7
    fractional digits); None for anything else."""
    if not isinstance(value, str):
        return None
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        return None
    try:
        moment = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    digits = (match.group(2) or "")[:6].ljust(6, "0")
    return moment.replace(microsecond=int(digits))


def _folded(value: object) -> str | None:
    return value.casefold() if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class JobPredicate:
    """A checked filter: `matches(job)` on the upstream's JSON, never raising."""

    statuses: frozenset[str] | None = None
    workflow_id: str | None = None
    username: str | None = None
    title_contains: str | None = None
    excluded: bool | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None

    @classmethod
    def of(cls, given: JobFilter | None) -> JobPredicate | None:
        """The predicate of `given`; None when it filters nothing. `BadUserInputError`
        (before any call) for an empty status list or bounds that admit no instant."""
        if given is None:
            return None
        if given.status is not None and not given.status:
            raise BadUserInputError("`filter.status` must name at least one status")
        predicate = cls(
            statuses=frozenset(given.status) if given.status is not None else None,
            workflow_id=str(given.workflowId) if given.workflowId is not None else None,
            username=_folded(given.username),
            title_contains=_folded(given.titleContains),
            excluded=given.excluded,
            created_after=_bound(given.createdAfter, "createdAfter"),
            created_before=_bound(given.createdBefore, "createdBefore"),
            updated_after=_bound(given.updatedAfter, "updatedAfter"),
        )
        after, before = predicate.created_after, predicate.created_before
        if after is not None and before is not None and after > before:
            raise BadUserInputError("`filter.createdAfter` is after `filter.createdBefore`")
        return None if predicate == cls() else predicate

    def matches(self, job: object) -> bool:
        """Whether `job` (the upstream's JSON) passes every condition."""
        if not isinstance(job, dict):
            return False
        metadata = job.get("metadata")
        if not isinstance(metadata, dict):
            metadata = {}
        if self.statuses is not None:
            status = metadata.get("status")
            if not isinstance(status, str) or status not in self.statuses:
                return False
        if self.workflow_id is not None and metadata.get("workflowId") != self.workflow_id:
            return False
        if self.username is not None and _folded(metadata.get("username")) != self.username:
            return False
        if self.title_contains is not None:
            title = _folded(metadata.get("jobTitle"))
            if title is None or self.title_contains not in title:
                return False
        if self.excluded is not None and job.get("excluded") is not self.excluded:
            return False
        return self._in_time(metadata)

    def _in_time(self, metadata: dict[str, Any]) -> bool:
        if self.created_after is not None or self.created_before is not None:
            created = instant(metadata.get("created"))
            if created is None:
                return False
            if self.created_after is not None and created < self.created_after:
                return False
            if self.created_before is not None and created > self.created_before:
                return False
        if self.updated_after is not None:
            updated = instant(metadata.get("updated"))
            if updated is None or updated < self.updated_after:
                return False
        return True


def _bound(value: object, name: str) -> datetime | None:
    if value is None:
        return None
    moment = instant(value)
    if moment is None:
        raise BadUserInputError(f"`filter.{name}` must be an RFC 3339 UTC timestamp")
    return moment


Read = Callable[[int, int], Awaitable[list[Any]]]
"""Rows `[skip, skip + limit)` of the underlying list (fewer at its end)."""


@dataclass(frozen=True, slots=True)
class Scan:
    """What a scan found: matching `(position, job)` pairs in list order, whether more may
    lie beyond them in the scan's direction, and where it stopped early (else None)."""

    found: list[tuple[int, Any]]
    more: bool
    stopped_at: int | None
    scanned: int


async def scan_forward(
    read: Read,
    predicate: JobPredicate,
    *,
    start: int,
    stop: int | None,
    wanted: int,
    max_rows: int,
    block: int,
) -> Scan:
    """Up to `wanted` matches from position `start` on (before `stop`, if given)."""
    found: list[tuple[int, Any]] = []
    position, scanned = start, 0
    while stop is None or position < stop:
        block_start = position - position % block
        try:
            rows = await read(block_start, block)
        except UpstreamBudgetExceededError:
            if scanned == 0:
                raise
            return Scan(found, True, position - 1, scanned)
        end = len(rows) if stop is None else min(len(rows), stop - block_start)
        for index in range(position - block_start, end):
            if scanned == max_rows:
                return Scan(found, True, block_start + index - 1, scanned)
            scanned += 1
            if predicate.matches(rows[index]):
                if len(found) == wanted:
                    return Scan(found, True, None, scanned)
                found.append((block_start + index, rows[index]))
        if len(rows) < block:
            break
        position = block_start + block
    return Scan(found, False, None, scanned)


async def scan_backward(
    read: Read,
    predicate: JobPredicate,
    *,
    end: int,
    floor: int,
    wanted: int,
    max_rows: int,
    block: int,
) -> Scan:
    """Up to `wanted` matches before position `end`, down to `floor`, the nearest first
    scanned; returned in list order."""
    found: list[tuple[int, Any]] = []
    position, scanned = end - 1, 0
    while position >= floor:
        block_start = position - position % block
        try:
            rows = await read(block_start, block)
        except UpstreamBudgetExceededError:
            if scanned == 0:
                raise
            return Scan(found[::-1], True, position + 1, scanned)
        lowest = max(floor - block_start, 0)
        for index in range(min(position - block_start, len(rows) - 1), lowest - 1, -1):
            if scanned == max_rows:
                return Scan(found[::-1], True, block_start + index + 1, scanned)
            scanned += 1
            if predicate.matches(rows[index]):
                if len(found) == wanted:
                    return Scan(found[::-1], True, None, scanned)
                found.append((block_start + index, rows[index]))
        position = block_start - 1
    return Scan(found[::-1], False, None, scanned)


async def count_matches(read: Read, predicate: JobPredicate, block: int) -> int:
    """How many jobs of the whole list match: every block read (within the call budget)."""
    matching, start = 0, 0
    while True:
        rows = await read(start, block)
        matching += sum(1 for row in rows if predicate.matches(row))
        if len(rows) < block:
            return matching
        start += block


@dataclass(frozen=True, slots=True)
class FilteredPage:
    """A filtered page: its matches as `(position, job)` in list order, and its pageInfo."""

    found: list[tuple[int, Any]]
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None
    scanned: int
    """Rows of the underlying list the scan read."""


@dataclass(frozen=True, slots=True)
class ScanLimits:
    """How a scan may go: rows per request, rows per read (the cache's block), page sizes."""

    max_rows: int
    block: int
    default_page_size: int
    max_page_size: int


async def filtered_page(
    read: Read,
    length: Callable[[], Awaitable[int]],
    predicate: JobPredicate,
    limits: ScanLimits,
    arguments: tuple[int | None, str | None, int | None, str | None],
) -> FilteredPage:
    """The page the Relay arguments `(first, after, last, before)` select among the matching
    jobs: scanned forward from `after`, or backward from `before` (or the list's end) for
    `last` without `first`. Arguments are checked before any call."""
    first, after, last, before = arguments
    for name, value in (("first", first), ("last", last)):
        check_count(name, value, limits.max_page_size)
    start = decode_cursor(after, "after") + 1 if after is not None else 0
    stop = decode_cursor(before, "before") if before is not None else None
    if last is not None and first is None:
        end = stop if stop is not None else await length()
        scan = await scan_backward(
            read,
            predicate,
            end=end,
            floor=start,
            wanted=last,
            max_rows=limits.max_rows,
            block=limits.block,
        )
        edge_start, edge_end = _edge_cursors(scan.found)
        return FilteredPage(
            scan.found,
            has_next_page=stop is not None,
            has_previous_page=scan.more,
            start_cursor=_at(scan.stopped_at) or edge_start,
            end_cursor=edge_end or _at(scan.stopped_at),
            scanned=scan.scanned,
        )
    wanted = first if first is not None else limits.default_page_size
    scan = await scan_forward(
        read,
        predicate,
        start=start,
        stop=stop,
        wanted=wanted,
        max_rows=limits.max_rows,
        block=limits.block,
    )
    found = (
        scan.found if last is None else scan.found[len(scan.found) - min(last, len(scan.found)) :]
    )
    edge_start, edge_end = _edge_cursors(found)
    return FilteredPage(
        found,
        has_next_page=scan.more,
        has_previous_page=start > 0 or len(found) < len(scan.found),
        start_cursor=edge_start or _at(scan.stopped_at),
        end_cursor=_at(scan.stopped_at) or edge_end,
        scanned=scan.scanned,
    )


def _edge_cursors(found: list[tuple[int, Any]]) -> tuple[str | None, str | None]:
    if not found:
        return None, None
    return encode_cursor(found[0][0]), encode_cursor(found[-1][0])


def _at(position: int | None) -> str | None:
    """The cursor of the row a scan stopped at (None when it did not stop early)."""
    return None if position is None or position < 0 else encode_cursor(position)
