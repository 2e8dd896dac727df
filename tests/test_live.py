"""Units of live updates: change detection (pure), one poller's fan-out, faults and back-off,
and the hub's sharing, limits and drain, with scripted polls instead of an upstream."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import (
    ForbiddenError,
    GatewayError,
    PollerLimitExceededError,
    ShuttingDownError,
    SubscriberTooSlowError,
    UnauthenticatedError,
    UpstreamUnavailableError,
)
from gateway.live.changes import Baseline, Change, ChangeKind, job_digest
from gateway.live.hub import LiveHub
from gateway.live.poller import Feed, Poller
from gateway.metrics import Metrics

from .conftest import make_settings


def job(job_id: str, status: str = "Active", **more: Any) -> dict[str, Any]:
    return {"jobId": job_id, "metadata": {"status": status, **more}}


def kinds(changes: list[Change]) -> list[tuple[str, str]]:
    return [(change.kind.value, change.job_id) for change in changes]


def test_first_poll_is_the_baseline_and_later_polls_report_in_list_order() -> None:
    """ADDED and UPDATED follow the new list's order, REMOVED come last in their old order."""
    baseline = Baseline.of([job("a"), job("b"), job("c"), job("d")])
    rows = [job("x"), job("a"), job("c", "Completed"), job("y")]
    after, changes = baseline.changes(rows)
    assert kinds(changes) == [
        ("ADDED", "x"),
        ("UPDATED", "c"),
        ("ADDED", "y"),
        ("REMOVED", "b"),
        ("REMOVED", "d"),
    ]
    assert changes[1].job == job("c", "Completed")
    assert changes[3].job is None
    assert after.changes(rows) == (after, [])


def test_any_value_changes_the_digest_and_key_order_does_not() -> None:
    """UPDATED compares the whole JSON (a deep value counts), not a few fields."""
    deep = job("a", steps=[{"title": "one", "done": False}])
    changed = copy.deepcopy(deep)
    changed["metadata"]["steps"][0]["done"] = True
    assert job_digest(deep) != job_digest(changed)
    reordered = {"metadata": deep["metadata"], "jobId": "a"}
    assert job_digest(deep) == job_digest(reordered)


def test_rows_that_cannot_be_followed_are_left_out() -> None:
    """No jobId, a non-string one or a non-object row never make events; duplicates count once."""
    baseline = Baseline.of([job("a"), {"jobId": 7}, "junk", {"metadata": {}}])
    assert list(baseline.digests) == ["a"]
    _, changes = baseline.changes([job("a"), job("a", "Completed"), None, {"jobId": ""}])
    assert changes == []


def test_a_job_nested_past_the_json_writer_still_has_a_digest() -> None:
    """A job nested deeper than orjson writes is digested all the same (no exception)."""
    deep: dict[str, Any] = {}
    for _ in range(300):
        deep = {"next": deep}
    assert len(job_digest(job("a", deep=deep))) == 16


windows = st.lists(
    st.tuples(st.sampled_from("abcdefgh"), st.sampled_from(["Active", "Completed"])), max_size=8
)


@settings(max_examples=200, deadline=None)
@given(before=windows, after=windows)
def test_changes_applied_to_the_old_window_give_the_new_one(
    before: list[tuple[str, str]], after: list[tuple[str, str]]
) -> None:
    """Applying the reported changes to the old window's jobs gives exactly the new window's
    jobs and values: nothing is missed or invented."""
    old_rows = [job(job_id, status) for job_id, status in before]
    new_rows = [job(job_id, status) for job_id, status in after]
    baseline = Baseline.of(old_rows)
    state = {row["jobId"]: job_digest(row) for row in reversed(old_rows)}
    _, changes = baseline.changes(new_rows)
    for change in changes:
        if change.kind is ChangeKind.REMOVED:
            del state[change.job_id]
        else:
            assert change.job is not None
            assert (change.job_id in state) == (change.kind is ChangeKind.UPDATED)
            state[change.job_id] = job_digest(change.job)
    expected = {row["jobId"]: job_digest(row) for row in reversed(new_rows)}
    assert state == expected
    assert len({(c.kind, c.job_id) for c in changes}) == len(changes)


class Script:
    """Poll answers in order (rows, or an error to raise); the last one repeats."""

    def __init__(self, *answers: list[dict[str, Any]] | GatewayError) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self) -> list[Any]:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, GatewayError):
            raise answer
        return answer


async def take(feed: Feed, count: int) -> list[Change | GatewayError]:
    """The feed's next `count` items (all of them until it ends, for 0), within 2 s."""
    items: list[Change | GatewayError] = []

    async def read() -> None:
        async for item in feed:
            items.append(item)
            if len(items) == count:
                return

    await asyncio.wait_for(read(), 2.0)
    return items


def run(test: Callable[[], Any]) -> None:
    asyncio.run(test())


def test_a_poller_sends_each_change_to_every_feed_and_stops_polling_without_feeds() -> None:
    """Two feeds of one poller see the same events; once both left, polling stops."""

    async def scenario() -> None:
        script = Script([job("a")], [job("a", "Completed")])
        poller = Poller(script, 0.01)
        feeds = [poller.join(), poller.join()]
        for feed in feeds:
            (change,) = await take(feed, 1)
            assert isinstance(change, Change)
            assert (change.kind, change.job_id) == (ChangeKind.UPDATED, "a")
        for feed in feeds:
            poller.leave(feed)
        await asyncio.sleep(0.05)
        calls = script.calls
        await asyncio.sleep(0.1)
        assert script.calls == calls

    run(scenario)


def test_an_outage_is_one_error_event_then_only_real_changes() -> None:
    """Failures back off and reach a feed once; the baseline from before the outage is kept,
    so the first success sends only what changed (no burst of false ADDED events)."""

    async def scenario() -> None:
        down = UpstreamUnavailableError("The Jobs API is unavailable", upstream_status=503)
        rows = [job("a"), job("b")]
        script = Script(rows, down, down, down, [job("a"), job("b", "Completed")])
        events: list[tuple[str, int]] = []
        poller = Poller(script, 0.01, on_change=lambda kind, feeds: events.append((kind, feeds)))
        feed = poller.join()
        first, second = await take(feed, 2)
        assert first is down
        assert isinstance(second, Change)
        assert (second.kind, second.job_id) == (ChangeKind.UPDATED, "b")
        assert script.calls >= 5
        assert events == [("ERROR", 1), ("UPDATED", 1)]
        poller.stop()

    run(scenario)


def test_backoff_doubles_and_is_capped_and_honours_retry_after() -> None:
    """The delay after the n-th failure in a row is interval * 2^n, at most the cap, and never
    shorter than the upstream's Retry-After."""
    poller = Poller(Script([]), 1.0, max_backoff=5.0)
    down = UpstreamUnavailableError("down")
    assert [poller._failed(n, down) for n in range(5)] == [2.0, 4.0, 5.0, 5.0, 5.0]
    assert poller._failed(2000, down) == 5.0
    slow = UpstreamUnavailableError("limited", retry_after=30)
    assert poller._failed(0, slow) == 30.0


@pytest.mark.parametrize("refusal", [UnauthenticatedError("401"), ForbiddenError("403")])
def test_401_and_403_end_every_feed_with_that_error(refusal: GatewayError) -> None:
    """A refused credential ends the subscriptions with its own error, and polling stops."""

    async def scenario() -> None:
        script = Script([job("a")], refusal)
        poller = Poller(script, 0.01)
        feed = poller.join()
        with pytest.raises(type(refusal)):
            await take(feed, 1)
        calls = script.calls
        await asyncio.sleep(0.05)
        assert script.calls == calls == 2

    run(scenario)


def test_a_reader_that_falls_behind_is_ended_and_its_queue_dropped() -> None:
    """A feed holds at most `max_queued` unread items; one more ends it (SUBSCRIBER_TOO_SLOW)."""

    async def scenario() -> None:
        feed = Feed(max_queued=3)
        for index in range(4):
            feed.put(Change(ChangeKind.ADDED, str(index), job(str(index))))
        with pytest.raises(SubscriberTooSlowError):
            await take(feed, 1)

    run(scenario)


def hub_of(upstream_rows: dict[str, list[dict[str, Any]]], **overrides: object) -> Any:
    """A hub whose polls read `upstream_rows` by token, counting calls, without any socket."""

    calls: list[str] = []

    class Upstream:
        class cache:
            @staticmethod
            async def generation(_credential: str) -> int:
                return 0

        async def team_jobs(self, caller: Any, *, skip: int, limit: int) -> list[Any]:
            calls.append(caller.authorization)
            return upstream_rows[caller.authorization][skip : skip + limit]

    settings = make_settings(**{"live_poll_interval": 0.01, **overrides})
    return LiveHub(Upstream(), settings, Metrics()), calls  # type: ignore[arg-type]


def test_the_hub_shares_one_poller_per_credential_and_first() -> None:
    """Subscribers of one credential and `first` share a poller; another `first` or another
    credential gets its own; the last to leave stops it."""

    async def scenario() -> None:
        hub, _calls = hub_of({"Bearer a": [job("a")], "Bearer b": [job("b")]})
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(3):
                await stack.enter_async_context(hub.feed("Bearer a", "digest-a", 10))
            assert hub.pollers == 1
            await stack.enter_async_context(hub.feed("Bearer a", "digest-a", 5))
            await stack.enter_async_context(hub.feed("Bearer b", "digest-b", 10))
            assert hub.pollers == 3
        assert hub.pollers == 0

    run(scenario)


def test_the_hub_refuses_past_its_poller_limit_and_while_draining() -> None:
    """A new key past `GATEWAY_LIVE_MAX_POLLERS` is refused, an existing key is not; drain ends
    every feed cleanly and refuses new subscriptions."""

    async def scenario() -> None:
        hub, _calls = hub_of({"Bearer a": [job("a")]}, live_max_pollers=1)
        async with hub.feed("Bearer a", "digest-a", 10) as feed:
            hub.check("digest-a", 10)
            with pytest.raises(PollerLimitExceededError):
                hub.check("digest-b", 10)
            hub.drain()
            assert await take(feed, 0) == []
            with pytest.raises(ShuttingDownError):
                hub.check("digest-a", 10)

    run(scenario)
