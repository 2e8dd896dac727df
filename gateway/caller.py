"""Whom one GraphQL request's upstream work is done for, and within which limits.

The HTTP layer builds one `Caller` per request that carries a bearer token and hands it down
explicitly: resolvers pass it to the upstream client, the client to the page cache. It carries
the credential, the deadline, the call budget and the ledger in which the client and the cache
note what the request cost and until when the data it read stays valid. Nothing of it travels
in context variables; those carry log context only.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from gateway.errors import GatewayError

UPSTREAM_BUDGET_EXCEEDED = "UPSTREAM_BUDGET_EXCEEDED"


class UpstreamBudgetExceededError(GatewayError):
    """Raised when a request would make more upstream calls than its budget allows."""

    code = UPSTREAM_BUDGET_EXCEEDED


@dataclass(slots=True)
class UpstreamBudget:
    """How many more upstream calls this request may make."""

    limit: int
    spent: int = field(default=0)

    @property
    def remaining(self) -> int:
        """Upstream calls still allowed."""
        return self.limit - self.spent

    def require(self, calls: int) -> None:
        """Raise, before any call, if `calls` more calls would pass the limit."""
        if calls > self.remaining:
            raise UpstreamBudgetExceededError(
                f"This request needs {calls} more upstream calls; {self.remaining} of "
                f"{self.limit} are left. Ask for fewer ids per request"
            )

    def spend(self, calls: int = 1) -> None:
        """Count `calls` upstream calls; raise when that passes the limit (before calling)."""
        if self.spent + calls > self.limit:
            raise UpstreamBudgetExceededError(
                f"This request needs more than {self.limit} upstream calls; ask for fewer or "
                "smaller lists per request"
            )
        self.spent += calls


@dataclass(slots=True)
class CallLedger:
    """What a request's upstream work cost, and until when the data it read stays valid."""

    calls: int = 0
    """Upstream calls made (attempts, retries included)."""
    cache_hits: int = 0
    """Pages served from the page cache."""
    rows_scanned: int = 0
    """Rows filtered pages scanned."""
    matches: int = 0
    """Jobs filtered pages returned."""
    wrote: bool = False
    """Whether the request sent a write: its response is then never kept."""
    data_expires_at: float | None = None
    """The Unix time the first of the pages read expires; past it the response may differ.
    Now or earlier for pages that were not kept; None when no page was read."""
    stale_age: float | None = None
    """Seconds since the oldest page served past its TTL was fetched (stale-while-revalidate,
    stale-if-error); None when every page was fresh."""

    def served_stale(self, age: float) -> None:
        """Note that a page `age` seconds old was served past its TTL."""
        self.stale_age = max(age, self.stale_age or 0.0)

    def staleness(self) -> dict[str, object] | None:
        """What a response built on stale pages carries in its top-level `extensions`: `stale`
        and the oldest page's `age` in seconds; None when every page was fresh."""
        if self.stale_age is None:
            return None
        return {"stale": True, "age": round(self.stale_age, 1)}

    def data_expire(self, expires_at: float) -> None:
        """Note that the request read data that stays valid until `expires_at`."""
        if self.data_expires_at is None or expires_at < self.data_expires_at:
            self.data_expires_at = expires_at


@dataclass(frozen=True, slots=True)
class Caller:
    """One request as upstream calls see it: built once, by the HTTP layer."""

    authorization: str
    """The caller's Authorization header (a bearer token), forwarded verbatim."""
    credential: str
    """A keyed digest of `authorization`, computed once: what cache keys hold instead of it."""
    deadline: float
    """The `time.monotonic()` instant all of the request's upstream work must end by."""
    budget: UpstreamBudget
    """The upstream calls the request may still make."""
    ledger: CallLedger = field(default_factory=CallLedger)
    """What the request's upstream work cost (written by the client and the cache)."""
    request_id: str | None = None
    """The request's id, sent upstream with every call it causes."""
    generation: int = 0
    """The credential's write generation when the request began: part of every key it reads
    and writes in the caches, so entries from before the caller's last write are not seen.
    -1 when it could not be known: the request then bypasses the page cache."""

    def detached(self, seconds: float, calls: int) -> Caller:
        """The same credential and generation for work no request waits on (a refresh, a
        prefetch): its own deadline, budget and ledger, so it costs the request nothing."""
        return Caller(
            self.authorization,
            self.credential,
            time.monotonic() + seconds,
            UpstreamBudget(calls),
            request_id=self.request_id,
            generation=self.generation,
        )


class CredentialDigests:
    """Keyed BLAKE2b digests of Authorization headers: what cache keys hold instead of them.

    One key per deployment (`GATEWAY_CACHE_KEY_SECRET`, so replicas sharing Redis agree) or
    per process; without it a digest reveals nothing of the token, and two credentials never
    share one.
    """

    def __init__(self, secret: bytes) -> None:
        # BLAKE2b takes keys of up to 64 bytes: a longer secret is hashed down first.
        self._key = hashlib.blake2b(secret, digest_size=32).digest()

    def digest(self, authorization: str) -> str:
        """The credential digest of `authorization` (64 hex characters)."""
        return hashlib.blake2b(
            authorization.encode("latin-1"), key=self._key, digest_size=32
        ).hexdigest()
