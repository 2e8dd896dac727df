"""Automatic persisted queries, Apollo's protocol: send a hash, and the query only when asked.

A request whose `extensions.persistedQuery` is `{"version": 1, "sha256Hash": "<hex>"}`:

- with a `query`: the hash must be the query's SHA-256 (else HTTP 400, `BAD_REQUEST`, "provided
  sha does not match query"); the query runs and, if it parsed and validated, is remembered;
- without one: the remembered query runs, or the client gets `PERSISTED_QUERY_NOT_FOUND` and
  sends the query along next time, as Apollo Client's persisted-queries link does.

Queries are remembered for `GATEWAY_APQ_TTL` seconds in the cache backend pages use, so replicas
behind one Redis share them. Query texts are not user data: they are stored once for everyone,
under `jobs-gateway:v1:apq:<sha256>`. A failing store only means "not found".
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from strawberry.types import ExecutionResult

from gateway.cache import GuardedBackend, backend_for
from gateway.caller import Caller
from gateway.graphql_request import is_request_error
from gateway.memory_store import MemoryStore
from gateway.metrics import Metrics
from gateway.settings import Settings

PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
PERSISTED_QUERY_NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
KEY_PREFIX = "jobs-gateway:v1:apq"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class PersistedQueryError(Exception):
    """A persisted-query request the gateway cannot run; carries its HTTP status and code."""

    def __init__(self, message: str, code: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def persisted_hash(extensions: dict[str, Any] | None) -> str | None:
    """The requested hash, None when the request is not a persisted query; errors if malformed."""
    persisted = (extensions or {}).get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise PersistedQueryError(
            "Unsupported persisted query version: only version 1 is supported",
            PERSISTED_QUERY_NOT_SUPPORTED,
            400,
        )
    digest = persisted.get("sha256Hash")
    if not isinstance(digest, str) or _SHA256_HEX.fullmatch(digest.lower()) is None:
        raise PersistedQueryError(
            "persistedQuery.sha256Hash must be a SHA-256 in hex", "BAD_REQUEST", 400
        )
    return digest.lower()


class PersistedQueries:
    """Remembers queries by their SHA-256 in the cache backend."""

    def __init__(self, store: GuardedBackend, ttl: float, metrics: Metrics) -> None:
        self._store = store
        self._ttl = ttl
        self._count = metrics.persisted_queries

    async def query_for(self, digest: str, query: str | None) -> str:
        """The query to run for `digest`: `query` itself once verified, else the stored one."""
        if query is not None:
            if hashlib.sha256(query.encode()).hexdigest() != digest:
                raise PersistedQueryError("provided sha does not match query", "BAD_REQUEST", 400)
            return query
        stored = await self._store.read(f"{KEY_PREFIX}:{digest}")
        if not isinstance(stored, str):
            self._count.labels("miss").inc()
            raise PersistedQueryError("PersistedQueryNotFound", PERSISTED_QUERY_NOT_FOUND, 200)
        self._count.labels("hit").inc()
        return stored

    async def remember(self, digest: str, query: str) -> None:
        """Keep `query` under `digest` (already verified) for the next requests."""
        if await self._store.write(f"{KEY_PREFIX}:{digest}", query, self._ttl):
            self._count.labels("registered").inc()

    async def close(self) -> None:
        """Release the store's connections."""
        await self._store.close()


def new_persisted_queries(
    settings: Settings, metrics: Metrics, store: MemoryStore
) -> PersistedQueries | None:
    """The persisted-query store `settings` ask for (`memory://` keeps queries in `store`, the
    app's byte-bounded memory); None when `GATEWAY_APQ_TTL` is 0."""
    if settings.apq_ttl <= 0:
        return None
    backend = backend_for(settings.cache_url, timeout=settings.cache_timeout, store=store)
    return PersistedQueries(GuardedBackend(backend, metrics), settings.apq_ttl, metrics)


def registers(caller: Caller | None, result: ExecutionResult) -> bool:
    """Whether a query sent in full with its hash is remembered: the caller had a bearer
    token (anonymous traffic cannot fill the shared store), the query ran (no request error),
    and the upstream did not refuse the token."""
    if caller is None or is_request_error(result):
        return False
    return all(
        (error.extensions or {}).get("code") != "UNAUTHENTICATED" for error in result.errors or []
    )
