"""One poller: a window of one caller's list, polled on an interval, its changes fanned out.

A `Poller` polls, compares each answer with its `Baseline` (`changes`) and puts every change
on the `Feed` of each subscriber, in order. It knows nothing of GraphQL or HTTP: `poll` is any
coroutine that returns the window's rows or raises a `GatewayError`.

- The first successful poll sets the baseline and sends nothing.
- 401 and 403 (`UnauthenticatedError`, `ForbiddenError`) are about the credential: every feed
  ends with that error and the poller stops.
- Any other failure starts an outage: one error event goes to every feed, and polls back off
  (the interval doubled per failure, capped at `max_backoff`, never sooner than a Retry-After).
  Further failures send nothing; the first success ends the outage quietly and is compared with
  the baseline from before it, so only what really changed is reported.
- A feed holds at most `Feed.max_queued` unread items; one more ends it with
  `SubscriberTooSlowError`, so a client that stops reading costs bounded memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from gateway.errors import (
    INTERNAL_SERVER_ERROR,
    ForbiddenError,
    GatewayError,
    SubscriberTooSlowError,
    UnauthenticatedError,
)
from gateway.live.changes import Baseline, Change

logger = logging.getLogger(__name__)

TERMINAL_ERRORS: Final = (UnauthenticatedError, ForbiddenError)
MAX_BACKOFF: Final = 60.0


class PollFailedError(GatewayError):
    """What subscribers see when a poll failed unexpectedly (the details are in the log)."""

    code = INTERNAL_SERVER_ERROR


class _End:
    """The last item of a feed: it ends, with `error` or cleanly."""

    __slots__ = ("error",)

    def __init__(self, error: GatewayError | None) -> None:
        self.error = error


class Feed:
    """One subscriber's queue of changes and non-terminal error events, read by iterating."""

    def __init__(self, max_queued: int) -> None:
        self.max_queued = max_queued
        self._items: deque[Change | GatewayError | _End] = deque()
        self._ready = asyncio.Event()
        self.ended = False

    def put(self, item: Change | GatewayError) -> None:
        """Queue `item`, or end the feed if its reader is too far behind."""
        if self.ended:
            return
        if len(self._items) >= self.max_queued:
            self._items.clear()  # what it did not read is dropped with it
            self.end(SubscriberTooSlowError("This subscription fell too far behind its events"))
            return
        self._items.append(item)
        self._ready.set()

    def end(self, error: GatewayError | None = None) -> None:
        """End the feed after what is queued (at once, with `error`, when there is one)."""
        if self.ended:
            return
        self.ended = True
        if error is not None:
            self._items.clear()
        self._items.append(_End(error))
        self._ready.set()

    async def __aiter__(self) -> AsyncIterator[Change | GatewayError]:
        while True:
            if not self._items:
                self._ready.clear()
                await self._ready.wait()
                continue
            item = self._items.popleft()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item


class Poller:
    """Polls one window for its feeds; started by the hub on its first feed, stopped on its
    last."""

    def __init__(
        self,
        poll: Callable[[], Awaitable[list[Any]]],
        interval: float,
        *,
        on_poll: Callable[[str], None] = lambda _outcome: None,
        on_change: Callable[[str, int], None] = lambda _kind, _feeds: None,
        max_backoff: float = MAX_BACKOFF,
        max_queued: int = 1000,
    ) -> None:
        self._poll = poll
        self._interval = interval
        self._max_backoff = max(max_backoff, interval)
        self._on_poll = on_poll
        self._on_change = on_change
        self._max_queued = max_queued
        self.feeds: set[Feed] = set()
        self.baseline: Baseline | None = None
        self._task: asyncio.Task[None] | None = None

    def join(self) -> Feed:
        """A new feed of this poller's changes, from its next poll on; starts it if idle."""
        feed = Feed(self._max_queued)
        self.feeds.add(feed)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="jobChanged poller")
        return feed

    def leave(self, feed: Feed) -> None:
        """Stop feeding `feed`."""
        self.feeds.discard(feed)

    def stop(self, error: GatewayError | None = None) -> None:
        """End every feed (with `error`, or cleanly) and stop polling (synchronous: a signal
        handler calls it while the process drains)."""
        for feed in self.feeds:
            feed.end(error)
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _broadcast(self, kind: str, item: Change | GatewayError) -> None:
        feeds = list(self.feeds)
        for feed in feeds:
            feed.put(item)
        self._on_change(kind, len(feeds))

    async def _run(self) -> None:
        failures = 0
        while self.feeds:
            delay = self._interval
            try:
                rows = await self._poll()
            except TERMINAL_ERRORS as error:
                self._on_poll("refused")
                self.stop(error)
                return
            except GatewayError as error:
                delay = self._failed(failures, error)
                failures += 1
            except Exception:
                logger.exception("A jobChanged poll failed unexpectedly")
                delay = self._failed(failures, PollFailedError("Polling the Jobs API failed"))
                failures += 1
            else:
                if failures:
                    logger.info("jobChanged polls succeed again after %d failures", failures)
                failures = 0
                self._on_poll("ok")
                self._compare(rows)
            await asyncio.sleep(delay)

    def _failed(self, failures: int, error: GatewayError) -> float:
        """Note a failed poll; the delay before the next. Only an outage's first failure
        reaches the feeds."""
        self._on_poll("error")
        if failures == 0:
            logger.warning("jobChanged polls fail (%s); backing off", error.code)
            self._broadcast("ERROR", error)
        delay = min(self._interval * 2.0 ** min(failures + 1, 16), self._max_backoff)
        return max(delay, float(error.retry_after or 0.0))

    def _compare(self, rows: list[Any]) -> None:
        if self.baseline is None:
            self.baseline = Baseline.of(rows)
            return
        self.baseline, changes = self.baseline.changes(rows)
        for change in changes:
            self._broadcast(change.kind.value, change)
