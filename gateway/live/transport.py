"""The two subscription transports, both Strawberry's: graphql-transport-ws over a WebSocket on
`/graphql`, and multipart HTTP (`Accept: multipart/mixed;subscriptionSpec="1.0"`, what Apollo
Client uses over plain HTTP).

`LiveView` is Strawberry's ASGI view, narrowed to those two protocols and to subscriptions:

- **Credentials.** A WebSocket's `connection_init` must carry `{"Authorization": "Bearer …"}`
  unless the upgrade request had the header; without either the socket closes with 4401 before
  any upstream call. A multipart request uses its header (the resolver answers
  `UNAUTHENTICATED` without one). No cookie is ever read, so a page of another origin opening a
  socket gains nothing it did not already hold.
- **Bounds.** `connection_init` within `GATEWAY_CLIENT_TIMEOUT` (else 4408, Strawberry's);
  messages of at most `GATEWAY_MAX_BODY_BYTES` and protocol pings every
  `GATEWAY_LIVE_PING_INTERVAL` seconds (uvicorn's, set in `gateway.serving`): a socket that does
  not answer is closed. A multipart request's body is read by the GraphQL endpoint with the
  same limits as any other, and handed over here only once read.
- **Operations.** Only subscriptions: queries and mutations have their caching, budget and
  logging on plain HTTP, and get a coded error here.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Final

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http.streaming import MultipartSubscriptionTransport
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, MULTIPART_SUBSCRIPTION_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage

from gateway.caller import CredentialDigests
from gateway.context import is_bearer
from gateway.graphql_request import (
    RequestRejectedError,
    error_body,
    json_response,
    params_of,
    read_body,
    require_json,
)
from gateway.live.connection import LiveConnection, authorization_in
from gateway.logs import REQUEST_ID_HEADER_BYTES
from gateway.settings import Settings

logger = logging.getLogger(__name__)

UNAUTHORIZED: Final = 4401
SUBSCRIPTION_TRANSPORTS: Final = (
    "Subscriptions are served over a WebSocket on /graphql (graphql-transport-ws), or over "
    'HTTP POST with `Accept: multipart/mixed;subscriptionSpec="1.0"`'
)
_MULTIPART: Final = MultipartSubscriptionTransport()


def wants_multipart_subscription(accept: str | None) -> bool:
    """Whether an Accept header asks for multipart subscription delivery (any of its types)."""
    if not accept or "subscriptionspec" not in accept.lower():
        return False
    return any(_MULTIPART.accepts(part) for part in accept.split(","))


def _malformed(message: object) -> bool:
    """Whether a graphql-transport-ws message is not one Strawberry may be handed: anything
    but an object, or a `subscribe` whose id or payload has the wrong type."""
    if not isinstance(message, dict):
        return True
    if message.get("type") != "subscribe":
        return False
    payload = message.get("payload")
    operation_id = message.get("id")
    return not (
        isinstance(operation_id, str)
        and operation_id
        and isinstance(payload, dict)
        and isinstance(payload.get("query"), str)
        and isinstance(payload.get("variables"), dict | None)
        and isinstance(payload.get("operationName"), str | None)
        and isinstance(payload.get("extensions"), dict | None)
    )


def _check_one_operation(body: bytes) -> None:
    """`RequestRejectedError` unless `body` is one well-formed GraphQL request (no batch)."""
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RequestRejectedError(400, "The request body is not valid JSON") from None
    if not isinstance(decoded, dict):
        raise RequestRejectedError(400, "A subscription request is one JSON object (no batches)")
    params_of(decoded)


class _TransportWSHandler(BaseGraphQLTransportWSHandler[LiveConnection, None]):
    """Strawberry's graphql-transport-ws handler, refusing what it would trip on: a message
    that is not well formed closes the socket with 4400 (the protocol's answer to an invalid
    message); a `connection_init` without a bearer credential (in its payload or on the upgrade
    request) closes it with 4401."""

    async def handle_message(self, message: Any) -> None:
        if _malformed(message):
            await self.handle_invalid_message("Invalid message")
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        payload = message.get("payload")
        first = not self.connection_init_received and not self.connection_timed_out
        header = authorization_in(payload) or self.context.authorization_header
        if first and isinstance(payload, dict | None) and not is_bearer(header):
            if self.connection_init_timeout_task is not None:
                self.connection_init_timeout_task.cancel()
            await self.websocket.close(
                UNAUTHORIZED, 'Unauthorized: send {"Authorization": "Bearer <token>"}'
            )
            return
        await super().handle_connection_init(message)


class LiveView(GraphQL[LiveConnection, None]):
    """Strawberry's ASGI view for the subscription transports (see the module doc)."""

    graphql_transport_ws_handler_class = _TransportWSHandler

    def __init__(self, schema: Any, settings: Settings, credentials: CredentialDigests) -> None:
        super().__init__(
            schema,
            graphql_ide=None,
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, MULTIPART_SUBSCRIPTION_PROTOCOL),
            connection_init_wait_timeout=timedelta(seconds=settings.client_timeout),
            max_subscriptions_per_connection=None,  # the resolver's limit, which is coded
        )
        self._settings = settings
        self._credentials = credentials

    def decode_json(self, data: str | bytes) -> object:
        """orjson, whose errors (also for nesting past its limit, where the json module
        recurses until it raises RecursionError and drops the socket) are JSONDecodeErrors:
        Strawberry then closes with 4400."""
        return orjson.loads(data)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> LiveConnection:
        state = request.scope["state"]  # the lifespan's (`gateway.graphql_http.AppState`)
        is_socket = request.scope["type"] == "websocket"
        return LiveConnection(
            self._settings,
            state["upstream"],
            state["live"],
            self._credentials,
            request.headers.get("authorization"),
            max_subscriptions=self._settings.live_max_subscriptions if is_socket else 1,
        )

    def takes(self, method: str, headers: dict[str, str]) -> bool:
        """Whether an HTTP request to `/graphql` is a multipart subscription, for this view."""
        return method == "POST" and wants_multipart_subscription(headers.get("accept"))

    async def serve_multipart(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], request_id: str
    ) -> None:
        """Answer a multipart subscription request: its body read with the limits of any
        GraphQL request (a refusal answered in the gateway's JSON shape), then handed to
        Strawberry from memory; the client's disconnect still reaches it afterwards."""
        try:
            require_json(headers)
            body = await read_body(Request(scope, receive), headers, self._settings.max_body_bytes)
            _check_one_operation(body)
        except RequestRejectedError as rejected:
            response = json_response(error_body(rejected.message, rejected.code), rejected.status)
            await response(scope, receive, send)
            return
        except ClientDisconnect:
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        extra = [(REQUEST_ID_HEADER_BYTES, request_id.encode()), (b"cache-control", b"no-store")]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        logger.info("multipart subscription opened", extra={"request_id": request_id})
        await self(scope, replay, send_with_headers)
