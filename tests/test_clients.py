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
