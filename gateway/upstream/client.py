"""The Jobs API client: one method per endpoint, reading through the page cache.

It knows the API's paths and what each answers; how one GET is made (budget, deadline,
breaker, retries, the wire) is `exchange`'s, how a window is split into calls and how a list's
end is found is `gateway.pagination`'s (`Fetching`), and what is kept is the cache's. It knows
nothing of GraphQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

import httpx

from gateway.cache import Fetched, NullPageCache, PageCache
from gateway.caller import Caller
from gateway.errors import NotFoundError, UpstreamBadResponseError
from gateway.metrics import Metrics
from gateway.pagination import Fetching
from gateway.settings import Settings
from gateway.upstream.breaker import CircuitBreaker
from gateway.upstream.decoding import (
    JobJSON,
    cache_lifetime,
    decode_job_list,
    decode_json,
    decode_single_job,
)
from gateway.upstream.exchange import Exchange, UpstreamResponse
from gateway.upstream.listed import ListedJobs
from gateway.upstream.paths import path_segment
from gateway.upstream.statuses import BadResponse
from gateway.upstream.writes import JobWrites

Decoded = TypeVar("Decoded")

JOBS_PATH: Final = "/jobs/v1/"
MY_JOBS_PATH: Final = "/jobs/v1/my/"


async def _all_in_order(
    calls: list[Coroutine[Any, Any, list[JobJSON]]],
) -> list[list[JobJSON]]:
    """Run `calls` concurrently; the first failure cancels the rest and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call) for call in calls]
    except ExceptionGroup as failures:
        raise failures.exceptions[0] from None
    return [task.result() for task in tasks]


class UpstreamClient:
    """Calls the Jobs REST API with each caller's token through one shared, pooled transport."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        settings: Settings,
        breaker: CircuitBreaker,
        cache: PageCache | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._cache: PageCache = cache or NullPageCache()
        self._exchange = Exchange(transport, settings, breaker, metrics or Metrics())
        self._base_url = settings.upstream_url.rstrip("/")
        self.fetching = Fetching(settings.upstream_max_limit, settings.fetch_block_size)
        """How list windows are split into calls (what the request limits count too)."""
        self.writes = JobWrites(self._exchange, self._base_url, self._cache)
        self._listed = ListedJobs()
        """The write endpoints (each drops the caller's cached reads once it went through)."""

    @property
    def base_url(self) -> str:
        """The upstream base URL, without a trailing slash."""
        return self._base_url

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker guarding this upstream."""
        return self._exchange.breaker

    @property
    def cache(self) -> PageCache:
        """The page cache in front of this upstream (the null one when caching is off)."""
        return self._cache

    async def team_jobs(
        self, caller: Caller, *, skip: int, limit: int, ahead: bool = False
    ) -> list[JobJSON]:
        """`GET /jobs/v1/?skip=&limit=`: up to `limit` of the team's jobs from `skip` on;
        `ahead`: the next block may be fetched in the background (`_window`)."""
        return await self._window(caller, JOBS_PATH, skip, limit, ahead)

    async def my_jobs(
        self, caller: Caller, *, skip: int, limit: int, ahead: bool = False
    ) -> list[JobJSON]:
        """`GET /jobs/v1/my/?skip=&limit=`: up to `limit` of the caller's own jobs."""
        return await self._window(caller, MY_JOBS_PATH, skip, limit, ahead)

    async def count_team_jobs(self, caller: Caller) -> int:
        """How many jobs `GET /jobs/v1/` lists."""
        return await self._count(caller, JOBS_PATH)

    async def count_my_jobs(self, caller: Caller) -> int:
        """How many jobs `GET /jobs/v1/my/` lists."""
        return await self._count(caller, MY_JOBS_PATH)

    async def _window(
        self, caller: Caller, path: str, skip: int, limit: int, ahead: bool = False
    ) -> list[JobJSON]:
        """Rows `[skip, skip + limit)` of the list at `path`, in the calls of the fetch plan,
        run concurrently and stitched in order. With `ahead`, a window that ends in the last
        quarter of a full block has the next block fetched in the background (the cache's
        `prefetch`), so a person paging on finds it kept."""
        plan = self.fetching.plan(skip, limit)
        if plan.is_the_window:
            pages = [await self._job_list(caller, path, skip, limit)]
        else:
            pages = await _all_in_order(
                [self._job_list(caller, path, start, size) for start, size in plan.calls]
            )
        following = self.fetching.next_block(plan, len(pages[-1])) if ahead else None
        if following is not None:
            start, size = following
            self._cache.prefetch(
                caller,
                self._list_resource(path, start, size),
                lambda detached: self._fetch_job_list(detached, path, start, size),
            )
        return pages[0] if plan.is_the_window else plan.rows(pages)

    async def _count(self, caller: Caller, path: str) -> int:
        """How many jobs `GET {path}` lists, by the fetch plan's end search (uncached calls);
        the count itself is cached per credential like a page."""

        async def fetch(caller: Caller) -> Fetched:
            search = self.fetching.end_search()
            try:
                call = next(search)
                while True:
                    rows = await self._fetch_job_list(caller, path, *call)
                    call = search.send(len(rows.rows))
            except StopIteration as done:
                if done.value is None:
                    raise UpstreamBadResponseError(
                        "The Jobs API lists more jobs than the gateway can count"
                    ) from None
                return Fetched([done.value])

        return int((await self._cache.get_or_fetch(caller, f"count:{self._url(path)}", fetch))[0])

    async def workflow_jobs(self, caller: Caller, workflow_id: str) -> list[JobJSON]:
        """`GET /jobs/v1/workflow/{workflowId}`: every job of one workflow (no paging upstream),
        cached per credential like a page."""
        url = self._url(f"{JOBS_PATH}workflow/{path_segment(workflow_id, 'workflowId')}")

        async def fetch(caller: Caller) -> Fetched:
            response = await self._exchange.get(caller, url, {}, "workflow_jobs")
            rows = self._decoded(decode_job_list, response, caller, "workflow_jobs")
            return Fetched(rows, max_age=self._lifetime(response))

        return await self._cache.get_or_fetch(caller, url, fetch)

    async def job_by_id(self, caller: Caller, job_id: str) -> JobJSON | None:
        """`GET /jobs/v1/bson/{jobId}`: one job, or None when the API answers 404. A job the
        caller's fresh list blocks hold is taken from there, with no call (`listed`)."""
        path = f"{JOBS_PATH}bson/{path_segment(job_id, 'jobId')}"
        block = self._listed.block_of(caller, job_id)
        rows = None if block is None else await self._cache.peek(caller, block)
        for row in rows or ():
            if isinstance(row, dict) and row.get("jobId") == job_id:
                return row
        return await self._single_job(caller, path, "job_by_id")

    async def job_by_client_id(self, caller: Caller, client_job_id: str) -> JobJSON | None:
        """`GET /jobs/v1/{clientJobId}`: one job, or None when the API answers 404."""
        path = f"{JOBS_PATH}{path_segment(client_job_id, 'clientJobId')}"
        return await self._single_job(caller, path, "job_by_client_id")

    async def job_snapshots(self, caller: Caller, client_job_id: str) -> Any:
        """`GET /jobs/v1/snapshots/{clientJobId}` (Job_ReadAll): earlier versions of a job, in a
        shape the vendor does not document (passed through), cached per credential like a
        page; None when the API answers 404."""
        url = self._url(f"{JOBS_PATH}snapshots/{path_segment(client_job_id, 'clientJobId')}")

        async def fetch(caller: Caller) -> Fetched:
            response = await self._exchange.get(caller, url, {}, "job_snapshots")
            snapshots = self._decoded(decode_json, response, caller, "job_snapshots")
            return Fetched([snapshots], max_age=self._lifetime(response))

        try:
            return (await self._cache.get_or_fetch(caller, url, fetch))[0]
        except NotFoundError:
            return None

    def _url(self, path: str) -> str:
        return self._base_url + path

    async def _single_job(self, caller: Caller, path: str, endpoint: str) -> JobJSON | None:
        url = self._url(path)

        async def fetch(caller: Caller) -> Fetched:
            response = await self._exchange.get(caller, url, {}, endpoint)
            job = self._decoded(decode_single_job, response, caller, endpoint)
            return Fetched([job], max_age=self._lifetime(response))

        try:
            return (await self._cache.get_or_fetch(caller, url, fetch))[0]  # type: ignore[no-any-return]
        except NotFoundError:
            return None

    def _list_resource(self, path: str, skip: int, limit: int) -> str:
        return f"{self._url(path)}?skip={skip}&limit={limit}"

    async def _job_list(self, caller: Caller, path: str, skip: int, limit: int) -> list[JobJSON]:
        return await self._cache.get_or_fetch(
            caller,
            self._list_resource(path, skip, limit),
            lambda fetching: self._fetch_job_list(fetching, path, skip, limit),
        )

    async def _fetch_job_list(self, caller: Caller, path: str, skip: int, limit: int) -> Fetched:
        endpoint = "my_jobs_list" if path == MY_JOBS_PATH else "jobs_list"
        params = {"skip": skip, "limit": limit}
        response = await self._exchange.get(caller, self._url(path), params, endpoint)
        rows = self._decoded(decode_job_list, response, caller, endpoint)
        if self._cache.stores:
            self._listed.note(caller, self._list_resource(path, skip, limit), rows)
        return Fetched(rows, max_age=self._lifetime(response))

    def _decoded(
        self,
        decode: Callable[[int, bytes, str], Decoded],
        response: UpstreamResponse,
        caller: Caller,
        endpoint: str,
    ) -> Decoded:
        """`decode` applied to a 2xx answer; a bad one is counted before it is raised."""
        try:
            return decode(response.status, response.body, caller.authorization)
        except BadResponse as error:
            self._exchange.metrics.upstream_bad_responses.labels(endpoint, error.reason).inc()
            raise

    def _lifetime(self, response: UpstreamResponse) -> float | None:
        if not self._cache.stores:
            return None  # nothing is kept: what the upstream allows does not matter
        return cache_lifetime(response.headers, shared=self._cache.shared)
