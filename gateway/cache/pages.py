"""The brief page cache: per-credential keys, in-flight deduplication, explicit invalidation,
stale-while-revalidate and next-block prefetch.

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

Freshness: a page is fresh for its TTL, then kept `GATEWAY_CACHE_STALE` seconds more, during
which it is served at once while one background refresh runs (stale-while-revalidate; one per
key in the process, and one across replicas on Redis by a short claim). A refresh that fails
leaves the page served (stale-if-error); one answered 401, 403 or 404 drops it. The request's
ledger notes the oldest stale page's age, which its response reports. `prefetch` fetches the
next block of a list ahead, in the background, bounded per process. Background work runs with
a detached `Caller` (`Caller.detached`): never on the request's budget.

With `GATEWAY_CACHE_TTL=0` the `NullPageCache` takes its place: the same interface, every
call fetched, nothing kept.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiocache.base import BaseCache

from gateway.cache.backend import GuardedBackend, backend_for
from gateway.cache.interface import Fetch, Fetched, NullPageCache, PageCache
from gateway.caller import Caller
from gateway.errors import ForbiddenError, NotFoundError, UnauthenticatedError
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


REFRESH_LOCK_SECONDS = 10.0
"""How long one replica's claim to refresh a stale page holds on Redis (longer than a call)."""
STALE_RESPONSE_SECONDS = 1.0
"""How long a whole response built on a stale page may be kept (at most a quarter of the TTL,
so a refreshed page is seen well before it is stale again): while the page's refresh runs,
repeats of the request are served that response instead of each being executed again (at
thousands of requests a second, re-executing every one for the refresh's 50 ms was the only
latency spike left at TTL expiries)."""
REFUSALS = (UnauthenticatedError, ForbiddenError, NotFoundError)
"""Answers about the caller, never covered by stale data: a refresh that gets one drops it."""


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
        stale: float = 0.0,
        detached: tuple[float, int] = (20.0, 40),
        prefetches: int = 0,
    ) -> None:
        self._ttl = ttl
        self._stale = stale
        self._prefetch_slots = prefetches
        """Prefetches that may still start now (each gives its slot back when done)."""
        self._detached = detached
        """The deadline and call budget of background work (`Caller.detached`)."""
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._prefetching: dict[str, asyncio.Task[None]] = {}
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
            fetched = await fetch(caller)
            ledger.data_expire(time.time())
            return fetched.rows
        key = self.key(caller, resource)
        shared_fetch = self._in_flight.get(key)
        if shared_fetch is None:
            cached = await self.store.read(key)
            if isinstance(cached, dict) and isinstance(cached.get("rows"), list):
                kept = self._kept(cached, key, caller, fetch)
                if kept is not None:
                    return kept
            shared_fetch = self._in_flight.get(key)  # someone may have started while we read
        if shared_fetch is None:
            self.store.count("miss")
            epoch = self._epochs.get(caller.credential, 0)
            shared_fetch = asyncio.ensure_future(
                self._fetch_and_store(key, lambda: fetch(caller), caller.credential, epoch)
            )
            self._in_flight[key] = shared_fetch
            shared_fetch.add_done_callback(lambda done: self._settle(key, done))
        else:
            self._metrics.dedupe_joins.inc()
        # shield: a caller that goes away must not cancel the fetch the others wait for.
        rows, expires = await asyncio.shield(shared_fetch)
        ledger.data_expire(expires)
        return rows

    @staticmethod
    def key(caller: Caller, resource: str) -> str:
        """The key of `resource`'s page for `caller` (its credential and write generation)."""
        return f"{KEY_PREFIX}:{caller.credential}:{caller.generation}:{resource}"

    def _kept(
        self, cached: dict[str, Any], key: str, caller: Caller, fetch: Fetch
    ) -> list[Any] | None:
        """A kept page's rows while fresh; within the stale window, the rows at once and one
        refresh started in the background; None past it (a miss)."""
        now = time.time()
        expires = float(cached.get("expires", 0))
        ledger = caller.ledger
        if now < expires:
            self.store.count("hit")
            ledger.cache_hits += 1
            ledger.data_expire(expires)
            return cached["rows"]  # type: ignore[no-any-return]
        if now >= expires + self._stale:
            return None
        self.store.count("stale")
        ledger.cache_hits += 1
        ledger.served_stale(now - float(cached.get("fetched", expires - self._ttl)))
        ledger.data_expire(now + min(STALE_RESPONSE_SECONDS, self._ttl / 4))
        self._revalidate(key, caller, fetch)
        return cached["rows"]  # type: ignore[no-any-return]

    def _revalidate(self, key: str, caller: Caller, fetch: Fetch) -> None:
        """Refresh `key` in the background, once at a time per key in this process (and, on
        Redis, across replicas), with a detached caller."""
        if key in self._refreshing or key in self._in_flight:
            return
        epoch = self._epochs.get(caller.credential, 0)
        detached = caller.detached(*self._detached)
        task = asyncio.create_task(self._refresh(key, lambda: fetch(detached), caller, epoch))
        self._refreshing[key] = task

        def done(_task: asyncio.Task[None]) -> None:
            if self._refreshing.get(key) is task:  # not a later refresh of the same key
                del self._refreshing[key]

        task.add_done_callback(done)

    async def _refresh(
        self, key: str, fetch: Callable[[], Awaitable[Fetched]], caller: Caller, epoch: int
    ) -> None:
        """Fetch and store `key` again. A failure keeps the stale page (stale-if-error), but a
        refusal about the caller (401, 403, 404) drops it: those are never answered from it."""
        claim = f"{key}:refresh"
        if self.shared and not await self.store.claim(claim, REFRESH_LOCK_SECONDS):
            return  # another replica is refreshing it
        try:
            await self._fetch_and_store(key, fetch, caller.credential, epoch)
        except REFUSALS:
            await self.store.delete(key)
            self.store.count("stale_dropped")
        except Exception as error:  # noqa: BLE001 - the stale page stays; the next read retries
            logger.info("A stale page's refresh failed (%s); it is served until it expires", error)
            self.store.count("refresh_failed")
        else:
            self.store.count("refreshed")
        finally:
            if self.shared:
                await self.store.delete(claim)

    def prefetch(self, caller: Caller, resource: str, fetch: Fetch) -> None:
        """Fetch `resource` ahead, in the background, with a detached caller: at most
        `prefetches` at once in the process (past it, skipped), never twice at a time per key,
        never for a request that wrote or whose generation is unknown."""
        key = self.key(caller, resource)
        if caller.generation < 0 or caller.ledger.wrote:
            return
        if key in self._in_flight or key in self._prefetching:
            return
        if self._prefetch_slots <= 0:
            self._metrics.count_prefetch("busy")
            return
        self._prefetch_slots -= 1
        detached = caller.detached(*self._detached)
        task = asyncio.create_task(self._prefetch(detached, resource, fetch))
        self._prefetching[key] = task

        def done(_task: asyncio.Task[None]) -> None:
            self._prefetch_slots += 1
            del self._prefetching[key]

        task.add_done_callback(done)

    async def peek(self, caller: Caller, resource: str) -> list[Any] | None:
        """The rows kept for `resource` while fresh (a hit, noted in the ledger); None when
        absent, stale or unreadable: nothing is fetched."""
        if caller.generation < 0 or caller.ledger.wrote:
            return None
        cached = await self.store.read(self.key(caller, resource))
        if not isinstance(cached, dict) or not isinstance(cached.get("rows"), list):
            return None
        expires = float(cached.get("expires", 0))
        if time.time() >= expires:
            return None
        self.store.count("hit")
        caller.ledger.cache_hits += 1
        caller.ledger.data_expire(expires)
        return cached["rows"]  # type: ignore[no-any-return]

    async def _prefetch(self, caller: Caller, resource: str, fetch: Fetch) -> None:
        try:
            await self.get_or_fetch(caller, resource, fetch)
        except Exception as error:  # noqa: BLE001 - a prefetch only saves a later wait
            logger.info("A prefetch failed (%s); the page will be fetched when asked for", error)
            self._metrics.count_prefetch("failed")
        else:
            self._metrics.count_prefetch("hit" if caller.ledger.cache_hits else "fetched")

    def _settle(self, key: str, done: asyncio.Future[tuple[list[Any], float]]) -> None:
        if self._in_flight.get(key) is done:
            del self._in_flight[key]
        if not done.cancelled():
            done.exception()  # retrieved here, so an error nobody awaited is not "lost"

    async def _fetch_and_store(
        self, key: str, fetch: Callable[[], Awaitable[Fetched]], credential: str, epoch: int
    ) -> tuple[list[Any], float]:
        """The fetched rows and when they expire (a Unix time; now when they are not kept).
        A page is stored for its TTL and the stale window after it."""
        fetched = await fetch()
        ttl = self._ttl if fetched.max_age is None else min(self._ttl, fetched.max_age)
        if self._epochs.get(credential, 0) != epoch:
            ttl = 0.0  # invalidated while in flight: what was read may predate the write
        now = time.time()
        expires = now + max(ttl, 0.0)
        entry = {"expires": expires, "fetched": now, "rows": fetched.rows}
        if ttl <= 0:
            self.store.count("not_stored")
        elif await self.store.write(key, entry, ttl + self._stale):
            self.store.count("store")
        return fetched.rows, expires

    async def invalidate(self, credential: str) -> None:
        """Forget every page and response of `credential`; fetches in flight for it are not
        joined any more and do not store. Raises when the backend fails to delete."""
        self._epochs[credential] = self._epochs.get(credential, 0) + 1
        prefix = f"{KEY_PREFIX}:{credential}:"
        for key in [key for key in self._in_flight if key.startswith(prefix)]:
            del self._in_flight[key]
        for key in [key for key in self._refreshing if key.startswith(prefix)]:
            self._refreshing.pop(key).cancel()
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
        stale=settings.cache_stale,
        detached=(settings.request_deadline, settings.upstream_call_budget),
        prefetches=settings.prefetch_concurrency,
    )


def credential_secret(settings: Settings) -> bytes:
    """The key of credential digests: `GATEWAY_CACHE_KEY_SECRET` (replicas sharing Redis must
    agree on it), else random per process."""
    return settings.cache_key_secret.encode() or secrets.token_bytes(32)
