"""Every `jobChanged` poller of the process, one per (credential, `first`), shared by all of
that credential's subscribers.

Pollers are keyed like cache entries: by the keyed digest of the Authorization header
(`CredentialDigests`), never the token, so two credentials never share a poller, its baseline
or its events. A poller starts with its first subscriber and stops when the last one leaves.
Its polls read the window `[0, first)` of `GET /jobs/v1/` through the page cache with a
`Caller` of their own (the request deadline and call budget, the credential's current write
generation), so a poll and a query of the same caller share fetches, and a caller's own
mutation is seen by the next poll.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from gateway.caller import Caller, UpstreamBudget
from gateway.errors import PollerLimitExceededError, ShuttingDownError
from gateway.live.poller import Feed, Poller
from gateway.logs import request_id_from
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.upstream import UpstreamClient

logger = logging.getLogger(__name__)

PollerKey = tuple[str, int]
"""A poller's key: the credential's digest and `first`."""


class LiveHub:
    """The process's pollers: `feed` subscribes, `drain` ends every subscription."""

    def __init__(self, upstream: UpstreamClient, settings: Settings, metrics: Metrics) -> None:
        self._upstream = upstream
        self._settings = settings
        self._metrics = metrics
        self._pollers: dict[PollerKey, Poller] = {}
        self.draining = False

    @property
    def pollers(self) -> int:
        """Pollers running now."""
        return len(self._pollers)

    def check(self, credential: str, first: int) -> None:
        """Raise, before anything starts, if a subscription for this key cannot be served."""
        if self.draining:
            raise ShuttingDownError(
                "This gateway is shutting down: subscribe again (another replica will serve it)"
            )
        if (credential, first) not in self._pollers and self.pollers >= (
            limit := self._settings.live_max_pollers
        ):
            raise PollerLimitExceededError(
                f"This gateway already polls {limit} windows for its subscribers; try again "
                "later, or subscribe with a `first` others use"
            )

    @contextlib.asynccontextmanager
    async def feed(self, authorization: str, credential: str, first: int) -> AsyncIterator[Feed]:
        """A feed of the changes among the credential's newest `first` jobs, for as long as the
        block runs; the poller is shared with every other feed of the same key."""
        self.check(credential, first)
        key = (credential, first)
        poller = self._pollers.get(key)
        if poller is None:
            poller = self._pollers[key] = Poller(
                partial(self._poll, authorization, credential, first),
                self._settings.live_poll_interval,
                on_poll=self._metrics.count_live_poll,
                on_change=self._metrics.count_live_events,
                max_queued=4 * first + 16,  # two polls' worth of every kind of change
            )
            self._metrics.live_pollers.inc()
            logger.info(
                "jobChanged poller started", extra={"first": first, "pollers": self.pollers}
            )
        feed = poller.join()
        self._metrics.live_subscriptions.inc()
        try:
            yield feed
        finally:
            self._metrics.live_subscriptions.dec()
            poller.leave(feed)
            if not poller.feeds and self._pollers.get(key) is poller:
                del self._pollers[key]
                self._metrics.live_pollers.dec()
                poller.stop()
                logger.info(
                    "jobChanged poller stopped", extra={"first": first, "pollers": self.pollers}
                )

    def drain(self) -> None:
        """End every subscription cleanly and refuse new ones: the process is stopping."""
        self.draining = True
        for poller in list(self._pollers.values()):
            poller.stop()

    async def _poll(self, authorization: str, credential: str, first: int) -> list[Any]:
        caller = await live_caller(self._upstream, self._settings, authorization, credential)
        return await self._upstream.team_jobs(caller, skip=0, limit=first)


async def live_caller(
    upstream: UpstreamClient, settings: Settings, authorization: str, credential: str
) -> Caller:
    """A `Caller` for upstream work no request waits on (a poll, an event's field): the
    request deadline and call budget of its own, the credential's current write generation."""
    generation = await upstream.cache.generation(credential)
    return Caller(
        authorization,
        credential,
        time.monotonic() + settings.request_deadline,
        UpstreamBudget(settings.upstream_call_budget),
        request_id=request_id_from(None),
        generation=-1 if generation is None else generation,
    )
