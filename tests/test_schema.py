"""Schema execution in process: types mirror the job JSON, pages, tolerant decoding, error codes."""

from __future__ import annotations

import json

import httpx
import pytest
from graphql import GraphQLList, GraphQLNamedType, GraphQLNonNull, GraphQLObjectType, get_named_type

from gateway.sample_upstream import SampleUpstream

from .conftest import SCHEMA, Recorder, execute, job_page

pytestmark = pytest.mark.anyio


def selection(type_: GraphQLNamedType) -> str:
    """Every field of `type_` that mirrors a JSON key, recursively (not the computed `id`, nor
    `snapshots`, which another endpoint answers)."""
    if not isinstance(type_, GraphQLObjectType):
        return ""
    parts = []
    for name, field in type_.fields.items():
        if (type_.name, name) in (("Job", "id"), ("Job", "snapshots")):
            continue
        inner = selection(get_named_type(field.type))
        parts.append(f"{name} {{ {inner} }}" if inner else name)
    return " ".join(parts)


EVERY_JOB_FIELD = selection(SCHEMA._schema.type_map["Job"])


async def test_every_field_of_every_sample_job_round_trips() -> None:
    """Selecting every field returns each job's JSON exactly: the types mirror it completely."""
    sample = SampleUpstream()
    transport = httpx.ASGITransport(app=sample.app())
    result = await execute(transport, f"{{ jobs(first: 100) {{ nodes {{ {EVERY_JOB_FIELD} }} }} }}")
    assert result.errors is None
    assert result.data["jobs"]["nodes"] == sample.jobs_of("apiteam")[:100]


async def test_the_seed_documents_example_job_round_trips() -> None:
    """The job from the vendor's page (get-all-jobs.md) comes back field for field."""
    seed_job = json.loads(SEED_JOB)
    transport = Recorder(job_page([seed_job])).transport()
    result = await execute(transport, f"{{ jobs {{ nodes {{ {EVERY_JOB_FIELD} }} }} }}")
    assert result.errors is None
    assert result.data == {"jobs": {"nodes": [seed_job]}}


async def test_a_page_maps_to_skip_and_limit_with_one_extra_row() -> None:
    """`first: 2, after: c(4)` calls skip=5&limit=3 and turns the extra row into hasNextPage
    (uncached: with the cache on, windows are fetched as aligned blocks, see test_cache)."""
    rows = [{"jobId": f"job{n}"} for n in range(5, 8)]
    recorder = Recorder(job_page(rows))
    result = await execute(
        recorder.transport(),
        "query($after: String) { jobs(first: 2, after: $after) { edges { cursor node { jobId } } "
        "pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }",
        {"after": "djE6NA"},  # the cursor of offset 4
        cache_ttl=0,
    )
    assert [str(request.url) for request in recorder.requests] == [
        "http://upstream.invalid/jobs/v1/?skip=5&limit=3"
    ]
    assert result.data == {
        "jobs": {
            "edges": [
                {"cursor": "djE6NQ", "node": {"jobId": "job5"}},
                {"cursor": "djE6Ng", "node": {"jobId": "job6"}},
            ],
            "pageInfo": {
                "hasNextPage": True,
                "hasPreviousPage": True,
                "startCursor": "djE6NQ",
                "endCursor": "djE6Ng",
            },
        }
    }


async def test_bad_values_cost_only_their_own_fields() -> None:
    """Wrong types, bad timestamps and a missing jobId null their field; the rest arrives."""
    good = {"jobId": "a1", "metadata": {"jobTitle": "Fine", "created": "2020-11-04T12:53:47Z"}}
    bad_values = {
        "jobId": "b2",
        "unknownKey": {"anything": True},
        "excluded": "yes please",
        "metadata": {
            "jobTitle": "Odd",
            "created": "yesterday",
            "currentStep": {"singleStep": {"stepNumber": "3", "stepTitle": ["a", "list"]}},
        },
    }
    no_id = {"metadata": {"jobTitle": "Nameless"}}
    wrong_shape = {"jobId": "c3", "metadata": "not an object", "completedSteps": [7, None]}
    transport = Recorder(job_page([good, bad_values, no_id, wrong_shape, "junk"])).transport()
    result = await execute(
        transport,
        "{ jobs(first: 5) { nodes { jobId excluded completedSteps { reportStep } "
        "metadata { jobTitle created currentStep { singleStep { stepNumber stepTitle } } } } } }",
    )
    assert result.data == {
        "jobs": {
            "nodes": [
                {
                    "jobId": "a1",
                    "excluded": None,
                    "completedSteps": None,
                    "metadata": {
                        "jobTitle": "Fine",
                        "created": "2020-11-04T12:53:47Z",
                        "currentStep": None,
                    },
                },
                {
                    "jobId": "b2",
                    "excluded": None,
                    "completedSteps": None,
                    "metadata": {
                        "jobTitle": "Odd",
                        "created": None,
                        # "3" is kept as 3: an Int can represent it faithfully.
                        "currentStep": {"singleStep": {"stepNumber": 3, "stepTitle": None}},
                    },
                },
                None,
                {"jobId": "c3", "excluded": None, "completedSteps": [None, None], "metadata": None},
                None,
            ]
        }
    }
    errors = {tuple(error.path): error for error in result.errors}
    assert sorted(errors) == sorted(
        [
            ("jobs", "nodes", 1, "excluded"),
            ("jobs", "nodes", 1, "metadata", "created"),
            ("jobs", "nodes", 1, "metadata", "currentStep", "singleStep", "stepTitle"),
            ("jobs", "nodes", 2, "jobId"),
            ("jobs", "nodes", 3, "metadata"),
            ("jobs", "nodes", 3, "completedSteps", 0),
            ("jobs", "nodes", 4),
        ]
    )
    assert {error.extensions["code"] for error in result.errors} == {"UPSTREAM_BAD_RESPONSE"}
    assert "yesterday" in errors[("jobs", "nodes", 1, "metadata", "created")].message


async def test_no_token_is_unauthenticated_without_an_upstream_call() -> None:
    """Missing, blank or non-Bearer Authorization: UNAUTHENTICATED and no upstream call."""
    recorder = Recorder(job_page([]))
    transport = recorder.transport()
    for authorization in (None, "", "   ", "Basic dXNlcjpwYXNz", "Bearer ", "Bearer"):
        result = await execute(
            transport, "{ jobs { nodes { jobId } } }", authorization=authorization
        )
        assert result.data == {"jobs": None}
        assert [error.extensions["code"] for error in result.errors] == ["UNAUTHENTICATED"]
    assert recorder.requests == []


async def test_bad_arguments_cost_no_upstream_call() -> None:
    """Out-of-range counts and foreign cursors are BAD_USER_INPUT before any call."""
    recorder = Recorder(job_page([]))
    transport = recorder.transport()
    for arguments in (
        "first: 101",
        "first: -1",
        'after: "bogus"',
        "last: -3",
        'before: "djE6MA=="',
    ):
        result = await execute(transport, f"{{ jobs({arguments}) {{ nodes {{ jobId }} }} }}")
        assert [error.extensions["code"] for error in result.errors] == ["BAD_USER_INPUT"], (
            arguments
        )
    assert recorder.requests == []


async def test_the_token_is_forwarded_verbatim_and_alone() -> None:
    """The upstream gets the caller's Authorization header byte for byte, and no cookie."""
    recorder = Recorder(job_page([]))
    await execute(
        recorder.transport(), "{ jobs { nodes { jobId } } }", authorization="bearer  a.b.c "
    )
    (request,) = recorder.requests
    assert request.headers["authorization"] == "bearer  a.b.c "
    assert "cookie" not in request.headers


async def test_unexpected_failures_are_masked() -> None:
    """A bug (here: the transport raising a plain error) is INTERNAL_SERVER_ERROR, no details."""

    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("secret internals, Bearer demo-token")

    result = await execute(httpx.MockTransport(broken), "{ jobs { nodes { jobId } } }")
    (error,) = result.errors
    assert error.extensions == {"code": "INTERNAL_SERVER_ERROR"}
    assert "secret" not in error.message
    assert "demo-token" not in error.message


async def test_request_errors_are_coded() -> None:
    """Syntax, validation and variable errors carry their own codes."""
    transport = Recorder(job_page([])).transport()
    cases = {
        "{ jobs { nodes { jobId }": "GRAPHQL_PARSE_FAILED",
        "{ jobs { nodes { nope } } }": "GRAPHQL_VALIDATION_FAILED",
    }
    for query, code in cases.items():
        result = await execute(transport, query)
        assert [error.extensions["code"] for error in result.errors] == [code]
    result = await execute(
        transport, "query($n: Int) { jobs(first: $n) { nodes { jobId } } }", {"n": "x"}
    )
    assert [error.extensions["code"] for error in result.errors] == ["BAD_USER_INPUT"]


def test_status_and_step_type_are_open_strings() -> None:
    """`status` and `stepType` are Strings, not enums: the vocabulary grows without notice."""
    types = SCHEMA._schema.type_map
    assert str(types["JobMetadata"].fields["status"].type) == "String"  # type: ignore[attr-defined]
    assert str(types["Step"].fields["stepType"].type) == "String"  # type: ignore[attr-defined]


def test_every_type_and_field_is_described() -> None:
    """GraphiQL's docs pane explains every type and field of the API."""
    for name, type_ in SCHEMA._schema.type_map.items():
        if name.startswith("__") or name in {"String", "Int", "Boolean", "ID", "Float"}:
            continue
        assert type_.description, name
        for field_name, field in getattr(type_, "fields", {}).items():
            assert field.description, f"{name}.{field_name}"


def test_only_the_job_identity_is_non_null() -> None:
    """Nullability follows the upstream's record: only a job's identity (jobId, id) is non-null."""
    types = SCHEMA._schema.type_map
    for name in ("Job", "JobMetadata", "StepEnvelope", "Step"):
        for field_name, field in types[name].fields.items():  # type: ignore[attr-defined]
            expected = (name, field_name) in {("Job", "jobId"), ("Job", "id")}
            assert isinstance(field.type, GraphQLNonNull) == expected, f"{name}.{field_name}"
            if isinstance(field.type, GraphQLList):
                assert not isinstance(field.type.of_type, GraphQLNonNull)


# The example job of ../shared/seed/get-all-jobs.md, made valid JSON (the page's is not).
SEED_JOB = """
{
  "jobId": "5fa2a458980724000149rq40",
  "metadata": {
    "clientJobId": "8a07b1c0-56ba-433d-8a24-adddgb3e150c",
    "workflowId": "a454a699-173f-429e-b6cd-fefd92d0a1er",
    "workflowVersionId": "c683d13a-4cda-4683-1276-e7fcfb9c1c52",
    "jobTitle": "Example Workflow Job 1",
    "metadata": {
      "ScheduledJobId": "5fa2a3d17afcb9000179ad01",
      "ScheduledTaskId": "c95a93e0-b24f-44c3-a62f-7304c7ea7f2a"
    },
    "created": "2020-11-04T12:53:42.266Z",
    "updated": "2020-11-04T12:53:46.676Z",
    "modified": "2020-11-04T12:53:47Z",
    "status": "Paused",
    "userId": "5d8cac54860b8100016b1987",
    "currentStep": {
      "singleStep": {
        "values": [],
        "valueResourceIds": [],
        "uniqueStepId": "0ffad266-89e0-4659-936b-c0f92d043c81",
        "previousUniqueStepId": "",
        "userId": "5d8cac54860b8103316b1987",
        "userName": "api.user1@example.com",
        "deviceId": null,
        "stepId": "41443154-f511-478b-bcca-849440421061",
        "stepNumber": 1,
        "stepTitle": "Enter Text",
        "stepDescription": "",
        "stepType": "Text",
        "connectionType": null,
        "started": "2020-11-04T12:53:42.687Z",
        "completed": null,
        "updated": "2020-11-04T12:53:46.664Z",
        "cancelled": null,
        "timeEvents": {"2020-11-04T12:53:46.664Z": 0},
        "note": null,
        "noteResourceFilenames": null,
        "coordinates": null,
        "parentStepId": null,
        "parentUniqueStepId": null,
        "parentStepTitle": null,
        "parentStepDescription": null,
        "metadata": {"tags": ""}
      },
      "reportStep": null
    },
    "abandonReason": null,
    "username": "api.user1@example.com",
    "workflowName": "Example Workflow"
  },
  "completedSteps": null,
  "cancelledSteps": null,
  "team": "apiteam",
  "hierarchyStack": null,
  "packetIds": null,
  "jobExclusion": [],
  "excluded": false
}
"""
