"""The Jobs REST API: the only package that knows its URLs, headers and status codes.

- `client`: one method per endpoint, reading through the page cache (`UpstreamClient`);
- `exchange`: one call within the caller's budget and deadline, through the breaker, retried
  (a write only when it could not connect); `writes`: the write endpoints; `paths`: ids as
  path segments;
- `statuses`: every failure as one of `gateway.errors`' exceptions (the table is there);
- `decoding` and `content_encoding`: bodies read within a byte bound, decoded, checked;
- `breaker`: the circuit breaker; `transport`: the pooled connections (aiohttp under httpx).

The rest of the gateway never sees an httpx exception or an HTTP status code, and this package
never sees GraphQL.
"""

from gateway.upstream.breaker import CircuitBreaker, CircuitOpenError, CircuitState
from gateway.upstream.client import UpstreamClient
from gateway.upstream.decoding import JobJSON
from gateway.upstream.paths import path_segment
from gateway.upstream.transport import UpstreamTransport
from gateway.upstream.writes import JobWrites

__all__ = [
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "JobJSON",
    "JobWrites",
    "UpstreamClient",
    "UpstreamTransport",
    "path_segment",
]
