"""A sample Jobs REST API: what `python -m gateway demo` and the end-to-end tests run against.

It implements every endpoint of the Jobs API as the vendor documents it (the writes and
snapshots in `gateway.sample_writes`), over deterministic jobs from `gateway.sample_jobs` kept
in memory, with the vendor's auth model in miniature: each bearer token is granted to one team
and a set of policies; no or an unknown token is 401, a token without the endpoint's policy is
403 (`Job_ReadAll` for the list), and different teams see different jobs.
`demo-token-writer` holds the write policies too. It remembers the
last requests it served (`SampleUpstream.seen`) so tests can check what the gateway sent.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.sample_churn import churn
from gateway.sample_jobs import sample_team_jobs, sample_users
from gateway.sample_writes import JOB_MODIFY, WORKFLOW_EXECUTE, SampleWrites

JOB_READ_ALL = "Job_ReadAll"
JOB_READ = "Job_Read"
DEMO_TOKEN = "demo-token"  # noqa: S105 - the sample upstream's published demo token


@dataclass(frozen=True, slots=True)
class Grant:
    """What a token may do: its team and policies, and which of the team's users it is."""

    team: str
    policies: frozenset[str] = frozenset({JOB_READ_ALL, JOB_READ})
    user: int = 0
    """Index of the token's user among the team's sample users (for `/jobs/v1/my/`)."""


DEFAULT_TEAMS: Mapping[str, int] = {"apiteam": 237, "fieldteam": 64}
WRITER_TOKEN = "demo-token-writer"  # noqa: S105 - the sample upstream's published write token
DEFAULT_GRANTS: Mapping[str, Grant] = {
    DEMO_TOKEN: Grant("apiteam"),
    "demo-token-fieldteam": Grant("fieldteam"),
    "demo-token-read-only": Grant("apiteam", frozenset({JOB_READ})),
    WRITER_TOKEN: Grant(
        "apiteam", frozenset({JOB_READ_ALL, JOB_READ, JOB_MODIFY, WORKFLOW_EXECUTE}), user=1
    ),
}


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """One request the sample upstream served, as it arrived."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        """The value of header `name` (case-insensitive), if it was sent."""
        return next((value for key, value in self.headers if key == name.lower()), None)


@dataclass
class SampleUpstream:
    """The sample API's data and memory; `app()` serves it."""

    teams: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_TEAMS))
    grants: Mapping[str, Grant] = field(default_factory=lambda: dict(DEFAULT_GRANTS))
    max_limit: int | None = None
    """If set, `limit` is capped to this silently, as real APIs may do."""
    latency: float = 0.0
    """Seconds each answer is held back, to model a remote API (benchmarks)."""
    latency_per_row: float = 0.0
    """More seconds per row returned, to model the cost of bigger pages (benchmarks)."""
    churn_interval: float = 0.0
    """If set, a few jobs change by themselves every so many seconds (`sample_churn`: the
    demo, so live subscriptions have something to show); off by default."""
    seen: collections.deque[SeenRequest] = field(
        default_factory=lambda: collections.deque(maxlen=10_000)
    )

    def __post_init__(self) -> None:
        self._jobs = {team: sample_team_jobs(team, count) for team, count in self.teams.items()}
        self.writes = SampleWrites(self)

    def jobs_of(self, team: str) -> list[dict[str, Any]]:
        """Every job of `team`, in list order (the list itself: writes change it)."""
        return self._jobs.setdefault(team, [])

    def app(self) -> Starlette:
        """The ASGI app serving this sample API, writes and snapshots included (and, with
        `churn_interval`, changing by itself while it runs)."""
        return Starlette(
            lifespan=self._lifespan,
            routes=[
                *self.writes.routes(),
                Route("/jobs/v1/", self._list_jobs, methods=["GET"]),
                Route("/jobs/v1/my/", self._my_jobs, methods=["GET"]),
                Route("/jobs/v1/workflow/{workflow_id}", self._workflow_jobs, methods=["GET"]),
                Route("/jobs/v1/bson/{job_id}", self._job_by_id, methods=["GET"]),
                Route("/jobs/v1/{client_job_id}", self._job_by_client_id, methods=["GET"]),
            ],
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        if not self.churn_interval:
            yield
            return

        def teams() -> list[list[dict[str, Any]]]:
            return [self.jobs_of(team) for team in self.teams]

        activity = asyncio.create_task(churn(teams, self.churn_interval))
        try:
            yield
        finally:
            activity.cancel()

    def my_jobs_of(self, grant: Grant) -> list[dict[str, Any]]:
        """The jobs `/jobs/v1/my/` lists for a token: its team's jobs run by its user."""
        user_id = sample_users(grant.team)[grant.user][0]
        return [job for job in self.jobs_of(grant.team) if job["metadata"]["userId"] == user_id]

    def remember(self, request: Request) -> None:
        """Note `request` in `seen`."""
        self.seen.append(
            SeenRequest(
                method=request.method,
                path=request.url.path,
                query=request.url.query,
                headers=tuple(
                    (key.decode("latin-1"), value.decode("latin-1"))
                    for key, value in request.headers.raw
                ),
            )
        )

    def grant(self, request: Request, policy: str) -> Grant | Response:
        """The request's grant if its token holds `policy`, else the 401 or 403 to answer."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        grant = self.grants.get(token) if scheme.lower() == "bearer" else None
        if grant is None:
            return _json({"message": "Unauthorized"}, 401)
        if policy not in grant.policies:
            return _json({"message": f"Forbidden: policy {policy} required"}, 403)
        return grant

    async def _list_jobs(self, request: Request) -> Response:
        self.remember(request)
        grant = self.grant(request, JOB_READ_ALL)
        if isinstance(grant, Response):
            return grant
        return await self._window(request, self.jobs_of(grant.team))

    async def _my_jobs(self, request: Request) -> Response:
        self.remember(request)
        grant = self.grant(request, JOB_READ)
        if isinstance(grant, Response):
            return grant
        return await self._window(request, self.my_jobs_of(grant))

    async def _workflow_jobs(self, request: Request) -> Response:
        self.remember(request)
        grant = self.grant(request, JOB_READ_ALL)
        if isinstance(grant, Response):
            return grant
        workflow_id = request.path_params["workflow_id"]
        jobs = [
            job for job in self.jobs_of(grant.team) if job["metadata"]["workflowId"] == workflow_id
        ]
        return _json(jobs, 200)

    async def _job_by_id(self, request: Request) -> Response:
        return self._one_job(request, "jobId", request.path_params["job_id"], as_list=False)

    async def _job_by_client_id(self, request: Request) -> Response:
        # The vendor's example answers this endpoint with an array of one job.
        client_job_id = request.path_params["client_job_id"]
        return self._one_job(request, "clientJobId", client_job_id, as_list=True)

    def _one_job(self, request: Request, key: str, value: str, *, as_list: bool) -> Response:
        self.remember(request)
        grant = self.grant(request, JOB_READ)
        if isinstance(grant, Response):
            return grant
        for job in self.jobs_of(grant.team):
            found = job["jobId"] if key == "jobId" else job["metadata"]["clientJobId"]
            if found == value:
                return _json([job] if as_list else job, 200)
        return _json({"message": "Job not found"}, 404)

    async def _window(self, request: Request, jobs: list[dict[str, Any]]) -> Response:
        try:
            skip = int(request.query_params.get("skip", "0"))
            limit = int(request.query_params.get("limit", "20"))
        except ValueError:
            return _json({"message": "skip and limit must be integers"}, 400)
        if skip < 0 or limit < 0:
            return _json({"message": "skip and limit must not be negative"}, 400)
        if self.max_limit is not None:
            limit = min(limit, self.max_limit)
        rows = jobs[skip : skip + limit]
        if self.latency or self.latency_per_row:
            await asyncio.sleep(self.latency + self.latency_per_row * len(rows))
        return _json(rows, 200)


def _json(body: object, status: int) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")
