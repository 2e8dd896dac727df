"""Invalidation per credential, the operation writes call: one credential's pages and
responses are forgotten, in memory and in a real Redis (by generation), and no one else's."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from gateway.cache import PageCache, credential_secret, new_page_cache
from gateway.caller import Caller, CredentialDigests, UpstreamBudget
from gateway.memory_store import MemoryStore
from gateway.metrics import Metrics
from gateway.response_cache import ResponseCache
from gateway.upstream import CircuitBreaker, UpstreamClient

from .conftest import PerTokenUpstream, make_settings
from .redis_process import RedisProcess

pytestmark = pytest.mark.anyio


class Gateway:
    """An upstream client over `PerTokenUpstream`, reading through the page cache `settings`
    ask for, beside a response cache in the same memory."""

    def __init__(self, upstream: PerTokenUpstream, **settings: object) -> None:
        self.settings = make_settings(cache_ttl=30, cache_key_secret="s", **settings)
        memory = MemoryStore(self.settings.cache_max_bytes)
        self.responses = ResponseCache(memory)
        self.cache: PageCache = new_page_cache(self.settings, Metrics(), memory, self.responses)
        self.client = UpstreamClient(
            upstream.transport(), self.settings, CircuitBreaker(5, 1), self.cache
        )
        self.digests = CredentialDigests(credential_secret(self.settings))

    def caller(self, token: str) -> Caller:
        authorization = f"Bearer {token}"
        return Caller(authorization, self.digests.digest(authorization), 1e12, UpstreamBudget(99))

    async def first_page(self, token: str) -> None:
        """Read the first page as the HTTP layer would: with the credential's generation."""
        caller = self.caller(token)
        generation = await self.cache.generation(caller.credential)
        assert generation is not None
        caller = dataclasses.replace(caller, generation=generation)
        await self.client.team_jobs(caller, skip=0, limit=20)


@pytest.fixture(params=["memory", "redis"])
async def gateway(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[Gateway, PerTokenUpstream]]:
    upstream = PerTokenUpstream()
    if request.param == "redis":
        redis: RedisProcess = request.getfixturevalue("redis")
        made = Gateway(upstream, cache_url=redis.url)
    else:
        made = Gateway(upstream)
    yield made, upstream
    await made.cache.close()


async def test_invalidation_forgets_one_credential_only(
    gateway: tuple[Gateway, PerTokenUpstream],
) -> None:
    """After alice's pages are invalidated her next read calls the upstream; bob's does not."""
    made, upstream = gateway
    for token in ("alice", "bob", "alice", "bob"):
        await made.first_page(token)
    assert upstream.total == 2
    await made.cache.invalidate(made.caller("alice").credential)
    for token in ("alice", "bob"):
        await made.first_page(token)
    assert upstream.calls[("alice", "skip=0&limit=100")] == 2
    assert upstream.calls[("bob", "skip=0&limit=100")] == 1


async def test_invalidation_forgets_the_credentials_responses() -> None:
    """Whole responses built on the invalidated pages are dropped too; others' are kept."""
    made = Gateway(PerTokenUpstream())
    alice, bob = made.caller("alice").credential, made.caller("bob").credential
    keys = {}
    for credential in (alice, bob):
        key = made.responses.key_for(credential, "{ jobs { nodes { jobId } } }", None, None, "j")
        assert key is not None
        keys[credential] = key
        made.responses.put(key, b"{}", "j", expires_at=1e12)
    await made.cache.invalidate(alice)
    kept = [made.responses.get(keys[credential]) for credential in (alice, bob)]
    assert kept[0] is None
    assert kept[1] is not None


async def test_a_fetch_in_flight_during_invalidation_is_not_kept() -> None:
    """A page read before a write but answered after its invalidation is served to the request
    that asked, but not stored: the next read calls the upstream again."""
    upstream = PerTokenUpstream(delay=0.2)
    made = Gateway(upstream)
    reading = asyncio.create_task(made.first_page("alice"))
    await asyncio.sleep(0.05)
    await made.cache.invalidate(made.caller("alice").credential)
    await reading
    upstream.delay = 0
    await made.first_page("alice")
    assert upstream.total == 2


async def test_an_unknown_generation_neither_reads_nor_keeps(
    gateway: tuple[Gateway, PerTokenUpstream],
) -> None:
    """A request whose write generation could not be read (-1: Redis failing) goes to the
    upstream every time and stores nothing, since what is kept may predate its last write."""
    made, upstream = gateway
    await made.first_page("alice")
    blind = dataclasses.replace(made.caller("alice"), generation=-1)
    for _ in range(2):
        await made.client.team_jobs(blind, skip=0, limit=20)
    await made.first_page("alice")
    assert upstream.calls[("alice", "skip=0&limit=100")] == 3
    assert blind.ledger.cache_hits == 0
