"""The upstream transport: httpx's transport interface over aiohttp's connection pool.

The upstream client (`gateway.upstream`) builds `httpx.Request`s and reads `httpx.Response`s, and
hands them to an `httpx.AsyncBaseTransport`: this one in production, `httpx.MockTransport` in
tests that inject faults. It sends them through the transport, not through an
`httpx.AsyncClient`, for two reasons:

- **Isolation.** A client keeps a cookie jar: a `Set-Cookie` answered to one caller would be sent
  with every later caller's request. Nothing here stores cookies (aiohttp's jar is a
  `DummyCookieJar`), so every upstream request carries only what the gateway put in it.
- **Cost.** A client's URL merging, cookie handling, auth and redirect machinery, none of which
  the gateway uses, cost about twice the CPU per call of this transport (figures in
  benchmarks/README.md, "The upstream transport").

Why aiohttp's pool and not httpx's own: httpx's pool loses most of its throughput once many
requests share it (figures in benchmarks/README.md). This module replaces httpx-aiohttp's
transport, which does the same job with coarse error mapping (a dropped connection came out as
`ConnectTimeout`, which would be retried) and per-call conversions the gateway does not need.

aiohttp's exceptions become httpx's, by cause, here and only here:

| aiohttp                                  | httpx                  |
|------------------------------------------|------------------------|
| ConnectionTimeoutError                   | ConnectTimeout         |
| SocketTimeoutError, ServerTimeoutError   | ReadTimeout            |
| ClientConnectorError (refused, DNS)      | ConnectError           |
| ServerDisconnectedError, ClientResponseError (malformed answer) | RemoteProtocolError |
| ClientPayloadError, ClientOSError        | ReadError              |
| InvalidURL                               | UnsupportedProtocol    |
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import yarl

_HTTP_1_1 = {"http_version": b"HTTP/1.1"}


class UpstreamTransport(httpx.AsyncBaseTransport):
    """One aiohttp connection pool behind httpx's transport interface.

    Honours the `connect`, `pool` and `read` entries of the request's `timeout` extension (as
    httpx's own transports do); the pool opens on the first request, on the running loop.
    """

    def __init__(self, *, max_connections: int = 100, keepalive_expiry: float = 5.0) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[Any, Any, Any], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            keepalive_timeout=self._keepalive_expiry,
            ssl=httpx.create_ssl_context(),  # the same trust store as httpx's own transports
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,  # httpx's Response decodes Content-Encoding
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )
        return self._session

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        wanted = request.extensions.get("timeout", {})
        key = (wanted.get("connect"), wanted.get("pool"), wanted.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, sock_connect=key[0], connect=key[1], sock_read=key[2]
            )
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        try:
            answer = await session.request(
                request.method,
                # Sent exactly as built: yarl must not re-quote the upstream client's escapes.
                yarl.URL(str(request.url), encoded=True),
                headers=[
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in request.headers.raw
                ],
                data=request.content or None,
                allow_redirects=False,
                timeout=self._timeout(request),
            )
        except (aiohttp.ClientError, aiohttp.InvalidURL) as error:
            raise httpx_error(error) from error
        return httpx.Response(
            answer.status,
            headers=answer.raw_headers,
            stream=_AnswerStream(answer),
            request=request,
            extensions=_HTTP_1_1,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _AnswerStream(httpx.AsyncByteStream):
    """An aiohttp response body as httpx reads it: chunks as they arrive, errors translated."""

    def __init__(self, answer: aiohttp.ClientResponse) -> None:
        self._answer = answer

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._answer.content.iter_any():
                yield chunk
        except aiohttp.ClientError as error:
            raise httpx_error(error) from error

    async def aclose(self) -> None:
        # Back to the pool when the body was read to its end; otherwise the connection closes.
        self._answer.release()
        await self._answer.wait_for_close()


def httpx_error(error: Exception) -> httpx.TransportError:
    """The httpx exception for an aiohttp one (the table in the module docstring)."""
    message = str(error) or type(error).__name__
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(error, aiohttp.SocketTimeoutError | aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(error, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)
    if isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(message)
    if isinstance(error, aiohttp.ClientPayloadError | aiohttp.ClientOSError):
        return httpx.ReadError(message)
    if isinstance(error, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message)
    return httpx.NetworkError(message)
