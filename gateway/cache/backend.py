"""The cache's storage: aiocache over memory or Redis, guarded so it never fails a request.

The backend is `memory://` (the app's `MemoryStore`, bounded in bytes, values as orjson bytes) or
`redis://` / `rediss://` (redis-py, values as orjson bytes). A failing backend never fails a
request: reads miss, writes are skipped, a warning is logged at most every 30 s, and the backend
is left alone for a couple of seconds (`BackendHealth`) before it is tried again, so a dead
Redis costs no time per request and a revived one is used again by itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
from aiocache import RedisCache
from aiocache.base import BaseCache
from aiocache.serializers import BaseSerializer

from gateway.memory_store import MemoryBackend, MemoryStore
from gateway.metrics import Metrics

logger = logging.getLogger("gateway.cache")

_WARNING_INTERVAL = 30.0
_BACKEND_RETRY_AFTER = 2.0
_SCAN_BATCH = 500


class OrjsonSerializer(BaseSerializer):  # type: ignore[misc]
    """aiocache serializer storing values as orjson bytes: fast, and never pickle."""

    DEFAULT_ENCODING = None

    def dumps(self, value: Any) -> bytes:
        return orjson.dumps(value)

    def loads(self, value: bytes | None) -> Any:
        return None if value is None else orjson.loads(value)


_REDIS_CONNECTIONS = 1000
"""Connections one process may open to Redis: one per cache call in flight, and a process
serves at most GATEWAY_MAX_CONNECTIONS (1000) requests at once."""


def backend_for(url: str, *, timeout: float, store: MemoryStore) -> BaseCache:
    """The aiocache backend a `GATEWAY_CACHE_URL` names (validated by `settings`): `memory://`
    keeps its entries in `store`, the app's byte-bounded memory."""
    parts = urlsplit(url)
    if parts.scheme == "memory":
        # No per-call timeout: a dict lookup cannot hang, and asyncio.wait_for costs a task.
        # Pages are kept as orjson bytes: far less memory than decoded objects (benchmarks/
        # README.md, "Memory"), immutable, so no request can alter what another reads, and
        # measurable.
        return MemoryBackend(store, serializer=OrjsonSerializer(), timeout=None)
    # redis-py 8's pool raises at once past 100 connections: a burst of requests would look
    # like a Redis outage and switch the cache off for everyone. One connection per cache call
    # in flight, up to _REDIS_CONNECTIONS (a blocking pool would wait instead, but redis-py 5's
    # hangs on a Redis that stops answering).
    pool_options: dict[str, Any] = {"socket_timeout": timeout, "retry_on_timeout": False}
    if parts.username:
        pool_options["username"] = unquote(parts.username)
    return RedisCache(
        endpoint=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        db=int(parts.path.strip("/") or 0),
        password=unquote(parts.password) if parts.password else None,
        ssl=parts.scheme == "rediss",
        create_connection_timeout=timeout,
        pool_max_size=_REDIS_CONNECTIONS,
        connection_pool_kwargs=pool_options,
        serializer=OrjsonSerializer(),
        timeout=timeout,
    )


class BackendHealth:
    """Whether the backend is worth asking: after a failure it is left alone for `retry_after`
    seconds, then asked again; `on_change(up)` hears when it goes down and comes back."""

    def __init__(self, retry_after: float, on_change: Callable[[bool], None]) -> None:
        self._retry_after = retry_after
        self._on_change = on_change
        self._down_until: float | None = None

    def allows_call(self) -> bool:
        """Whether to ask the backend now."""
        return self._down_until is None or time.monotonic() >= self._down_until

    def failed(self) -> None:
        """The backend failed: leave it alone for a while."""
        if self._down_until is None:
            self._on_change(False)
        self._down_until = time.monotonic() + self._retry_after

    def answered(self) -> None:
        """The backend answered: it is up."""
        if self._down_until is not None:
            self._down_until = None
            self._on_change(True)


class GuardedBackend:
    """An aiocache backend whose failures are absorbed: reads miss, writes are skipped.

    Failures are logged at most every 30 s, with a count of the rest.
    """

    def __init__(self, backend: BaseCache, metrics: Metrics) -> None:
        self._backend = backend
        self._metrics = metrics
        self.name = "memory" if isinstance(backend, MemoryBackend) else "redis"
        """The backend's kind, as metrics label it."""
        self._health = BackendHealth(_BACKEND_RETRY_AFTER, self._health_changed)
        metrics.set_cache_up(self.name, up=True)
        self._last_warning = -_WARNING_INTERVAL
        self._quiet_failures = 0

    async def read(self, key: str) -> Any:
        """The value of `key`, or None when absent or when the backend fails."""
        if not self._health.allows_call():
            return None
        try:
            value = await self._backend.get(key)
        except Exception as error:  # noqa: BLE001 - any backend failure means "not cached"
            self._failed(error)
            return None
        self._health.answered()
        return value

    async def write(self, key: str, value: Any, ttl: float) -> bool:
        """Store `value` for `ttl` seconds; False when the backend is failing."""
        if not self._health.allows_call():
            return False
        try:
            await self._backend.set(key, value, ttl=ttl)
        except Exception as error:  # noqa: BLE001 - a failed store only costs a later miss
            self._failed(error)
            return False
        self._health.answered()
        return True

    async def claim(self, key: str, ttl: float) -> bool:
        """Set `key` for `ttl` seconds unless it exists (one replica's claim on some work);
        True when this call set it, or when the backend fails (then nobody can claim, and the
        work had better be done twice than never)."""
        if not self._health.allows_call():
            return True
        try:
            await self._backend.add(key, 1, ttl=ttl)
        except ValueError:
            return False  # aiocache's answer when the key exists
        except Exception as error:  # noqa: BLE001 - a failing backend claims nothing
            self._failed(error)
            return True
        self._health.answered()
        return True

    async def delete(self, key: str) -> None:
        """Delete `key`; a failing backend is logged (the entry then expires on its own)."""
        if not self._health.allows_call():
            return
        try:
            await self._backend.delete(key)
        except Exception as error:  # noqa: BLE001 - the entry expires on its own
            self._failed(error)

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with `prefix` (a Redis SCAN, or a walk of the memory
        store); how many were deleted. Raises when the backend fails: a caller that must
        forget data has to know it could not."""
        if isinstance(self._backend, MemoryBackend):
            return self._backend.store.delete_prefix(prefix)
        client = self._backend.client
        deleted = 0
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{prefix}*", count=_SCAN_BATCH):
            batch.append(key)
            if len(batch) >= _SCAN_BATCH:
                deleted += await client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += await client.unlink(*batch)
        return deleted

    async def counter(self, key: str) -> int | None:
        """The integer Redis keeps under `key` (0 when absent); None when the backend fails
        or is being left alone (the caller must then not trust what it kept)."""
        if not self._health.allows_call():
            return None
        try:
            async with asyncio.timeout(self._backend.timeout or 1.0):
                value = await self._backend.client.get(key)
        except Exception as error:  # noqa: BLE001 - any failure means "unknown"
            self._failed(error)
            return None
        self._health.answered()
        return int(value or 0)

    async def increment(self, key: str, ttl: float) -> None:
        """Add one to the integer under `key`, kept `ttl` seconds. Raises when the backend
        fails: a caller that must make data invisible has to know it could not."""
        client = self._backend.client
        async with asyncio.timeout(self._backend.timeout or 1.0):
            async with client.pipeline(transaction=True) as pipeline:
                await pipeline.incr(key).expire(key, int(ttl)).execute()

    def _health_changed(self, up: bool) -> None:
        self._metrics.set_cache_up(self.name, up=up)
        if up:
            logger.info("Cache backend answers again; caching resumed")

    def count(self, result: str) -> None:
        """Count one cache operation's `result` (hit, miss, store, error, not_stored)."""
        self._metrics.count_cache(self.name, result)

    async def ping(self) -> bool:
        """Whether the backend answers right now (for readiness; a dict always does). The
        answer also settles the backend's health, so a revived Redis is used again at once."""
        client = getattr(self._backend, "client", None)
        if client is None:
            return True
        try:
            async with asyncio.timeout(self._backend.timeout or 1.0):
                await client.ping()
        except Exception as error:  # noqa: BLE001 - any failure means "not answering"
            self._failed(error)
            return False
        self._health.answered()
        return True

    def _failed(self, error: Exception) -> None:
        self.count("error")
        self._health.failed()
        now = time.monotonic()
        if now - self._last_warning < _WARNING_INTERVAL:
            self._quiet_failures += 1
            return
        logger.warning(
            "Cache backend failed (%s: %s); serving from the upstream until it recovers "
            "(%d more failures since the last warning)",
            type(error).__name__,
            str(error)[:200],
            self._quiet_failures,
        )
        self._last_warning = now
        self._quiet_failures = 0

    async def close(self) -> None:
        """Release the backend's connections."""
        redis_client = getattr(self._backend, "client", None)
        if redis_client is not None:
            # aiocache 0.12 calls redis-py's deprecated close(); aclose() is the current name.
            await redis_client.aclose()
        else:
            await self._backend.close()
