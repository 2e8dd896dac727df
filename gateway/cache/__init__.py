"""Caching upstream pages per credential: the interface, its implementations, their storage.

`interface` says what the upstream client reads through (`PageCache`, and the null one when
caching is off); `pages` is the cache itself; `backend` the storage under it (memory or Redis,
guarded).
"""

from gateway.cache.backend import GuardedBackend, backend_for
from gateway.cache.interface import Fetched, NullPageCache, PageCache
from gateway.cache.pages import BackendPageCache, credential_secret, new_page_cache

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
