"""Caching upstream pages per credential: the interface, its implementations, their storage.

`pages` holds the cache the upstream client reads through (`PageCache`, and the null one when
caching is off); `backend` the storage under it (memory or Redis, guarded).
"""

from gateway.cache.backend import GuardedBackend, backend_for
from gateway.cache.pages import (
    BackendPageCache,
    Fetched,
    NullPageCache,
    PageCache,
    credential_secret,
    new_page_cache,
)

__all__ = [
    "BackendPageCache",
    "Fetched",
    "GuardedBackend",
    "NullPageCache",
    "PageCache",
    "backend_for",
    "credential_secret",
    "new_page_cache",
]
