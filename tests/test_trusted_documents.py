"""Trusted documents (GATEWAY_TRUSTED_DOCUMENTS): only the manifest's operations run, named by
`documentId` or APQ hash over GET and POST; everything else is refused without an upstream
call; the manifest is checked once, at start."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import documents
from gateway.app import create_app
from gateway.cli import main
from gateway.sample_upstream import SampleUpstream
from gateway.settings import SettingsError

from .conftest import DEMO_AUTH, asgi_client, in_process_gateway, make_settings

pytestmark = pytest.mark.anyio

FIRST_JOBS = "query FirstJobs($n: Int) { jobs(first: $n) { nodes { jobId } } }"
MINE = "query Mine { myJobs(first: 1) { nodes { jobId } } }"
INTROSPECTION = "query Types { __schema { queryType { name } } }"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def manifest_of(tmp_path: Path, *queries: str, name: str = "manifest.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({sha256(query): query for query in queries}))
    return path


@pytest.fixture
def sample() -> SampleUpstream:
    return SampleUpstream(teams={"apiteam": 30})


@pytest.fixture
def app(sample: SampleUpstream, tmp_path: Path) -> Any:
    return in_process_gateway(
        sample.app(), trusted_documents=manifest_of(tmp_path, FIRST_JOBS, MINE)
    )


async def ask(app: Any, method: str = "POST", **params: Any) -> httpx.Response:
    async with asgi_client(app) as client:
        if method == "GET":
            query = {
                key: json.dumps(value) if isinstance(value, dict) else value
                for key, value in params.items()
            }
            return await client.get("/graphql", params=query, headers=DEMO_AUTH)
        return await client.post("/graphql", json=params, headers=DEMO_AUTH)


def codes(response: httpx.Response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json().get("errors", [])]


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_a_document_named_by_document_id_or_apq_hash_runs(app: Any, method: str) -> None:
    """`documentId: "sha256:<hex>"` and the APQ extension's hash both run the manifest's
    document, over POST and GET, with the request's variables."""
    by_id = await ask(app, method, documentId=f"sha256:{sha256(FIRST_JOBS)}", variables={"n": 3})
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": sha256(FIRST_JOBS)}}
    by_hash = await ask(app, method, extensions=persisted, variables={"n": 3})
    assert by_id.status_code == by_hash.status_code == 200
    assert len(by_id.json()["data"]["jobs"]["nodes"]) == 3
    assert by_hash.json() == by_id.json()


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"query": FIRST_JOBS}, "PERSISTED_DOCUMENT_REQUIRED"),
        ({"query": "{ __typename jobs { totalCount } }"}, "PERSISTED_DOCUMENT_REQUIRED"),
        (
            {"documentId": f"sha256:{sha256('{ jobs { totalCount } }')}"},
            "PERSISTED_DOCUMENT_NOT_FOUND",
        ),
        (
            {
                "query": "{ jobs { totalCount } }",
                "extensions": {
                    "persistedQuery": {
                        "version": 1,
                        "sha256Hash": sha256("{ jobs { totalCount } }"),
                    }
                },
            },
            "PERSISTED_DOCUMENT_NOT_FOUND",
        ),
    ],
    ids=["free-form", "free-form-with-introspection", "unknown-id", "apq-registration"],
)
async def test_anything_else_is_refused_without_an_upstream_call(
    app: Any, sample: SampleUpstream, params: dict[str, Any], code: str
) -> None:
    """A free-form document, an unknown id, or an APQ registration attempt: a request error
    with its code (400 with graphql-response+json), and the upstream sees nothing."""
    response = await ask(app, **params)
    assert (response.status_code, codes(response)) == (200, [code])
    assert "data" not in response.json()
    async with asgi_client(app) as client:
        strict = await client.post(
            "/graphql",
            json=params,
            headers={**DEMO_AUTH, "accept": "application/graphql-response+json"},
        )
    assert strict.status_code == 400
    assert list(sample.seen) == []


async def test_a_malformed_document_id_is_a_bad_request(app: Any) -> None:
    """A documentId that is not `sha256:<64 hex>` is 400 BAD_REQUEST."""
    response = await ask(app, documentId="md5:abc")
    assert (response.status_code, codes(response)) == (400, ["BAD_REQUEST"])


async def test_introspection_follows_its_own_switch(sample: SampleUpstream, tmp_path: Path) -> None:
    """A free-form introspection-only document runs while introspection is on (GraphiQL's
    explorer, codegen's schema download), and is refused when it is off."""
    manifest = manifest_of(tmp_path, FIRST_JOBS)
    open_app = in_process_gateway(sample.app(), trusted_documents=manifest)
    closed_app = in_process_gateway(sample.app(), trusted_documents=manifest, introspection=False)
    opened = await ask(open_app, query=INTROSPECTION)
    closed = await ask(closed_app, query=INTROSPECTION)
    assert opened.json() == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
    assert codes(closed) == ["PERSISTED_DOCUMENT_REQUIRED"]


async def test_trusted_documents_are_parsed_at_start_not_per_request(
    sample: SampleUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests for trusted documents never parse or validate: the checked documents were
    pinned when the app was built."""
    app = in_process_gateway(sample.app(), trusted_documents=manifest_of(tmp_path, FIRST_JOBS))

    def no_parsing(*_args: object) -> None:
        raise AssertionError("a trusted document was parsed per request")

    monkeypatch.setattr(documents, "parse_limited", no_parsing)
    monkeypatch.setattr(documents, "_validate", no_parsing)
    for _ in range(3):
        response = await ask(app, documentId=f"sha256:{sha256(FIRST_JOBS)}")
        assert len(response.json()["data"]["jobs"]["nodes"]) == 20


async def test_a_batch_of_document_ids_runs(app: Any) -> None:
    """Batched operations name their documents too."""
    async with asgi_client(app) as client:
        response = await client.post(
            "/graphql",
            json=[{"documentId": f"sha256:{sha256(query)}"} for query in (MINE, FIRST_JOBS)],
            headers=DEMO_AUTH,
        )
    mine, first = response.json()
    assert len(mine["data"]["myJobs"]["nodes"]) == 1
    assert len(first["data"]["jobs"]["nodes"]) == 20


async def test_a_document_id_without_a_manifest_is_not_found(sample: SampleUpstream) -> None:
    """Without GATEWAY_TRUSTED_DOCUMENTS, a documentId alone cannot run: NOT_FOUND, no call."""
    response = await ask(in_process_gateway(sample.app()), documentId=f"sha256:{sha256(MINE)}")
    assert codes(response) == ["PERSISTED_DOCUMENT_NOT_FOUND"]
    assert list(sample.seen) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({sha256("{ nope }"): "{ nope }"}, "cannot run here: Cannot query field 'nope'"),
        ({sha256("{ jobs {"): "{ jobs {"}, "does not parse"),
        (
            {
                sha256(
                    q := "{ " + " ".join(f"a{i}: jobs {{ totalCount }}" for i in range(20)) + " }"
                ): q
            },
            "cannot run here",
        ),
        ({"0" * 40: MINE}, 'persistedDocuments.hashAlgorithm to "sha256"'),
        ([MINE], "must be a JSON object"),
    ],
    ids=["invalid", "unparseable", "over-the-limits", "sha1-keys", "not-an-object"],
)
def test_a_bad_manifest_stops_the_gateway_naming_the_document(
    tmp_path: Path, content: object, message: str
) -> None:
    """A document that does not parse, validate or fit the limits, a key that is not a
    SHA-256, or a manifest of the wrong shape: the app is not built, and the error says
    which document (its hash) and why."""
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(content))
    with pytest.raises(SettingsError, match="GATEWAY_TRUSTED_DOCUMENTS") as raised:
        create_app(make_settings(trusted_documents=path))
    assert message in str(raised.value)
    if isinstance(content, dict) and len(next(iter(content))) == 64:
        assert next(iter(content)) in str(raised.value)


def test_serve_refuses_to_start_with_a_bad_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`serve` exits with status 2 and a one-line message naming the bad document's hash."""
    bad = "{ nope }"
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({sha256(bad): bad}))
    environ = {"GATEWAY_UPSTREAM_URL": "http://127.0.0.1:9", "GATEWAY_TRUSTED_DOCUMENTS": str(path)}
    for workers in ("1", "2"):
        assert main(["serve", "--workers", workers, "--port", "0"], environ) == 2
        error = capsys.readouterr().err
        assert error.startswith("jobs-gateway: configuration error: GATEWAY_TRUSTED_DOCUMENTS")
        assert sha256(bad) in error
