"""Pure cursor arithmetic: units, and properties against the Relay algorithm over plain lists."""

from __future__ import annotations

import base64

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.errors import BadUserInputError
from gateway.pagination import (
    MAX_OFFSET,
    Fetching,
    Window,
    decode_cursor,
    encode_cursor,
    page_from_rows,
    page_window,
    stitch_chunks,
    upstream_chunks,
)

DEFAULT, MAXIMUM = 20, 100


def window(**arguments: int | str | None) -> Window:
    relay: dict[str, int | str | None] = {
        "first": None,
        "after": None,
        "last": None,
        "before": None,
    }
    relay.update(arguments)
    return page_window(default_page_size=DEFAULT, max_page_size=MAXIMUM, **relay)  # type: ignore[arg-type]


def test_no_arguments_is_the_first_default_page() -> None:
    """With no arguments the window is the first 20 rows, fetched with one extra row."""
    assert window() == Window(start=0, size=20)
    assert window().fetch_limit == 21


def test_first_after_starts_past_the_cursor() -> None:
    """`first: 20, after: c(19)` is rows 20..39: skip=20, limit=21."""
    chosen = window(first=20, after=encode_cursor(19))
    assert (chosen.start, chosen.fetch_limit) == (20, 21)


def test_last_before_ends_before_the_cursor() -> None:
    """`last: 5, before: c(12)` is rows 7..11; near the top it is cut at row 0."""
    assert window(last=5, before=encode_cursor(12)) == Window(start=7, size=5)
    assert window(last=5, before=encode_cursor(3)) == Window(start=0, size=3)


def test_first_and_last_together_apply_first_then_last() -> None:
    """The spec applies `first` to the cursor range, then `last` to what is left."""
    assert window(first=10, last=3) == Window(start=0, size=10, keep_last=3)
    page = page_from_rows(window(first=10, last=3), list(range(11)))
    assert (page.start, list(page.rows), page.has_previous_page) == (7, [7, 8, 9], True)
    # The list may hold fewer rows than `first`: `last` counts back from what is there.
    assert list(page_from_rows(window(first=10, last=3), [0, 1]).rows) == [0, 1]
    assert window(first=2, last=5, after=encode_cursor(0)) == Window(start=1, size=2)


def test_after_beyond_before_is_an_empty_window() -> None:
    """A cursor range that is empty gives an empty window, not a negative one."""
    assert window(after=encode_cursor(10), before=encode_cursor(5)).size == 0


def test_last_without_an_end_asks_for_before() -> None:
    """`last` alone needs the end of the list, which the upstream cannot say: a clear error."""
    with pytest.raises(BadUserInputError, match="`last` needs `before`"):
        window(last=5)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"first": -1}, "`first` must not be negative"),
        ({"last": -3, "before": encode_cursor(9)}, "`last` must not be negative"),
        ({"first": 101}, "`first` must be at most 100"),
        ({"last": 1000, "before": encode_cursor(9)}, "`last` must be at most 100"),
        ({"after": "not a cursor"}, "`after` is not a valid cursor"),
        ({"before": ""}, "`before` is not a valid cursor"),
    ],
)
def test_bad_arguments_are_bad_user_input(arguments: dict[str, object], message: str) -> None:
    """Counts out of range and foreign cursors raise BAD_USER_INPUT naming the argument."""
    with pytest.raises(BadUserInputError, match=message) as raised:
        window(**arguments)  # type: ignore[arg-type]
    assert raised.value.code == "BAD_USER_INPUT"


@pytest.mark.parametrize(
    "cursor",
    [
        base64.urlsafe_b64encode(b"v2:5").decode(),  # another version
        base64.urlsafe_b64encode(b"v1:-5").decode(),  # negative
        base64.urlsafe_b64encode(b"v1:05").decode(),  # not canonical
        base64.urlsafe_b64encode(b"v1:5").decode(),  # padded: not how the gateway writes it
        base64.urlsafe_b64encode(f"v1:{MAX_OFFSET + 1}".encode()).decode().rstrip("="),
        "djE6MA!",
        "\u00e9t\u00e9",
        "x" * 100,
    ],
)
def test_only_cursors_the_gateway_writes_decode(cursor: str) -> None:
    """Forged, padded, non-canonical or out-of-range cursors are rejected."""
    with pytest.raises(BadUserInputError):
        decode_cursor(cursor, "after")


@given(st.integers(min_value=0, max_value=MAX_OFFSET))
def test_cursors_round_trip(offset: int) -> None:
    """Every offset's cursor decodes to that offset and is URL-safe without padding."""
    cursor = encode_cursor(offset)
    assert decode_cursor(cursor, "after") == offset
    assert cursor.isalnum() or set(cursor) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )


def relay_reference(
    rows: list[int], first: int | None, after: int | None, last: int | None, before: int | None
) -> list[int]:
    """The Relay spec's algorithm, literally, over a list whose cursors are positions."""
    edges = list(rows)
    if after is not None:
        edges = [row for row in edges if row > after]
    if before is not None:
        edges = [row for row in edges if row < before]
    if first is None and last is None:
        first = DEFAULT
    if first is not None:
        edges = edges[:first]
    if last is not None:
        edges = edges[max(0, len(edges) - last) :]
    return edges


counts = st.one_of(st.none(), st.integers(min_value=0, max_value=MAXIMUM))
positions = st.one_of(st.none(), st.integers(min_value=0, max_value=260))


@given(
    size=st.integers(min_value=0, max_value=250),
    first=counts,
    after=positions,
    last=counts,
    before=positions,
)
def test_pages_match_plain_list_slicing(
    size: int, first: int | None, after: int | None, last: int | None, before: int | None
) -> None:
    """For every argument combination the page equals the Relay algorithm over the list.

    `before` is a row of the list, as every cursor the gateway issued names one; a `before`
    past the end (the list shrank) counts back from its position instead (see the next test).
    """
    assume(before is None or before < size)
    rows = list(range(size))
    try:
        chosen = window(
            first=first,
            after=None if after is None else encode_cursor(after),
            last=last,
            before=None if before is None else encode_cursor(before),
        )
    except BadUserInputError:
        # Only `last` with no end to count back from is refused among in-range arguments.
        assert last is not None
        assert first is None
        assert before is None
        return
    assert chosen.start >= 0
    assert 1 <= chosen.fetch_limit <= MAXIMUM + 1
    # What the upstream returns for skip/limit is plain slicing.
    page = page_from_rows(chosen, rows[chosen.start : chosen.start + chosen.fetch_limit])
    assert list(page.rows) == relay_reference(rows, first, after, last, before)
    assert page.cursors == [encode_cursor(row) for row in page.rows]
    if page.rows:
        assert page.has_next_page == any(row > page.rows[-1] for row in rows)
        assert page.has_previous_page == any(row < page.rows[0] for row in rows)
    else:
        lower = -1 if after is None else after
        assert not page.has_next_page or any(row > lower for row in rows)


def test_before_past_the_end_counts_back_from_its_position() -> None:
    """A stale `before` beyond the list's end gives the rows that still exist in its window."""
    chosen = window(last=5, before=encode_cursor(12))
    page = page_from_rows(chosen, list(range(10))[chosen.start : chosen.start + chosen.fetch_limit])
    assert (list(page.rows), page.has_next_page, page.has_previous_page) == ([7, 8, 9], False, True)


def test_empty_first_page_of_an_empty_list() -> None:
    """An empty list gives no rows and no neighbours."""
    page = page_from_rows(window(first=5), list[object]())
    assert (list(page.rows), page.has_next_page, page.has_previous_page) == ([], False, False)


def test_first_zero_still_tells_whether_rows_follow() -> None:
    """`first: 0` fetches one row, only to say whether a next page exists."""
    chosen = window(first=0, after=encode_cursor(4))
    assert (chosen.start, chosen.fetch_limit) == (5, 1)
    assert page_from_rows(chosen, [5]).has_next_page
    assert not page_from_rows(chosen, []).has_next_page


@given(
    size=st.integers(min_value=0, max_value=120),
    skip=st.integers(min_value=0, max_value=130),
    limit=st.integers(min_value=1, max_value=101),
    cap=st.integers(min_value=1, max_value=40),
)
def test_chunks_cover_the_window_and_stitch_to_a_slice(
    size: int, skip: int, limit: int, cap: int
) -> None:
    """Chunked calls never exceed the cap, tile the window, and stitch to plain slicing."""
    rows = list(range(size))
    chunks = upstream_chunks(skip, limit, cap)
    assert all(1 <= chunk_limit <= cap for _, chunk_limit in chunks)
    assert [
        row for start, chunk_limit in chunks for row in range(start, start + chunk_limit)
    ] == list(range(skip, skip + limit))
    pages = [rows[start : start + chunk_limit] for start, chunk_limit in chunks]
    assert (
        stitch_chunks([chunk_limit for _, chunk_limit in chunks], pages)
        == rows[skip : skip + limit]
    )


@given(
    size=st.integers(min_value=0, max_value=120),
    limit=st.integers(min_value=1, max_value=101),
    cap=st.integers(min_value=1, max_value=40),
    silent_cap=st.integers(min_value=1, max_value=40),
)
def test_a_silently_capping_upstream_gives_a_consistent_prefix(
    size: int, limit: int, cap: int, silent_cap: int
) -> None:
    """If the upstream returns fewer rows than asked, the stitched rows are a prefix that ends
    at the first short chunk: never a gap, never rows after a hole."""
    rows = list(range(size))
    chunks = upstream_chunks(0, limit, cap)
    pages = [rows[start : start + min(chunk_limit, silent_cap)] for start, chunk_limit in chunks]
    stitched = stitch_chunks([chunk_limit for _, chunk_limit in chunks], pages)
    assert stitched == rows[: len(stitched)]


@given(
    length=st.integers(0, 700),
    skip=st.integers(0, 700),
    page_size=st.integers(0, 150),
    cap=st.integers(1, 120),
    block_size=st.sampled_from([0, 1, 7, 50, 100, 500]),
)
def test_fetch_plans_give_the_slice_within_the_counted_calls(
    length: int, skip: int, page_size: int, cap: int, block_size: int
) -> None:
    """Every plan (chunks or aligned blocks) stitches to the plain slice of the list, with no
    call over the cap and no more calls than the request limits count for it."""
    fetching = Fetching(cap, block_size)
    reference = list(range(length))
    limit = page_size + 1  # a window is fetched with the row after it
    plan = fetching.plan(skip, limit)
    assert all(size <= cap for _, size in plan.calls)
    assert len(plan.calls) <= fetching.most_window_calls(page_size)
    pages = [reference[start : start + size] for start, size in plan.calls]
    assert plan.rows(pages) == reference[skip : skip + limit]


@given(length=st.integers(0, 1_000_000), cap=st.integers(1, 500))
def test_the_end_search_finds_the_length_within_the_counted_calls(length: int, cap: int) -> None:
    """Against a list of any length up to the counted maximum, the search ends with exactly its
    length, in no more calls than the request limits count for it."""
    fetching = Fetching(cap)
    search = fetching.end_search()
    calls = 0
    found = None
    try:
        skip, limit = next(search)
        while True:
            calls += 1
            skip, limit = search.send(max(0, min(limit, length - skip)))
    except StopIteration as done:
        found = done.value
    assert found == length
    assert calls <= fetching.most_end_search_calls(1_000_000)
