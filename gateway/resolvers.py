"""Resolvers: Relay arguments to upstream calls, upstream rows to connections, ids to jobs.

The three lists (`jobs`, `myJobs`, `workflowJobs`) share one paging path over a `JobList`:
how to fetch a window and how to count the whole list. Single jobs (`node`, `nodes`, `job`) go
through per-request DataLoaders, so the same id asked twice in one request costs one call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, TypeVar, cast

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from gateway.caller import Caller
from gateway.context import RequestContext
from gateway.errors import BadUserInputError
from gateway.filtering import (
    JobFilter,
    JobPredicate,
    ScanLimits,
    count_matches,
    filtered_page,
)
from gateway.node_ids import job_id_from
from gateway.pagination import (
    Page,
    encode_cursor,
    needs_list_length,
    page_from_rows,
    page_window,
)
from gateway.types import Job, JobConnection, JobEdge, Node, PageInfo
from gateway.upstream import JobJSON, UpstreamClient

GraphQLContext = Info[RequestContext, None]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class JobList:
    """One list of jobs as the paging path sees it."""

    window: Callable[[int, int], Awaitable[list[JobJSON]]]
    """Rows [skip, skip + limit) of the list."""
    count: Callable[[], Awaitable[int]]
    """How many rows the whole list has."""
    page: Callable[[int, int], Awaitable[list[JobJSON]]] | None = None
    """`window` for a page a person is reading on from, which may fetch the next block ahead
    (next-block prefetch); None: `window` (filtered scans read on by themselves)."""


def connection_from_page(page: Page[JobJSON], count: Callable[[], Awaitable[int]]) -> JobConnection:
    """The GraphQL connection for a page of upstream rows.

    The rows stay the upstream's JSON objects: the job types read them key by key (see
    `gateway.types`), hence the casts.
    """
    cursors = page.cursors
    nodes = cast(Sequence[Job | None], page.rows)
    return JobConnection(
        edges=[
            JobEdge(cursor=cursor, node=node) for cursor, node in zip(cursors, nodes, strict=True)
        ],
        nodes=list(nodes),
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        ),
        counter=count,
    )


def _once(work: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    """`work`, started on first use and run at most once however often its result is needed."""
    result: list[asyncio.Future[T]] = []

    def shared() -> Awaitable[T]:
        if not result:
            result.append(asyncio.ensure_future(work()))
        return result[0]

    return shared


async def paginate(
    context: RequestContext,
    jobs: JobList,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    given_filter: JobFilter | None = None,
) -> JobConnection:
    """One page of `jobs` for the Relay arguments: one window fetched, counted only if needed;
    with a filter, a bounded scan (`gateway.filtering`)."""
    settings = context.settings
    predicate = JobPredicate.of(given_filter)
    if predicate is not None:
        return await _filtered(context, jobs, predicate, (first, after, last, before))
    count = _once(jobs.count)
    choose = partial(
        page_window,
        first=first,
        after=after,
        last=last,
        before=before,
        default_page_size=settings.default_page_size,
        max_page_size=settings.max_page_size,
    )
    if needs_list_length(first=first, last=last, before=before):
        choose(list_length=0)  # bad arguments fail before the (costly) count
        window = choose(list_length=await count())
    else:
        window = choose()
    rows = await (jobs.page or jobs.window)(window.start, window.fetch_limit)
    return connection_from_page(page_from_rows(window, rows), count)


async def _filtered(
    context: RequestContext,
    jobs: JobList,
    predicate: JobPredicate,
    arguments: tuple[int | None, str | None, int | None, str | None],
) -> JobConnection:
    """A filtered page, counted (every match of the whole list) only if `totalCount` is asked."""
    settings = context.settings
    block = settings.fetch_block_size or settings.upstream_max_limit
    limits = ScanLimits(
        settings.filter_scan_rows, block, settings.default_page_size, settings.max_page_size
    )
    page = await filtered_page(jobs.window, jobs.count, predicate, limits, arguments)
    caller = context.caller()
    caller.ledger.rows_scanned += page.scanned
    caller.ledger.matches += len(page.found)
    nodes = cast(list[Job | None], [job for _, job in page.found])
    return JobConnection(
        edges=[
            JobEdge(cursor=encode_cursor(position), node=cast(Job | None, job))
            for position, job in page.found
        ],
        nodes=nodes,
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=page.start_cursor,
            end_cursor=page.end_cursor,
        ),
        counter=_once(partial(count_matches, jobs.window, predicate, block)),
    )


Window = Callable[..., Awaitable[list[JobJSON]]]
Count = Callable[[UpstreamClient, Caller], Awaitable[int]]


def upstream_list(context: RequestContext, caller: Caller, window: Window, count: Count) -> JobList:
    """A list the upstream pages itself: `window` and `count` are the client's methods for it
    (`UpstreamClient.team_jobs` and `count_team_jobs`, or the `my_jobs` pair)."""
    upstream = context.upstream

    async def rows(skip: int, limit: int) -> list[JobJSON]:
        return await window(upstream, caller, skip=skip, limit=limit)

    async def page(skip: int, limit: int) -> list[JobJSON]:
        return await window(upstream, caller, skip=skip, limit=limit, ahead=True)

    async def length() -> int:
        return await count(upstream, caller)

    return JobList(rows, length, page)


def in_memory_list(rows: Callable[[], Awaitable[list[JobJSON]]]) -> JobList:
    """A list fetched whole (`/jobs/v1/workflow/{id}`), at most once and only when a window or
    the count is needed (bad arguments cost no call), and paged by the gateway."""
    fetch = _once(rows)

    async def window(skip: int, limit: int) -> list[JobJSON]:
        return (await fetch())[skip : skip + limit]

    async def count() -> int:
        return len(await fetch())

    return JobList(window, count)


_FIRST = strawberry.argument(
    description="Return the first N jobs of the window (at most the gateway's maximum page size)."
)
_AFTER = strawberry.argument(description="Start after the job with this cursor.")
_LAST = strawberry.argument(
    description="Return the last N jobs of the window; without `before`, of the whole list."
)
_BEFORE = strawberry.argument(description="End just before the job with this cursor.")
_FILTER = strawberry.argument(
    description=(
        "Only the jobs that match (every field given must hold). The list is scanned in "
        "blocks, at most GATEWAY_FILTER_SCAN_ROWS rows per request: a page may come back short, "
        "its `endCursor` (or `startCursor` backward) then marks where the scan stopped."
    )
)


def _upstream_list_resolver(
    window: Window, count: Count, summary: str
) -> Callable[..., Awaitable[JobConnection]]:
    """The resolver of a list the upstream pages itself (`jobs`, `myJobs`)."""

    async def resolve(
        info: GraphQLContext,
        first: Annotated[int | None, _FIRST] = None,
        after: Annotated[str | None, _AFTER] = None,
        last: Annotated[int | None, _LAST] = None,
        before: Annotated[str | None, _BEFORE] = None,
        filter: Annotated[JobFilter | None, _FILTER] = None,
    ) -> JobConnection:
        context = info.context
        jobs = upstream_list(context, context.caller(), window, count)
        return await paginate(context, jobs, first, after, last, before, filter)

    resolve.__doc__ = summary
    return resolve


resolve_jobs = _upstream_list_resolver(
    UpstreamClient.team_jobs,
    UpstreamClient.count_team_jobs,
    "`Query.jobs`: one page of the team's jobs, fetched as one skip/limit window.",
)
resolve_my_jobs = _upstream_list_resolver(
    UpstreamClient.my_jobs,
    UpstreamClient.count_my_jobs,
    "`Query.myJobs`: the token's own jobs, paged exactly like `jobs`.",
)


async def resolve_workflow_jobs(
    info: GraphQLContext,
    workflow_id: Annotated[
        strawberry.ID, strawberry.argument(description="The workflow whose jobs to list.")
    ],
    first: Annotated[int | None, _FIRST] = None,
    after: Annotated[str | None, _AFTER] = None,
    last: Annotated[int | None, _LAST] = None,
    before: Annotated[str | None, _BEFORE] = None,
    filter: Annotated[JobFilter | None, _FILTER] = None,
) -> JobConnection:
    """`Query.workflowJobs`: the upstream lists them all at once; the gateway pages them."""
    context = info.context
    if not str(workflow_id).strip():
        raise BadUserInputError("`workflowId` must not be empty")
    caller = context.caller()
    jobs = in_memory_list(partial(context.upstream.workflow_jobs, caller, str(workflow_id)))
    return await paginate(context, jobs, first, after, last, before, filter)


def _loader(
    context: RequestContext, name: str, fetch: Callable[[Caller, str], Awaitable[JobJSON | None]]
) -> DataLoader[str, JobJSON | None]:
    """This request's DataLoader `name` (`RequestContext.loader`)."""
    return cast(DataLoader[str, JobJSON | None], context.loader(name, fetch))


def _jobs_by_id(context: RequestContext) -> DataLoader[str, JobJSON | None]:
    return _loader(context, "job_by_id", context.upstream.job_by_id)


async def resolve_node(
    info: GraphQLContext,
    id: Annotated[strawberry.ID, strawberry.argument(description="A global id from a Job's `id`.")],
) -> Node | None:
    """`Query.node`: refetch a job by its global id; null when the upstream does not know it."""
    context = info.context
    context.caller()
    job = await _jobs_by_id(context).load(job_id_from(str(id)))
    return cast(Node | None, job)


async def resolve_nodes(
    info: GraphQLContext,
    ids: Annotated[
        list[strawberry.ID], strawberry.argument(description="Global ids from Jobs' `id`.")
    ],
) -> list[Node | None]:
    """`Query.nodes`: several jobs by global id, in order; duplicates cost one call."""
    context = info.context
    caller = context.caller()
    if len(ids) > context.settings.max_page_size:
        raise BadUserInputError(
            f"`ids` may hold at most {context.settings.max_page_size} ids (got {len(ids)})"
        )
    job_ids = [job_id_from(str(value)) for value in ids]
    caller.budget.require(len(set(job_ids)))
    jobs: list[Any] = await _jobs_by_id(context).load_many(job_ids)
    return cast(list[Node | None], jobs)


async def resolve_job(
    info: GraphQLContext,
    client_job_id: Annotated[
        strawberry.ID,
        strawberry.argument(description="The job's clientJobId (metadata.clientJobId)."),
    ],
) -> Job | None:
    """`Query.job`: one job by its client id; null when the upstream does not know it."""
    context = info.context
    context.caller()
    value = str(client_job_id).strip()
    if not value or len(value) > 200:
        raise BadUserInputError("`clientJobId` must be a non-empty id of at most 200 characters")
    loader = _loader(context, "job_by_client_id", context.upstream.job_by_client_id)
    return cast(Job | None, await loader.load(value))
