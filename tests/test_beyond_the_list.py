"""totalCount, `last` from the end, Relay refetch, `job`, `myJobs`, `workflowJobs`: end to end,
a real uvicorn gateway over TCP against the sample upstream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.background import BackgroundServer
from gateway.node_ids import global_id
from gateway.pagination import encode_cursor
from gateway.sample_upstream import Grant, SampleUpstream

from .conftest import network_gateway

pytestmark = pytest.mark.e2e

SIZES = {"t0": 0, "t1": 1, "t20": 20, "t237": 237, "t10k": 10_000}
# Upstream calls to count N jobs: one 100-row call below 100; then probes and bisection.
COUNT_CALLS = {0: 1, 1: 1, 20: 1, 237: 5, 10_000: 15}


def post(server: BackgroundServer, query: str, token: str = "demo-token", **variables: Any) -> Any:
    response = httpx.post(
        f"{server.url}/graphql",
        json={"query": query, "variables": variables},
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def sized() -> Iterator[tuple[SampleUpstream, BackgroundServer]]:
    """A sample upstream with teams of 0, 1, 20, 237 and 10,000 jobs, and a gateway with the
    default settings (the cache on)."""
    sample = SampleUpstream(teams=SIZES, grants={team: Grant(team) for team in SIZES})
    upstream = BackgroundServer(sample.app()).start()
    try:
        with BackgroundServer(network_gateway(upstream.url)) as gateway:
            yield sample, gateway
    finally:
        upstream.stop()


@pytest.mark.parametrize("team", list(SIZES))
def test_total_count_is_exact_with_few_calls(
    sized: tuple[SampleUpstream, BackgroundServer], team: str
) -> None:
    """totalCount for 0, 1, 20, 237 and 10,000 jobs, with the tested number of calls."""
    sample, gateway = sized
    sample.seen.clear()
    body = post(gateway, "{ jobs(first: 1) { totalCount } }", token=team)
    assert body == {"data": {"jobs": {"totalCount": SIZES[team]}}}
    # one call for the page itself, then the end-finding ones
    assert len(sample.seen) == 1 + COUNT_CALLS[SIZES[team]]


def test_total_count_is_computed_only_when_selected(
    sized: tuple[SampleUpstream, BackgroundServer],
) -> None:
    """Without totalCount, a page of a 10,000-job list is one call (of a block no other test
    reads, so the shared gateway's cache holds none of it)."""
    sample, gateway = sized
    sample.seen.clear()
    after = encode_cursor(5_000)
    post(gateway, f'{{ jobs(first: 5, after: "{after}") {{ nodes {{ jobId }} }} }}', token="t10k")
    assert len(sample.seen) == 1


def test_last_without_before_is_the_end_of_the_list(
    sized: tuple[SampleUpstream, BackgroundServer],
) -> None:
    """`last: 5` gives the last five jobs, in order, with their cursors and flags."""
    sample, gateway = sized
    body = post(
        gateway,
        "{ jobs(last: 5) { edges { cursor node { jobId } } "
        "pageInfo { hasNextPage hasPreviousPage } } }",
        token="t237",
    )
    edges = body["data"]["jobs"]["edges"]
    assert [edge["node"]["jobId"] for edge in edges] == [
        job["jobId"] for job in sample.jobs_of("t237")[-5:]
    ]
    assert [edge["cursor"] for edge in edges] == [encode_cursor(n) for n in range(232, 237)]
    assert body["data"]["jobs"]["pageInfo"] == {"hasNextPage": False, "hasPreviousPage": True}
    short = post(
        gateway, "{ jobs(last: 50) { nodes { jobId } pageInfo { hasPreviousPage } } }", token="t20"
    )
    assert len(short["data"]["jobs"]["nodes"]) == 20
    assert short["data"]["jobs"]["pageInfo"] == {"hasPreviousPage": False}
    empty = post(gateway, "{ jobs(last: 5) { nodes { jobId } } }", token="t0")
    assert empty == {"data": {"jobs": {"nodes": []}}}


@pytest.fixture(scope="module")
def gateway(sample_server: BackgroundServer) -> Iterator[BackgroundServer]:
    """A gateway with its cache on, over the session's sample upstream."""
    with BackgroundServer(network_gateway(sample_server.url, cache_ttl=30)) as server:
        yield server


JOB_FIELDS = "id jobId team metadata { jobTitle clientJobId workflowId }"


def test_node_refetches_the_job_the_list_returned(gateway: BackgroundServer) -> None:
    """Relay refetch: node(id) returns the same job, field for field, as the list."""
    listed = post(gateway, f"{{ jobs(first: 3) {{ nodes {{ {JOB_FIELDS} }} }} }}")["data"]["jobs"][
        "nodes"
    ]
    for job in listed:
        refetched = post(
            gateway,
            f"query($id: ID!) {{ node(id: $id) {{ __typename ... on Job {{ {JOB_FIELDS} }} }} }}",
            id=job["id"],
        )["data"]["node"]
        assert refetched == {"__typename": "Job", **job}
    assert listed[0]["id"] == global_id("Job", listed[0]["jobId"])


def test_unknown_and_malformed_node_ids(gateway: BackgroundServer, seen: SampleUpstream) -> None:
    """A well-formed id of no job is null without error; a malformed one is BAD_USER_INPUT."""
    unknown = post(
        gateway, "query($id: ID!) { node(id: $id) { id } }", id=global_id("Job", "0" * 24)
    )
    assert unknown == {"data": {"node": None}}
    seen.seen.clear()
    for bad in ("nope", global_id("Job", "short"), global_id("Other", "a" * 24), ""):
        body = post(gateway, "query($id: ID!) { node(id: $id) { id } }", id=bad)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert len(seen.seen) == 0


def test_nodes_batch_and_deduplicate(sample_server: BackgroundServer, seen: SampleUpstream) -> None:
    """nodes(ids:) keeps order, nulls unknown ids, and asks once per distinct id (on a gateway
    of its own: one that read these jobs in a list already has them)."""
    jobs = seen.jobs_of("apiteam")
    first, second = (global_id("Job", job["jobId"]) for job in jobs[40:42])
    unknown = global_id("Job", "f" * 24)
    seen.seen.clear()
    with BackgroundServer(network_gateway(sample_server.url, cache_ttl=30)) as gateway:
        body = post(
            gateway,
            "query($ids: [ID!]!) { nodes(ids: $ids) { ... on Job { jobId } } }",
            ids=[first, first, second, unknown, second],
        )
    assert body["data"]["nodes"] == [
        {"jobId": jobs[40]["jobId"]},
        {"jobId": jobs[40]["jobId"]},
        {"jobId": jobs[41]["jobId"]},
        None,
        {"jobId": jobs[41]["jobId"]},
    ]
    assert sorted(request.path for request in seen.seen) == sorted(
        f"/jobs/v1/bson/{job_id}" for job_id in (jobs[40]["jobId"], jobs[41]["jobId"], "f" * 24)
    )


def test_job_by_client_id_with_aliases(gateway: BackgroundServer, seen: SampleUpstream) -> None:
    """job(clientJobId:) finds a job (the API answers an array of one) or null; aliased
    duplicates share one call."""
    target = seen.jobs_of("apiteam")[50]
    client_id = target["metadata"]["clientJobId"]
    seen.seen.clear()
    body = post(
        gateway,
        "query($c: ID!, $none: ID!) { a: job(clientJobId: $c) { jobId } "
        "b: job(clientJobId: $c) { team } c: job(clientJobId: $none) { jobId } }",
        c=client_id,
        none="no-such-client-job",
    )
    assert body == {"data": {"a": {"jobId": target["jobId"]}, "b": {"team": "apiteam"}, "c": None}}
    assert sorted(request.path for request in seen.seen) == sorted(
        [f"/jobs/v1/{client_id}", "/jobs/v1/no-such-client-job"]
    )


def test_my_jobs_pages_like_jobs(gateway: BackgroundServer, seen: SampleUpstream) -> None:
    """myJobs walks the token's own jobs with the same cursors and flags as jobs."""
    mine = [job["jobId"] for job in seen.my_jobs_of(seen.grants["demo-token"])]
    assert 0 < len(mine) < 237
    collected, after = [], None
    while True:
        connection = post(
            gateway,
            "query($after: String) { myJobs(first: 7, after: $after) { nodes { jobId } "
            "pageInfo { hasNextPage endCursor } totalCount } }",
            after=after,
        )["data"]["myJobs"]
        collected += [node["jobId"] for node in connection["nodes"]]
        assert connection["totalCount"] == len(mine)
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert collected == mine
    assert all(
        request.path == "/jobs/v1/my/" for request in seen.seen if "bson" not in request.path
    )


def test_my_jobs_needs_only_job_read(gateway: BackgroundServer) -> None:
    """A token with Job_Read but not Job_ReadAll reads myJobs, and is FORBIDDEN on jobs."""
    token = "demo-token-read-only"
    mine = post(gateway, "{ myJobs(first: 2) { nodes { team } } }", token=token)
    assert mine == {"data": {"myJobs": {"nodes": [{"team": "apiteam"}, {"team": "apiteam"}]}}}
    everyone = post(gateway, "{ jobs { nodes { team } } }", token=token)
    assert everyone["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_workflow_jobs_are_fetched_once_and_paged_by_the_gateway(
    gateway: BackgroundServer, seen: SampleUpstream
) -> None:
    """workflowJobs: one upstream call for the whole list, then pages, last and totalCount."""
    workflow_id = seen.jobs_of("apiteam")[0]["metadata"]["workflowId"]
    expected = [
        job["jobId"]
        for job in seen.jobs_of("apiteam")
        if job["metadata"]["workflowId"] == workflow_id
    ]
    seen.seen.clear()
    query = (
        "query($w: ID!, $after: String) { workflowJobs(workflowId: $w, first: 10, after: $after) "
        "{ nodes { jobId } pageInfo { hasNextPage endCursor } totalCount } }"
    )
    collected, after = [], None
    while True:
        connection = post(gateway, query, w=workflow_id, after=after)["data"]["workflowJobs"]
        collected += [node["jobId"] for node in connection["nodes"]]
        assert connection["totalCount"] == len(expected)
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    last = post(
        gateway,
        "query($w: ID!) { workflowJobs(workflowId: $w, last: 3) { nodes { jobId } } }",
        w=workflow_id,
    )
    assert collected == expected
    assert [node["jobId"] for node in last["data"]["workflowJobs"]["nodes"]] == expected[-3:]
    assert [request.path for request in seen.seen] == [f"/jobs/v1/workflow/{workflow_id}"]


def test_bad_arguments_to_workflow_jobs_cost_no_call(
    gateway: BackgroundServer, seen: SampleUpstream
) -> None:
    """workflowJobs validates its arguments before it fetches the workflow's list."""
    seen.seen.clear()
    body = post(gateway, '{ workflowJobs(workflowId: "w", first: -1) { nodes { jobId } } }')
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert len(seen.seen) == 0
