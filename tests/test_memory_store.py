"""The byte budget of process memory: pages, whole responses and persisted queries together."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.memory_store import ENTRY_OVERHEAD, MemoryStore

from .conftest import Clock, PerTokenUpstream, asgi_client, graphql, in_process_gateway

pytestmark = pytest.mark.anyio


def test_entries_leave_least_recently_used_first_to_stay_within_the_bytes() -> None:
    """Three entries fit; a fourth evicts the one used longest ago, not the oldest stored."""
    store = MemoryStore(3 * (100 + ENTRY_OVERHEAD))
    for key in "abc":
        store.put(key, key, 100, None)
    assert store.get("a") == "a"  # a is now the most recent
    store.put("d", "d", 100, None)
    assert [store.get(key) for key in "abcd"] == ["a", None, "c", "d"]
    assert store.bytes_used == 3 * (100 + ENTRY_OVERHEAD)


def test_expired_entries_are_gone_and_oversized_ones_never_kept() -> None:
    """An entry is gone once its ttl passed; one larger than the budget is refused."""
    clock = Clock()
    store = MemoryStore(10_000, clock)
    store.put("k", "v", 10, ttl=5)
    clock.now += 4.9
    assert store.get("k") == "v"
    clock.now += 0.1
    assert store.get("k") is None
    assert store.bytes_used == 0
    assert not store.put("huge", "v", 10_000, None)
    assert len(store) == 0


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 5000)), max_size=200))
def test_the_budget_always_holds(puts: list[tuple[int, int]]) -> None:
    """Whatever is stored, the bytes counted never pass the budget and equal what is kept."""
    store = MemoryStore(20_000)
    sizes: dict[int, int] = {}
    for key, size in puts:
        if store.put(key, "v", size, None):
            sizes[key] = size + ENTRY_OVERHEAD
        else:
            sizes.pop(key, None)
        assert store.bytes_used <= 20_000
    kept = {key: size for key, size in sizes.items() if store.get(key) is not None}
    assert store.bytes_used == sum(kept.values())


async def test_many_tokens_with_big_pages_stay_within_the_cache_budget() -> None:
    """300 tokens each asking for 100 jobs (one 100-row block and one response apiece, well
    over the budget) leave the pages and responses kept within GATEWAY_CACHE_MAX_BYTES, and
    every caller still gets its own page."""
    upstream = PerTokenUpstream(size=250)
    budget = 256 << 10
    app = in_process_gateway(upstream.transport(), cache_ttl=60, cache_max_bytes=budget)
    query = "{ jobs(first: 100) { nodes { jobId team } } }"
    async with asgi_client(app) as client:
        for n in range(300):
            body = await graphql(client, query, headers={"authorization": f"Bearer t{n}"})
            assert body["data"]["jobs"]["nodes"][0] == {"jobId": f"t{n}:0", "team": f"t{n}"}
    store: MemoryStore = app.state.memory
    assert 0 < store.bytes_used <= budget
    assert len(store) < 3 * 300  # two blocks and a response per token did not all fit
