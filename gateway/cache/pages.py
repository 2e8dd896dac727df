"""The brief page cache: per-credential keys, in-flight deduplication, explicit invalidation.

Isolation by construction: every key holds the caller's credential digest (`Caller.credential`,
a keyed BLAKE2b of the whole Authorization header), so two credentials can never read each
other's entries, in memory or in a shared Redis, and neither a memory dump nor a Redis key
reveals a token. The same key decides in-flight deduplication, so concurrent identical calls
share one upstream request only when they carry the same credentials.

Only successful pages are stored, for at most `GATEWAY_CACHE_TTL` seconds (less when the
upstream's Cache-Control says so, never when it says no-store). `invalidate(credential)` is what
writes call after they change data: it forgets every page of one credential (and the whole
responses built on them) and keeps fetches in flight from storing what they read before it.
Across replicas it works by generation: every key holds the credential's write generation
(`Caller.generation`, read once per request: from Redis when the cache is shared), and a write
increments it in Redis, so every replica's next request for that credential reads new keys,
and its whole-response cache, keyed by generation too, misses. The cost is one Redis GET per
request with a shared cache, response-cache hits included.

With `GATEWAY_CACHE_TTL=0` the `NullPageCache` takes its place: the same interface, every
call fetched, nothing kept.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiocache.base import BaseCache

from gateway.cache.backend import GuardedBackend, backend_for
from gateway.caller import Caller
from gateway.memory_store import MemoryStore
from gateway.metrics import Metrics
from gateway.response_cache import ResponseCache
from gateway.settings import Settings

logger = logging.getLogger("gateway.cache")

KEY_PREFIX = "jobs-gateway:v2:page"
GENERATION_PREFIX = "jobs-gateway:v2:generation"
GENERATION_TTL = 86_400.0
"""How long a credential's write generation is kept in Redis after its last write: far longer
than any entry built under an older one lives (at most `GATEWAY_CACHE_TTL`)."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """A page fetched from the upstream, with how long the upstream lets it be kept."""

    rows: list[Any]
    max_age: float | None = None
    """Seconds the upstream allows it to be stored; 0 forbids storing; None sets no limit."""


Fetch = Callable[[], Awaitable[Fetched]]


class PageCache(Protocol):
    """What the upstream client and the write paths need of a page cache."""

    shared: bool
    """Whether other processes read this cache (then `private` answers are not stored)."""
    stores: bool
    """Whether it keeps pages at all (else how long the upstream allows them does not matter)."""

    async def get_or_fetch(self, caller: Caller, resource: str, fetch: Fetch) -> list[Any]:
        """The rows of `resource` for `caller`: kept ones, or those `fetch()` gets."""

    async def generation(self, credential: str) -> int | None:
        """The credential's write generation, which every key of its entries holds; None
        when it cannot be known (the shared backend fails), so nothing kept may be trusted."""

    async def invalidate(self, credential: str) -> None:
        """Forget every page (and response) kept for `credential`."""

    async def ping(self) -> bool | None:
        """Whether the backend answers (None: there is none)."""

    async def close(self) -> None:
        """Release the backend's connections."""


class NullPageCache:
    """No cache: every call fetched, nothing kept, nothing shared."""

    shared = False
    stores = False

    async def get_or_fetch(self, caller: Caller, resource: str, fetch: Fetch) -> list[Any]:
        """The rows `fetch()` gets; they may not be kept, so the response may not be either."""
        fetched = await fetch()
        caller.ledger.data_expire(time.time())
        return fetched.rows

    async def generation(self, credential: str) -> int | None:
        """Nothing is kept: always 0."""
        return 0

    async def invalidate(self, credential: str) -> None:
        """Nothing is kept, so nothing to forget."""

    async def ping(self) -> bool | None:
        """No backend."""
        return None

    async def close(self) -> None:
        """Nothing to release."""


class BackendPageCache:
    """Caches upstream pages per credential, and runs identical concurrent fetches once."""

    stores = True

    def __init__(
        self,
        backend: BaseCache,
        *,
        ttl: float,
        shared: bool,
        metrics: Metrics,
        responses: ResponseCache | None = None,
    ) -> None:
        self._ttl = ttl
        self.shared = shared
        self._metrics = metrics
        self._responses = responses
        self.store = GuardedBackend(backend, metrics)
        """The backend, guarded."""
        self._in_flight: dict[str, asyncio.Future[tuple[list[Any], float]]] = {}
        self._epochs: dict[str, int] = {}
        """Invalidations per credential since start (only credentials ever invalidated)."""

    async def get_or_fetch(self, caller: Caller, resource: str, fetch: Fetch) -> list[Any]:
        """The cached rows of `resource` for `caller`, or those of `fetch()`, shared with
        concurrent callers.

        `fetch` runs at most once per key at a time in this process; its failure reaches every
        caller waiting on it, and nothing is stored. The caller's ledger learns of the hit and
        when the rows expire (now, when they may not be kept).
        """
        ledger = caller.ledger
        if caller.generation < 0 or ledger.wrote:
            # The caller's write generation is unknown (Redis failing), or this request wrote
            # (its keys hold the generation from before): what is kept may predate the write,
            # so it is neither read nor added to.
            fetched = await fetch()
            ledger.data_expire(time.time())
            return fetched.rows
        key = f"{KEY_PREFIX}:{caller.credential}:{caller.generation}:{resource}"
        shared_fetch = self._in_flight.get(key)
        if shared_fetch is None:
            cached = await self.store.read(key)
            if isinstance(cached, dict) and isinstance(cached.get("rows"), list):
                self.store.count("hit")
                ledger.cache_hits += 1
                ledger.data_expire(float(cached.get("expires", 0)))
                return cached["rows"]  # type: ignore[no-any-return]
            shared_fetch = self._in_flight.get(key)  # someone may have started while we read
        if shared_fetch is None:
            self.store.count("miss")
            epoch = self._epochs.get(caller.credential, 0)
            shared_fetch = asyncio.ensure_future(
                self._fetch_and_store(key, fetch, caller.credential, epoch)
            )
            self._in_flight[key] = shared_fetch
            shared_fetch.add_done_callback(lambda done: self._settle(key, done))
        else:
            self._metrics.dedupe_joins.inc()
        # shield: a caller that goes away must not cancel the fetch the others wait for.
        rows, expires = await asyncio.shield(shared_fetch)
        ledger.data_expire(expires)
        return rows

    def _settle(self, key: str, done: asyncio.Future[tuple[list[Any], float]]) -> None:
        if self._in_flight.get(key) is done:
            del self._in_flight[key]
        if not done.cancelled():
            done.exception()  # retrieved here, so an error nobody awaited is not "lost"

    async def _fetch_and_store(
        self, key: str, fetch: Fetch, credential: str, epoch: int
    ) -> tuple[list[Any], float]:
        """The fetched rows and when they expire (a Unix time; now when they are not kept)."""
        fetched = await fetch()
        ttl = self._ttl if fetched.max_age is None else min(self._ttl, fetched.max_age)
        if self._epochs.get(credential, 0) != epoch:
            ttl = 0.0  # invalidated while in flight: what was read may predate the write
        expires = time.time() + max(ttl, 0.0)
        if ttl <= 0:
            self.store.count("not_stored")
        elif await self.store.write(key, {"expires": expires, "rows": fetched.rows}, ttl):
            self.store.count("store")
        return fetched.rows, expires

    async def invalidate(self, credential: str) -> None:
        """Forget every page and response of `credential`; fetches in flight for it are not
        joined any more and do not store. Raises when the backend fails to delete."""
        self._epochs[credential] = self._epochs.get(credential, 0) + 1
        prefix = f"{KEY_PREFIX}:{credential}:"
        for key in [key for key in self._in_flight if key.startswith(prefix)]:
            del self._in_flight[key]
        if self._responses is not None:
            self._responses.forget(credential)
        if self.shared:
            # Every replica reads the generation first: entries under the old one are gone
            # for all of them at once (and expire on their own).
            await self.store.increment(f"{GENERATION_PREFIX}:{credential}", GENERATION_TTL)
        else:
            await self.store.delete_prefix(prefix)
        self._metrics.count_cache(self.store.name, "invalidation")

    async def generation(self, credential: str) -> int | None:
        """The credential's write generation: in Redis when it is shared by replicas (one
        read), else this process's count of the credential's invalidations."""
        if self.shared:
            return await self.store.counter(f"{GENERATION_PREFIX}:{credential}")
        return self._epochs.get(credential, 0)

    async def ping(self) -> bool | None:
        """Whether the backend answers right now (for readiness)."""
        return await self.store.ping()

    async def close(self) -> None:
        """Release the backend's connections."""
        await self.store.close()


def new_page_cache(
    settings: Settings,
    metrics: Metrics,
    store: MemoryStore,
    responses: ResponseCache | None = None,
) -> PageCache:
    """The page cache `settings` ask for (`memory://` keeps pages in `store`, beside the
    whole `responses` built on them); the null cache when `GATEWAY_CACHE_TTL` is 0."""
    if settings.cache_ttl <= 0:
        return NullPageCache()
    backend = backend_for(settings.cache_url, timeout=settings.cache_timeout, store=store)
    return BackendPageCache(
        backend,
        ttl=settings.cache_ttl,
        shared=settings.uses_redis,
        metrics=metrics,
        responses=responses,
    )


def credential_secret(settings: Settings) -> bytes:
    """The key of credential digests: `GATEWAY_CACHE_KEY_SECRET` (replicas sharing Redis must
    agree on it), else random per process."""
    return settings.cache_key_secret.encode() or secrets.token_bytes(32)
