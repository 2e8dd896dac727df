"""The GraphQL schema: the `Query` root, how fields read upstream JSON, and the SDL export."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from functools import partial
from typing import Any, Final

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType
from strawberry.utils.aio import aclosing

from gateway import tracing
from gateway.documents import CheckedDocuments, DocumentCache, DocumentChecks
from gateway.error_contract import coded_error
from gateway.limits import CallEstimate, DocumentLimits
from gateway.live import LiveConnection
from gateway.mutations import Mutation
from gateway.pagination import Fetching
from gateway.projection import ProjectingExecutionContext
from gateway.resolvers import (
    resolve_job,
    resolve_jobs,
    resolve_my_jobs,
    resolve_node,
    resolve_nodes,
    resolve_workflow_jobs,
)
from gateway.scalars import SCALAR_MAP
from gateway.settings import Settings
from gateway.subscriptions import Subscription
from gateway.types import NULL_ONLY_ON_ERROR, Job, JobConnection, Node


@strawberry.type(description="Read the WorkfloPlus jobs your bearer token may see.")
class Query:
    jobs: JobConnection | None = strawberry.field(
        resolver=resolve_jobs,
        directives=[NULL_ONLY_ON_ERROR],
        description=(
            "The jobs of the token's team, in the order the Jobs API lists them, a page at a "
            "time (Relay cursor pagination over the API's skip/limit). With no arguments: the "
            "first 20. One upstream call per page; `last` without `before` first finds the end "
            "of the list (see `totalCount`)."
        ),
    )
    my_jobs: JobConnection | None = strawberry.field(
        resolver=resolve_my_jobs,
        directives=[NULL_ONLY_ON_ERROR],
        description=(
            "The jobs of the token's own user (`GET /jobs/v1/my/`, policy Job_Read), paged "
            "exactly like `jobs`."
        ),
    )
    workflow_jobs: JobConnection | None = strawberry.field(
        resolver=resolve_workflow_jobs,
        directives=[NULL_ONLY_ON_ERROR],
        description=(
            "The jobs of one workflow (`GET /jobs/v1/workflow/{workflowId}`). The Jobs API "
            "returns them all at once with no paging, so the gateway fetches the list once, "
            "caches it per token like a page, and pages it itself, with the same arguments and "
            "cursors as `jobs`; `totalCount` costs nothing more."
        ),
    )
    node: Node | None = strawberry.field(
        resolver=resolve_node,
        description=(
            "Refetch an object by its global `id` (Relay): `GET /jobs/v1/bson/{jobId}`. Null "
            "when the Jobs API does not know it; a malformed id is BAD_USER_INPUT."
        ),
    )
    nodes: list[Node | None] | None = strawberry.field(
        resolver=resolve_nodes,
        directives=[NULL_ONLY_ON_ERROR],
        description=(
            "Several objects by global id, in the order asked, null for unknown ones. Fetched "
            "concurrently; the same id twice costs one call."
        ),
    )
    job: Job | None = strawberry.field(
        resolver=resolve_job,
        description=(
            "One job by its `clientJobId` (`GET /jobs/v1/{clientJobId}`); null when not found. "
            "Aliased `job` fields of one query share their calls: the same id costs one."
        ),
    )


def read_json_key(source: Any, name: str) -> object:
    """The default resolver: job types' fields read their JSON key, other types' their attribute.

    The job types' Python names are the JSON keys (see `gateway.types`), so no mapping is needed.
    """
    if type(source) is dict:
        return source.get(name)
    return getattr(source, name)


class GatewaySchema(strawberry.Schema):
    """The Strawberry schema, every error of whose results carries a code (`error_contract`)."""

    documents: DocumentCache | None = None
    """The checked documents kept by query text (None without settings: SDL export only)."""
    checks: DocumentChecks | None = None
    """What every document must pass before it runs (None without settings)."""

    async def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        result = await super().execute(*args, **kwargs)
        # Here rather than in an extension's on_operation: errors raised by extensions while
        # parsing bypass the extensions' own after-hooks.
        if result.errors:
            result.errors = [coded_error(error) for error in result.errors]
        return result

    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> AsyncGenerator[Any, None]:
        """Strawberry's stream (the subscription transports), every error coded like
        `execute`'s; on a subscriber's connection (`LiveConnection`) only subscriptions run."""
        if isinstance(context_value, LiveConnection):
            allowed_operation_types = SUBSCRIPTIONS_ONLY
        results = await super().stream(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            operation_extensions,
            allowed_operation_types,
        )
        return _coded_results(results)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Strawberry would log every error with a traceback, expected ones too; `coded_error`
        # logs each kind at its own level instead.
        return


SUBSCRIPTIONS_ONLY: Final = frozenset({OperationType.SUBSCRIPTION})
_SUBSCRIPTIONS_ONLY_MESSAGE: Final = (
    "Only subscriptions run over this transport: send queries and mutations over plain HTTP"
)


async def _coded_results(results: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
    async with aclosing(results):
        try:
            async for result in results:
                if isinstance(result, ExecutionResult) and result.errors:
                    result.errors = [_coded_stream_error(error) for error in result.errors]
                yield result
        except GraphQLError as error:
            # Raised by the parse hook (a syntax error, the token limit): Strawberry's stream
            # lets it escape, so it becomes the operation's error here, as `execute` makes it.
            coded = coded_error(error)
            failure = GraphQLError(coded.message, extensions=coded.extensions)
            yield PreExecutionError(data=None, errors=[failure])


def _coded_stream_error(error: GraphQLError) -> GraphQLError:
    if isinstance(error.original_error, InvalidOperationTypeError):
        return GraphQLError(_SUBSCRIPTIONS_ONLY_MESSAGE, extensions={"code": "BAD_REQUEST"})
    return coded_error(error)


def build_schema(settings: Settings | None = None) -> GatewaySchema:
    """The gateway's schema, with the request limits and switches of `settings`.

    Without settings (exporting the SDL) no extension is attached. Extensions are
    given as factories: Strawberry then makes fresh ones per request, so no state is shared.
    """
    extensions: list[Any] = []
    if settings is not None:
        estimate = CallEstimate(
            default_page_size=settings.default_page_size,
            max_page_size=settings.max_page_size,
            fetching=Fetching(settings.upstream_max_limit, settings.fetch_block_size),
            filter_scan_rows=settings.filter_scan_rows,
        )
        limits = DocumentLimits(
            max_depth=settings.max_depth,
            max_aliases=settings.max_aliases,
            max_repeats=settings.max_field_repeats,
            budget=settings.upstream_call_budget,
            estimate=estimate,
        )
        documents = DocumentCache()
        checks = DocumentChecks(limits, settings.max_tokens, settings.introspection)
        extensions.append(partial(CheckedDocuments, documents, checks))
        if settings.tracing:
            extensions.append(tracing.schema_extension())
    schema = GatewaySchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(default_resolver=read_json_key, scalar_map=SCALAR_MAP),
        extensions=extensions,
        execution_context_class=ProjectingExecutionContext,
    )
    if settings is not None:
        schema.documents = documents
        schema.checks = checks
    return schema


def export_sdl() -> str:
    """The schema in SDL, as `schema.graphql` holds it."""
    return build_schema().as_str() + "\n"
