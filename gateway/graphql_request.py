"""A GraphQL-over-HTTP request, read: its parameters, its media type, or why it is refused.

- `POST /graphql` with `Content-Type: application/json` and a JSON object body, or
  `GET /graphql?query=&variables=&operationName=&extensions=`. Bodies over
  `GATEWAY_MAX_BODY_BYTES` are refused with 413 before being parsed.
- A POST of a JSON array is a batch (Apollo Client's `BatchHttpLink`): up to `max_batch`
  operations, each read on its own (`params_of`), so one malformed item fails only itself.
- Requests that are not GraphQL requests at all (bad JSON, wrong types, unsupported media type)
  are refused (`RequestRejectedError`) with a 4xx, the JSON error shape and a code
  (`BAD_REQUEST`, ...).
- The response is `application/graphql-response+json` when the client accepts it (preferred),
  else `application/json` (`negotiate`); a request error is HTTP 400 with the former, 200 with
  the latter (`result_response`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Final

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Scope
from strawberry.types import ExecutionResult

from gateway.accept_headers import CACHED_LENGTH, accept_weights
from gateway.logs import RequestRecord
from gateway.response_cache import NO_STORE

JSON: Final = "application/json"
GRAPHQL_RESPONSE_JSON: Final = "application/graphql-response+json"


class RequestRejectedError(Exception):
    """A request that never reaches execution: answered with `status` and a coded error."""

    def __init__(
        self, status: int, message: str, code: str = "BAD_REQUEST", **headers: str
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers


@dataclass(frozen=True, slots=True)
class GraphQLParams:
    """The parameters of a GraphQL-over-HTTP request."""

    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None
    document_id: str | None = None
    """A trusted document's id, `sha256:<hex>` (the persisted-documents proposal)."""


def json_response(body: object, status: int, media_type: str = JSON) -> Response:
    """A JSON response that no shared cache keeps."""
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=media_type,
        headers={"cache-control": NO_STORE},
    )


def error_body(message: str, code: str) -> dict[str, Any]:
    """The GraphQL-shaped body of a request error: no `data`, one coded error."""
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


def is_request_error(result: ExecutionResult) -> bool:
    """Whether execution never started: errors, no data, and none of them at a field's path."""
    errors = result.errors or []
    return result.data is None and bool(errors) and all(error.path is None for error in errors)


def result_response(result: ExecutionResult, media_type: str) -> Response:
    """The HTTP response for an execution result, per the spec's status-code rules."""
    request_error = is_request_error(result)
    body: dict[str, Any] = {}
    if not request_error:
        body["data"] = result.data
    if result.errors:
        body["errors"] = [error.formatted for error in result.errors]
    if result.extensions:
        body["extensions"] = result.extensions
    status = 400 if request_error and media_type == GRAPHQL_RESPONSE_JSON else 200
    return json_response(body, status, media_type)


def negotiate(accept: str | None) -> str:
    """`_negotiate`, its answers kept for short headers (`CACHED_LENGTH`)."""
    if accept is not None and len(accept) > CACHED_LENGTH:
        return _negotiate.__wrapped__(accept)
    return _negotiate(accept)


@functools.lru_cache(maxsize=256)
def _negotiate(accept: str | None) -> str:
    """The response media type for an Accept header: graphql-response+json when acceptable
    at least as much as application/json, else application/json (also for none or `*/*`)."""
    if not accept:
        return JSON
    weights = accept_weights(accept)
    graphql_weight = weights.get(GRAPHQL_RESPONSE_JSON, 0.0)
    if graphql_weight > 0 and graphql_weight >= weights.get(JSON, 0.0):
        return GRAPHQL_RESPONSE_JSON
    return JSON


_OPERATION_NAME = re.compile(r"^\s*(?:query|mutation|subscription)\s+([A-Za-z_][A-Za-z0-9_]*)")


def operation_name_in(query: str | None) -> str | None:
    """The name of a document's first operation, when it starts with one (for logs)."""
    match = _OPERATION_NAME.match(query or "")
    return match.group(1) if match else None


def header_map(scope: Scope) -> dict[str, str]:
    """The request's headers by (lower-case) name, each name's first value as `Headers.get`
    gives it; built once per request, where every lookup in `Headers` scans the list."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return headers


def wants_html(headers: dict[str, str]) -> bool:
    """Whether a GET comes from a browser navigating to the endpoint, a shared
    `/graphql?query=...` link too: GraphQL clients never ask for HTML."""
    return "text/html" in headers.get("accept", "")


def _decode_json_parameter(raw: str | None, name: str) -> dict[str, Any] | None:
    if raw is None or raw == "":
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RequestRejectedError(400, f"The `{name}` parameter is not valid JSON") from None
    if value is not None and not isinstance(value, dict):
        raise RequestRejectedError(400, f"The `{name}` parameter must be a JSON object")
    return value


def params_of(body: object) -> GraphQLParams:
    """The parameters of one request object (a POST body, or an item of a batch)."""
    if not isinstance(body, dict):
        raise RequestRejectedError(400, "A GraphQL request must be a JSON object")
    query, variables = body.get("query"), body.get("variables")
    operation_name, extensions = body.get("operationName"), body.get("extensions")
    if query is not None and not isinstance(query, str):
        raise RequestRejectedError(400, "`query` must be a string")
    if variables is not None and not isinstance(variables, dict):
        raise RequestRejectedError(400, "`variables` must be a JSON object")
    if operation_name is not None and not isinstance(operation_name, str):
        raise RequestRejectedError(400, "`operationName` must be a string")
    if extensions is not None and not isinstance(extensions, dict):
        raise RequestRejectedError(400, "`extensions` must be a JSON object")
    document_id = body.get("documentId")
    if document_id is not None and not isinstance(document_id, str):
        raise RequestRejectedError(400, "`documentId` must be a string")
    return GraphQLParams(query, variables, operation_name, extensions, document_id)


async def read_params(
    request: Request, headers: dict[str, str], max_body_bytes: int, max_batch: int = 0
) -> GraphQLParams | list[object]:
    """The GraphQL parameters of a GET or POST request, or the items of a batch (for
    `params_of`); `RequestRejectedError` if the request as a whole is malformed."""
    if request.scope["method"] == "GET":
        query_params = request.query_params
        return params_of(
            {
                "query": query_params.get("query"),
                "variables": _decode_json_parameter(query_params.get("variables"), "variables"),
                "operationName": query_params.get("operationName") or None,
                "extensions": _decode_json_parameter(query_params.get("extensions"), "extensions"),
                "documentId": query_params.get("documentId") or None,
            }
        )
    require_json(headers)
    try:
        decoded = orjson.loads(await read_body(request, headers, max_body_bytes))
    except orjson.JSONDecodeError:
        raise RequestRejectedError(400, "The request body is not valid JSON") from None
    if isinstance(decoded, list):
        return _batch(decoded, max_batch)
    if not isinstance(decoded, dict):
        raise RequestRejectedError(400, "The request body must be a JSON object or array")
    return params_of(decoded)


def require_json(headers: dict[str, str]) -> None:
    """`RequestRejectedError` (415) unless the body is declared `application/json`."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != JSON:
        raise RequestRejectedError(
            415, "Send the request as Content-Type: application/json", "UNSUPPORTED_MEDIA_TYPE"
        )


def _batch(items: list[object], max_batch: int) -> list[object]:
    if max_batch == 0:
        raise RequestRejectedError(
            400,
            "Batched requests are switched off here: send one operation per request",
            "BATCH_REFUSED",
        )
    if not items:
        raise RequestRejectedError(400, "A batch needs at least one operation", "BATCH_REFUSED")
    if len(items) > max_batch:
        raise RequestRejectedError(
            400,
            f"A batch may hold at most {max_batch} operations; this one holds {len(items)}",
            "BATCH_REFUSED",
        )
    return items


async def read_body(request: Request, headers: dict[str, str], max_body_bytes: int) -> bytes:
    """The request body, refused (413) as soon as it is known to pass `max_body_bytes`."""
    too_large = RequestRejectedError(
        413, f"The request body is over {max_body_bytes} bytes", "PAYLOAD_TOO_LARGE"
    )
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
        raise too_large
    # ASGI messages read directly: a body is almost always one message, used without a copy.
    parts: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_body_bytes:
            raise too_large
        parts.append(chunk)
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


def rejection(rejected: RequestRejectedError, record: RequestRecord) -> tuple[Response, str]:
    """The JSON error response for a refused request, noted in its log record."""
    response = json_response(error_body(rejected.message, rejected.code), rejected.status)
    response.headers.update(rejected.headers)
    record.error_codes.append(rejected.code)
    return response, "rejected"
