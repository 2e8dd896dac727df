"""Resolvers: turn Relay arguments into upstream calls and upstream rows into connections."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, cast

import strawberry
from strawberry.types import Info

from gateway.context import RequestContext
from gateway.pagination import Page, page_from_rows, page_window
from gateway.types import Job, JobConnection, JobEdge, PageInfo
from gateway.upstream import JobJSON


def connection_from_page(page: Page[JobJSON]) -> JobConnection:
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
    )


_FIRST = strawberry.argument(
    description="Return the first N jobs of the window (at most the gateway's maximum page size)."
)
_AFTER = strawberry.argument(description="Start after the job with this cursor.")
_LAST = strawberry.argument(
    description="Return the last N jobs of the window; needs `before` (or `first`) to count from."
)
_BEFORE = strawberry.argument(description="End just before the job with this cursor.")


async def resolve_jobs(
    info: Info[RequestContext, None],
    first: Annotated[int | None, _FIRST] = None,
    after: Annotated[str | None, _AFTER] = None,
    last: Annotated[int | None, _LAST] = None,
    before: Annotated[str | None, _BEFORE] = None,
) -> JobConnection:
    """`Query.jobs`: one page of the team's jobs, fetched as one skip/limit window."""
    context = info.context
    caller = context.caller()
    window = page_window(
        first=first,
        after=after,
        last=last,
        before=before,
        default_page_size=context.settings.default_page_size,
        max_page_size=context.settings.max_page_size,
    )
    rows = await context.upstream.list_jobs(caller, skip=window.start, limit=window.fetch_limit)
    return connection_from_page(page_from_rows(window, rows))
