"""The brief page cache: per-credential keys, in-flight deduplication, memory or Redis.

Isolation by construction: every key holds an HMAC-SHA256 of the caller's whole Authorization
header (`page_key`), so two credentials can never read each other's entries, in memory or in a
shared Redis, and neither a memory dump nor a Redis key reveals a token. The same key decides
in-flight deduplication, so concurrent identical calls share one upstream request only when
they carry the same credentials.

Only successful pages are stored, for at most `GATEWAY_CACHE_TTL` seconds (less when the
upstream's Cache-Control says so, never when it says no-store). The backend is aiocache's
interface: `memory://` (the app's `MemoryStore`, bounded in bytes, values as orjson bytes) or
`redis://` / `rediss://` (redis-py, values as orjson bytes). A failing backend never fails a
request: the call is served from the upstream, a warning is logged at most every 30 s, the
backend is left alone for a few seconds (a small breaker), and caching resumes by itself once
it answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
from aiocache import RedisCache
from aiocache.base import BaseCache
from aiocache.serializers import BaseSerializer

from gateway.circuit_breaker import CircuitBreaker, CircuitState
from gateway.logs import current_record
from gateway.memory_store import MemoryBackend, MemoryStore
from gateway.metrics import Metrics
from gateway.settings import Settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "jobs-gateway:v1:page"
_WARNING_INTERVAL = 30.0
_BACKEND_RETRY_AFTER = 2.0


@dataclass(frozen=True, slots=True)
class Fetched:
    """A page fetched from the upstream, with how long the upstream lets it be kept."""

    rows: list[Any]
    max_age: float | None = None
    """Seconds the upstream allows it to be stored; 0 forbids storing; None sets no limit."""


class OrjsonSerializer(BaseSerializer):  # type: ignore[misc]
    """aiocache serializer storing values as orjson bytes: fast, and never pickle."""

    DEFAULT_ENCODING = None

    def dumps(self, value: Any) -> bytes:
        return orjson.dumps(value)

    def loads(self, value: bytes | None) -> Any:
        return None if value is None else orjson.loads(value)


def backend_for(url: str, *, timeout: float, store: MemoryStore) -> BaseCache:
    """The aiocache backend a `GATEWAY_CACHE_URL` names (validated by `settings`): `memory://`
    keeps its entries in `store`, the app's byte-bounded memory."""
    parts = urlsplit(url)
    if parts.scheme == "memory":
        # No per-call timeout: a dict lookup cannot hang, and asyncio.wait_for costs a task.
        # Pages are kept as orjson bytes: about a third of the memory of decoded objects,
        # immutable, so no request can alter what another reads, and measurable.
        return MemoryBackend(store, serializer=OrjsonSerializer(), timeout=None)
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
        connection_pool_kwargs=pool_options,
        serializer=OrjsonSerializer(),
        timeout=timeout,
    )


class GuardedBackend:
    """An aiocache backend whose failures are absorbed: reads miss, writes are skipped.

    After a failure the backend is left alone for a couple of seconds (a one-failure breaker),
    then tried again, so a dead Redis costs no time per request and a revived one is used
    again by itself. Failures are logged at most every 30 s, with a count of the rest.
    """

    def __init__(self, backend: BaseCache, metrics: Metrics) -> None:
        self._backend = backend
        self._metrics = metrics
        self.name = "memory" if isinstance(backend, MemoryBackend) else "redis"
        """The backend's kind, as metrics label it."""
        self._health = CircuitBreaker(1, _BACKEND_RETRY_AFTER, on_change=self._health_changed)
        metrics.set_cache_up(self.name, up=True)
        self._last_warning = -_WARNING_INTERVAL
        self._quiet_failures = 0

    async def read(self, key: str) -> Any:
        """The value of `key`, or None when absent or when the backend fails."""
        if not self._health.allows_call():
            return None
        try:
            value = await self._backend.get(key)
        except asyncio.CancelledError:
            self._health.record_abandoned()
            raise
        except Exception as error:  # noqa: BLE001 - any backend failure means "not cached"
            self._failed(error)
            return None
        self._health.record_success()
        return value

    async def write(self, key: str, value: Any, ttl: float) -> bool:
        """Store `value` for `ttl` seconds; False when the backend is failing."""
        if not self._health.allows_call():
            return False
        try:
            await self._backend.set(key, value, ttl=ttl)
        except asyncio.CancelledError:
            self._health.record_abandoned()
            raise
        except Exception as error:  # noqa: BLE001 - a failed store only costs a later miss
            self._failed(error)
            return False
        self._health.record_success()
        return True

    def _health_changed(self, state: CircuitState) -> None:
        if state is CircuitState.OPEN:
            self._metrics.set_cache_up(self.name, up=False)
        elif state is CircuitState.CLOSED:
            self._metrics.set_cache_up(self.name, up=True)
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
        self._health.record_success()
        return True

    def _failed(self, error: Exception) -> None:
        self.count("error")
        self._health.record_failure()
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


class PageCache:
    """Caches upstream pages per credential, and runs identical concurrent fetches once."""

    def __init__(
        self, backend: BaseCache, *, ttl: float, secret: bytes, shared: bool, metrics: Metrics
    ) -> None:
        self._ttl = ttl
        self._secret = secret
        self.shared = shared
        """Whether other processes read this cache (then `private` answers are not stored)."""
        self._metrics = metrics
        self.store = GuardedBackend(backend, metrics)
        """The backend, guarded: readiness pings it."""
        self._in_flight: dict[str, asyncio.Future[tuple[list[Any], float]]] = {}

    def page_key(self, authorization: str, url: str) -> str:
        """The key of the upstream answer to `url` for `authorization` (HMAC'd, never raw)."""
        credential = hmac.new(self._secret, authorization.encode(), hashlib.sha256).hexdigest()
        return f"{KEY_PREFIX}:{credential}:{url}"

    async def get_or_fetch(self, key: str, fetch: Callable[[], Awaitable[Fetched]]) -> list[Any]:
        """The cached rows of `key`, or those of `fetch()`, shared with concurrent callers.

        `fetch` runs at most once per key at a time in this process; its failure reaches every
        caller waiting on it, and nothing is stored. The current request's record learns when
        the rows expire (`RequestRecord.data_expires_at`), or that they may not be kept.
        """
        record = current_record()
        shared_fetch = self._in_flight.get(key)
        if shared_fetch is None:
            cached = await self.store.read(key)
            if isinstance(cached, dict) and isinstance(cached.get("rows"), list):
                self.store.count("hit")
                if record is not None:
                    record.cache_hits += 1
                    record.data_expire(float(cached.get("expires", 0)))
                return cached["rows"]  # type: ignore[no-any-return]
            shared_fetch = self._in_flight.get(key)  # someone may have started while we read
        if shared_fetch is None:
            self.store.count("miss")
            shared_fetch = asyncio.ensure_future(self._fetch_and_store(key, fetch))
            self._in_flight[key] = shared_fetch
            shared_fetch.add_done_callback(lambda done: self._settle(key, done))
        else:
            self._metrics.dedupe_joins.inc()
        # shield: a caller that goes away must not cancel the fetch the others wait for.
        rows, expires = await asyncio.shield(shared_fetch)
        if record is not None:
            record.data_expire(expires)
        return rows

    def _settle(self, key: str, done: asyncio.Future[tuple[list[Any], float]]) -> None:
        if self._in_flight.get(key) is done:
            del self._in_flight[key]
        if not done.cancelled():
            done.exception()  # retrieved here, so an error nobody awaited is not "lost"

    async def _fetch_and_store(
        self, key: str, fetch: Callable[[], Awaitable[Fetched]]
    ) -> tuple[list[Any], float]:
        """The fetched rows and when they expire (a Unix time; now when they are not kept)."""
        fetched = await fetch()
        ttl = self._ttl if fetched.max_age is None else min(self._ttl, fetched.max_age)
        expires = time.time() + max(ttl, 0.0)
        if ttl <= 0:
            self.store.count("not_stored")
        elif await self.store.write(key, {"expires": expires, "rows": fetched.rows}, ttl):
            self.store.count("store")
        return fetched.rows, expires

    async def close(self) -> None:
        """Release the backend's connections."""
        await self.store.close()


def new_page_cache(settings: Settings, metrics: Metrics, store: MemoryStore) -> PageCache | None:
    """The page cache `settings` ask for (`memory://` keeps pages in `store`); None when
    `GATEWAY_CACHE_TTL` is 0."""
    if settings.cache_ttl <= 0:
        return None
    secret = settings.cache_key_secret.encode() or secrets.token_bytes(32)
    backend = backend_for(settings.cache_url, timeout=settings.cache_timeout, store=store)
    return PageCache(
        backend, ttl=settings.cache_ttl, secret=secret, shared=settings.uses_redis, metrics=metrics
    )
