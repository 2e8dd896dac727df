"""Mutations end to end: a real uvicorn gateway over TCP, a fresh sample upstream per test
(writes change its state), every mutation, each error class, and read-your-writes on one
gateway and across two replicas sharing one Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.background import BackgroundServer
from gateway.sample_upstream import WRITER_TOKEN, SampleUpstream

from .conftest import run_node, served_gateway
from .redis_process import RedisProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def sample() -> SampleUpstream:
    return SampleUpstream(teams={"apiteam": 12})


@pytest.fixture
def upstream(sample: SampleUpstream) -> Iterator[BackgroundServer]:
    with BackgroundServer(sample.app()) as server:
        yield server


@pytest.fixture
def gateway(upstream: BackgroundServer) -> Iterator[BackgroundServer]:
    with served_gateway(upstream.url) as server:
        yield server


def ask(
    gateway: BackgroundServer,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str = WRITER_TOKEN,
) -> dict[str, Any]:
    response = httpx.post(
        f"{gateway.url}/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def open_job(sample: SampleUpstream) -> str:
    """The clientJobId of an incomplete job of the sample team."""
    return next(  # type: ignore[no-any-return]
        job["metadata"]["clientJobId"]
        for job in sample.jobs_of("apiteam")
        if job["metadata"]["status"] not in ("Completed", "Aborted", "Abandoned")
    )


def writes_seen(sample: SampleUpstream) -> list[tuple[str, str, str]]:
    return [(seen.method, seen.path, seen.query) for seen in sample.seen if seen.method != "GET"]


JOB_FIELDS = (
    "clientMutationId job { id jobId excluded "
    "metadata { clientJobId jobTitle status userId metadata } }"
)
ABORT_FOR_USER = (
    "mutation($input: AbortJobsForUserInput!) { abortJobsForUser(input: $input) "
    "{ clientMutationId } }"
)


def test_create_sync_and_update_send_exactly_what_was_given(
    gateway: BackgroundServer, sample: SampleUpstream
) -> None:
    """createJob answers the new job (its id is what reads give); syncJob updates it by
    clientJobId; updateJob sends only the fields set and returns the job read back."""
    created = ask(
        gateway,
        f"mutation($input: CreateJobInput!) {{ createJob(input: $input) {{ {JOB_FIELDS} }} }}",
        {
            "input": {
                "clientMutationId": "m-1",
                "job": {"metadata": {"clientJobId": "c-new", "jobTitle": "New"}},
            }
        },
    )["data"]["createJob"]
    synced = ask(
        gateway,
        f"mutation($input: SyncJobInput!) {{ syncJob(input: $input) {{ {JOB_FIELDS} }} }}",
        {"input": {"job": {"metadata": {"clientJobId": "c-new", "jobTitle": "Synced"}}}},
    )["data"]["syncJob"]
    updated = ask(
        gateway,
        f"""mutation {{
          updateJob(input: {{clientJobId: "c-new", metadata: {{workflowName: "W"}}}}) {{
            {JOB_FIELDS}
          }}
        }}""",
    )["data"]["updateJob"]
    read = ask(gateway, '{ job(clientJobId: "c-new") { id metadata { jobTitle workflowName } } }')
    assert created["clientMutationId"] == "m-1"
    assert created["job"]["metadata"]["jobTitle"] == "New"
    assert synced["job"]["jobId"] == created["job"]["jobId"]
    assert synced["job"]["metadata"]["jobTitle"] == "Synced"
    assert updated["job"]["id"] == created["job"]["id"] == read["data"]["job"]["id"]
    assert read["data"]["job"]["metadata"] == {"jobTitle": "Synced", "workflowName": "W"}
    update_body = [seen for seen in sample.seen if seen.method == "POST"][-1]
    assert update_body.path == "/jobs/v1/c-new"


def test_the_state_changing_mutations_do_what_they_say(
    gateway: BackgroundServer, sample: SampleUpstream
) -> None:
    """addJobMetadata merges, assignJob reassigns, excludeJob excludes, abortJob aborts,
    deleteJob deletes: each payload shows the job after its write."""
    job = open_job(sample)
    user = "a" * 24
    answer = ask(
        gateway,
        f"""mutation($job: ID!, $user: ID!) {{
          meta: addJobMetadata(input: {{clientJobId: $job, metadata: {{site: "North"}}}}) {{
            {JOB_FIELDS}
          }}
          assign: assignJob(input: {{clientJobId: $job, userId: $user}}) {{ {JOB_FIELDS} }}
          exclude: excludeJob(input: {{clientJobId: $job, userId: $user, reason: "dup"}}) {{
            {JOB_FIELDS}
          }}
          abort: abortJob(input: {{clientJobId: $job}}) {{ {JOB_FIELDS} }}
          delete: deleteJob(input: {{clientJobId: $job, clientMutationId: "d"}}) {{
            deletedClientJobId clientMutationId
          }}
        }}""",
        {"job": job, "user": user},
    )
    data = answer["data"]
    assert "errors" not in answer
    assert data["meta"]["job"]["metadata"]["metadata"]["site"] == "North"
    assert data["assign"]["job"]["metadata"]["userId"] == user
    assert data["exclude"]["job"]["excluded"] is True
    assert data["abort"]["job"]["metadata"]["status"] == "Aborted"
    assert data["delete"] == {"deletedClientJobId": job, "clientMutationId": "d"}
    assert ask(gateway, f'{{ job(clientJobId: "{job}") {{ jobId }} }}')["data"] == {"job": None}
    # In order, as the spec requires of mutations.
    assert [(method, path.rsplit("/", 1)[-1]) for method, path, _ in writes_seen(sample)] == [
        ("POST", "metadata"),
        ("POST", user),
        ("PUT", job),
        ("POST", "abort"),
        ("DELETE", job),
    ]


@pytest.mark.parametrize(
    ("input_", "query"),
    [({"userId": "u-1"}, "userId=u-1"), ({"allUsers": True}, "")],
)
def test_abort_jobs_for_user_names_a_user_or_asks_for_all(
    gateway: BackgroundServer, sample: SampleUpstream, input_: dict[str, Any], query: str
) -> None:
    """`userId` sends it; `allUsers: true` sends none (the whole team's incomplete jobs)."""
    answer = ask(
        gateway,
        ABORT_FOR_USER,
        {"input": {**input_, "clientMutationId": "x"}},
    )
    assert answer == {"data": {"abortJobsForUser": {"clientMutationId": "x"}}}
    assert writes_seen(sample) == [("PUT", "/jobs/v1/abort/", query)]


@pytest.mark.parametrize(
    "input_",
    [
        {},
        {"userId": "u-1", "allUsers": True},
        {"allUsers": False},
        {"userId": "u", "allUsers": False},
    ],
)
def test_abort_jobs_for_user_refuses_anything_but_exactly_one(
    gateway: BackgroundServer, sample: SampleUpstream, input_: dict[str, Any]
) -> None:
    """Neither, both, or `allUsers: false` alone: BAD_USER_INPUT, and no call."""
    answer = ask(
        gateway,
        ABORT_FOR_USER,
        {"input": input_},
    )
    assert answer["data"] == {"abortJobsForUser": None}
    assert [error["extensions"]["code"] for error in answer["errors"]] == ["BAD_USER_INPUT"]
    assert writes_seen(sample) == []


def test_each_error_class_is_coded(gateway: BackgroundServer, sample: SampleUpstream) -> None:
    """400 quotes the vendor's reason, 409 is CONFLICT, 404 NOT_FOUND, 403 FORBIDDEN (a token
    without the write policy), 401 UNAUTHENTICATED; the other mutations of the request run."""
    completed = next(
        job["metadata"]["clientJobId"]
        for job in sample.jobs_of("apiteam")
        if job["metadata"]["status"] in ("Completed", "Aborted", "Abandoned")
    )
    existing = sample.jobs_of("apiteam")[0]["metadata"]["clientJobId"]
    answer = ask(
        gateway,
        f"""mutation {{
          refused: abortJob(input: {{clientJobId: "{completed}"}}) {{ clientMutationId }}
          clash: createJob(input: {{job: {{metadata: {{clientJobId: "{existing}"}}}}}}) {{
            clientMutationId
          }}
          missing: abortJob(input: {{clientJobId: "no-such-job"}}) {{ clientMutationId }}
          fine: addJobMetadata(
            input: {{clientJobId: "{existing}", metadata: {{a: "b"}}, clientMutationId: "ok"}}
          ) {{ clientMutationId }}
        }}""",
    )
    errors = {tuple(error["path"]): error for error in answer["errors"]}
    assert answer["data"] == {
        "refused": None,
        "clash": None,
        "missing": None,
        "fine": {"clientMutationId": "ok"},
    }
    assert errors[("refused",)]["extensions"] == {"code": "BAD_USER_INPUT", "upstreamStatus": 400}
    assert errors[("refused",)]["message"].endswith("Only incomplete jobs can be aborted.")
    assert errors[("clash",)]["extensions"]["code"] == "CONFLICT"
    assert errors[("missing",)]["extensions"]["code"] == "NOT_FOUND"
    forbidden = ask(
        gateway,
        f'mutation {{ deleteJob(input: {{clientJobId: "{existing}"}}) {{ deletedClientJobId }} }}',
        token="demo-token",
    )
    unknown = ask(
        gateway,
        f'mutation {{ deleteJob(input: {{clientJobId: "{existing}"}}) {{ deletedClientJobId }} }}',
        token="nobody",
    )
    assert forbidden["errors"][0]["extensions"] == {"code": "FORBIDDEN", "upstreamStatus": 403}
    assert "Job_Modify" in forbidden["errors"][0]["message"]
    assert unknown["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_a_mutation_over_get_is_refused_without_a_call(
    gateway: BackgroundServer, sample: SampleUpstream
) -> None:
    """GET may only query: a mutation sent as GET is 405 and the upstream sees nothing."""
    job = open_job(sample)
    query = f'mutation {{ abortJob(input: {{clientJobId: "{job}"}}) {{ clientMutationId }} }}'
    response = httpx.get(
        f"{gateway.url}/graphql",
        params={"query": query},
        headers={"authorization": f"Bearer {WRITER_TOKEN}", "accept": "application/json"},
    )
    assert response.status_code == 405
    assert list(sample.seen) == []


def test_a_repeated_mutation_writes_again(
    gateway: BackgroundServer, sample: SampleUpstream
) -> None:
    """The same mutation text twice is two writes (never answered from the response cache)."""
    job = sample.jobs_of("apiteam")[0]["metadata"]["clientJobId"]
    mutation = (
        f'mutation {{ addJobMetadata(input: {{clientJobId: "{job}", metadata: {{n: "1"}}}}) '
        "{ clientMutationId } }"
    )
    ask(gateway, mutation)
    ask(gateway, mutation)
    assert [method for method, _, _ in writes_seen(sample)] == ["POST", "POST"]


STATUS = (
    '{ job(clientJobId: "%s") { metadata { status } } '
    "first: jobs(first: 12) { nodes { metadata { clientJobId status } } } }"
)


def statuses(gateway: BackgroundServer, job: str) -> tuple[str, str]:
    data = ask(gateway, STATUS % job)["data"]
    in_list = next(
        node["metadata"]["status"]
        for node in data["first"]["nodes"]
        if node["metadata"]["clientJobId"] == job
    )
    return data["job"]["metadata"]["status"], in_list


def test_the_caller_reads_its_own_write_at_once(
    gateway: BackgroundServer, sample: SampleUpstream
) -> None:
    """A read cached before the write (pages and whole response) shows the change right
    after it, both in the single job and in the list."""
    job = open_job(sample)
    before = statuses(gateway, job)
    assert statuses(gateway, job) == before  # now from the caches
    ask(gateway, f'mutation {{ abortJob(input: {{clientJobId: "{job}"}}) {{ clientMutationId }} }}')
    assert statuses(gateway, job) == ("Aborted", "Aborted")


def test_read_your_writes_across_two_replicas_sharing_redis(
    upstream: BackgroundServer, sample: SampleUpstream, redis: RedisProcess
) -> None:
    """Replica B caches the caller's reads (Redis pages, its own whole responses); the write
    goes through replica A; the caller's next read through B shows it."""
    shared = {"cache_url": redis.url, "cache_key_secret": "shared-secret", "cache_ttl": 60}
    job = open_job(sample)
    with served_gateway(upstream.url, **shared) as a, served_gateway(upstream.url, **shared) as b:
        before = statuses(b, job)
        assert before[0] != "Aborted"
        assert statuses(b, job) == before
        calls = len(sample.seen)
        assert statuses(b, job) == before
        assert len(sample.seen) == calls  # served from B's caches
        ask(a, f'mutation {{ abortJob(input: {{clientJobId: "{job}"}}) {{ clientMutationId }} }}')
        assert statuses(b, job) == ("Aborted", "Aborted")
        other = ask(b, STATUS % job, token="demo-token")["data"]["job"]["metadata"]["status"]
    assert other == "Aborted"  # another token of the team: its first read goes upstream too


def test_apollo_client_updates_its_normalised_cache_from_the_payload(
    node_clients: Path, gateway: BackgroundServer
) -> None:
    """Apollo Client reads a page, aborts a job; the payload's job (same `id` as in the page)
    updates the page in Apollo's cache, read back with no request."""
    got = run_node("mutation.mjs", f"{gateway.url}/graphql", WRITER_TOKEN)
    assert got["statusBefore"] != "Aborted"
    assert got["payload"]["clientMutationId"] == "abort-1"
    assert got["payload"]["job"]["id"] == got["id"]
    assert got["statusInCache"] == "Aborted"
    assert got["requestsForCacheRead"] == 0


@pytest.mark.parametrize("status", [502, 503, 504, 429])
def test_a_write_is_sent_once_even_when_reads_would_be_retried(status: int) -> None:
    """An upstream answering 502/503/504/429 over TCP: reads are retried, but the write is
    sent exactly once, and the client gets the error."""
    posts: list[str] = []

    async def busy(request: Request) -> Response:
        posts.append(request.url.path)
        return Response('{"message": "busy"}', status, media_type="application/json")

    app = Starlette(routes=[Route("/jobs/v1/{path:path}", busy, methods=["POST"])])
    with (
        BackgroundServer(app) as flaky,
        served_gateway(flaky.url, upstream_retries=3, upstream_retry_backoff=0.01) as gateway,
    ):
        answer = ask(
            gateway, 'mutation { abortJob(input: {clientJobId: "c-1"}) { clientMutationId } }'
        )
    assert answer["data"] == {"abortJob": None}
    assert answer["errors"][0]["extensions"]["code"] in (
        "UPSTREAM_UNAVAILABLE",
        "UPSTREAM_RATE_LIMITED",
    )
    assert posts == ["/jobs/v1/c-1/abort"]


def test_snapshots_are_read_only_when_selected_once_per_job(
    gateway: BackgroundServer, sample: SampleUpstream
) -> None:
    """`Job.snapshots` lists the job's earlier versions (one call per job, only when selected,
    the same job twice in a request once, cached like a page)."""
    job = open_job(sample)
    ask(gateway, f'mutation {{ abortJob(input: {{clientJobId: "{job}"}}) {{ clientMutationId }} }}')
    plain = ask(gateway, f'{{ job(clientJobId: "{job}") {{ jobId }} }}')
    calls = len(sample.seen)
    query = (
        f'{{ a: job(clientJobId: "{job}") {{ snapshots }} '
        f'b: job(clientJobId: "{job}") {{ snapshots }} }}'
    )
    answer = ask(gateway, query)
    again = ask(gateway, query.replace("b:", "c:"))
    snapshots = answer["data"]["a"]["snapshots"]
    assert "errors" not in plain
    assert answer["data"]["b"]["snapshots"] == snapshots == again["data"]["a"]["snapshots"]
    assert [snapshot["job"]["metadata"]["status"] != "Aborted" for snapshot in snapshots] == [True]
    paths = [seen.path for seen in list(sample.seen)[calls:]]
    assert paths == [f"/jobs/v1/snapshots/{job}"]


def test_mutations_count_against_the_call_budget(upstream: BackgroundServer) -> None:
    """Each mutation that reads its job back may cost two calls: two of them under a budget
    of three are refused before any write."""
    with served_gateway(upstream.url, upstream_call_budget=3) as gateway:
        answer = ask(
            gateway,
            'mutation { a: abortJob(input: {clientJobId: "x"}) { clientMutationId } '
            'b: abortJob(input: {clientJobId: "y"}) { clientMutationId } }',
        )
    assert "data" not in answer
    assert [error["extensions"]["code"] for error in answer["errors"]] == [
        "UPSTREAM_BUDGET_EXCEEDED"
    ]


def test_free_form_json_nested_too_deeply_is_bad_input_without_a_call(
    gateway: BackgroundServer, sample: SampleUpstream
) -> None:
    """A `metadata: JSON!` value nested 400 levels deep (within the body limit) is
    BAD_USER_INPUT before any call, not an internal error."""
    nested: Any = "leaf"
    for _ in range(400):
        nested = {"a": nested}
    job = sample.jobs_of("apiteam")[0]["metadata"]["clientJobId"]
    answer = ask(
        gateway,
        "mutation($job: ID!, $m: JSON!) "
        "{ addJobMetadata(input: {clientJobId: $job, metadata: $m}) { clientMutationId } }",
        {"job": job, "m": nested},
    )
    assert answer["data"] == {"addJobMetadata": None}
    assert [error["extensions"]["code"] for error in answer["errors"]] == ["BAD_USER_INPUT"]
    assert writes_seen(sample) == []


@pytest.mark.parametrize("bad_id", ["../admin", "a/b", "..", "x?y=1", "a#b", "z" * 201])
def test_ids_that_could_name_another_path_are_refused_before_a_write(
    gateway: BackgroundServer, sample: SampleUpstream, bad_id: str
) -> None:
    """A clientJobId or userId that would leave its one path segment: BAD_USER_INPUT, and
    nothing is sent."""
    answer = ask(
        gateway,
        "mutation($id: ID!) { a: abortJob(input: {clientJobId: $id}) { clientMutationId } "
        'b: assignJob(input: {clientJobId: "c-1", userId: $id}) { clientMutationId } }',
        {"id": bad_id},
    )
    assert answer["data"] == {"a": None, "b": None}
    assert [error["extensions"]["code"] for error in answer["errors"]] == ["BAD_USER_INPUT"] * 2
    assert writes_seen(sample) == []


def test_headers_that_are_no_bearer_token_cost_redis_nothing(
    upstream: BackgroundServer, redis: RedisProcess
) -> None:
    """`Basic ...` is refused as UNAUTHENTICATED without reading a write generation from
    Redis (only bearer tokens have cached answers to check)."""
    shared = {"cache_url": redis.url, "cache_key_secret": "s", "cache_ttl": 60}
    with served_gateway(upstream.url, **shared) as gateway:
        before = redis.command("INFO", "commandstats").decode()
        response = httpx.post(
            f"{gateway.url}/graphql",
            json={"query": "{ jobs { totalCount } }"},
            headers={"authorization": "Basic dXNlcjpwYXNz"},
        )
        after = redis.command("INFO", "commandstats").decode()
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert _calls(after, "get") == _calls(before, "get")


def _calls(stats: str, command: str) -> int:
    for line in stats.splitlines():
        if line.startswith(f"cmdstat_{command}:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def test_a_write_that_times_out_is_not_retried_and_drops_the_callers_cache() -> None:
    """An upstream that answers a write too late: UPSTREAM_TIMEOUT after one attempt, and the
    caller's next read goes upstream again (the write may have happened)."""
    posts: list[str] = []
    gets: list[str] = []

    async def slow_write(request: Request) -> Response:
        posts.append(request.url.path)
        await asyncio.sleep(1.0)
        return Response('{"success": true}', media_type="application/json")

    async def page(request: Request) -> Response:
        gets.append(request.url.query)
        return Response("[]", media_type="application/json")

    app = Starlette(
        routes=[
            Route("/jobs/v1/", page, methods=["GET"]),
            Route("/jobs/v1/{path:path}", slow_write, methods=["POST"]),
        ]
    )
    read = "{ jobs(first: 5) { nodes { jobId } } }"
    with (
        BackgroundServer(app) as slow,
        served_gateway(slow.url, upstream_timeout=0.2, upstream_retries=3) as gateway,
    ):
        ask(gateway, read)
        ask(gateway, read)
        answer = ask(
            gateway, 'mutation { abortJob(input: {clientJobId: "c-1"}) { clientMutationId } }'
        )
        ask(gateway, read)
    assert answer["errors"][0]["extensions"]["code"] == "UPSTREAM_TIMEOUT"
    assert posts == ["/jobs/v1/c-1/abort"]
    assert len(gets) == 2  # once before the write (then cached), once after it


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_the_payload_shows_the_job_after_the_write_even_when_it_was_cached(
    upstream: BackgroundServer, sample: SampleUpstream, redis: RedisProcess, backend: str
) -> None:
    """The job read before the write is cached; the mutation's payload reads it back fresh
    (never from entries the write made stale), in memory and on Redis."""
    shared = (
        {"cache_url": redis.url, "cache_key_secret": "s", "cache_ttl": 60}
        if backend == "redis"
        else {"cache_ttl": 60}
    )
    job = open_job(sample)
    with served_gateway(upstream.url, **shared) as gateway:
        read = ask(gateway, f'{{ job(clientJobId: "{job}") {{ metadata {{ status }} }} }}')
        answer = ask(
            gateway,
            f'mutation {{ abortJob(input: {{clientJobId: "{job}"}}) '
            "{ job { metadata { status } } } }",
        )
    assert read["data"]["job"]["metadata"]["status"] != "Aborted"
    assert answer["data"]["abortJob"]["job"]["metadata"]["status"] == "Aborted"


@pytest.mark.parametrize(
    "mutation",
    [
        'createJob(input: {job: {metadata: {jobTitle: "no id"}}}) { clientMutationId }',
        'syncJob(input: {job: {metadata: {clientJobId: "  "}}}) { clientMutationId }',
        'updateJob(input: {clientJobId: "c-1", metadata: {}}) { clientMutationId }',
        'addJobMetadata(input: {clientJobId: "c-1", metadata: ["a"]}) { clientMutationId }',
    ],
    ids=["create-without-id", "sync-blank-id", "update-nothing", "metadata-not-an-object"],
)
def test_inputs_that_cannot_make_a_write_are_refused_without_one(
    gateway: BackgroundServer, sample: SampleUpstream, mutation: str
) -> None:
    """No clientJobId to name the job by, nothing to update, metadata that is no object:
    BAD_USER_INPUT and nothing sent."""
    answer = ask(gateway, f"mutation {{ {mutation} }}")
    assert [error["extensions"]["code"] for error in answer["errors"]] == ["BAD_USER_INPUT"]
    assert writes_seen(sample) == []
