"""The HTTP/1.1 connection: uvicorn's httptools protocol, bounded against slow and bloated clients.

uvicorn (with httptools) buffers a request's head however large it grows and waits for it
however slowly it arrives: 32 requests with a 4 MB `Authorization` header took the process from
157 to 752 MB, and a connection that sends one header byte a minute stays open for ever. This
protocol adds two bounds, before the cost is paid:

- **Head size.** At most `max_head_bytes` of request line and headers are read; the first byte
  past it ends the connection with `431` (`REQUEST_HEADER_FIELDS_TOO_LARGE`): the bound on
  what reaches memory at all. Then the exact limits: headers over `max_header_bytes`
  (`GATEWAY_MAX_HEADER_BYTES`, names and values together) are answered `431`, a query string
  over `max_query_bytes` (`GATEWAY_MAX_BODY_BYTES`) `414` (`URI_TOO_LONG`), by an app that
  stands in for the gateway for that request: nothing reaches the endpoint or the upstream.
  They are measured only when the whole head is larger than the smaller limit, so an
  ordinary request pays nothing for them.
- **Read time.** A request must arrive whole, head and body, within `read_timeout` seconds of
  its first byte (or of the connection opening): a head still incomplete gets `408`
  (`REQUEST_TIMEOUT`), a body still incomplete has its connection closed (the app sees the
  client go away). Idle keep-alive connections are uvicorn's `timeout_keep_alive`.

Both answers have the gateway's JSON error shape. Everything else is uvicorn's own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
# The base class's callbacks, called directly: these run for every request, and a direct call
# costs less than super()'s lookup.
_data_received = HttpToolsProtocol.data_received
_on_headers_complete = HttpToolsProtocol.on_headers_complete
_on_message_complete = HttpToolsProtocol.on_message_complete


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one connection may send: head bytes per request, and seconds per request."""

    max_head_bytes: int
    read_timeout: float
    max_header_bytes: int = 16384
    max_query_bytes: int = 65536


def _error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"errors": [{"message": message, "extensions": {"code": code}}]})


def error_app(status: int, code: str, message: str) -> Any:
    """An ASGI app that reads the request's body and answers this error, JSON-shaped."""
    body = _error_body(code, message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"private, no-store"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def error_response(status: int, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, in the gateway's error shape."""
    body = _error_body(code, message)
    head = (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"cache-control: private, no-store\r\nconnection: close\r\n\r\n"
        % (status, _REASONS[status], len(body))
    )
    return head + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the head-size and read-time bounds above.

    uvicorn builds one per connection; `serving.uvicorn_options` hands it `limits` through a
    `functools.partial`, which uvicorn takes as the protocol class.
    """

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        # A head (request line, headers, and any body bytes read with them) no larger than
        # both exact limits cannot break either, so only larger ones are measured.
        self._measured_above = min(limits.max_header_bytes, limits.max_query_bytes)
        self._head_bytes = 0
        self._reading_head = True
        # One timer per connection at most, armed lazily: a request only notes when it began,
        # and the timer, when it fires, checks the request then being read (if any) and re-arms
        # for its deadline. Keep-alive traffic so costs no timer per request.
        self._reading_since: float | None = None
        self._read_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._begin_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_since is None:
            self._begin_reading()  # the first bytes of a request on a kept-alive connection
        if self._reading_head:
            self._head_bytes += len(data)
            if self._head_bytes > self._limits.max_head_bytes:
                self._past_head_limit(data)
                return
        _data_received(self, data)

    def _past_head_limit(self, data: bytes) -> None:
        """Feed what the limit allows (the head may end inside it); refuse if it does not."""
        allowance = self._limits.max_head_bytes - (self._head_bytes - len(data))
        super().data_received(data[:allowance])
        if self.transport.is_closing():
            return
        if self._reading_head:
            limit = self._limits.max_head_bytes
            message = f"The request line and headers are over {limit} bytes"
            self._refuse(431, "REQUEST_HEADER_FIELDS_TOO_LARGE", message)
            return
        super().data_received(data[allowance:])

    def on_headers_complete(self) -> None:
        self._reading_head = False
        if self._head_bytes <= self._measured_above:
            _on_headers_complete(self)  # an ordinary head: within both exact limits
            return
        refusal = self._head_refusal()
        if refusal is None:
            _on_headers_complete(self)
            return
        gateway, self.app = self.app, refusal
        try:
            _on_headers_complete(self)  # uvicorn runs `refusal` as this request's app
        finally:
            self.app = gateway

    def _head_refusal(self) -> Any:
        """The answer to a head over the exact limits, as an ASGI app; None if within them."""
        limits = self._limits
        header_bytes = sum(len(name) + len(value) for name, value in self.headers)
        if header_bytes > limits.max_header_bytes:
            message = f"The request headers are over {limits.max_header_bytes} bytes"
            return error_app(431, "REQUEST_HEADER_FIELDS_TOO_LARGE", message)
        query = httptools.parse_url(self.url).query or b""
        if len(query) > limits.max_query_bytes:
            message = f"The query string is over {limits.max_query_bytes} bytes; use POST"
            return error_app(414, "URI_TOO_LONG", message)
        return None

    def on_message_complete(self) -> None:
        self._reading_since = None
        self._reading_head, self._head_bytes = True, 0
        _on_message_complete(self)

    def _begin_reading(self) -> None:
        self._reading_since = self.loop.time()
        if self._read_timer is None:
            self._arm(self._reading_since + self._limits.read_timeout)

    def _arm(self, when: float) -> None:
        self._read_timer = self.loop.call_at(when, self._read_deadline)

    def _read_deadline(self) -> None:
        self._read_timer = None
        started = self._reading_since
        if started is None or self.transport.is_closing():
            return  # nothing being read: the next request arms the timer again
        deadline = started + self._limits.read_timeout
        if self.loop.time() < deadline:
            self._arm(deadline)  # a later request than the one the timer was armed for
            return
        if self._reading_head and self._head_bytes:
            self._refuse(
                408,
                "REQUEST_TIMEOUT",
                f"The request was not received within {self._limits.read_timeout:g} s",
            )
        else:
            # Nothing sent yet, or a body still trickling in while the app reads it.
            self.transport.close()

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._reading_since = None
        self.transport.write(error_response(status, code, message))
        self.transport.close()
