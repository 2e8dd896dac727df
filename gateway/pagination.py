"""Relay cursor arithmetic: `first/after/last/before` to an upstream skip/limit window and back.

Pure functions, no I/O, so they can be checked exhaustively against plain list slicing.

A cursor is the opaque, URL-safe base64 of `v1:<offset>`, the job's zero-based position in the
upstream list. `after: c(i)` starts the window at `i + 1`; `before: c(i)` ends it just before `i`.
Then, as the Relay spec's algorithm says, `first` keeps the window's first N rows and `last` its
last N. The window is fetched with one extra row after it, so `hasNextPage` is exact: it says
whether any row follows the returned ones. `hasPreviousPage` says whether the window starts after
position 0 (true for every cursor the gateway issued, since the row the cursor names exists).
Both flags are computed in either direction of travel, which the spec allows.

It also owns the fetch plan (`Fetching`): which upstream calls fetch a window (chunks of at
most the upstream's cap, or whole aligned blocks that neighbouring windows share when pages are
cached), how their rows are stitched, and how the end of a list is searched for. The upstream
client runs these plans; the request limits count the calls of the very same plans.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from gateway.errors import BadUserInputError
from gateway.opaque import decode_opaque, encode_opaque

T = TypeVar("T")

_CURSOR_VERSION = "v1"
_CURSOR_TEXT = re.compile(r"v1:(0|[1-9][0-9]{0,9})")
# Offsets beyond this are forged cursors: no upstream list is that long, and skip is an int32 there.
MAX_OFFSET = 2**31 - 2


@functools.lru_cache(maxsize=8192)
def encode_cursor(offset: int) -> str:
    """The opaque cursor of the row at zero-based `offset`."""
    return encode_opaque(f"{_CURSOR_VERSION}:{offset}")


def decode_cursor(cursor: str, argument: str) -> int:
    """The offset inside `cursor`; `BadUserInputError` naming `argument` if it is not ours."""
    invalid = BadUserInputError(
        f"`{argument}` is not a valid cursor: pass a cursor from a previous page's "
        "`edges.cursor`, `pageInfo.startCursor` or `pageInfo.endCursor`"
    )
    text = decode_opaque(cursor, max_length=24)
    match = _CURSOR_TEXT.fullmatch(text) if text is not None else None
    if match is None:
        raise invalid
    offset = int(match.group(1))
    if offset > MAX_OFFSET:
        raise invalid
    return offset


@dataclass(frozen=True, slots=True)
class Window:
    """Rows `[start, start + size)` of the upstream list, of which the page shows the last
    `keep_last` (all of them when it is None)."""

    start: int
    size: int
    keep_last: int | None = None

    @property
    def fetch_limit(self) -> int:
        """Rows to ask the upstream for: the window plus one, to learn `hasNextPage` exactly."""
        return self.size + 1


def check_count(name: str, value: int | None, max_page_size: int) -> None:
    """`BadUserInputError` for a `first`/`last` that is negative or above the maximum."""
    if value is None:
        return
    if value < 0:
        raise BadUserInputError(f"`{name}` must not be negative (got {value})")
    if value > max_page_size:
        raise BadUserInputError(
            f"`{name}` must be at most {max_page_size} (got {value}); page through larger lists"
        )


def page_window(
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    default_page_size: int,
    max_page_size: int,
    list_length: int | None = None,
) -> Window:
    """The window that the Relay arguments select. Raises `BadUserInputError` for bad input.

    With neither `first` nor `last`, `first` defaults to `default_page_size`. With `first`,
    `last` is applied to the rows actually fetched (the list may be shorter than `first`).
    With `last` alone, `before` is the end to count back from, or else the end of the list,
    `list_length`, which the caller finds out first (see `needs_list_length`).
    """
    check_count("first", first, max_page_size)
    check_count("last", last, max_page_size)
    start = 0 if after is None else decode_cursor(after, "after") + 1
    end = None if before is None else max(start, decode_cursor(before, "before"))
    if first is None and last is None:
        first = default_page_size
    if first is not None:
        end = start + first if end is None else min(end, start + first)
        keep_last = last if last is not None and last < end - start else None
        return Window(start=start, size=end - start, keep_last=keep_last)
    assert last is not None  # `first` and `last` are not both None by now
    if end is None and list_length is not None:
        end = max(start, list_length)
    if end is None:
        raise BadUserInputError(
            "`last` needs `before` (or `first`): the upstream does not say where the list "
            "ends, so pass `before` with the cursor to count back from"
        )
    # Every cursor the gateway issued names an existing row, so rows up to `before` exist.
    start = max(start, end - last)
    return Window(start=start, size=end - start)


def needs_list_length(*, first: int | None, last: int | None, before: str | None) -> bool:
    """Whether the window counts back from the end of the list: `last` without an end."""
    return last is not None and first is None and before is None


def end_probes(cap: int) -> Iterator[int]:
    """Offsets to probe (with limit 1) for the end of a list longer than `cap`: cap x 2^k."""
    offset = 2 * cap
    while offset <= MAX_OFFSET:
        yield offset
        offset *= 2


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """The rows of one window with their offsets and the Relay page flags."""

    start: int
    rows: Sequence[T]
    has_next_page: bool
    has_previous_page: bool

    @property
    def cursors(self) -> list[str]:
        """One cursor per row, in order."""
        return [encode_cursor(self.start + index) for index in range(len(self.rows))]


def page_from_rows(window: Window, fetched: Sequence[T]) -> Page[T]:
    """Cut what the upstream returned for `window` (up to `fetch_limit` rows) into a page."""
    rows = fetched[: window.size]
    start = window.start
    if window.keep_last is not None and len(rows) > window.keep_last:
        start += len(rows) - window.keep_last
        rows = rows[len(rows) - window.keep_last :]
    return Page(
        start=start,
        rows=rows,
        has_next_page=len(fetched) > window.size,
        has_previous_page=start > 0,
    )


def upstream_chunks(skip: int, limit: int, max_limit: int) -> list[tuple[int, int]]:
    """(skip, limit) calls fetching rows `[skip, skip + limit)`, none with `limit > max_limit`."""
    end = skip + limit
    return [(start, min(max_limit, end - start)) for start in range(skip, end, max_limit)]


def aligned_blocks(skip: int, limit: int, block_size: int) -> list[tuple[int, int]]:
    """(skip, limit) calls of whole `block_size`-row blocks, aligned to multiples of it, that
    cover rows `[skip, skip + limit)`.

    Neighbouring pages then ask for the same blocks, so a cached block serves them all: after
    `first: 20` (rows 0..20 from block 0..99), `first: 20, after: c(19)` needs no new call.
    """
    first_block = skip // block_size
    last_block = (skip + limit - 1) // block_size
    return [(index * block_size, block_size) for index in range(first_block, last_block + 1)]


def stitch_chunks(limits: Sequence[int], pages: Sequence[Sequence[T]]) -> list[T]:
    """The rows of consecutive chunk calls, in order, up to the first short chunk.

    A chunk that returned fewer rows than asked for is the end of the list, whatever later
    chunks say: so a list that shrinks between two concurrent calls, or an upstream that caps
    `limit` silently below `max_limit`, still gives a consistent page and `hasNextPage`.
    """
    rows: list[T] = []
    for limit, page in zip(limits, pages, strict=True):
        rows.extend(page[:limit])
        if len(page) < limit:
            break
    return rows


@dataclass(frozen=True, slots=True)
class FetchPlan:
    """The upstream calls that fetch rows `[skip, skip + limit)`, and how to put them together."""

    skip: int
    limit: int
    calls: tuple[tuple[int, int], ...]
    """(skip, limit) of each call, in list order."""

    @property
    def is_the_window(self) -> bool:
        """Whether one call asks for exactly the window (its rows need no stitching)."""
        return self.calls == ((self.skip, self.limit),)

    def rows(self, pages: Sequence[Sequence[T]]) -> list[T]:
        """The window's rows out of the calls' answers (see `stitch_chunks` for short ones)."""
        rows = stitch_chunks([size for _, size in self.calls], pages)
        offset = self.skip - self.calls[0][0]
        return rows[offset : offset + self.limit]


EndSearch = Generator[tuple[int, int], int, int | None]
"""Yields the (skip, limit) call to make next, is sent how many rows it returned, and returns
the list's length (None: longer than any offset the upstream takes)."""


@dataclass(frozen=True, slots=True)
class Fetching:
    """How windows of an upstream-paged list are fetched.

    `cap` is the most rows the upstream returns per call. With `block_size` (pages are cached)
    windows are fetched as whole aligned blocks, so neighbouring windows share them; without,
    as they are, in chunks of at most `cap` rows.
    """

    cap: int
    block_size: int = 0

    def plan(self, skip: int, limit: int) -> FetchPlan:
        """The calls that fetch rows `[skip, skip + limit)`."""
        block_size = min(self.block_size, self.cap)
        if block_size:
            calls = aligned_blocks(skip, limit, block_size)
        else:
            calls = upstream_chunks(skip, limit, self.cap)
        return FetchPlan(skip, limit, tuple(calls))

    def most_window_calls(self, page_size: int) -> int:
        """The most calls `plan` makes for a page of `page_size` rows (and the row after it)."""
        block_size = min(self.block_size, self.cap)
        if block_size:
            # An aligned window can straddle one more block than its length alone needs.
            return math.ceil((page_size + 1) / block_size) + 1
        return math.ceil((page_size + 1) / self.cap)

    def next_block(self, plan: FetchPlan, last_block_rows: int) -> tuple[int, int] | None:
        """The block after a window's last one, worth fetching ahead (next-block prefetch):
        when the window ends in the last quarter of that block and the block came back full
        (the list goes on). None without blocks, or when the window ends earlier."""
        if not min(self.block_size, self.cap):
            return None
        start, size = plan.calls[-1]
        if last_block_rows < size or (plan.skip + plan.limit - start) * 4 <= size * 3:
            return None
        return start + size, size

    def end_search(self) -> EndSearch:
        """The search for a list's length; the API has no count.

        One call of `cap` rows answers lists shorter than that. Longer ones are probed with
        `limit=1` at 2x, 4x, 8x... the cap until a probe is empty, then bisected down to one
        cap-sized window, which is fetched: about 2 log2(N / cap) + 2 calls in all.
        """
        cap = self.cap
        head = yield (0, cap)
        if head < cap:
            return head
        present, absent = cap - 1, None
        for probe in end_probes(cap):
            if (yield (probe, 1)):
                present = probe
            else:
                absent = probe
                break
        if absent is None:
            return None
        while absent - present > cap:
            middle = (present + absent) // 2
            if (yield (middle, 1)):
                present = middle
            else:
                absent = middle
        return present + (yield (present, cap))

    def most_end_search_calls(self, longest: int) -> int:
        """The most calls `end_search` makes for a list of up to `longest` rows."""
        return 2 * math.ceil(math.log2(max(longest / self.cap, 1))) + 2
