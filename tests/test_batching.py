"""Batched requests (a JSON array of operations, as Apollo Client's BatchHttpLink sends): each
operation under every per-operation rule, the batch under one upstream-call budget, answers in
order, and refusals before anything runs."""

from __future__ import annotations

import logging

import pytest

from gateway.pagination import encode_cursor
from gateway.sample_upstream import SampleUpstream

from .conftest import in_process_gateway, post

pytestmark = pytest.mark.anyio

FIRST = {"query": "{ jobs(first: 2) { nodes { jobId } } }"}
MINE = {"query": "query Mine { myJobs(first: 1) { nodes { jobId } } }"}


@pytest.fixture
def sample() -> SampleUpstream:
    return SampleUpstream(teams={"apiteam": 300})


async def test_a_batch_is_answered_in_order_as_one_json_array(sample: SampleUpstream) -> None:
    """Each answer is what the operation alone would get, in the order asked."""
    app = in_process_gateway(sample.app())
    alone = [(await post(app, operation)).json() for operation in (MINE, FIRST)]
    batched = await post(app, [MINE, FIRST, MINE])
    assert batched.status_code == 200
    assert batched.headers["cache-control"] == "private, no-store"
    assert batched.json() == [alone[0], alone[1], alone[0]]


async def test_one_bad_operation_fails_alone(sample: SampleUpstream) -> None:
    """A malformed item, an invalid document and a field error each stay in their own answer."""
    app = in_process_gateway(sample.app())
    body = [FIRST, {"query": 42}, {"query": "{ nope }"}, "not an object", FIRST]
    answers = (await post(app, body)).json()
    codes = [
        [error["extensions"]["code"] for error in answer.get("errors", [])] for answer in answers
    ]
    assert codes == [[], ["BAD_REQUEST"], ["GRAPHQL_VALIDATION_FAILED"], ["BAD_REQUEST"], []]
    assert answers[0] == answers[4]
    assert len(answers[0]["data"]["jobs"]["nodes"]) == 2


@pytest.mark.parametrize(
    ("body", "overrides"),
    [([FIRST] * 11, {}), ([], {}), ([FIRST], {"max_batch": 0})],
    ids=["over-the-limit", "empty", "switched-off"],
)
async def test_refused_batches_cost_nothing(
    sample: SampleUpstream, body: list[object], overrides: dict[str, object]
) -> None:
    """More than GATEWAY_MAX_BATCH operations, none, or any with batching off: 400
    BATCH_REFUSED in the JSON error shape, and no upstream call."""
    app = in_process_gateway(sample.app(), **overrides)
    response = await post(app, body)
    assert response.status_code == 400
    assert [error["extensions"]["code"] for error in response.json()["errors"]] == ["BATCH_REFUSED"]
    assert list(sample.seen) == []


async def test_the_batch_shares_one_upstream_call_budget(sample: SampleUpstream) -> None:
    """Three operations of two calls each under a budget of 5: two run, one is refused with
    UPSTREAM_BUDGET_EXCEEDED, and the upstream sees at most 5 calls."""
    app = in_process_gateway(sample.app(), upstream_call_budget=5, cache_ttl=0)
    # 150 rows past a 100-row cap: two upstream calls each, concurrently.
    wide = {
        "query": "query($after: String) { jobs(first: 100, after: $after) { nodes { jobId } } }",
        "variables": {"after": encode_cursor(49)},
    }
    answers = (await post(app, [wide, wide, wide])).json()
    failed = [
        [error["extensions"]["code"] for error in answer.get("errors", [])] for answer in answers
    ]
    assert sorted(failed) == [[], [], ["UPSTREAM_BUDGET_EXCEEDED"]]
    assert len(sample.seen) <= 5


async def test_each_operation_of_a_batch_is_logged_and_counted(
    sample: SampleUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    """One log line per operation, each with `batch: i/n` and the request's one id."""
    caplog.set_level(logging.INFO, logger="gateway.request")
    app = in_process_gateway(sample.app())
    response = await post(app, [FIRST, MINE], **{"x-request-id": "batch-42"})
    assert response.headers["x-request-id"] == "batch-42"
    lines = [record.fields for record in caplog.records if hasattr(record, "fields")]
    assert [(line["batch"], line["operation"], line["request_id"]) for line in lines] == [
        ("1/2", None, "batch-42"),
        ("2/2", "Mine", "batch-42"),
    ]
