"""The error contract's last step: every GraphQL error leaves with a stable `extensions.code`.

`GatewaySchema.execute` passes each error of a result through `coded_error`. Errors are coded
by their type and by where they were raised, never by their message text:

- a `GatewayError` from a resolver: already coded (see `gateway.errors`), kept as it is;
- request errors, coded where they arise: a syntax error (`GraphQLSyntaxError`) is
  `GRAPHQL_PARSE_FAILED`, or `TOO_MANY_TOKENS` (`gateway.documents`); the request limits and
  validation code their own (`gateway.documents`); bad variable values, found while the
  executor is built, are `BAD_USER_INPUT` (`CodingExecutionContext.build`);
- a bad value in the upstream's JSON that failed its own field: a null in a non-null field of a
  job type (`UpstreamValueMissingError`, raised by `CodingExecutionContext.complete_value`), or
  a value of the wrong type that scalar serialization or `is_type_of` refused (a
  `GraphQLError`): coded `UPSTREAM_BAD_RESPONSE`, at its path;
- anything else, which is a gateway bug: logged with its traceback and shown to the client only
  as `INTERNAL_SERVER_ERROR`, so no internals (or tokens) leak.
"""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError, GraphQLNonNull, GraphQLSyntaxError
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gateway.errors import INTERNAL_SERVER_ERROR, GatewayError, UpstreamBadResponseError
from gateway.types import Job, JobMetadata, Step, StepEnvelope

logger = logging.getLogger(__name__)

INTERNAL_ERROR_MESSAGE = (
    "Internal server error: the gateway failed unexpectedly; details are in its log"
)

_JSON_TYPE_NAMES = frozenset(cls.__name__ for cls in (Job, JobMetadata, Step, StepEnvelope))


class UpstreamValueMissingError(UpstreamBadResponseError):
    """Raised when the upstream's JSON holds null (or nothing) where a job type's field may not."""


class CodingExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, raising the errors it finds as types the contract can code."""

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        """The executor, or the errors of variable values that do not coerce: `BAD_USER_INPUT`."""
        built = super().build(*args, **kwargs)
        if isinstance(built, list):
            for error in built:
                error.extensions = {**(error.extensions or {}), "code": "BAD_USER_INPUT"}
        return built

    def complete_value(
        self,
        return_type: Any,
        field_details_list: Any,
        info: Any,
        path: Any,
        result: Any,
        position_context: Any,
    ) -> Any:
        """graphql-core's completion, with a null in a non-null field of the upstream's JSON
        raised as `UpstreamValueMissingError` (graphql-core would raise a bare TypeError)."""
        if (
            result is None
            and isinstance(return_type, GraphQLNonNull)
            and info.parent_type.name in _JSON_TYPE_NAMES
        ):
            logger.warning("Upstream sent null at %s.%s", info.parent_type.name, info.field_name)
            raise UpstreamValueMissingError(
                "The Jobs API sent a value this field cannot hold: Cannot return null for "
                f"non-nullable field {info.parent_type.name}.{info.field_name}."
            )
        return super().complete_value(
            return_type, field_details_list, info, path, result, position_context
        )


def coded_error(error: GraphQLError) -> GraphQLError:
    """`error` with a stable `extensions.code`, masked when it is not meant for the client."""
    original = error.original_error
    if isinstance(original, GatewayError):
        logger.debug("Request failed with %s: %s", original.code, original.message)
        return error
    if (error.extensions or {}).get("code"):
        return error  # coded where it was raised (the request limits)
    if isinstance(error, GraphQLSyntaxError) or isinstance(original, GraphQLSyntaxError):
        error.extensions = {**(error.extensions or {}), "code": "GRAPHQL_PARSE_FAILED"}
        return error
    if error.path is not None and isinstance(original, GraphQLError):
        # Raised by scalar serialization and by `is_type_of` when the JSON holds the wrong type.
        logger.warning("Upstream sent a bad value at %s: %s", error.path, error.message)
        return GraphQLError(
            f"The Jobs API sent a value this field cannot hold: {error.message}",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": UpstreamBadResponseError.code},
        )
    if error.path is None and (original is None or isinstance(original, GraphQLError)):
        # A request error from elsewhere before execution (an extension's validation rule).
        error.extensions = {**(error.extensions or {}), "code": "GRAPHQL_VALIDATION_FAILED"}
        return error
    logger.error(
        "Unexpected error at %s", error.path, exc_info=original if original is not None else error
    )
    return GraphQLError(
        INTERNAL_ERROR_MESSAGE,
        nodes=error.nodes,
        path=error.path,
        extensions={"code": INTERNAL_SERVER_ERROR},
    )
