"""The sample upstream's write endpoints keep the vendor's rules, so the gateway's mutations
are tested against the semantics the real API documents."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.sample_upstream import WRITER_TOKEN, SampleUpstream

pytestmark = pytest.mark.anyio
WRITER = {"authorization": f"Bearer {WRITER_TOKEN}"}


@pytest.fixture
def sample() -> SampleUpstream:
    return SampleUpstream(teams={"apiteam": 5})


async def call(sample: SampleUpstream, method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=sample.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sample.test") as client:
        return await client.request(method, path, headers=WRITER, **kwargs)


def first_job(sample: SampleUpstream) -> dict[str, Any]:
    return sample.jobs_of("apiteam")[0]


async def test_create_answers_the_job_with_a_new_job_id_first_in_the_list(
    sample: SampleUpstream,
) -> None:
    """POST /jobs/v1 mints a jobId, answers the job, and lists it first; the same clientJobId
    again is 409."""
    body = {"metadata": {"clientJobId": "c-1", "jobTitle": "New"}}
    created = await call(sample, "POST", "/jobs/v1", json=body)
    again = await call(sample, "POST", "/jobs/v1", json=body)
    assert created.status_code == 200
    job = created.json()
    assert len(job["jobId"]) == 24
    assert job["metadata"]["jobTitle"] == "New"
    assert first_job(sample) == job
    assert again.status_code == 409


async def test_abort_and_assign_follow_the_documented_rules(sample: SampleUpstream) -> None:
    """An incomplete job aborts once, then refuses both abort and assignment with the vendor's
    messages."""
    client_job_id = next(
        job["metadata"]["clientJobId"]
        for job in sample.jobs_of("apiteam")
        if job["metadata"]["status"] not in ("Completed", "Aborted", "Abandoned")
    )
    aborted = await call(sample, "POST", f"/jobs/v1/{client_job_id}/abort")
    again = await call(sample, "POST", f"/jobs/v1/{client_job_id}/abort")
    assign = await call(sample, "POST", f"/jobs/v1/{client_job_id}/assign/{'a' * 24}")
    assert aborted.status_code == 200
    assert again.json() == {"message": "Only incomplete jobs can be aborted."}
    assert assign.status_code == 400
    assert assign.json() == {
        "message": "Aborted and Completed jobs can't be assigned to another user."
    }


async def test_metadata_merges_exclusion_appends_and_snapshots_keep_versions(
    sample: SampleUpstream,
) -> None:
    """Metadata merges into metadata.metadata; exclusion sets `excluded` and appends to
    jobExclusion; every write leaves the earlier version in the job's snapshots."""
    job = first_job(sample)
    client_job_id = job["metadata"]["clientJobId"]
    await call(sample, "POST", f"/jobs/v1/{client_job_id}/metadata", json={"site": "North"})
    exclusion = {"userId": "b" * 24, "reason": "duplicate", "isExcluded": "true"}
    await call(sample, "PUT", f"/jobs/v1/{client_job_id}", json=exclusion)
    snapshots = (await call(sample, "GET", f"/jobs/v1/snapshots/{client_job_id}")).json()
    assert job["metadata"]["metadata"]["site"] == "North"
    assert job["excluded"] is True
    assert job["jobExclusion"][-1]["reason"] == "duplicate"
    assert [snapshot["snapshotId"] for snapshot in snapshots] == [1, 2]
    assert "site" not in (snapshots[0]["job"]["metadata"].get("metadata") or {})


async def test_writes_need_their_policies(sample: SampleUpstream) -> None:
    """demo-token may read but not delete (Job_Modify): 403, and the job stays."""
    client_job_id = first_job(sample)["metadata"]["clientJobId"]
    transport = httpx.ASGITransport(app=sample.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sample.test") as client:
        refused = await client.delete(
            f"/jobs/v1/{client_job_id}", headers={"authorization": "Bearer demo-token"}
        )
    assert refused.status_code == 403
    assert first_job(sample)["metadata"]["clientJobId"] == client_job_id


async def test_abort_for_user_aborts_only_that_users_incomplete_jobs(
    sample: SampleUpstream,
) -> None:
    """PUT /jobs/v1/abort/?userId= aborts that user's incomplete jobs; without userId, every
    incomplete job of the team."""
    jobs = sample.jobs_of("apiteam")
    user_id = jobs[0]["metadata"]["userId"]
    before = {job["jobId"]: job["metadata"]["status"] for job in jobs}
    await call(sample, "PUT", "/jobs/v1/abort/", params={"userId": user_id})
    for job in jobs:
        mine = job["metadata"]["userId"] == user_id
        was_open = before[job["jobId"]] not in ("Completed", "Aborted", "Abandoned")
        expected = "Aborted" if mine and was_open else before[job["jobId"]]
        assert job["metadata"]["status"] == expected
    await call(sample, "PUT", "/jobs/v1/abort/")
    assert all(job["metadata"]["status"] in ("Completed", "Aborted", "Abandoned") for job in jobs)
