"""Whole GraphQL responses, kept in process while the pages they were built from are valid.

Executing a query over cached pages gives the same answer until the first of those pages
expires, so that answer itself is kept until then: a repeated query skips parsing, validation,
execution and encoding. Entries are keyed by the caller's credential digest
(`Caller.credential`, the keyed digest page keys hold too), plus a hash of the query text,
variables, operation name and response media type, so one credential's responses are never
served to another, and `forget` drops one credential's responses when its pages are
invalidated. Only answers without errors, built
entirely from pages that were stored, are kept, in the app's `MemoryStore` (bounded by
`GATEWAY_CACHE_MAX_BYTES` together with pages and persisted queries, least recently used out
first). It lives in each process (a hit must cost less than a Redis round trip); with
`GATEWAY_CACHE_TTL=0` there is none.

When an entry expires, the requests for it in flight at that moment do not each execute: the
first builds the response (`lead`), the others wait for it and are served what it kept (one
execution per expiry instead of one per connection, which was the latency spike of every
expiry at thousands of requests a second).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Any, Final

import orjson
from starlette.responses import Response

from gateway.memory_store import MemoryStore

NO_STORE: Final = "private, no-store"
"""The Cache-Control of every GraphQL response: it holds one caller's data."""


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A response body and until when (Unix time) it holds."""

    body: bytes
    media_type: str
    expires_at: float
    encoding: str | None = None
    """The body's content encoding (None: not compressed)."""


class ResponseCache:
    """A bounded, per-credential map of request to response."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._building: dict[bytes, asyncio.Future[None]] = {}

    def response(self, key: bytes) -> Response | None:
        """The kept response for `key` as it is sent, if it still holds."""
        cached = self.get(key)
        if cached is None:
            return None
        headers = {"cache-control": NO_STORE}
        if cached.encoding is not None:
            headers["content-encoding"] = cached.encoding
        return Response(cached.body, headers=headers, media_type=cached.media_type)

    async def lead(self, key: bytes) -> bool:
        """Whether the caller is to build the response for `key` (and call `built` after).
        When an expired entry is being rebuilt by another request, wait for it and say False.
        A response never kept (a first request, errors) is not waited for: those run alike."""
        building = self._building.get(key)
        if building is not None:
            await asyncio.shield(building)
            return False
        if isinstance(self._store.get(key), CachedResponse):
            # Expired (a live one would have been served): the first to come rebuilds it.
            self._building[key] = asyncio.get_running_loop().create_future()
        return True

    def built(self, key: bytes) -> None:
        """The response for `key` is built: release those waiting for it. An expired entry
        it did not replace (its answer had errors) is dropped, so nobody waits on it again."""
        building = self._building.pop(key, None)
        if building is not None and not building.done():
            building.set_result(None)
        entry = self._store.get(key)
        if isinstance(entry, CachedResponse) and entry.expires_at <= time.time():
            self._store.delete(key)

    def key_for(
        self,
        credential: str,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        media_type: str,
        encoding: str | None = None,
        generation: int = 0,
    ) -> bytes | None:
        """The entry key of a request: the credential digest, then a hash of the rest (the
        response's content encoding too: each is kept as it is sent). None for variables
        nested past what orjson writes (254 levels): such a request is not kept."""
        request = hashlib.blake2b(query.encode(), digest_size=32)
        try:
            variables_json = orjson.dumps(variables, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            return None
        request.update(b"\0" + variables_json)
        request.update(b"\0" + (operation_name or "").encode() + b"\0" + media_type.encode())
        request.update(b"\0" + (encoding or "").encode() + b"\0%d" % generation)
        return credential.encode() + request.digest()

    def get(self, key: bytes) -> CachedResponse | None:
        """The kept response for `key`, if it still holds."""
        entry = self._store.get(key)
        if not isinstance(entry, CachedResponse):
            return None
        if entry.expires_at <= time.time():
            return None  # left for `lead`: its rebuild is waited for; `built` drops it
        return entry

    def put(
        self,
        key: bytes,
        body: bytes,
        media_type: str,
        expires_at: float,
        encoding: str | None = None,
    ) -> None:
        """Keep a response until `expires_at` (ignored if that has passed)."""
        ttl = expires_at - time.time()
        if ttl <= 0:
            return
        entry = CachedResponse(body, media_type, expires_at, encoding)
        # No ttl for the store: `get` checks `expires_at` itself, and the store evicts by use.
        self._store.put(key, entry, len(key) + len(body) + len(media_type), None)

    def forget(self, credential: str) -> None:
        """Drop every response kept for `credential`."""
        self._store.delete_prefix(credential.encode())
