"""Documents built to exhaust the gateway: each is answered quickly, coded, with no upstream call.

These are the known shapes of GraphQL denial of service: fragments that double at each step,
thousands of copies of one field (graphql-core's overlapping-fields rule is quadratic in them),
directives, operations, deep nesting, long fragment chains and cycles. The time bound here is
loose on purpose (a shared machine is noisy); the 50 ms target is measured in
`benchmarks/hostile.py`. Before the limits were checked in linear time the doubling chain took
37 s and the repeated sub-selections 0.7 s.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.schema import build_schema

from .conftest import make_settings, request_context

# Loose: a hundred times what these shapes take once bounded, a fraction of what they took before.
SECONDS = 0.5


def doubling(levels: int, on: str = "Job", leaf: str = "jobId") -> str:
    """Fragments that each spread the next twice: 2^levels copies of `leaf` once expanded."""
    chain = "".join(f"fragment F{i} on {on} {{ ...F{i + 1} ...F{i + 1} }}\n" for i in range(levels))
    return chain + f"fragment F{levels} on {on} {{ {leaf} }}\n"


SHAPES: list[tuple[str, str, dict[str, Any], str | None]] = [
    (
        "fragment doubling, 23 levels",
        "{ jobs { nodes { ...F0 } } }\n" + doubling(23),
        {},
        "TOO_MANY_REPEATED_FIELDS",
    ),
    (
        "fragment doubling at the root",
        "{ ...F0 }\n" + doubling(23, "Query", "jobs { nodes { jobId } }"),
        {},
        "TOO_MANY_REPEATED_FIELDS UPSTREAM_BUDGET_EXCEEDED",
    ),
    (
        "fragment doubling of aliases",
        "{ jobs { nodes { ...F0 } } }\n" + doubling(23, leaf="a: jobId"),
        {"max_field_repeats": 1_000_000_000},
        "TOO_MANY_ALIASES",
    ),
    (
        "1,990 copies of one field",
        "{ jobs { nodes { " + "jobId " * 1990 + "} } }",
        {},
        "TOO_MANY_REPEATED_FIELDS",
    ),
    (
        "490 copies of one field with a selection",
        "{ jobs { nodes { " + "metadata { jobTitle } " * 490 + "} } }",
        {},
        "TOO_MANY_REPEATED_FIELDS",
    ),
    (
        "copies hidden in inline fragments",
        "{ jobs { nodes { " + "... on Job { metadata { jobTitle } } " * 150 + "} } }",
        {},
        "TOO_MANY_REPEATED_FIELDS",
    ),
    (
        "270 directives on one field",
        "{ jobs { nodes { jobId " + "@include(if: true) " * 270 + "} } }",
        {},
        "GRAPHQL_VALIDATION_FAILED",
    ),
    (
        "990 unknown directives",
        "{ jobs { nodes { jobId " + "@a " * 990 + "} } }",
        {},
        "GRAPHQL_VALIDATION_FAILED",
    ),
    (
        "300 operations sharing a fragment",
        "".join(f"query Q{i} {{ ...F }}\n" for i in range(300))
        + "fragment F on Query { __typename }",
        {"operation_name": "Q299"},
        None,
    ),
    (
        "lists nested 990 deep in an argument",
        "{ jobs(first: " + "[" * 990 + "1" + "]" * 990 + ") { nodes { jobId } } }",
        {},
        "GRAPHQL_PARSE_FAILED",
    ),
    (
        "selections nested 400 deep",
        "{ " + "jobs { nodes { " * 200 + "jobId" + " } }" * 200 + " }",
        {},
        "GRAPHQL_PARSE_FAILED",
    ),
    (
        "a chain of 1,500 fragments",
        "{ jobs { nodes { ...F0 } } }\n"
        + "".join(f"fragment F{i} on Job {{ ...F{i + 1} }}\n" for i in range(1500))
        + "fragment F1500 on Job { jobId }",
        {"max_tokens": 20000},
        "GRAPHQL_VALIDATION_FAILED",  # graphql-core's own depth guard on spreads
    ),
    (
        "a fragment cycle",
        "{ jobs { nodes { ...A } } } fragment A on Job { ...B } fragment B on Job { ...A }",
        {},
        "GRAPHQL_VALIDATION_FAILED",
    ),
    (
        "60 KB of comments",
        "#" + "x" * 60_000 + "\n{ jobs { nodes { jobId } } }",
        {},
        None,
    ),
]


def cpu_seconds(run: Callable[[], object]) -> float:
    """This thread's CPU time for `run()`, with the collector held off: a full collection of
    the test session's heap is noise here, not the cost of a document."""
    gc.disable()
    try:
        started = time.thread_time()
        run()
        return time.thread_time() - started
    finally:
        gc.enable()


def empty_upstream() -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(200, json=[]))


@pytest.mark.parametrize(
    ("query", "overrides", "code"),
    [pytest.param(query, overrides, code, id=name) for name, query, overrides, code in SHAPES],
)
def test_hostile_shapes_are_answered_quickly(
    query: str, overrides: dict[str, Any], code: str | None
) -> None:
    """Each shape gets its code (or runs) well within the time bound."""
    overrides = dict(overrides)
    operation_name = overrides.pop("operation_name", None)
    schema = build_schema(make_settings(**overrides))
    context = request_context(empty_upstream(), **overrides)
    results = []
    elapsed = cpu_seconds(
        lambda: results.append(
            asyncio.run(schema.execute(query, context_value=context, operation_name=operation_name))
        )
    )
    (result,) = results
    codes = {(error.extensions or {}).get("code") for error in result.errors or []}
    assert codes == set((code or "").split()), [error.message for error in result.errors or []]
    assert elapsed < SECONDS, f"{elapsed:.3f} s"
    assert context.caller().budget.spent == (1 if "jobs" in str(result.data) else 0)


FIELDS = ["jobId", "team", "excluded", "a: jobId", "b: team", "metadata { jobTitle status }"]


@st.composite
def documents(draw: st.DrawFn) -> str:
    """A query over `Job` with random fragments: repeated fields, spreads (doubling and
    cycles included), inline fragments."""
    count = draw(st.integers(1, 12))

    def body(index: int) -> str:
        parts = draw(
            st.lists(
                st.one_of(
                    st.sampled_from(FIELDS),
                    st.integers(0, count - 1).map(lambda target: f"...F{target}"),
                    st.sampled_from(FIELDS).map(lambda field: f"... on Job {{ {field} }}"),
                ),
                min_size=1,
                max_size=8,
            )
        )
        return " ".join(parts * draw(st.integers(1, 3)))

    fragments = "".join(f"fragment F{i} on Job {{ {body(i)} }}\n" for i in range(count))
    return "{ jobs(first: 2) { nodes { ...F0 } } }\n" + fragments


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_generated_documents_cost_time_linear_in_their_size(query: str) -> None:
    """Parse, limits and validation take at most 20 ms plus 100 µs per byte, and never fail
    unexpectedly, whatever the fragments do."""
    schema = build_schema(make_settings())
    context = request_context(empty_upstream())
    results = []
    elapsed = cpu_seconds(
        lambda: results.append(asyncio.run(schema.execute(query, context_value=context)))
    )
    (result,) = results
    codes = {(error.extensions or {}).get("code") for error in result.errors or []}
    assert "INTERNAL_SERVER_ERROR" not in codes
    assert elapsed < 0.02 + 100e-6 * len(query), f"{elapsed * 1000:.1f} ms, {len(query)} B: {query}"
