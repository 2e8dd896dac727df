"""Parsed and checked documents, kept by query text: the request limits, then validation.

One Strawberry extension (`CheckedDocuments`) takes over the steps before execution:

1. parse, with the token limit (`TOO_MANY_TOKENS`); graphql-core's parser also refuses
   documents nested past the interpreter's stack;
2. the gateway's own limits (`gateway.limits.DocumentLimits`), in time linear in the document;
3. only if those pass, graphql-core's validation rules, which are not all linear: the
   overlapping-fields rule is quadratic in the copies of one response key, which step 2 bounds.

The document and its errors are kept, by query text, in a least-recently-used map bounded in
entries and in bytes of query text (`_CACHE_ENTRIES`, `_CACHE_TEXT_BYTES`), so a repeated query
skips all three steps and a stream of distinct large documents cannot grow memory without bound.
The map belongs to one schema, whose rules never change, so the text alone is the key.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from gateway.limits import DocumentLimits

_CACHE_ENTRIES = 512
_CACHE_TEXT_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CheckedDocument:
    """A parsed document and the errors its checks found (none: it may execute)."""

    document: DocumentNode
    errors: list[GraphQLError]


class DocumentCache:
    """Checked documents by query text, least recently used out first."""

    def __init__(self, max_entries: int = _CACHE_ENTRIES, max_bytes: int = _CACHE_TEXT_BYTES):
        self._entries: OrderedDict[str, CheckedDocument] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self.hits = 0
        """Lookups answered from the map (tests read it)."""

    def get(self, query: str) -> CheckedDocument | None:
        """The checked document of `query`, if kept."""
        entry = self._entries.get(query)
        if entry is not None:
            self._entries.move_to_end(query)
            self.hits += 1
        return entry

    def put(self, query: str, entry: CheckedDocument) -> None:
        """Keep `entry` for `query`; older entries leave to stay within both bounds."""
        if len(query) > self._max_bytes or query in self._entries:
            return
        self._entries[query] = entry
        self._bytes += len(query)
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            old, _ = self._entries.popitem(last=False)
            self._bytes -= len(old)


def _validate(schema: GraphQLSchema, document: DocumentNode, rules: Any) -> list[GraphQLError]:
    """graphql-core's validation; a document too deep for its recursive rules is refused."""
    try:
        return validate_document(schema, document, rules)
    except RecursionError:
        # graphql-core before 3.3.2 recurses along long fragment chains.
        message = "The document nests fragments too deeply to validate"
        return [GraphQLError(message, extensions={"code": "GRAPHQL_VALIDATION_FAILED"})]


class CheckedDocuments(SchemaExtension):
    """Parse with a token limit, check the request limits, validate: each document once."""

    def __init__(self, cache: DocumentCache, limits: DocumentLimits, max_tokens: int) -> None:
        super().__init__()
        self._cache = cache
        self._limits = limits
        self._max_tokens = max_tokens
        self._checked: CheckedDocument | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = self._max_tokens
        if context.query is not None and context.graphql_document is None:
            self._checked = self._cache.get(context.query)
            if self._checked is not None:
                context.graphql_document = self._checked.document  # Strawberry skips parsing
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        checked = self._checked
        if checked is None:
            document = context.graphql_document
            assert document is not None
            errors = self._limits.check(document) or _validate(
                context.schema._schema, document, context.validation_rules
            )
            checked = CheckedDocument(document, errors)
            if context.query is not None:
                self._cache.put(context.query, checked)
        context.pre_execution_errors = checked.errors
        yield
