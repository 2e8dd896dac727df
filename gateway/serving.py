"""How the gateway is served: uvicorn's connection bounds, and the process tuned for a long run."""

from __future__ import annotations

import functools
import gc
from typing import Any

from gateway.http_protocol import ConnectionLimits, GuardedHttpToolsProtocol
from gateway.settings import Settings

# A young-generation collection every 10,000 net allocations instead of 700. One cache miss
# decodes and projects a few thousand objects, so the default collected several times per
# request; most were still in flight and so were promoted and scanned again (the figures are
# in benchmarks/README.md, "Garbage collection").
_YOUNG_THRESHOLD = 10_000


# A request line's own words (method, path, version) on top of its query string.
_REQUEST_LINE_OVERHEAD = 1024


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for serving the gateway: its connection bounds (`http_protocol`),
    connection cap, keep-alive time and WebSocket bounds, from `settings`. `serve`, the demo
    and the tests' real servers all use these."""
    limits = ConnectionLimits(
        max_head_bytes=settings.max_header_bytes + settings.max_body_bytes + _REQUEST_LINE_OVERHEAD,
        read_timeout=settings.client_timeout,
        max_header_bytes=settings.max_header_bytes,
        max_query_bytes=settings.max_body_bytes,
    )
    return {
        "http": functools.partial(GuardedHttpToolsProtocol, limits=limits),
        "limit_concurrency": settings.max_connections,
        "timeout_keep_alive": settings.keepalive_timeout,
        # Subscriptions' sockets: messages as large as a request body, pinged when idle and
        # closed when a ping goes unanswered.
        "ws_max_size": settings.max_body_bytes,
        "ws_ping_interval": settings.live_ping_interval,
        "ws_ping_timeout": settings.live_ping_interval,
    }


def prepare_serving_process() -> None:
    """Tune the garbage collector for a long-running server, once its app is built.

    `gc.freeze()` moves everything alive now (modules, the schema, the app) out of the
    collector's sight, so full collections no longer walk it; the larger young threshold makes
    collections rarer. Called by `serve` and by each worker, never on import or in tests.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(_YOUNG_THRESHOLD, 20, 20)
