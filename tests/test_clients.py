"""Real JavaScript clients (Apollo Client 4) against a real gateway over TCP: what a frontend
sees of partial results and batching."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.background import BackgroundServer
from tests.conftest import run_node

pytestmark = pytest.mark.e2e

OVERVIEW = """
query Overview {
  jobs(first: 20) { totalCount nodes { jobId } }
  mine: myJobs(first: 5) { nodes { jobId metadata { status } } }
}
"""


def apollo(server: BackgroundServer, token: str, link: str, *operations: str) -> Any:
    documents = json.dumps([{"query": operation} for operation in operations])
    return run_node("apollo.mjs", f"{server.url}/graphql", token, link, documents)


def test_a_field_the_token_may_not_read_leaves_the_others_data(
    node_clients: Path, gateway_server: BackgroundServer
) -> None:
    """With a token that may read `myJobs` but not `jobs`, Apollo Client (errorPolicy all) gets
    `mine` in full beside a FORBIDDEN error at `jobs`, not `data: null`."""
    (result,) = apollo(gateway_server, "demo-token-read-only", "http", OVERVIEW)["results"]
    assert result["data"]["jobs"] is None
    assert len(result["data"]["mine"]["nodes"]) == 5
    assert [(error["path"], error["extensions"]["code"]) for error in result["errors"]] == [
        (["jobs"], "FORBIDDEN")
    ]


def test_batch_http_link_sends_one_request_and_gets_each_answer(
    node_clients: Path, gateway_server: BackgroundServer
) -> None:
    """Apollo Client's BatchHttpLink sends three queries in one POST; each gets its own data,
    and one that fails gets its error without touching the others."""
    first = "query First { jobs(first: 2) { nodes { jobId } } }"
    mine = "query Mine { myJobs(first: 1) { nodes { jobId } } }"
    broken = 'query Broken { job(clientJobId: "../admin") { jobId } }'
    got = apollo(gateway_server, "demo-token", "batch", first, mine, broken)
    assert got["requests"] == 1
    first_answer, mine_answer, broken_answer = got["results"]
    assert len(first_answer["data"]["jobs"]["nodes"]) == 2
    assert len(mine_answer["data"]["myJobs"]["nodes"]) == 1
    assert first_answer["errors"] == mine_answer["errors"] == []
    assert broken_answer["data"] == {"job": None}
    assert [error["extensions"]["code"] for error in broken_answer["errors"]] == ["BAD_USER_INPUT"]
