"""GraphQL over HTTP (the GraphQL-over-HTTP spec): requests in, execution results out.

- `POST /graphql` with `Content-Type: application/json` and a JSON object body, or
  `GET /graphql?query=&variables=&operationName=&extensions=` (queries only: a mutation over
  GET is 405). Bodies over `GATEWAY_MAX_BODY_BYTES` are refused with 413 before being parsed.
- The response is `application/graphql-response+json` when the client accepts it (preferred),
  else `application/json`. With `application/json` every well-formed request gets HTTP 200; with
  `application/graphql-response+json` a request error (parse, validation, variables) gets 400.
  A request error carries no `data` key; a field error carries `data` with nulls.
- Requests that are not GraphQL requests at all (bad JSON, wrong types, unsupported media type)
  get a 4xx with the same JSON shape and a code (`BAD_REQUEST`, ...).
- Every GraphQL response is `Cache-Control: private, no-store`: it holds a caller's data.
- Automatic persisted queries (`persisted_queries`) are resolved before execution.
- Browsers asking for HTML get GraphiQL (`graphiql`), unless it is switched off.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Final

import orjson
from graphql import GraphQLError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from gateway.context import RequestContext, is_bearer
from gateway.error_contract import INTERNAL_ERROR_MESSAGE
from gateway.errors import INTERNAL_SERVER_ERROR
from gateway.limits import UpstreamBudget
from gateway.logs import (
    REQUEST_ID_HEADER,
    REQUEST_ID_HEADER_BYTES,
    RequestRecord,
    begin_request,
    current_record,
    end_request,
    request_id_from,
)
from gateway.metrics import Metrics
from gateway.persisted_queries import PersistedQueries, PersistedQueryError, persisted_hash
from gateway.redaction import redacting
from gateway.response_cache import ResponseCache
from gateway.schema import GatewaySchema
from gateway.settings import Settings
from gateway.upstream import UpstreamClient

logger = logging.getLogger(__name__)

JSON: Final = "application/json"
GRAPHQL_RESPONSE_JSON: Final = "application/graphql-response+json"
NO_STORE: Final = "private, no-store"
QUERIES_ONLY: Final = frozenset({OperationType.QUERY})
ALL_OPERATIONS: Final = frozenset({OperationType.QUERY, OperationType.MUTATION})


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
    """The four parameters of a GraphQL-over-HTTP request."""

    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None


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


@functools.lru_cache(maxsize=256)
def negotiate(accept: str | None) -> str:
    """The response media type for an Accept header: graphql-response+json when acceptable
    at least as much as application/json, else application/json (also for none or `*/*`)."""
    if not accept:
        return JSON
    weights: dict[str, float] = {}
    for item in accept.split(","):
        media, *parameters = (part.strip() for part in item.split(";"))
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[media.lower()] = max(weight, weights.get(media.lower(), 0.0))
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


def wants_html(request: Request, headers: dict[str, str]) -> bool:
    """Whether a GET comes from a browser navigating to the endpoint (not a GraphQL client)."""
    accept = headers.get("accept", "")
    return "text/html" in accept and "query" not in request.query_params


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


def _params(body: dict[str, Any]) -> GraphQLParams:
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
    return GraphQLParams(query, variables, operation_name, extensions)


async def read_params(
    request: Request, headers: dict[str, str], max_body_bytes: int
) -> GraphQLParams:
    """The GraphQL parameters of a GET or POST request; `RequestRejectedError` if malformed."""
    if request.method == "GET":
        query_params = request.query_params
        return _params(
            {
                "query": query_params.get("query"),
                "variables": _decode_json_parameter(query_params.get("variables"), "variables"),
                "operationName": query_params.get("operationName") or None,
                "extensions": _decode_json_parameter(query_params.get("extensions"), "extensions"),
            }
        )
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != JSON:
        raise RequestRejectedError(
            415, "Send the request as Content-Type: application/json", "UNSUPPORTED_MEDIA_TYPE"
        )
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
        raise RequestRejectedError(
            413, f"The request body is over {max_body_bytes} bytes", "PAYLOAD_TOO_LARGE"
        )
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
            raise RequestRejectedError(
                413, f"The request body is over {max_body_bytes} bytes", "PAYLOAD_TOO_LARGE"
            )
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    try:
        decoded = orjson.loads(parts[0] if len(parts) == 1 else b"".join(parts))
    except orjson.JSONDecodeError:
        raise RequestRejectedError(400, "The request body is not valid JSON") from None
    if not isinstance(decoded, dict):
        raise RequestRejectedError(400, "The request body must be a JSON object")
    return _params(decoded)


def registers(authorization: str | None, result: ExecutionResult) -> bool:
    """Whether a query sent in full with its hash is remembered: the caller had a bearer
    token (anonymous traffic cannot fill the shared store), the query ran (no request error),
    and the upstream did not refuse the token."""
    if not is_bearer(authorization) or is_request_error(result):
        return False
    return all(
        (error.extensions or {}).get("code") != "UNAUTHENTICATED" for error in result.errors or []
    )


def is_request_error(result: ExecutionResult) -> bool:
    """Whether execution never started: errors, no data, and none of them at a field's path."""
    errors = result.errors or []
    return result.data is None and bool(errors) and all(error.path is None for error in errors)


class GraphQLEndpoint:
    """The ASGI app behind `/graphql`."""

    def __init__(
        self,
        schema: GatewaySchema,
        settings: Settings,
        graphiql_html: str | None,
        persisted_queries: PersistedQueries | None,
        metrics: Metrics,
        responses: ResponseCache | None = None,
    ) -> None:
        self._schema = schema
        self._settings = settings
        self._graphiql_html = graphiql_html
        self._persisted = persisted_queries
        self._metrics = metrics
        self._responses = responses

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        headers = header_map(scope)
        if (
            request.method == "GET"
            and self._graphiql_html is not None
            and wants_html(request, headers)
        ):
            await HTMLResponse(self._graphiql_html)(scope, receive, send)
            return
        request_id = request_id_from(headers.get(REQUEST_ID_HEADER))
        recording = begin_request(request_id)
        record = current_record()
        assert record is not None
        with redacting(headers.get("authorization")):
            try:
                response, outcome = await self.handle(request, headers, record)
            except RequestRejectedError as rejected:
                response = json_response(
                    error_body(rejected.message, rejected.code), rejected.status
                )
                response.headers.update(rejected.headers)
                outcome = "rejected"
                record.error_codes.append(rejected.code)
            except ClientDisconnect:
                # The client's doing (an aborted upload, a closed tab): nothing to answer.
                logger.info("The client went away before its request was read")
                response = json_response(error_body("Client disconnected", "BAD_REQUEST"), 400)
                outcome = "client_disconnect"
            except Exception:
                logger.exception("Unexpected error outside GraphQL execution")
                response = json_response(
                    error_body(INTERNAL_ERROR_MESSAGE, INTERNAL_SERVER_ERROR), 200
                )
                outcome = "internal_error"
                record.error_codes.append(INTERNAL_SERVER_ERROR)
            # Appended, not set: no response has it yet, and setting scans the header list.
            response.raw_headers.append((REQUEST_ID_HEADER_BYTES, request_id.encode()))
            operation = self._metrics.operation_label(record.operation)
            self._metrics.count_request(operation, outcome, time.perf_counter() - record.started)
            end_request(recording, outcome=outcome, status=response.status_code)
        await response(scope, receive, send)

    async def handle(
        self, request: Request, headers: dict[str, str], record: RequestRecord
    ) -> tuple[Response, str]:
        """Answer one GraphQL-over-HTTP request; also say how it went (the outcome)."""
        if request.method not in ("GET", "POST"):
            # Starlette routes HEAD with GET; GraphQL over HTTP has no meaning for it.
            raise RequestRejectedError(
                405, "Use GET or POST for GraphQL", "METHOD_NOT_ALLOWED", allow="GET, POST"
            )
        media_type = negotiate(headers.get("accept"))
        params = await read_params(request, headers, self._settings.max_body_bytes)
        record.operation = params.operation_name or operation_name_in(params.query)
        try:
            query, remember = await self._query_of(params, record)
        except PersistedQueryError as error:
            record.error_codes.append(error.code)
            response = json_response(
                error_body(error.message, error.code), error.status, media_type
            )
            return response, "rejected"
        cache_key = None
        authorization = headers.get("authorization")
        if self._responses is not None and query is not None:
            cache_key = self._responses.key_for(
                authorization,
                query,
                params.variables,
                params.operation_name,
                media_type,
            )
            cached = self._responses.get(cache_key)
            if cached is not None:
                if remember is not None and query is not None and is_bearer(authorization):
                    # Kept only when error-free: the query ran as it must to be registered.
                    await self._register(remember, query)
                record.cache_hits += 1
                self._metrics.count_cache("response", "hit")
                cache_control = {"cache-control": NO_STORE}
                return Response(
                    cached.body, headers=cache_control, media_type=cached.media_type
                ), "ok"
            self._metrics.count_cache("response", "miss")
        result = await self.execute(request, authorization, query, params)
        if remember is not None and query is not None and registers(authorization, result):
            await self._register(remember, query)
        for failure in result.errors or []:
            code = (failure.extensions or {}).get("code", INTERNAL_SERVER_ERROR)
            record.error_codes.append(str(code))
        response = self.result_response(result, media_type)
        if not result.errors:
            outcome = "ok"
            expires_at = record.data_expires_at
            if cache_key is not None and expires_at is not None and self._responses is not None:
                self._responses.put(cache_key, bytes(response.body), media_type, expires_at)
                self._metrics.count_cache("response", "store")
        else:
            outcome = "request_error" if is_request_error(result) else "field_error"
        return response, outcome

    async def _query_of(
        self, params: GraphQLParams, record: RequestRecord
    ) -> tuple[str | None, str | None]:
        """The query to run, and the persisted-query hash to register it under (if any)."""
        if self._persisted is None:
            return params.query, None
        digest = persisted_hash(params.extensions)
        if digest is None:
            return params.query, None
        query = await self._persisted.query_for(digest, params.query)
        record.operation = record.operation or operation_name_in(query)
        return query, digest if params.query is not None else None

    async def _register(self, digest: str, query: str) -> None:
        assert self._persisted is not None
        await self._persisted.remember(digest, query)

    async def execute(
        self,
        request: Request,
        authorization: str | None,
        query: str | None,
        params: GraphQLParams,
    ) -> ExecutionResult:
        """Run the operation with this request's context."""
        settings = self._settings
        upstream: UpstreamClient = request.state.upstream
        context = RequestContext(
            settings=settings,
            upstream=upstream,
            authorization_header=authorization,
            deadline=time.monotonic() + settings.request_deadline,
            budget=UpstreamBudget(settings.upstream_call_budget),
        )
        try:
            return await self._schema.execute(
                query,
                variable_values=params.variables,
                context_value=context,
                operation_name=params.operation_name,
                allowed_operation_types=QUERIES_ONLY if request.method == "GET" else ALL_OPERATIONS,
            )
        except MissingQueryError:
            raise RequestRejectedError(400, "No GraphQL query found in the request") from None
        except InvalidOperationTypeError:
            raise RequestRejectedError(
                405,
                "Only queries may be sent with GET; use POST",
                "METHOD_NOT_ALLOWED",
                allow="POST",
            ) from None
        except CannotGetOperationTypeError:
            name = params.operation_name
            message = (
                f"Unknown operation named {name!r}"
                if name
                else "Pick an operation with operationName"
            )
            return ExecutionResult(
                data=None, errors=[GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})]
            )

    @staticmethod
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
