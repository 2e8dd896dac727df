"""The Jobs REST API: the only package that knows its URLs, headers and status codes.

- `client`: one method per endpoint, reading through the page cache (`UpstreamClient`);
- `exchange`: one GET within the caller's budget and deadline, through the breaker, retried;
- `statuses`: every failure as one of `gateway.errors`' exceptions (the table is there);
- `decoding` and `content_encoding`: bodies read within a byte bound, decoded, checked;
- `breaker`: the circuit breaker; `transport`: the pooled connections (aiohttp under httpx).

The rest of the gateway never sees an httpx exception or an HTTP status code, and this package
never sees GraphQL.
"""

from gateway.upstream.breaker import CircuitBreaker, CircuitOpenError, CircuitState
from gateway.upstream.client import UpstreamClient, path_segment
from gateway.upstream.decoding import JobJSON
from gateway.upstream.transport import UpstreamTransport

__all__ = [
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "JobJSON",
    "UpstreamClient",
    "UpstreamTransport",
    "path_segment",
]
