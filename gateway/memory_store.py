"""What the gateway keeps in process memory, under one byte budget, least recently used out first.

Pages (with `memory://`), whole responses and persisted queries (with `memory://`) all live in
one `MemoryStore` per app, bounded by `GATEWAY_CACHE_MAX_BYTES`: an entry counts the bytes of
its key and encoded value plus `ENTRY_OVERHEAD` for the bookkeeping around them, and storing
one evicts the least recently used entries until the total fits again. So memory is bounded by
what is kept, not by how many things are: 2,000 tokens each asking for `jobs(first: 100)`
(about 400 KB a block) cannot grow the process past the budget. Expired entries are dropped
when met, and first when room is needed.

`MemoryBackend` puts aiocache's interface on a store, for the page cache and persisted queries,
whose Redis backend is aiocache's own.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from aiocache.base import BaseCache

ENTRY_OVERHEAD = 256
"""Bytes counted per entry on top of its key and value: the dict slot, tuple and headers."""


class MemoryStore:
    """A map bounded by the bytes of its entries; least recently used entries leave first."""

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[Any, int, float | None]] = OrderedDict()
        self._bytes = 0

    @property
    def bytes_used(self) -> int:
        """The bytes counted for every entry kept now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Any:
        """The value of `key`, or None when absent or expired; a hit becomes the most recent."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[2] is not None and entry[2] <= self._clock():
            self.delete(key)
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: Hashable, value: Any, size: int, ttl: float | None) -> bool:
        """Keep `value` (`size` bytes of key and value) for `ttl` seconds (None: until evicted).
        False when it is larger than the whole budget and so not kept."""
        size += ENTRY_OVERHEAD
        self.delete(key)
        if size > self._max_bytes:
            return False
        expires = None if ttl is None else self._clock() + ttl
        self._entries[key] = (value, size, expires)
        self._bytes += size
        while self._bytes > self._max_bytes:
            _, (_, evicted, _) = self._entries.popitem(last=False)
            self._bytes -= evicted
        return True

    def delete(self, key: Hashable) -> None:
        """Forget `key`."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[1]

    def delete_prefix(self, prefix: str | bytes) -> int:
        """Forget every key of `prefix`'s type that starts with it; how many were forgotten.
        A scan of every entry: for invalidation, which writes cause, not for reads."""
        doomed: list[Hashable]
        if isinstance(prefix, str):
            doomed = [k for k in self._entries if isinstance(k, str) and k.startswith(prefix)]
        else:
            doomed = [k for k in self._entries if isinstance(k, bytes) and k.startswith(prefix)]
        for key in doomed:
            self.delete(key)
        return len(doomed)


class MemoryBackend(BaseCache):  # type: ignore[misc]
    """aiocache's backend interface over a `MemoryStore`: values arrive serialized (bytes or
    str), so their size is their length."""

    NAME = "memory"

    def __init__(self, store: MemoryStore, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = store

    async def _get(self, key: str, encoding: str | None = None, _conn: Any = None) -> Any:
        return self.store.get(key)

    async def _set(
        self, key: str, value: Any, ttl: Any = None, _cas_token: Any = None, _conn: Any = None
    ) -> bool:
        return self.store.put(key, value, len(key) + len(value), ttl)

    async def _delete(self, key: str, _conn: Any = None) -> int:
        self.store.delete(key)
        return 1

    async def _exists(self, key: str, _conn: Any = None) -> bool:
        return self.store.get(key) is not None
