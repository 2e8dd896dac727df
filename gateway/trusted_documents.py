"""Trusted documents: with `GATEWAY_TRUSTED_DOCUMENTS` set, only the operations in a manifest run.

The manifest is a JSON object `{"<sha256 hex>": "<document>", ...}`: what graphql-codegen's
client preset writes with `persistedDocuments: true` (`persisted-documents.json`), and what
Relay's compiler writes with `persistConfig: {file, algorithm: "SHA256"}`. It is read once, at
start: every document is parsed and checked there (limits and validation, `DocumentChecks`),
and a bad one stops the gateway with a message naming its hash. The checked documents are
pinned in the schema's document map, so a request never parses or validates one again.

A request names its document by
- `documentId: "sha256:<hex>"` (the GraphQL-over-HTTP persisted-documents proposal), in the
  POST body or the GET query string, or
- the APQ extension, `extensions.persistedQuery.sha256Hash` (what Apollo Client's
  persisted-queries link sends with codegen's hashes).
A free-form `query` is refused (`PERSISTED_DOCUMENT_REQUIRED`), except a document made only of
introspection fields while introspection is on, so GraphiQL's schema explorer and codegen's
schema download keep working; an unknown id is `PERSISTED_DOCUMENT_NOT_FOUND`. Neither reaches
the upstream, and the APQ store never registers anything: the manifest is the whole list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSchema,
    GraphQLSyntaxError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

from gateway.documents import DocumentCache, DocumentChecks, parse_limited
from gateway.graphql_request import GraphQLParams, RequestRejectedError
from gateway.persisted_queries import PersistedQueries, persisted_hash

PERSISTED_DOCUMENT_REQUIRED: Final = "PERSISTED_DOCUMENT_REQUIRED"
PERSISTED_DOCUMENT_NOT_FOUND: Final = "PERSISTED_DOCUMENT_NOT_FOUND"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_DOCUMENT_ID = re.compile(r"sha256:([0-9a-fA-F]{64})")


class TrustedDocumentError(Exception):
    """A request the trusted-document list does not allow; a request error with `code`."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class ManifestError(ValueError):
    """The manifest cannot be used; the message names the file and, if one, the document."""


def document_digest(document_id: str) -> str:
    """The SHA-256 (lower-case hex) a `documentId` names; `RequestRejectedError` otherwise."""
    match = _DOCUMENT_ID.fullmatch(document_id)
    if match is None:
        raise RequestRejectedError(400, 'documentId must look like "sha256:<64 hex digits>"')
    return match.group(1).lower()


class TrustedDocuments:
    """The manifest's documents by hash, each checked once."""

    def __init__(self, documents: Mapping[str, str], max_tokens: int, introspection: bool) -> None:
        self._documents = dict(documents)
        self._max_tokens = max_tokens
        self._introspection = introspection

    def __len__(self) -> int:
        return len(self._documents)

    def query_for(self, params: GraphQLParams) -> str:
        """The document to run for a request: the one its id names, else a free-form
        introspection query when introspection is on; `TrustedDocumentError` otherwise."""
        digest = (
            document_digest(params.document_id)
            if params.document_id is not None
            else persisted_hash(params.extensions)
        )
        if digest is not None:
            document = self._documents.get(digest)
            if document is None:
                raise TrustedDocumentError(
                    f"No trusted document has the hash {digest}: this gateway runs only the "
                    "operations its frontends were built with",
                    PERSISTED_DOCUMENT_NOT_FOUND,
                )
            return document
        if params.query is not None and self._introspection and self._introspects(params.query):
            return params.query
        raise TrustedDocumentError(
            "This gateway runs only trusted documents: send `documentId` "
            '("sha256:<hash>") instead of the query text',
            PERSISTED_DOCUMENT_REQUIRED,
        )

    def _introspects(self, query: str) -> bool:
        try:
            document = parse_limited(query, self._max_tokens)
        except GraphQLSyntaxError:
            return False
        return only_introspection(document)


def only_introspection(document: DocumentNode) -> bool:
    """Whether every operation of `document` selects only introspection fields (`__schema`,
    `__type`, `__typename`) at its root, through fragments too."""
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    operations = [
        definition
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
    ]
    return bool(operations) and all(
        _introspects(operation.selection_set, fragments, set()) for operation in operations
    )


def _introspects(
    selections: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode], seen: set[str]
) -> bool:
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            if not selection.name.value.startswith("__"):
                return False
        elif isinstance(selection, InlineFragmentNode):
            if not _introspects(selection.selection_set, fragments, seen):
                return False
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in seen:
                return False
            seen.add(name)
            if not _introspects(fragment.selection_set, fragments, seen):
                return False
    return True


def read_manifest(path: Path) -> dict[str, str]:
    """The manifest's documents by lower-case hash; `ManifestError` if it is not one."""
    try:
        decoded = orjson.loads(path.read_bytes())
    except OSError as error:
        raise ManifestError(f"cannot read {path}: {error.strerror}") from None
    except orjson.JSONDecodeError as error:
        raise ManifestError(f"{path} is not JSON: {error}") from None
    if not isinstance(decoded, dict) or not decoded:
        raise ManifestError(f"{path} must be a JSON object of SHA-256 hashes to documents")
    documents: dict[str, str] = {}
    for key, document in decoded.items():
        digest = key.lower().removeprefix("sha256:")
        if _SHA256_HEX.fullmatch(digest) is None:
            raise ManifestError(
                f"{path}: {key[:80]!r} is not a SHA-256 in hex (graphql-codegen: set "
                'persistedDocuments.hashAlgorithm to "sha256"; Relay: persistConfig.algorithm '
                'to "SHA256")'
            )
        if not isinstance(document, str):
            raise ManifestError(f"{path}: the document of {digest} is not a string")
        documents[digest] = document
    return documents


def load_trusted_documents(
    path: Path, schema: GraphQLSchema, documents: DocumentCache, checks: DocumentChecks
) -> TrustedDocuments:
    """The manifest at `path`, each document parsed and checked against `schema` and pinned
    in `documents`; `ManifestError` names the first bad one."""
    manifest = read_manifest(path)
    for digest, query in manifest.items():
        try:
            checked = checks.check(schema, query)
        except GraphQLSyntaxError as error:
            message = f"{path}: document {digest} does not parse: {error.message}"
            raise ManifestError(message) from None
        if checked.errors:
            reasons = "; ".join(error.message for error in checked.errors[:3])
            raise ManifestError(f"{path}: document {digest} cannot run here: {reasons}")
        documents.pin(query, checked)
    return TrustedDocuments(manifest, checks.max_tokens, checks.introspection)


async def query_to_run(
    trusted: TrustedDocuments | None, persisted: PersistedQueries | None, params: GraphQLParams
) -> tuple[str | None, str | None]:
    """The query a request runs, and the APQ hash to register it under (if any): a trusted
    document, else an automatic persisted query, else the query as sent."""
    if trusted is not None:
        return trusted.query_for(params), None
    if params.document_id is not None:
        raise TrustedDocumentError(
            "This gateway keeps no trusted documents: send the query itself",
            PERSISTED_DOCUMENT_NOT_FOUND,
        )
    digest = persisted_hash(params.extensions) if persisted is not None else None
    if persisted is None or digest is None:
        return params.query, None
    query = await persisted.query_for(digest, params.query)
    return query, digest if params.query is not None else None
