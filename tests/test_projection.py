"""The projection fast path gives exactly graphql-core's results, errors included."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from graphql import GraphQLObjectType, get_named_type

from gateway.error_contract import CodingExecutionContext
from gateway.sample_jobs import sample_team_jobs
from gateway.schema import GatewaySchema, build_schema

from .conftest import Recorder, execute, job_page, make_settings

pytestmark = pytest.mark.anyio


def plain_schema() -> GatewaySchema:
    """The same schema executed by graphql-core's own completion (with only the error
    contract's typed errors on top): the reference."""
    schema = build_schema(make_settings())
    schema.execution_context_class = CodingExecutionContext
    return schema


def random_selection(rng: random.Random, type_: GraphQLObjectType, depth: int = 0) -> str:
    """A random subset of the fields of `type_`, with random aliases and __typename."""
    parts = []
    for name, field in type_.fields.items():
        if rng.random() < 0.5:
            continue
        inner_type = get_named_type(field.type)
        alias = f"a{rng.randrange(1000)}: " if rng.random() < 0.2 else ""
        if isinstance(inner_type, GraphQLObjectType):
            if depth < 4:
                inner = random_selection(rng, inner_type, depth + 1)
                parts.append(f"{alias}{name} {{ {inner} }}")
        else:
            parts.append(f"{alias}{name}")
    if rng.random() < 0.3 or not parts:
        parts.append("__typename")
    return " ".join(parts)


def corrupt(rng: random.Random, value: Any) -> Any:
    """The same JSON with a few values of the wrong type, nulls and junk mixed in."""
    if isinstance(value, dict):
        return {key: corrupt(rng, item) for key, item in value.items() if rng.random() > 0.03}
    if isinstance(value, list):
        return [corrupt(rng, item) for item in value]
    roll = rng.random()
    if roll < 0.02:
        return None
    if roll < 0.04:
        return rng.choice([7, "text", 1.5, True, {"x": 1}, ["y"], "2020-13-01T00:00:00Z"])
    return value


@pytest.mark.parametrize("seed", range(12))
async def test_projection_equals_graphql_core(seed: int) -> None:
    """Random selections over sample jobs, some corrupted: fast and stock executors agree on
    data and on errors (messages and paths)."""
    rng = random.Random(seed)
    jobs = sample_team_jobs("apiteam", 8)
    if seed % 2:
        jobs = [corrupt(rng, copy.deepcopy(job)) for job in jobs]
    schema = build_schema(make_settings())
    job_type = schema._schema.type_map["Job"]
    assert isinstance(job_type, GraphQLObjectType)
    query = (
        "{ jobs(first: 8) { edges { cursor node { "
        + random_selection(rng, job_type)
        + " } } nodes { jobId } pageInfo { hasNextPage startCursor } } }"
    )
    results = []
    for executor_schema in (schema, plain_schema()):
        transport = Recorder(job_page(jobs)).transport()
        result = await execute(transport, query, schema=executor_schema)
        errors = sorted((error.message, tuple(error.path or ())) for error in result.errors or [])
        results.append((result.data, errors))
    assert results[0] == results[1]
