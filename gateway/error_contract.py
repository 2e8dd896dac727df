"""The error contract's last step: every GraphQL error leaves with a stable `extensions.code`.

`GatewaySchema.execute` passes each error of a result through `coded_error`. Each falls in one
of four kinds:

- a `GatewayError` from a resolver: already coded (see `gateway.errors`), kept as it is;
- a request error (syntax, validation, bad variable values): coded `GRAPHQL_PARSE_FAILED`,
  `GRAPHQL_VALIDATION_FAILED` or `BAD_USER_INPUT`;
- a bad value in the upstream's JSON that failed its own field (a string where an Int belongs,
  an unparseable timestamp, a job without `jobId`): coded `UPSTREAM_BAD_RESPONSE`, at its path;
- anything else, which is a gateway bug: logged with its traceback and shown to the client only
  as `INTERNAL_SERVER_ERROR`, so no internals (or tokens) leak.
"""

from __future__ import annotations

import logging

from graphql import GraphQLError, GraphQLSyntaxError

from gateway.errors import INTERNAL_SERVER_ERROR, GatewayError, UpstreamBadResponseError
from gateway.types import Job, JobMetadata, Step, StepEnvelope

logger = logging.getLogger(__name__)

INTERNAL_ERROR_MESSAGE = (
    "Internal server error: the gateway failed unexpectedly; details are in its log"
)

_JSON_TYPE_NAMES = tuple(cls.__name__ for cls in (Job, JobMetadata, Step, StepEnvelope))
# graphql-core reports a null in a non-null field with this TypeError message; among the job
# types that can only come from the upstream's data.
_NON_NULL_PREFIXES = tuple(
    f"Cannot return null for non-nullable field {name}." for name in _JSON_TYPE_NAMES
)


def _is_upstream_value_error(error: GraphQLError) -> bool:
    """Whether `error` is a field of upstream JSON that could not be represented."""
    original = error.original_error
    if error.path is None or original is None:
        return False
    if isinstance(original, GraphQLError):
        # Raised by scalar serialization and by `is_type_of` when the JSON holds the wrong type.
        return True
    return isinstance(original, TypeError) and str(original).startswith(_NON_NULL_PREFIXES)


def coded_error(error: GraphQLError) -> GraphQLError:
    """`error` with a stable `extensions.code`, masked when it is not meant for the client."""
    original = error.original_error
    if isinstance(original, GatewayError):
        logger.debug("Request failed with %s: %s", original.code, original.message)
        return error
    if (error.extensions or {}).get("code"):
        return error  # coded where it was raised (the request limits)
    if isinstance(original, RecursionError) and error.path is None:
        # graphql-core before 3.3.2 lets a document nested past the stack fail this way.
        return GraphQLError(
            "Syntax Error: Document is nested too deeply.",
            extensions={"code": "GRAPHQL_PARSE_FAILED"},
        )
    if isinstance(error, GraphQLSyntaxError):
        too_long = "tokens. Parsing aborted" in error.message
        code = "TOO_MANY_TOKENS" if too_long else "GRAPHQL_PARSE_FAILED"
        error.extensions = {**(error.extensions or {}), "code": code}
        return error
    if error.path is None and (original is None or isinstance(original, GraphQLError)):
        # Request errors: validation failures, and variable values that do not coerce.
        code = (
            "BAD_USER_INPUT"
            if error.message.startswith("Variable ")
            else "GRAPHQL_VALIDATION_FAILED"
        )
        error.extensions = {**(error.extensions or {}), "code": code}
        return error
    if _is_upstream_value_error(error):
        logger.warning("Upstream sent a bad value at %s: %s", error.path, error.message)
        return GraphQLError(
            f"The Jobs API sent a value this field cannot hold: {error.message}",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": UpstreamBadResponseError.code},
        )
    logger.error(
        "Unexpected error at %s", error.path, exc_info=original if original is not None else error
    )
    return GraphQLError(
        INTERNAL_ERROR_MESSAGE,
        nodes=error.nodes,
        path=error.path,
        extensions={"code": INTERNAL_SERVER_ERROR},
    )
