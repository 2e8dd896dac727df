"""Latency users feel: stale-while-revalidate, stale-if-error and next-block prefetch.

Units on the page cache with scripted fetches, then the gateway in process over the sample
upstream (wrapped to fail on demand), counting the upstream calls.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.cache import Fetched
from gateway.cache.backend import backend_for
from gateway.cache.pages import BackendPageCache
from gateway.caller import Caller
from gateway.errors import UnauthenticatedError, UpstreamUnavailableError
from gateway.memory_store import MemoryStore
from gateway.metrics import Metrics
from gateway.pagination import Fetching
from gateway.sample_upstream import SampleUpstream

from .conftest import asgi_client, bearer_caller, graphql, in_process_gateway
from .redis_process import RedisProcess

pytestmark = pytest.mark.anyio


def page_cache(
    ttl: float = 0.2, stale: float = 5.0, prefetches: int = 0, url: str = "memory://"
) -> BackendPageCache:
    store = MemoryStore(1 << 20)
    return BackendPageCache(
        backend_for(url, timeout=1.0, store=store),
        ttl=ttl,
        shared=url != "memory://",
        metrics=Metrics(),
        stale=stale,
        prefetches=prefetches,
    )


class Upstream:
    """Scripted fetches: each call returns the next answer (rows, or an error to raise), after
    `gate` opens; `callers` records whose ledger each call was made for."""

    def __init__(self, *answers: list[Any] | Exception) -> None:
        self.answers = list(answers)
        self.callers: list[Caller] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, caller: Caller) -> Fetched:
        self.callers.append(caller)
        await self.gate.wait()
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return Fetched(answer)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.01)


async def test_a_stale_page_is_served_at_once_and_refreshed_once_in_the_background() -> None:
    """Past its TTL, within the stale window: five concurrent reads get the old rows without
    waiting for the upstream, one refresh runs with a detached caller (not the request's
    budget), and the next read gets the new rows, fresh."""
    cache = page_cache()
    upstream = Upstream(["old"], ["new"])
    first = bearer_caller()
    assert await cache.get_or_fetch(first, "r", upstream) == ["old"]
    await asyncio.sleep(0.25)
    upstream.gate.clear()  # the refresh cannot finish while the reads run
    readers = [bearer_caller() for _ in range(5)]
    answers = await asyncio.gather(*(cache.get_or_fetch(c, "r", upstream) for c in readers))
    assert answers == [["old"]] * 5
    assert all(reader.ledger.stale_age is not None for reader in readers)
    assert all(reader.ledger.stale_age >= 0.25 for reader in readers)  # type: ignore[operator]
    assert all(reader.budget.spent == 0 for reader in readers)
    upstream.gate.set()
    await settle()
    assert len(upstream.callers) == 2
    assert upstream.callers[1] not in readers
    fresh = bearer_caller()
    assert await cache.get_or_fetch(fresh, "r", upstream) == ["new"]
    assert fresh.ledger.stale_age is None


async def test_on_redis_one_replica_refreshes_a_stale_page_for_all(redis: RedisProcess) -> None:
    """Two replicas on one Redis read the same stale page at once: both serve it, and only
    one of them calls the upstream to refresh it (a short claim in Redis)."""
    replicas = [page_cache(url=redis.url), page_cache(url=redis.url)]
    upstream = Upstream(["old"], ["new"], ["newer"])
    caller = bearer_caller()
    await replicas[0].get_or_fetch(caller, "r", upstream)
    await asyncio.sleep(0.25)
    upstream.gate.clear()
    reads = [replica.get_or_fetch(bearer_caller(), "r", upstream) for replica in replicas]
    assert await asyncio.gather(*reads) == [["old"], ["old"]]
    upstream.gate.set()
    await settle()
    assert len(upstream.callers) == 2
    assert await replicas[1].get_or_fetch(bearer_caller(), "r", upstream) == ["new"]
    for replica in replicas:
        await replica.close()


async def test_a_failed_refresh_keeps_the_stale_page_and_a_refusal_drops_it() -> None:
    """stale-if-error: a refresh that fails (5xx) leaves the page served; one answered 401
    drops it, so the next read asks the upstream itself and gets the refusal."""
    cache = page_cache()
    upstream = Upstream(
        ["old"],
        UpstreamUnavailableError("down"),
        UnauthenticatedError("revoked"),
        UnauthenticatedError("revoked"),
    )
    await cache.get_or_fetch(bearer_caller(), "r", upstream)
    await asyncio.sleep(0.25)
    assert await cache.get_or_fetch(bearer_caller(), "r", upstream) == ["old"]
    await settle()
    assert await cache.get_or_fetch(bearer_caller(), "r", upstream) == ["old"]
    await settle()
    with pytest.raises(UnauthenticatedError):
        await cache.get_or_fetch(bearer_caller(), "r", upstream)
    assert len(upstream.callers) == 4


async def test_past_the_stale_window_or_with_it_off_a_read_waits_for_the_upstream() -> None:
    """After TTL + stale, or with `GATEWAY_CACHE_STALE=0` right after the TTL, a read is a
    miss: it waits for the upstream and gets its error."""
    for ttl, stale, wait in ((0.1, 0.1, 0.25), (0.1, 0.0, 0.15)):
        cache = page_cache(ttl=ttl, stale=stale)
        upstream = Upstream(["old"], UpstreamUnavailableError("down"))
        await cache.get_or_fetch(bearer_caller(), "r", upstream)
        await asyncio.sleep(wait)
        with pytest.raises(UpstreamUnavailableError):
            await cache.get_or_fetch(bearer_caller(), "r", upstream)


async def test_another_credential_never_gets_a_stale_page() -> None:
    """Stale pages are keyed like fresh ones: another token's read fetches its own."""
    cache = page_cache()
    upstream = Upstream(["team a"], ["team b"])
    await cache.get_or_fetch(bearer_caller("Bearer a"), "r", upstream)
    await asyncio.sleep(0.25)
    other = bearer_caller("Bearer b")
    assert await cache.get_or_fetch(other, "r", upstream) == ["team b"]
    assert other.ledger.stale_age is None


def test_the_next_block_is_worth_fetching_when_a_page_ends_in_its_last_quarter() -> None:
    """Pages of 20 (21 rows fetched) in blocks of 100: only the page that ends past row 75
    of a full block asks for the next block; a short block (the list's end) asks for none."""
    fetching = Fetching(cap=500, block_size=100)
    wanted = {}
    for skip in range(0, 200, 20):
        plan = fetching.plan(skip, 21)
        wanted[skip] = fetching.next_block(plan, plan.calls[-1][1])
    assert wanted == {
        0: None,
        20: None,
        40: None,
        60: (100, 100),
        80: None,  # its last row is 100: block 100-199's first, not its last quarter
        100: None,
        120: None,
        140: None,
        160: (200, 100),
        180: None,
    }
    plan = fetching.plan(60, 21)
    assert fetching.next_block(plan, 37) is None
    assert Fetching(cap=500, block_size=0).next_block(Fetching(500).plan(60, 21), 21) is None


class Outage:
    """ASGI wrapper: the sample upstream, answering 503 while `down`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.down = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.down:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"down"})
            return
        await self.app(scope, receive, send)


PAGE = "{ jobs(first: 3) { nodes { jobId metadata { status } } } }"


async def test_while_the_upstream_fails_the_stale_page_is_served_and_says_so() -> None:
    """Over the gateway: past the TTL with the upstream answering 503, the page arrives
    without an error, with `extensions.stale` and its age; once the upstream is back and the
    stale answer (kept a second) is gone, the refreshed answer has no such extension."""
    sample = SampleUpstream()
    outage = Outage(sample.app())
    app = in_process_gateway(outage, cache_ttl=0.2, upstream_retries=0)
    async with asgi_client(app) as client:
        fresh = await graphql(client, PAGE)
        assert "extensions" not in fresh
        await asyncio.sleep(0.3)
        outage.down = True
        stale = await graphql(client, PAGE)
        assert stale["data"] == fresh["data"]
        assert "errors" not in stale
        assert stale["extensions"]["stale"] is True
        assert stale["extensions"]["age"] >= 0.3
        outage.down = False
        # The stale answer is kept whole for a second (repeats are not executed again); the
        # next execution refreshes the page, and within a few seconds answers are fresh.
        assert (await graphql(client, PAGE))["extensions"]["stale"] is True
        for _ in range(40):
            await asyncio.sleep(0.1)
            if "extensions" not in await graphql(client, PAGE):
                break
        else:
            raise AssertionError("the page was not refreshed after the upstream came back")


async def test_a_mutation_drops_stale_pages_too() -> None:
    """After a write, the caller's next read is the upstream's new data, not a stale page."""
    sample = SampleUpstream()
    app = in_process_gateway(sample.app(), cache_ttl=0.2)
    auth = {"authorization": "Bearer demo-token-writer"}
    async with asgi_client(app) as client:
        before = await graphql(client, PAGE, headers=auth)
        job = before["data"]["jobs"]["nodes"][0]
        await asyncio.sleep(0.3)
        sample.jobs_of("apiteam")[0]["metadata"]["status"] = "InProgress"
        client_job_id = sample.jobs_of("apiteam")[0]["metadata"]["clientJobId"]
        abort = "mutation($id: ID!) { abortJob(input: {clientJobId: $id}) { job { jobId } } }"
        await graphql(client, abort, {"id": client_job_id}, headers=auth)
        after = await graphql(client, PAGE, headers=auth)
    assert after["data"]["jobs"]["nodes"][0]["jobId"] == job["jobId"]
    assert after["data"]["jobs"]["nodes"][0]["metadata"]["status"] == "Aborted"
    assert "extensions" not in after


FORWARD = """query Forward($after: String) {
  jobs(first: 20, after: $after) { pageInfo { endCursor } nodes { jobId } }
}"""


async def page_forward(client: Any, sample: SampleUpstream, pages: int) -> list[int]:
    """Page forward `pages` times; the upstream calls each page caused (after prefetches)."""
    calls, after = [], None
    for _ in range(pages):
        before = len(sample.seen)
        answer = await graphql(client, FORWARD, {"after": after})
        after = answer["data"]["jobs"]["pageInfo"]["endCursor"]
        await settle()
        calls.append(len(sample.seen) - before)
    return calls


@pytest.mark.parametrize(
    ("prefetch", "expected"),
    [
        # Page 4 (rows 60-80, and 81 for hasNextPage) starts block 100-199 in the background;
        # page 9 (160-181) starts 200-299: no page ever waits for a block.
        (4, [1, 0, 0, 1, 0, 0, 0, 0, 1]),
        # Off: page 5 (80-101) waits for block 100-199.
        (0, [1, 0, 0, 0, 1, 0, 0, 0, 0]),
    ],
)
async def test_paging_forward_finds_the_next_block_already_fetched(
    prefetch: int, expected: list[int]
) -> None:
    """With prefetch on, the page that ends in a block's last quarter fetches the next block
    in the background (its call shows up on that page), so the page that crosses into it makes
    none; with `GATEWAY_PREFETCH_CONCURRENCY=0` the crossing page waits for it."""
    sample = SampleUpstream()
    app = in_process_gateway(sample.app(), prefetch_concurrency=prefetch)
    async with asgi_client(app) as client:
        assert await page_forward(client, sample, 9) == expected


async def test_a_prefetch_costs_the_request_nothing_and_is_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The prefetch is not one of the request's upstream calls (the page that started it
    logs none: its block was kept) and shows in `gateway_cache_prefetches_total`."""
    sample = SampleUpstream()
    app = in_process_gateway(sample.app())
    caplog.set_level(logging.INFO, logger="gateway.request")
    async with asgi_client(app) as client:
        assert await page_forward(client, sample, 4) == [1, 0, 0, 1]
        metrics = (await client.get("/metrics")).text
    logged = [record for record in caplog.records if record.name == "gateway.request"]
    assert [record.fields["upstream_calls"] for record in logged] == [1, 0, 0, 0]  # type: ignore[attr-defined]
    assert 'gateway_cache_prefetches_total{result="fetched"} 1.0' in metrics


async def test_a_job_of_a_page_just_read_is_refetched_without_a_call() -> None:
    """`node(id:)` for a job of a page read within the TTL is answered from that page (each
    row is kept as its `GET /jobs/v1/bson/{jobId}` answer); another token's is not."""
    sample = SampleUpstream()
    app = in_process_gateway(sample.app())
    async with asgi_client(app) as client:
        page = await graphql(client, "{ jobs(first: 5) { nodes { id jobId } } }")
        job = page["data"]["jobs"]["nodes"][3]
        calls = len(sample.seen)
        node = "query($id: ID!) { node(id: $id) { ... on Job { jobId } } }"
        answer = await graphql(client, node, {"id": job["id"]})
        assert answer["data"]["node"]["jobId"] == job["jobId"]
        assert len(sample.seen) == calls
        await graphql(
            client, node, {"id": job["id"]}, headers={"authorization": "Bearer demo-token-writer"}
        )
        assert len(sample.seen) == calls + 1


async def test_an_expired_response_is_rebuilt_once_for_the_requests_in_flight() -> None:
    """When a kept response expires, the identical requests in flight at that moment are not
    each executed: one rebuilds it, the others wait and are served what it kept."""
    sample = SampleUpstream()
    app = in_process_gateway(sample.app(), cache_ttl=0.4)
    async with asgi_client(app) as client:
        await graphql(client, PAGE)
        await asyncio.sleep(0.45)
        before = (await client.get("/metrics")).text
        answers = await asyncio.gather(*(graphql(client, PAGE) for _ in range(20)))
        after = (await client.get("/metrics")).text
    assert all(answer["data"] == answers[0]["data"] for answer in answers)

    def misses(metrics: str) -> float:
        line = 'gateway_cache_operations_total{backend="response",result="miss"}'
        found = [row for row in metrics.splitlines() if row.startswith(line)]
        return float(found[0].split()[-1]) if found else 0.0

    assert misses(after) - misses(before) == 1
