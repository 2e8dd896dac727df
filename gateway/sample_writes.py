"""The sample Jobs API's write endpoints and job snapshots, with the vendor's semantics.

The vendor documents the writes' paths, bodies and policies but no answers (see
`../shared/UPSTREAM.md`); this sample answers as the gateway must be ready for:

- create (`POST /jobs/v1`) and basic sync (`POST /jobs/v1/basicSync`) answer the job;
- the other writes answer `{"success": true}` (not a job: the gateway reads the job back);
- refusals are JSON `{"message": ...}`: 400 for the vendor's documented rules ("Only incomplete
  jobs can be aborted.", "Aborted and Completed jobs can't be assigned to another user."), 404
  for an unknown `clientJobId`, 409 when a created job's `clientJobId` exists already.

State lives in memory, per team, in `SampleUpstream`'s job lists (newest first), so reads see
writes at once. Every write of a job first keeps a copy of it: `GET /jobs/v1/snapshots/
{clientJobId}` lists those earlier versions, oldest first.
"""

from __future__ import annotations

import datetime
import itertools
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

if TYPE_CHECKING:
    from gateway.sample_upstream import Grant, SampleUpstream

JOB_MODIFY = "Job_Modify"
WORKFLOW_EXECUTE = "Workflow_Execute"
_INCOMPLETE_ENDED = frozenset({"Completed", "Aborted", "Abandoned"})
_NOT_ASSIGNABLE = frozenset({"Completed", "Aborted"})
_OK = {"success": True}


def now_timestamp() -> str:
    """Now, as the sample API writes timestamps."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _json(body: object, status: int) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


class SampleWrites:
    """The write routes of one `SampleUpstream`."""

    def __init__(self, upstream: SampleUpstream) -> None:
        self.upstream = upstream
        self.snapshots: dict[str, list[dict[str, Any]]] = {}
        self._job_ids = itertools.count(1)

    def routes(self) -> list[Route]:
        """The write routes and snapshots, before the read routes whose paths they share."""
        return [
            Route("/jobs/v1", self._create, methods=["POST"]),
            Route("/jobs/v1/basicSync", self._sync, methods=["POST"]),
            Route("/jobs/v1/abort/", self._abort_for_user, methods=["PUT"]),
            Route("/jobs/v1/snapshots/{client_job_id}", self._snapshots, methods=["GET"]),
            Route("/jobs/v1/{client_job_id}", self._update, methods=["POST"]),
            Route("/jobs/v1/{client_job_id}", self._exclude, methods=["PUT"]),
            Route("/jobs/v1/{client_job_id}", self._delete, methods=["DELETE"]),
            Route("/jobs/v1/{client_job_id}/metadata", self._add_metadata, methods=["POST"]),
            Route("/jobs/v1/{client_job_id}/abort", self._abort, methods=["POST"]),
            Route("/jobs/v1/{client_job_id}/assign/{user_id}", self._assign, methods=["POST"]),
        ]

    async def _request(
        self, request: Request, policy: str, *, body: bool = True
    ) -> tuple[Grant, Any] | Response:
        """The caller's grant and the decoded JSON body, or the refusal to answer."""
        self.upstream.remember(request)
        grant = self.upstream.grant(request, policy)
        if isinstance(grant, Response):
            return grant
        if not body:
            return grant, None
        try:
            return grant, orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _json({"message": "The body is not valid JSON"}, 400)

    def _find(self, grant: Grant, client_job_id: str) -> dict[str, Any] | None:
        jobs = self.upstream.jobs_of(grant.team)
        return next((job for job in jobs if job["metadata"]["clientJobId"] == client_job_id), None)

    def _keep(self, job: dict[str, Any]) -> None:
        """Remember `job` as it is now, before a write changes it."""
        history = self.snapshots.setdefault(job["metadata"]["clientJobId"], [])
        copy = orjson.loads(orjson.dumps(job))
        history.append({"snapshotId": len(history) + 1, "taken": now_timestamp(), "job": copy})

    async def _new_job(self, request: Request) -> tuple[Grant, dict[str, Any]] | Response:
        """The caller's grant and the job its body holds (create, sync), or the refusal."""
        got = await self._request(request, WORKFLOW_EXECUTE)
        if isinstance(got, Response):
            return got
        grant, body = got
        problem = _job_problem(body)
        if problem is not None:
            return _json({"message": problem}, 400)
        return grant, body

    async def _create(self, request: Request) -> Response:
        got = await self._new_job(request)
        if isinstance(got, Response):
            return got
        grant, body = got
        if self._find(grant, body["metadata"]["clientJobId"]) is not None:
            return _json({"message": "A job with this clientJobId exists already"}, 409)
        return _json(self._insert(grant, body), 200)

    def _insert(self, grant: Grant, body: dict[str, Any]) -> dict[str, Any]:
        job = {key: value for key, value in body.items() if key != "jobId"}
        job["jobId"] = f"{0xF00D0000 + next(self._job_ids):024x}"
        job["team"] = grant.team
        job.setdefault("excluded", False)
        job.setdefault("jobExclusion", [])
        now = now_timestamp()
        job["metadata"] = {"created": now, "status": "Active", **job["metadata"], "updated": now}
        self.upstream.jobs_of(grant.team).insert(0, job)
        return job

    async def _sync(self, request: Request) -> Response:
        got = await self._new_job(request)
        if isinstance(got, Response):
            return got
        grant, body = got
        job = self._find(grant, body["metadata"]["clientJobId"])
        if job is None:
            return _json(self._insert(grant, body), 200)
        self._keep(job)
        metadata = {**job["metadata"], **body["metadata"], "updated": now_timestamp()}
        job.update({key: value for key, value in body.items() if key != "jobId"})
        job["metadata"] = metadata
        return _json(job, 200)

    async def _update(self, request: Request) -> Response:
        found = await self._job_and_body(request, JOB_MODIFY)
        if isinstance(found, Response):
            return found
        job, body = found
        if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
            return _json({"message": 'The body must be {"metadata": {...}}'}, 400)
        self._keep(job)
        job["metadata"] = {**job["metadata"], **body["metadata"], "updated": now_timestamp()}
        return _json(_OK, 200)

    async def _add_metadata(self, request: Request) -> Response:
        found = await self._job_and_body(request, JOB_MODIFY)
        if isinstance(found, Response):
            return found
        job, body = found
        if not isinstance(body, dict):
            return _json({"message": "The body must be a JSON object"}, 400)
        self._keep(job)
        merged = {**(job["metadata"].get("metadata") or {}), **body}
        job["metadata"] = {**job["metadata"], "metadata": merged, "updated": now_timestamp()}
        return _json(_OK, 200)

    async def _abort(self, request: Request) -> Response:
        found = await self._job_and_body(request, "Job_Read", body=False)
        if isinstance(found, Response):
            return found
        job, _ = found
        if job["metadata"].get("status") in _INCOMPLETE_ENDED:
            return _json({"message": "Only incomplete jobs can be aborted."}, 400)
        self._keep(job)
        job["metadata"] = {**job["metadata"], "status": "Aborted", "updated": now_timestamp()}
        return _json(_OK, 200)

    async def _assign(self, request: Request) -> Response:
        found = await self._job_and_body(request, "Job_Read", body=False)
        if isinstance(found, Response):
            return found
        job, _ = found
        if job["metadata"].get("status") in _NOT_ASSIGNABLE:
            message = "Aborted and Completed jobs can't be assigned to another user."
            return _json({"message": message}, 400)
        self._keep(job)
        user_id = request.path_params["user_id"]
        job["metadata"] = {**job["metadata"], "userId": user_id, "updated": now_timestamp()}
        return _json(_OK, 200)

    async def _exclude(self, request: Request) -> Response:
        found = await self._job_and_body(request, "Job_ReadAll")
        if isinstance(found, Response):
            return found
        job, body = found
        if not isinstance(body, dict) or body.get("isExcluded") not in ("true", "false"):
            message = 'The body must be {"userId", "reason", "isExcluded": "true"|"false"}'
            return _json({"message": message}, 400)
        self._keep(job)
        excluded = body["isExcluded"] == "true"
        record = {
            "userId": body.get("userId"),
            "reason": body.get("reason"),
            "date": now_timestamp(),
        }
        job["excluded"] = excluded
        job["jobExclusion"] = [*(job.get("jobExclusion") or []), {**record, "excluded": excluded}]
        return _json(_OK, 200)

    async def _delete(self, request: Request) -> Response:
        found = await self._job_and_body(request, JOB_MODIFY, body=False)
        if isinstance(found, Response):
            return found
        job, _ = found
        self._keep(job)
        self.upstream.jobs_of(job["team"]).remove(job)
        return _json(_OK, 200)

    async def _abort_for_user(self, request: Request) -> Response:
        got = await self._request(request, JOB_MODIFY, body=False)
        if isinstance(got, Response):
            return got
        grant, _ = got
        user_id = request.query_params.get("userId") or None
        for job in self.upstream.jobs_of(grant.team):
            metadata = job["metadata"]
            if metadata.get("status") in _INCOMPLETE_ENDED:
                continue
            if user_id is None or metadata.get("userId") == user_id:
                self._keep(job)
                job["metadata"] = {**metadata, "status": "Aborted", "updated": now_timestamp()}
        return _json(_OK, 200)

    async def _snapshots(self, request: Request) -> Response:
        found = await self._job_and_body(request, "Job_ReadAll", body=False)
        if isinstance(found, Response):
            return found
        job, _ = found
        return _json(self.snapshots.get(job["metadata"]["clientJobId"], []), 200)

    async def _job_and_body(
        self, request: Request, policy: str, *, body: bool = True
    ) -> tuple[dict[str, Any], Any] | Response:
        """The job the path names and the request's body, or the refusal to answer."""
        got = await self._request(request, policy, body=body)
        if isinstance(got, Response):
            return got
        grant, decoded = got
        job = self._find(grant, request.path_params["client_job_id"])
        if job is None:
            return _json({"message": "Job not found"}, 404)
        return job, decoded


def _job_problem(body: object) -> str | None:
    """Why `body` is not a job to create or sync (None: it is one)."""
    if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
        return "The body must be a job with its metadata"
    client_job_id = body["metadata"].get("clientJobId")
    if not isinstance(client_job_id, str) or not client_job_id:
        return "metadata.clientJobId is required"
    return None
