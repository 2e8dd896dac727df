"""Parsed and checked documents, kept by query text: the request limits, then validation.

One Strawberry extension (`CheckedDocuments`) takes over the steps before execution:

1. parse, with the token limit (`TOO_MANY_TOKENS`, comments counted: they cost a token each
   to read), and documents nested past the interpreter's stack refused (`GRAPHQL_PARSE_FAILED`);
2. the gateway's own limits (`gateway.limits.DocumentLimits`), in time linear in the document;
3. only if those pass, graphql-core's validation rules, which are not all linear: the
   overlapping-fields rule is quadratic in the copies of one response key, which step 2 bounds;
   with introspection switched off, introspection fields are refused here too.

Steps 2 and 3 are `DocumentChecks`, which also checks trusted documents at start: those are
pinned in the map and never leave it.

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

from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    NoSchemaIntrospectionCustomRule,
    Source,
    TokenKind,
    specified_rules,
)
from graphql.language.parser import Parser
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
        self._pinned: dict[str, CheckedDocument] = {}
        self.hits = 0
        """Lookups answered from the map (tests read it)."""

    def get(self, query: str) -> CheckedDocument | None:
        """The checked document of `query`, if kept."""
        entry = self._pinned.get(query)
        if entry is None:
            entry = self._entries.get(query)
            if entry is None:
                return None
            self._entries.move_to_end(query)
        self.hits += 1
        return entry

    def pin(self, query: str, entry: CheckedDocument) -> None:
        """Keep `entry` for `query` for good (a trusted document, known at start)."""
        self._pinned[query] = entry

    def put(self, query: str, entry: CheckedDocument) -> None:
        """Keep `entry` for `query`; older entries leave to stay within both bounds."""
        if len(query) > self._max_bytes or query in self._entries:
            return
        self._entries[query] = entry
        self._bytes += len(query)
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            old, _ = self._entries.popitem(last=False)
            self._bytes -= len(old)


class TooManyTokensError(GraphQLSyntaxError):
    """A document with more tokens than `GATEWAY_MAX_TOKENS`, refused while it is parsed."""

    def __init__(self, source: Source, position: int, limit: int) -> None:
        super().__init__(source, position, f"Document contains more than {limit} tokens.")
        self.extensions = {"code": "TOO_MANY_TOKENS"}


class _TokenCountingParser(Parser):
    """graphql-core's parser, refusing a document at its token past `limit` (comments, which
    the lexer skips but reads, counted too)."""

    def __init__(self, source: Source, limit: int) -> None:
        super().__init__(source)
        self._limit = limit
        self._counted = 0

    def advance_lexer(self) -> None:
        before = self._lexer.token
        super().advance_lexer()
        after = self._lexer.token
        token = before.next
        while token is not None:
            self._counted += token.kind is not TokenKind.EOF
            if token is after:
                break
            token = token.next
        if self._counted > self._limit:
            raise TooManyTokensError(self._lexer.source, after.start, self._limit)


def parse_limited(query: str, max_tokens: int) -> DocumentNode:
    """`query` parsed, or a `GraphQLSyntaxError` (`TooManyTokensError` past `max_tokens`)."""
    source = Source(query)
    try:
        return _TokenCountingParser(source, max_tokens).parse_document()
    except RecursionError:
        # Nested past the interpreter's stack: far past any depth limit.
        raise GraphQLSyntaxError(source, 0, "Document is nested too deeply.") from None


@dataclass(frozen=True, slots=True)
class DocumentChecks:
    """Everything a parsed document must pass before it runs, in order: the request limits,
    then validation (graphql-core's rules, and no introspection when it is switched off)."""

    limits: DocumentLimits
    max_tokens: int
    introspection: bool = True

    @property
    def rules(self) -> tuple[type[ASTValidationRule], ...]:
        """The validation rules every document is held to."""
        if self.introspection:
            return tuple(specified_rules)
        return (*specified_rules, NoSchemaIntrospectionCustomRule)

    def errors(self, schema: GraphQLSchema, document: DocumentNode) -> list[GraphQLError]:
        """What keeps `document` from running (nothing: it may)."""
        return self.limits.check(document) or _validate(schema, document, self.rules)

    def check(self, schema: GraphQLSchema, query: str) -> CheckedDocument:
        """`query` parsed and checked as a request's would be; a `GraphQLSyntaxError` if it
        does not parse."""
        document = parse_limited(query, self.max_tokens)
        return CheckedDocument(document, self.errors(schema, document))


def _validate(schema: GraphQLSchema, document: DocumentNode, rules: Any) -> list[GraphQLError]:
    """graphql-core's validation, its errors coded; a document too deep for its recursive
    rules is refused."""
    try:
        errors = validate_document(schema, document, rules)
    except RecursionError:
        # graphql-core before 3.3.2 recurses along long fragment chains.
        message = "The document nests fragments too deeply to validate"
        return [GraphQLError(message, extensions={"code": "GRAPHQL_VALIDATION_FAILED"})]
    for error in errors:
        error.extensions = {"code": "GRAPHQL_VALIDATION_FAILED", **(error.extensions or {})}
    return errors


class CheckedDocuments(SchemaExtension):
    """Parse with a token limit, check the request limits, validate: each document once."""

    def __init__(self, cache: DocumentCache, checks: DocumentChecks) -> None:
        super().__init__()
        self._cache = cache
        self._checks = checks
        self._checked: CheckedDocument | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None and context.graphql_document is None:
            self._checked = self._cache.get(context.query)
            if self._checked is not None:
                context.graphql_document = self._checked.document
            else:
                # Parsed here, so Strawberry skips its own parse; a syntax error raised here
                # becomes the request's error as if Strawberry had raised it.
                context.graphql_document = parse_limited(context.query, self._checks.max_tokens)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        checked = self._checked
        if checked is None:
            document = context.graphql_document
            assert document is not None
            errors = self._checks.errors(context.schema._schema, document)
            checked = CheckedDocument(document, errors)
            if context.query is not None:
                self._cache.put(context.query, checked)
        context.pre_execution_errors = checked.errors
        yield
