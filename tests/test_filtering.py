"""Filtered pages: the predicate on hostile values, and walks over a filtered list, forward and
backward, short pages included, equal to filtering the whole list (hypothesis)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import BadUserInputError
from gateway.filtering import JobFilter, JobPredicate, ScanLimits, filtered_page
from gateway.pagination import decode_cursor
from gateway.sample_jobs import sample_team_jobs

pytestmark = pytest.mark.anyio
JOBS = sample_team_jobs("apiteam", 237)
STATUSES = sorted({job["metadata"]["status"] for job in JOBS})


def test_values_that_are_not_what_they_claim_never_match() -> None:
    """A status that is no string, an unparseable `created`, a job that is no object: no
    match, no error."""
    predicate = JobPredicate.of(JobFilter(status=["Active"], createdAfter="2020-01-01T00:00:00Z"))
    assert predicate is not None
    odd = [
        {"metadata": {"status": ["Active"], "created": "2021-01-01T00:00:00Z"}},
        {"metadata": {"status": "Active", "created": "yesterday"}},
        {"metadata": {"status": "Active", "created": 1609459200}},
        {"metadata": None},
        "not a job",
        None,
    ]
    assert [predicate.matches(job) for job in odd] == [False] * len(odd)
    assert predicate.matches(
        {"metadata": {"status": "Active", "created": "2021-01-01T00:00:00.1234567Z"}}
    )


@pytest.mark.parametrize(
    "given_filter",
    [
        JobFilter(status=[]),
        JobFilter(createdAfter="2021-02-01T00:00:00Z", createdBefore="2021-01-01T00:00:00Z"),
        JobFilter(updatedAfter="2021-13-01T00:00:00Z"),
    ],
)
def test_bad_filters_are_bad_user_input(given_filter: JobFilter) -> None:
    """An empty status list, bounds that admit nothing, an impossible date."""
    with pytest.raises(BadUserInputError):
        JobPredicate.of(given_filter)


def test_an_empty_filter_is_no_filter() -> None:
    """`filter: {}` (every field null) is today's unfiltered behaviour."""
    assert JobPredicate.of(JobFilter()) is None


filters = st.builds(
    JobFilter,
    status=st.none() | st.lists(st.sampled_from(STATUSES), min_size=1, max_size=3),
    titleContains=st.none() | st.sampled_from(["audit", "#1", "INSPECTION", "zzz"]),
    createdAfter=st.none() | st.sampled_from(["2020-11-04T00:00:00Z", "2021-06-01T00:00:00Z"]),
)


async def walk(
    predicate: JobPredicate, limits: ScanLimits, size: int, *, forward: bool
) -> tuple[list[int], int]:
    """Positions seen walking the filtered list page by page; and the pages it took."""

    async def read(skip: int, limit: int) -> list[Any]:
        return JOBS[skip : skip + limit]

    async def length() -> int:
        return len(JOBS)

    seen: list[int] = []
    cursor: str | None = None
    for pages in range(1, 1000):
        arguments = (size, cursor, None, None) if forward else (None, None, size, cursor)
        page = await filtered_page(read, length, predicate, limits, arguments)
        positions = [position for position, _ in page.found]
        seen = seen + positions if forward else positions + seen
        if not (page.has_next_page if forward else page.has_previous_page):
            return seen, pages
        cursor = page.end_cursor if forward else page.start_cursor
        assert cursor is not None
        if positions:
            edge = positions[-1] if forward else positions[0]
            # The continuation cursor is the last edge, or past it where the scan stopped.
            assert (
                (decode_cursor(cursor, "c") >= edge)
                if forward
                else (decode_cursor(cursor, "c") <= edge)
            )
    raise AssertionError("the walk did not end")


@settings(max_examples=60, deadline=None)
@given(
    given_filter=filters,
    size=st.integers(1, 12),
    block=st.sampled_from([7, 20, 100]),
    max_rows=st.integers(1, 300),
    forward=st.booleans(),
)
def test_walking_a_filtered_list_yields_exactly_its_matches_in_order(
    given_filter: JobFilter, size: int, block: int, max_rows: int, forward: bool
) -> None:
    """Forward on endCursor or backward on startCursor, with scans that stop early, every
    matching job comes exactly once, in list order, and nothing else."""
    predicate = JobPredicate.of(given_filter)
    if predicate is None:
        return
    limits = ScanLimits(max_rows=max_rows, block=block, default_page_size=20, max_page_size=100)
    seen, _ = asyncio.run(walk(predicate, limits, size, forward=forward))
    assert seen == [index for index, job in enumerate(JOBS) if predicate.matches(job)]
