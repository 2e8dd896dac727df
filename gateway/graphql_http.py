"""GraphQL over HTTP (the GraphQL-over-HTTP spec): requests in, execution results out.

- Parameters, media types and refusals are `graphql_request`'s; a mutation over GET is 405.
- With `application/json` every well-formed request gets HTTP 200; with
  `application/graphql-response+json` a request error (parse, validation, variables) gets 400.
  A request error carries no `data` key; a field error carries `data` with nulls.
- Every GraphQL response is `Cache-Control: private, no-store`: it holds a caller's data.
- Automatic persisted queries (`persisted_queries`) are resolved before execution.
- A request with a bearer token gets one `Caller` (`gateway.caller`), built here and passed
  down explicitly; its ledger says afterwards what the request cost and until when its data
  holds, which decides how long the whole response may be kept (`response_cache`).
- Browsers asking for HTML get GraphiQL (`graphiql`), unless it is switched off.
- A POST asking for multipart subscription delivery goes to `gateway.live`'s view; a
  subscription sent any other way over HTTP is refused (400) with the transports to use.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Final, TypedDict

from graphql import GraphQLError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from gateway.caller import Caller, CredentialDigests, UpstreamBudget
from gateway.compression import choose_encoding, encoded
from gateway.context import RequestContext, is_bearer
from gateway.error_contract import INTERNAL_ERROR_MESSAGE
from gateway.errors import INTERNAL_SERVER_ERROR
from gateway.graphql_request import (
    GraphQLParams,
    RequestRejectedError,
    error_body,
    header_map,
    is_request_error,
    json_response,
    negotiate,
    operation_name_in,
    params_of,
    read_params,
    rejection,
    result_response,
    wants_html,
)
from gateway.live import SUBSCRIPTION_TRANSPORTS, LiveHub, LiveView
from gateway.logs import (
    REQUEST_ID_HEADER,
    REQUEST_ID_HEADER_BYTES,
    RequestRecord,
    log_request,
    request_id_from,
)
from gateway.metrics import Metrics
from gateway.persisted_queries import PersistedQueries, PersistedQueryError, registers
from gateway.redaction import redacting
from gateway.response_cache import NO_STORE, ResponseCache
from gateway.schema import GatewaySchema
from gateway.settings import Settings
from gateway.trusted_documents import TrustedDocumentError, TrustedDocuments, query_to_run
from gateway.upstream import UpstreamClient

logger = logging.getLogger(__name__)

_VARY_ACCEPT_ENCODING: Final = (b"vary", b"Accept-Encoding")
QUERIES_ONLY: Final = frozenset({OperationType.QUERY})
ALL_OPERATIONS: Final = frozenset({OperationType.QUERY, OperationType.MUTATION})


class AppState(TypedDict):
    """What the lifespan hands every request: the scope's `state`."""

    upstream: UpstreamClient
    persisted_queries: PersistedQueries | None
    live: LiveHub


class GraphQLEndpoint:
    """The ASGI app behind `/graphql`. The upstream client and the persisted-query store are
    the lifespan's, and reach it as the request's state (`AppState`)."""

    def __init__(
        self,
        schema: GatewaySchema,
        settings: Settings,
        graphiql_html: str | None,
        metrics: Metrics,
        credentials: CredentialDigests,
        responses: ResponseCache | None = None,
        trusted: TrustedDocuments | None = None,
        live: LiveView | None = None,
    ) -> None:
        self._schema = schema
        self._settings = settings
        self._graphiql_html = graphiql_html
        self._metrics = metrics
        self._credentials = credentials
        self._responses = responses
        self._trusted = trusted
        self._live = live
        self._min_compressed = settings.compression_min_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        headers = header_map(scope)
        if scope["method"] == "GET" and self._graphiql_html is not None and wants_html(headers):
            await HTMLResponse(self._graphiql_html)(scope, receive, send)
            return
        request_id = request_id_from(headers.get(REQUEST_ID_HEADER))
        if self._live is not None and self._live.takes(scope["method"], headers):
            await self._live.serve_multipart(scope, receive, send, headers, request_id)
            return
        with redacting(headers.get("authorization")):
            response = await self._answer(request, headers, request_id)
            # Appended, not set: no response has it yet, and setting scans the header list.
            response.raw_headers.append((REQUEST_ID_HEADER_BYTES, request_id.encode()))
            if self._settings.compression:
                response.raw_headers.append(_VARY_ACCEPT_ENCODING)
        await response(scope, receive, send)

    async def _answer(self, request: Request, headers: dict[str, str], request_id: str) -> Response:
        """Read the request, then answer its operation, or each of a batch's in order."""
        record = RequestRecord(request_id)
        try:
            # The scope's method, not Request.method: a property that costs a call each time.
            method = request.scope["method"]
            if method not in ("GET", "POST"):
                # Starlette routes HEAD with GET; GraphQL over HTTP has no meaning for it.
                raise RequestRejectedError(
                    405, "Use GET or POST for GraphQL", "METHOD_NOT_ALLOWED", allow="GET, POST"
                )
            read = await read_params(
                request, headers, self._settings.max_body_bytes, self._settings.max_batch
            )
        except ClientDisconnect:
            # The client's doing (an aborted upload, a closed tab): nothing to answer.
            logger.info("The client went away before its request was read")
            response = json_response(error_body("Client disconnected", "BAD_REQUEST"), 400)
            return self._finish(record, response, "client_disconnect")
        except RequestRejectedError as rejected:
            return self._finish(record, *rejection(rejected, record))
        encoding = choose_encoding(headers.get("accept-encoding"), self._settings.compression)
        exchange = _Exchange(
            method,
            negotiate(headers.get("accept")),
            request.scope["state"],  # the lifespan's state, copied into this request's scope
            headers.get("authorization"),
        )
        if isinstance(read, GraphQLParams):
            exchange.encoding = encoding
            response, outcome = await self._operation(read, exchange, record)
            return self._finish(record, encoded(response, encoding, self._min_compressed), outcome)
        batch = await self._batch(read, exchange, request_id)
        return encoded(batch, encoding, self._min_compressed)

    async def _batch(self, items: list[object], exchange: _Exchange, request_id: str) -> Response:
        """A batch's answers, one JSON array in the order asked. The operations run
        concurrently under one deadline and one upstream-call budget; each is logged and
        counted as a request of its own (with `batch: i/n`)."""
        exchange.share = (
            time.monotonic() + self._settings.request_deadline,
            UpstreamBudget(self._settings.upstream_call_budget),
        )
        records = [
            RequestRecord(request_id, batch=f"{index}/{len(items)}")
            for index in range(1, len(items) + 1)
        ]
        operations = zip(items, records, strict=True)
        answers = await asyncio.gather(
            *(self._operation(item, exchange, record) for item, record in operations)
        )
        for record, (response, outcome) in zip(records, answers, strict=True):
            self._finish(record, response, outcome)
        body = b"[" + b",".join(bytes(response.body) for response, _ in answers) + b"]"
        return Response(body, media_type=exchange.media_type, headers={"cache-control": NO_STORE})

    def _finish(self, record: RequestRecord, response: Response, outcome: str) -> Response:
        """Count and log one operation's answer."""
        operation = self._metrics.operation_label(record.operation)
        self._metrics.count_request(operation, outcome, time.perf_counter() - record.started)
        self._metrics.count_filtering(record.rows_scanned, record.matches)
        log_request(record, outcome=outcome, status=response.status_code)
        return response

    async def _operation(
        self, item: GraphQLParams | object, exchange: _Exchange, record: RequestRecord
    ) -> tuple[Response, str]:
        """`run`, with every way it can fail answered in the JSON error shape."""
        try:
            params = item if isinstance(item, GraphQLParams) else params_of(item)
            return await self.run(params, exchange, record)
        except RequestRejectedError as rejected:
            return rejection(rejected, record)
        except Exception:
            logger.exception("Unexpected error outside GraphQL execution")
            record.error_codes.append(INTERNAL_SERVER_ERROR)
            body = error_body(INTERNAL_ERROR_MESSAGE, INTERNAL_SERVER_ERROR)
            return json_response(body, 200), "internal_error"

    async def run(
        self, params: GraphQLParams, exchange: _Exchange, record: RequestRecord
    ) -> tuple[Response, str]:
        """Answer one GraphQL operation; also say how it went (the outcome)."""
        record.operation = params.operation_name or operation_name_in(params.query)
        media_type = exchange.media_type
        # With trusted documents, the manifest is the whole list: nothing is registered.
        persisted = None if self._trusted is not None else exchange.state["persisted_queries"]
        try:
            query, remember = await query_to_run(self._trusted, persisted, params)
            record.operation = record.operation or operation_name_in(query)
        except PersistedQueryError as error:
            record.error_codes.append(error.code)
            body = error_body(error.message, error.code)
            return json_response(body, error.status, media_type), "rejected"
        except TrustedDocumentError as error:
            record.error_codes.append(error.code)
            failure = GraphQLError(error.message, extensions={"code": error.code})
            return result_response(ExecutionResult(None, [failure]), media_type), "rejected"
        authorization = exchange.authorization
        # The digest of any header keys the response cache: only a bearer token's responses
        # are ever kept, so another header's lookup simply misses.
        credential = None if authorization is None else self._credentials.digest(authorization)
        # The bearer's write generation keys all kept for it (Redis's, when shared); None: unknown.
        generation = None
        if credential is not None and is_bearer(authorization):
            generation = await exchange.state["upstream"].cache.generation(credential)
        cache_key = self._response_key(credential, query, params, exchange, generation)
        cached, leading = await self._cached(cache_key, record)
        if cached is not None:
            if remember is not None and query is not None and persisted is not None:
                # Kept only when error-free: the query ran as it must to be registered.
                await persisted.remember(remember, query)
            return cached, "ok"
        try:
            caller = self._caller(
                authorization, credential, record.request_id, exchange.share, generation
            )
            state = exchange.state
            context = RequestContext(self._settings, state["upstream"], authorization, caller)
            result = await self.execute(context, query, params, exchange.method)
            if caller is not None:
                record.add(caller.ledger)
            if remember is not None and query is not None and registers(caller, result):
                assert persisted is not None
                await persisted.remember(remember, query)
            return self._respond(result, exchange, record, caller, cache_key)
        finally:
            if leading and cache_key is not None and self._responses is not None:
                self._responses.built(cache_key)

    def _caller(
        self,
        authorization: str | None,
        credential: str | None,
        request_id: str,
        share: tuple[float, UpstreamBudget] | None,
        generation: int | None,
    ) -> Caller | None:
        """The operation's `Caller`, when it carries a bearer token (else resolvers refuse it):
        with its own deadline and budget, or a batch's `share` of them."""
        if authorization is None or credential is None or not is_bearer(authorization):
            return None
        deadline, budget = share or (
            time.monotonic() + self._settings.request_deadline,
            UpstreamBudget(self._settings.upstream_call_budget),
        )
        return Caller(
            authorization,
            credential,
            deadline,
            budget,
            request_id=request_id,
            generation=-1 if generation is None else generation,  # -1: unknown, no page cache
        )

    def _response_key(
        self,
        credential: str | None,
        query: str | None,
        params: GraphQLParams,
        exchange: _Exchange,
        generation: int | None,
    ) -> bytes | None:
        if self._responses is None or credential is None or query is None or generation is None:
            return None
        return self._responses.key_for(
            credential,
            query,
            params.variables,
            params.operation_name,
            exchange.media_type,
            exchange.encoding,
            generation,
        )

    async def _cached(
        self, key: bytes | None, record: RequestRecord
    ) -> tuple[Response | None, bool]:
        """The kept response for `key`, counted; or None and whether this request builds it."""
        if key is None or self._responses is None:
            return None, False
        cached = self._responses.response(key)
        if cached is None and not await self._responses.lead(key):
            cached = self._responses.response(key)
            if cached is None:
                return None, False
        elif cached is None:
            self._metrics.count_cache("response", "miss")
            return None, True
        record.cache_hits += 1
        self._metrics.count_cache("response", "hit")
        return cached, False

    def _respond(
        self,
        result: ExecutionResult,
        exchange: _Exchange,
        record: RequestRecord,
        caller: Caller | None,
        cache_key: bytes | None,
    ) -> tuple[Response, str]:
        """The response for `result`, kept (as it is sent) while its data holds when it has
        no errors; built on stale pages, it says so and is not kept."""
        if caller is not None and (stale := caller.ledger.staleness()):
            result.extensions = {**(result.extensions or {}), **stale}
        for failure in result.errors or []:
            code = (failure.extensions or {}).get("code", INTERNAL_SERVER_ERROR)
            record.error_codes.append(str(code))
        response = result_response(result, exchange.media_type)
        if result.errors:
            return response, "request_error" if is_request_error(result) else "field_error"
        # A response that wrote is never kept: a repeat must write again.
        expires_at = None
        if caller is not None and not caller.ledger.wrote:
            expires_at = caller.ledger.data_expires_at
        if cache_key is not None and expires_at is not None and self._responses is not None:
            response = encoded(response, exchange.encoding, self._min_compressed)
            self._responses.put(
                cache_key,
                bytes(response.body),
                exchange.media_type,
                expires_at,
                response.headers.get("content-encoding"),
            )
            self._metrics.count_cache("response", "store")
        return response, "ok"

    async def execute(
        self, context: RequestContext, query: str | None, params: GraphQLParams, method: str
    ) -> ExecutionResult:
        """Run the operation with this request's context (only queries over GET)."""
        try:
            return await self._schema.execute(
                query,
                variable_values=params.variables,
                context_value=context,
                operation_name=params.operation_name,
                allowed_operation_types=QUERIES_ONLY if method == "GET" else ALL_OPERATIONS,
            )
        except MissingQueryError:
            raise RequestRejectedError(400, "No GraphQL query found in the request") from None
        except InvalidOperationTypeError as error:
            if error.operation_type is OperationType.SUBSCRIPTION:
                raise RequestRejectedError(400, SUBSCRIPTION_TRANSPORTS) from None
            raise RequestRejectedError(
                405,
                "Only queries may be sent with GET; use POST",
                "METHOD_NOT_ALLOWED",
                allow="POST",
            ) from None
        except CannotGetOperationTypeError:
            name = params.operation_name
            message = f"Unknown operation named {name!r}" if name else "Pick one with operationName"
            return ExecutionResult(
                data=None, errors=[GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})]
            )


@dataclass(slots=True)
class _Exchange:
    """What the operations of one HTTP request share."""

    method: str
    media_type: str
    state: AppState
    authorization: str | None
    share: tuple[float, UpstreamBudget] | None = None
    """A batch's one deadline and upstream-call budget; None for a lone operation."""
    encoding: str | None = None
    """The content encoding a lone operation's answer is sent (and kept) in; a batch's answers
    are kept plain and their array is encoded as a whole."""
