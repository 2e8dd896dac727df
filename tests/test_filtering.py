"""Filtered pages: the predicate on hostile values, and walks over a filtered list, forward and
backward, short pages included, equal to filtering the whole list (hypothesis)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import BadUserInputError
from gateway.filtering import JobFilter, JobPredicate, ScanLimits, filtered_page
from gateway.pagination import decode_cursor
from gateway.sample_jobs import sample_team_jobs
from gateway.sample_upstream import SampleUpstream
from gateway.scalars import DateTime

from .conftest import asgi_client, graphql, in_process_gateway

pytestmark = pytest.mark.anyio
JOBS = sample_team_jobs("apiteam", 237)
STATUSES = sorted({job["metadata"]["status"] for job in JOBS})


def test_values_that_are_not_what_they_claim_never_match() -> None:
    """A status that is no string, an unparseable `created`, a job that is no object: no
    match, no error."""
    predicate = JobPredicate.of(
        JobFilter(status=["Active"], createdAfter=DateTime("2020-01-01T00:00:00Z"))
    )
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
        JobFilter(
            createdAfter=DateTime("2021-02-01T00:00:00Z"),
            createdBefore=DateTime("2021-01-01T00:00:00Z"),
        ),
        JobFilter(updatedAfter=DateTime("2021-13-01T00:00:00Z")),
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


FILTERED = """query($filter: JobFilter, $after: String) {
  jobs(first: 5, after: $after, filter: $filter) {
    edges { cursor node { metadata { status jobTitle } } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


async def ask(app: Any, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    async with asgi_client(app) as client:
        return await graphql(client, query, variables or {})


async def test_a_filtered_page_holds_the_first_matches_with_their_list_positions() -> None:
    """Five Completed jobs, each edge's cursor its position in the whole list, equal to
    filtering the list; the log line says what was scanned and returned."""
    sample = SampleUpstream()
    app = in_process_gateway(sample.app())
    body = await ask(app, FILTERED, {"filter": {"status": ["Completed"]}})
    edges = body["data"]["jobs"]["edges"]
    expected = [
        i
        for i, job in enumerate(sample.jobs_of("apiteam"))
        if job["metadata"]["status"] == "Completed"
    ]
    assert [decode_cursor(edge["cursor"], "c") for edge in edges] == expected[:5]
    assert {edge["node"]["metadata"]["status"] for edge in edges} == {"Completed"}
    assert body["data"]["jobs"]["pageInfo"]["hasNextPage"] is True


async def test_filtered_and_unfiltered_pages_share_their_blocks_and_warm_scans_are_free() -> None:
    """A filtered query repeated within the TTL, and an unfiltered page of the same rows,
    make no upstream call after the first scan."""
    sample = SampleUpstream()
    app = in_process_gateway(sample.app())
    await ask(app, FILTERED, {"filter": {"titleContains": "audit"}})
    calls = len(sample.seen)
    await ask(app, FILTERED, {"filter": {"titleContains": "AUDIT"}})
    await ask(app, "{ jobs(first: 20) { nodes { jobId } } }")
    assert calls >= 1
    assert len(sample.seen) == calls


@pytest.mark.parametrize(
    "bad",
    [
        {"status": []},
        {"createdAfter": "yesterday"},
        {"createdAfter": "2021-02-01T00:00:00Z", "createdBefore": "2021-01-01T00:00:00Z"},
    ],
)
async def test_bad_filter_values_cost_no_call(bad: dict[str, Any]) -> None:
    """Empty status list, malformed DateTime, bounds that admit nothing: BAD_USER_INPUT (or
    the variable's coercion error), and the upstream sees nothing."""
    sample = SampleUpstream()
    body = await ask(in_process_gateway(sample.app()), FILTERED, {"filter": bad})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert list(sample.seen) == []


async def test_a_scan_that_stops_early_says_where_and_the_next_page_continues() -> None:
    """Scanning at most 50 rows for a title nobody has: no edges, hasNextPage, and endCursor
    at row 49; the next page, after it, scans rows 50 to 99."""
    sample = SampleUpstream()
    app = in_process_gateway(sample.app(), filter_scan_rows=50)
    first = (await ask(app, FILTERED, {"filter": {"titleContains": "zzz"}}))["data"]["jobs"]
    after = first["pageInfo"]["endCursor"]
    second = await ask(app, FILTERED, {"filter": {"titleContains": "zzz"}, "after": after})
    assert first["edges"] == []
    assert first["pageInfo"]["hasNextPage"] is True
    assert decode_cursor(after, "c") == 49
    assert decode_cursor(second["data"]["jobs"]["pageInfo"]["endCursor"], "c") == 99


async def test_a_filtered_total_count_counts_every_match_or_fails_alone() -> None:
    """totalCount with a filter counts the matches of the whole list; when that needs more
    calls than the budget, totalCount alone is null with UPSTREAM_BUDGET_EXCEEDED."""
    sample = SampleUpstream()
    query = '{ jobs(first: 2, filter: {status: ["Completed"]}) { totalCount nodes { jobId } } }'
    counted = await ask(in_process_gateway(sample.app()), query)
    expected = sum(job["metadata"]["status"] == "Completed" for job in sample.jobs_of("apiteam"))
    assert counted["data"]["jobs"]["totalCount"] == expected
    longer = SampleUpstream(teams={"apiteam": 600})
    tight = await ask(
        in_process_gateway(longer.app(), upstream_call_budget=3, filter_scan_rows=100), query
    )
    assert tight["data"]["jobs"]["totalCount"] is None
    assert len(tight["data"]["jobs"]["nodes"]) == 2
    assert [error["extensions"]["code"] for error in tight["errors"]] == [
        "UPSTREAM_BUDGET_EXCEEDED"
    ]


async def test_my_jobs_and_workflow_jobs_take_the_filter_too() -> None:
    """The same JobFilter narrows myJobs and workflowJobs."""
    sample = SampleUpstream()
    job = sample.jobs_of("apiteam")[0]
    workflow = job["metadata"]["workflowId"]
    body = await ask(
        in_process_gateway(sample.app()),
        """query($w: ID!, $s: [String!]) {
          myJobs(first: 50, filter: {status: $s}) { nodes { metadata { status } } }
          workflowJobs(workflowId: $w, first: 50, filter: {status: $s}) {
            nodes { metadata { status workflowId } }
          }
        }""",
        {"w": workflow, "s": [job["metadata"]["status"]]},
    )
    mine = body["data"]["myJobs"]["nodes"]
    flow = body["data"]["workflowJobs"]["nodes"]
    assert mine
    assert flow
    assert {node["metadata"]["status"] for node in mine + flow} == {job["metadata"]["status"]}
    assert {node["metadata"]["workflowId"] for node in flow} == {workflow}


async def test_rows_scanned_and_matches_are_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The request's log line carries rows_scanned and matches; the metrics add them up."""
    caplog.set_level(logging.INFO, logger="gateway.request")
    app = in_process_gateway(SampleUpstream().app(), filter_scan_rows=60)
    await ask(app, FILTERED, {"filter": {"titleContains": "zzz"}})
    (line,) = [record.fields for record in caplog.records if hasattr(record, "fields")]
    registry = app.state.metrics.registry
    assert (line["rows_scanned"], line["matches"]) == (60, 0)
    assert registry.get_sample_value("gateway_filter_rows_scanned_total") == 60.0
    assert registry.get_sample_value("gateway_filter_matches_total") == 0.0


GRAPHQL_WALK = """query(
  $filter: JobFilter, $first: Int, $after: String, $last: Int, $before: String
) {
  jobs(first: $first, after: $after, last: $last, before: $before, filter: $filter) {
    edges { cursor node { jobId } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


@settings(max_examples=25, deadline=None)
@given(
    given_filter=st.fixed_dictionaries(
        {},
        optional={
            "status": st.lists(st.sampled_from(STATUSES), min_size=1, max_size=2),
            "titleContains": st.sampled_from(["audit", "PUMP", "#2"]),
        },
    ),
    size=st.integers(1, 9),
    scan_rows=st.integers(20, 150),
    forward=st.booleans(),
)
def test_walks_through_the_gateway_over_the_sample_upstream_equal_the_reference(
    given_filter: dict[str, Any], size: int, scan_rows: int, forward: bool
) -> None:
    """The same walks as GraphQL requests to the gateway app over the sample upstream (the
    cache's real blocks, the real cursors): exactly the matching jobs, in list order."""
    sample = SampleUpstream()
    app = in_process_gateway(sample.app(), filter_scan_rows=scan_rows)
    predicate = JobPredicate.of(JobFilter(**given_filter))
    jobs = sample.jobs_of("apiteam")
    expected = [job["jobId"] for job in jobs if predicate is None or predicate.matches(job)]

    async def walk() -> list[str]:
        seen: list[str] = []
        cursor = None
        async with asgi_client(app) as client:
            for _ in range(500):
                variables: dict[str, Any] = {"filter": given_filter}
                variables.update(
                    {"first": size, "after": cursor}
                    if forward
                    else {"last": size, "before": cursor}
                )
                body = await graphql(client, GRAPHQL_WALK, variables)
                page = body["data"]["jobs"]
                ids = [edge["node"]["jobId"] for edge in page["edges"]]
                seen = seen + ids if forward else ids + seen
                info = page["pageInfo"]
                if not (info["hasNextPage"] if forward else info["hasPreviousPage"]):
                    return seen
                cursor = info["endCursor"] if forward else info["startCursor"]
        raise AssertionError("the walk did not end")

    assert asyncio.run(walk()) == expected
