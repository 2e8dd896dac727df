"""What the upstream client and the write paths need of a page cache (`PageCache`), what a
fetch gives it (`Fetched`), and the null cache used when caching is off. The implementation
is `gateway.cache.pages`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.caller import Caller


@dataclass(frozen=True, slots=True)
class Fetched:
    """A page fetched from the upstream, with how long the upstream lets it be kept."""

    rows: list[Any]
    max_age: float | None = None
    """Seconds the upstream allows it to be stored; 0 forbids storing; None sets no limit."""


Fetch = Callable[[Caller], Awaitable[Fetched]]
"""Fetches a page for the given caller: the request's own, or a detached one for background
work (a refresh or a prefetch), so that work never spends the request's budget."""


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

    def prefetch(self, caller: Caller, resource: str, fetch: Fetch) -> None:
        """Fetch `resource` in the background unless it is kept or on its way (never against
        `caller`'s budget); skipped when the process already runs as many as it may."""

    async def peek(self, caller: Caller, resource: str) -> list[Any] | None:
        """The rows kept for `resource` while fresh, without fetching (None otherwise)."""

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
        fetched = await fetch(caller)
        caller.ledger.data_expire(time.time())
        return fetched.rows

    async def generation(self, credential: str) -> int | None:
        """Nothing is kept: always 0."""
        return 0

    def prefetch(self, caller: Caller, resource: str, fetch: Fetch) -> None:
        """Nothing is kept, so nothing is fetched ahead."""

    async def peek(self, caller: Caller, resource: str) -> list[Any] | None:
        """Nothing is kept."""
        return None

    async def invalidate(self, credential: str) -> None:
        """Nothing is kept, so nothing to forget."""

    async def ping(self) -> bool | None:
        """No backend."""
        return None

    async def close(self) -> None:
        """Nothing to release."""
