"""The upstream client's writes, over httpx's MockTransport: bodies exactly as given, no
retry once a write may have been sent, and the caller's cached reads dropped after it."""

from __future__ import annotations

import json

import httpx
import pytest

from gateway.errors import (
    BadUserInputError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UpstreamUnavailableError,
)

from .conftest import Recorder, job_page, request_context

pytestmark = pytest.mark.anyio
JOB = {"jobId": "f" * 24, "metadata": {"clientJobId": "c-1"}}


def answering(status: int, body: object = None) -> Recorder:
    return Recorder(lambda _request: httpx.Response(status, json=body))


async def test_each_write_sends_its_method_path_and_exact_body() -> None:
    """Method, path and body per endpoint, as the vendor documents them: the exclude body is
    exactly userId, reason and the string "true"; no userId means none in the query string."""
    recorder = answering(200, {"success": True})
    context = request_context(recorder.transport())
    writes, caller = context.upstream.writes, context.bearer
    assert caller is not None
    await writes.create_job(caller, {"metadata": {"clientJobId": "c-1"}})
    await writes.sync_job(caller, {"metadata": {"clientJobId": "c-1"}})
    await writes.update_job(caller, "c-1", {"jobTitle": "T"})
    await writes.add_job_metadata(caller, "c-1", {"site": "North"})
    await writes.abort_job(caller, "c-1")
    await writes.assign_job(caller, "c-1", "u-9")
    await writes.exclude_job(caller, "c-1", "u-9", "duplicate")
    await writes.delete_job(caller, "c-1")
    await writes.abort_jobs_for_user(caller, "u-9")
    await writes.abort_jobs_for_user(caller, None)
    sent = [
        (
            request.method,
            request.url.path,
            request.url.query.decode(),
            json.loads(request.content) if request.content else None,
        )
        for request in recorder.requests
    ]
    assert sent == [
        ("POST", "/jobs/v1", "", {"metadata": {"clientJobId": "c-1"}}),
        ("POST", "/jobs/v1/basicSync", "", {"metadata": {"clientJobId": "c-1"}}),
        ("POST", "/jobs/v1/c-1", "", {"metadata": {"jobTitle": "T"}}),
        ("POST", "/jobs/v1/c-1/metadata", "", {"site": "North"}),
        ("POST", "/jobs/v1/c-1/abort", "", None),
        ("POST", "/jobs/v1/c-1/assign/u-9", "", None),
        ("PUT", "/jobs/v1/c-1", "", {"userId": "u-9", "reason": "duplicate", "isExcluded": "true"}),
        ("DELETE", "/jobs/v1/c-1", "", None),
        ("PUT", "/jobs/v1/abort/", "userId=u-9", None),
        ("PUT", "/jobs/v1/abort/", "", None),
    ]
    assert all(
        request.headers["authorization"] == "Bearer demo-token" for request in recorder.requests
    )


@pytest.mark.parametrize(
    ("status", "error"),
    [(503, UpstreamUnavailableError), (502, UpstreamUnavailableError), (429, Exception)],
)
async def test_a_write_that_reached_the_upstream_is_never_retried(
    status: int, error: type[Exception]
) -> None:
    """502, 503 and 429 are retried for reads; a write gets one attempt and the error."""
    recorder = answering(status, {"message": "busy"})
    context = request_context(recorder.transport(), upstream_retries=3)
    assert context.bearer is not None
    with pytest.raises(error):
        await context.upstream.writes.abort_job(context.bearer, "c-1")
    assert len(recorder.requests) == 1


async def test_a_write_that_could_not_connect_is_retried() -> None:
    """A refused connection cannot have reached the upstream: tried again, then sent once."""
    attempts: list[httpx.Request] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        if len(attempts) == 1:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json=JOB)

    context = request_context(httpx.MockTransport(flaky), upstream_retry_backoff=0.01)
    assert context.bearer is not None
    job = await context.upstream.writes.create_job(context.bearer, {"metadata": {}})
    assert job == JOB
    assert len(attempts) == 2


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (
            400,
            {"message": "Only incomplete jobs can be aborted."},
            BadUserInputError,
            "Only incomplete jobs can be aborted.",
        ),
        (422, {"message": "x" * 500}, BadUserInputError, "x" * 200 + "..."),
        (409, {"message": "exists"}, ConflictError, "exists"),
        (403, {"message": "no"}, ForbiddenError, "(Job_Read)"),
        (404, {"message": "Job not found"}, NotFoundError, "no job with that clientJobId"),
    ],
)
async def test_refusals_are_coded_with_the_upstreams_reason(
    status: int, body: object, error: type[Exception], message: str
) -> None:
    """400/422 quote the upstream's message (up to 200 characters), 409 is CONFLICT, 403
    names the policy, 404 says no such job."""
    context = request_context(answering(status, body).transport())
    assert context.bearer is not None
    with pytest.raises(error) as raised:
        await context.upstream.writes.abort_job(context.bearer, "c-1")
    assert message in str(raised.value)


async def test_a_write_drops_the_callers_cached_pages() -> None:
    """A page read, a write, the same page again: the second read goes to the upstream."""

    def upstream(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return job_page([JOB])(request)
        return httpx.Response(200, json={"success": True})

    recorder = Recorder(upstream)
    context = request_context(recorder.transport())
    caller = context.bearer
    assert caller is not None
    client = context.upstream
    await client.team_jobs(caller, skip=0, limit=20)
    await client.team_jobs(caller, skip=0, limit=20)
    await client.writes.abort_job(caller, "c-1")
    await client.team_jobs(caller, skip=0, limit=20)
    assert [request.method for request in recorder.requests] == ["GET", "POST", "GET"]


async def test_failed_writes_open_the_breaker_like_reads() -> None:
    """Writes answered 503 count as failures: after GATEWAY_BREAKER_FAILURES of them the
    breaker is open, and the next read fails fast without a call."""
    recorder = answering(503, {"message": "down"})
    context = request_context(recorder.transport(), breaker_failures=2, upstream_retries=0)
    caller = context.bearer
    assert caller is not None
    for _ in range(2):
        with pytest.raises(UpstreamUnavailableError):
            await context.upstream.writes.abort_job(caller, "c-1")
    with pytest.raises(UpstreamUnavailableError) as refused:
        await context.upstream.team_jobs(caller, skip=0, limit=20)
    assert refused.value.retry_after is not None
    assert len(recorder.requests) == 2
