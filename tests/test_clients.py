"""Real JavaScript tools against a real gateway over TCP: what a frontend built with Apollo
Client 4 and graphql-codegen sees of partial results, batching and trusted documents."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gateway.background import BackgroundServer
from gateway.sample_upstream import SampleUpstream
from tests.conftest import NODE_DIR, run_node, served_gateway

REPOSITORY = Path(__file__).parent.parent

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


def test_urql_gets_partial_data_over_get(
    node_clients: Path, gateway_server: BackgroundServer
) -> None:
    """urql (its default GET for queries) gets `mine` beside `jobs`' FORBIDDEN too, as
    `result.data` and `result.error.graphQLErrors`."""
    got = run_node("urql.mjs", f"{gateway_server.url}/graphql", "demo-token-read-only", OVERVIEW)
    assert got["methods"] == ["GET"]
    assert got["networkError"] is None
    assert got["data"]["jobs"] is None
    assert len(got["data"]["mine"]["nodes"]) == 5
    assert [(error["path"], error["extensions"]["code"]) for error in got["errors"]] == [
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


def run_codegen(out: Path) -> Path:
    """graphql-codegen's client preset over tests/node/operations, as a frontend's build runs
    it: persisted documents hashed with SHA-256, types for an error-handling client."""
    config = {
        "schema": str(REPOSITORY / "schema.graphql"),
        "documents": [str(NODE_DIR / "operations" / "*.graphql")],
        "generates": {
            f"{out}/": {
                "preset": "client",
                "presetConfig": {
                    "persistedDocuments": {"hashAlgorithm": "sha256"},
                    "fragmentMasking": False,
                },
                "config": {"nullability": {"errorHandlingClient": True}},
            }
        },
    }
    config_file = out.parent / "codegen.json"
    config_file.write_text(json.dumps(config))
    finished = subprocess.run(
        [str(NODE_DIR / "node_modules" / ".bin" / "graphql-codegen"), "--config", str(config_file)],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return out


@pytest.fixture
def generated(node_clients: Path, tmp_path: Path) -> Path:
    return run_codegen(tmp_path / "gql")


def test_a_codegen_built_frontend_runs_on_trusted_documents_alone(
    generated: Path, sample_server: BackgroundServer
) -> None:
    """With codegen's persisted-documents.json as GATEWAY_TRUSTED_DOCUMENTS, Apollo Client's
    PersistedQueryLink with codegen's hashes gets its data sending hashes only, and a
    hand-written query is refused with PERSISTED_DOCUMENT_REQUIRED."""
    manifest = generated / "persisted-documents.json"
    with served_gateway(sample_server.url, trusted_documents=manifest) as gateway:
        got = run_node("codegen.mjs", str(generated), f"{gateway.url}/graphql", "demo-token")
    assert set(got["hashes"]) == {"Overview", "JobDetail"}
    assert set(got["hashes"].values()) == set(json.loads(manifest.read_text()))
    assert len(got["overview"]["jobs"]["nodes"]) == 20
    assert got["detail"]["node"]["id"] == got["overview"]["jobs"]["nodes"][0]["id"]
    assert all("query" not in body for body in got["sent"][:2])
    assert got["handWritten"]["data"] is None
    assert [error["extensions"]["code"] for error in got["handWritten"]["errors"]] == [
        "PERSISTED_DOCUMENT_REQUIRED"
    ]


def test_codegen_types_fields_that_fail_only_with_an_error_as_non_null(generated: Path) -> None:
    """@semanticNonNull reaches generated types: with `errorHandlingClient`, codegen types
    `jobs`, `myJobs` and `totalCount` non-null although the schema makes them nullable."""
    types = (generated / "graphql.ts").read_text()
    (overview,) = re.findall(r"^export type OverviewQuery = (.*);$", types, re.MULTILINE)
    assert "jobs: { __typename?: 'JobConnection', totalCount: number," in overview
    assert "mine: { __typename?: 'JobConnection'" in overview


def test_client_paging_keeps_working_across_short_filtered_pages(
    node_clients: Path, sample_server: BackgroundServer, sample_upstream: SampleUpstream
) -> None:
    """With scans of 30 rows, pages of a sparse filter come back short or empty; Apollo
    Client's relayStylePagination (pages merged as fetchMore merges them) and urql paging on
    endCursor both end with exactly the matching jobs, in list order."""
    expected = [
        job["jobId"]
        for job in sample_upstream.jobs_of("apiteam")
        if "audit" in job["metadata"]["jobTitle"].casefold()
        and job["metadata"]["status"] == "Abandoned"
    ]
    sparse = {"titleContains": "Audit", "status": ["Abandoned"]}
    with served_gateway(sample_server.url, filter_scan_rows=30) as gateway:
        got = run_node("filtered.mjs", f"{gateway.url}/graphql", "demo-token", json.dumps(sparse))
    assert got["shortPages"] > 0
    assert got["apolloJobs"] == expected
    assert got["urqlJobs"] == expected
