"""The GraphQL schema: the `Query` root, how fields read upstream JSON, and the SDL export."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from gateway.error_contract import ErrorContract
from gateway.resolvers import resolve_jobs
from gateway.scalars import SCALAR_MAP
from gateway.types import JobConnection


@strawberry.type(description="Read the WorkfloPlus jobs your bearer token may see.")
class Query:
    jobs: JobConnection = strawberry.field(
        resolver=resolve_jobs,
        description=(
            "The jobs of the token's team, in the order the Jobs API lists them, a page at a "
            "time (Relay cursor pagination over the API's skip/limit). With no arguments: the "
            "first 20. Costs one upstream call per page."
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
    """The Strawberry schema, with error logging left to `ErrorContract`."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Strawberry would log every error with a traceback, expected ones too; `ErrorContract`
        # logs each kind at its own level instead.
        return


def build_schema() -> GatewaySchema:
    """The gateway's schema. Cheap enough to build per app; holds no state."""
    return GatewaySchema(
        query=Query,
        config=StrawberryConfig(default_resolver=read_json_key, scalar_map=SCALAR_MAP),
        extensions=[ErrorContract],
    )


def export_sdl() -> str:
    """The schema in SDL, as `schema.graphql` holds it."""
    return build_schema().as_str() + "\n"
