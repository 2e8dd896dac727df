"""The `Subscription` root: `jobChanged`, fed by the process's shared pollers (`gateway.live`).

The resolver checks everything it can before a poller starts or an upstream call is made: the
transport (only a `LiveConnection` context, i.e. a WebSocket or multipart HTTP request), the
bearer credential (`UNAUTHENTICATED`), `first` (`BAD_USER_INPUT`), the connection's and the
process's limits. Those failures reach the client as the operation's error (graphql-transport-ws
`error`), before any event. Then it yields one `JobChange` per change its poller noticed; an
outage arrives as one event with `data: null` and the upstream's error, and the subscription
goes on; a 401 or 403 from the upstream ends it with that error.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any, cast

import strawberry
from strawberry.types import Info

from gateway.errors import BadUserInputError, GatewayError
from gateway.live.changes import Change, ChangeKind
from gateway.live.connection import LiveConnection
from gateway.live.transport import SUBSCRIPTION_TRANSPORTS
from gateway.pagination import check_count
from gateway.types import Job

DEFAULT_WINDOW = 50

JobChangeKind = strawberry.enum(
    ChangeKind,
    name="JobChangeKind",
    description="How a job changed in the subscribed window.",
)


@strawberry.type(description="One job that entered, changed in or left the subscribed window.")
class JobChange:
    kind: JobChangeKind = strawberry.field(  # type: ignore[valid-type]
        description=(
            "ADDED: it entered the window (new, or moved into it as others left); UPDATED: "
            "any of its values changed; REMOVED: it left the window (deleted, or pushed out "
            "by newer jobs)."
        )
    )
    job_id: strawberry.ID = strawberry.field(description="The job's `jobId`.")
    job: Job | None = strawberry.field(
        description="The job as last polled; null when it was REMOVED."
    )


def job_change(change: Change) -> JobChange:
    """The GraphQL event of one change (the job stays the upstream's JSON, as in lists)."""
    return JobChange(
        kind=change.kind,
        job_id=strawberry.ID(change.job_id),
        job=cast(Job | None, change.job),
    )


async def _events(
    connection: LiveConnection, authorization: str, credential: str, first: int
) -> AsyncGenerator[JobChange, None]:
    with connection.subscription():
        async with connection.hub.feed(authorization, credential, first) as feed:
            async for item in feed:
                # An outage's error is yielded, not raised: its event carries the error (the
                # field resolves to it) and the subscription goes on.
                yield cast(JobChange, item) if isinstance(item, GatewayError) else job_change(item)


async def resolve_job_changed(
    info: Info[Any, None],
    first: Annotated[
        int | None,
        strawberry.argument(
            description=(
                "How many of the newest jobs to watch, at most `GATEWAY_MAX_PAGE_SIZE` (null: 50)."
            )
        ),
    ] = DEFAULT_WINDOW,
) -> AsyncIterator[JobChange]:
    """Checks, then the stream of changes (see the module doc)."""
    connection = info.context
    if not isinstance(connection, LiveConnection):
        raise BadUserInputError(SUBSCRIPTION_TRANSPORTS)
    authorization, credential = connection.credential()
    first = DEFAULT_WINDOW if first is None else first
    check_count("first", first, connection.settings.max_page_size)
    if first < 1:
        raise BadUserInputError(f"`first` must be at least 1 (got {first})")
    connection.check_room()
    connection.hub.check(credential, first)
    return _events(connection, authorization, credential, first)


@strawberry.type(description="Live changes, pushed as the gateway notices them.")
class Subscription:
    job_changed: JobChange = strawberry.subscription(
        resolver=resolve_job_changed,
        description=(
            "Changes among the caller's newest `first` jobs (the list endpoint), as they are "
            "noticed. One poller per token and `first` serves every subscriber of that token "
            "(every `GATEWAY_LIVE_POLL_INTERVAL` seconds, through the page cache); its first "
            "poll sets the baseline and sends nothing, later ones send one event per changed "
            "job, in list order, REMOVED last."
        ),
    )
