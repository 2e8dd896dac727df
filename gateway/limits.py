"""Per-request limits that keep one request from hurting the gateway or the upstream.

Checked before graphql-core validates the document (`DocumentLimits.check`, run by
`gateway.documents`), each failure a request error with its own `extensions.code` and no
upstream call:

- `QUERY_TOO_DEEP`: selection sets nested deeper than `GATEWAY_MAX_DEPTH`;
- `TOO_MANY_ALIASES`: more aliased fields than `GATEWAY_MAX_ALIASES`;
- `TOO_MANY_REPEATED_FIELDS`: one response key selected more than `GATEWAY_MAX_FIELD_REPEATS`
  times in one selection set, fragments included. graphql-core's overlapping-fields rule
  compares every pair of fields that share a key, so a thousand copies of one field cost
  seconds; a real query repeats a key a few times at most (fragments that share `id`);
- `UPSTREAM_BUDGET_EXCEEDED`: the worst case of upstream calls the operation's list fields can
  cause is above `GATEWAY_UPSTREAM_CALL_BUDGET` (30 aliased `jobs` fields cannot fan out).

The check costs time linear in the document: each fragment is summarised once, in dependency
order, and every spread of it reuses that summary, so a chain of fragments that each spread the
next twice (2^n fields once expanded) costs n summaries, not 2^n walks. Counts saturate at
`_SATURATED`, so such a chain cannot grow huge integers either. Only a document that passes is
handed to graphql-core's own rules, which are then bounded too.

Token count (`TOO_MANY_TOKENS`) is enforced by the parser, body size (413) by the HTTP layer.
`gateway.caller.UpstreamBudget` counts the calls a request really makes, as a backstop at run
time. The worst case counted here is that of the upstream client's own fetch plans
(`gateway.pagination.Fetching`), so the estimate and the calls cannot drift apart.

Strawberry's `QueryDepthLimiter` and `MaxAliasesLimiter` were measured for these two limits and
not used: both expand a fragment at every spread, so their time doubles with each fragment of a
doubling chain (figures in `benchmarks/README.md`), which is the denial of service this module
exists to stop, and their errors carry no `extensions.code`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    Node,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)

from gateway.caller import UPSTREAM_BUDGET_EXCEEDED
from gateway.pagination import Fetching

QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
TOO_MANY_REPEATED_FIELDS = "TOO_MANY_REPEATED_FIELDS"

# Root fields that page through a list the upstream pages, by name.
LIST_FIELDS = frozenset({"jobs", "myJobs"})
# Root fields that cost one upstream call each (a list fetched whole, one job; writes that
# answer no job), and mutations that may read their job back after the write: two.
SINGLE_CALL_FIELDS = frozenset({"workflowJobs", "node", "job", "deleteJob", "abortJobsForUser"})
WRITE_AND_READ_FIELDS = frozenset(
    {"createJob", "syncJob", "updateJob", "addJobMetadata", "abortJob", "assignJob", "excludeJob"}
)
# The longest list totalCount is budgeted for: its end is found in 2 log2(N / cap) + 2 calls.
COUNTED_LIST_LENGTH = 1_000_000
# Counts above every configurable limit stop growing here: no limit can be set this high.
_SATURATED = 1 << 30


@dataclass(frozen=True, slots=True)
class CallEstimate:
    """How many upstream calls one list field may cost, at worst."""

    default_page_size: int
    max_page_size: int
    fetching: Fetching
    """How the upstream client fetches windows and finds a list's end: the plans counted."""
    filter_scan_rows: int = 0
    """Rows a filtered list field may scan (`GATEWAY_FILTER_SCAN_ROWS`)."""

    def field_calls(self, field_node: FieldNode, selected: frozenset[str]) -> int:
        """The worst case of upstream calls one root field can cost; `selected` holds the field
        names of its selection set (fragments included)."""
        name = field_node.name.value
        if name in SINGLE_CALL_FIELDS:
            return 1
        if name in WRITE_AND_READ_FIELDS:
            return 2
        if name == "nodes":
            ids = next(
                (arg.value for arg in field_node.arguments or () if arg.name.value == "ids"), None
            )
            # A list given as a variable is checked against the budget when it runs (resolvers).
            return len(ids.values) if isinstance(ids, ListValueNode) else 1
        if name not in LIST_FIELDS:
            return 0
        arguments = {argument.name.value for argument in field_node.arguments or ()}
        counted = "last" in arguments and not {"before", "first"} & arguments
        if "filter" in arguments:
            # A filtered page scans up to its row limit; a filtered totalCount reads the whole
            # list, bounded only as it runs (it alone fails past the budget).
            calls = self.fetching.most_window_calls(self.filter_scan_rows)
            return calls + (
                self.fetching.most_end_search_calls(COUNTED_LIST_LENGTH) if counted else 0
            )
        counted = counted or "totalCount" in selected
        calls = self.fetching.most_window_calls(self._page_size(field_node))
        if counted:
            calls += self.fetching.most_end_search_calls(COUNTED_LIST_LENGTH)
        return calls

    def _page_size(self, field_node: FieldNode) -> int:
        """The rows a list field asks for: literal `first`/`last`, or the worst case."""
        sizes = []
        for argument in field_node.arguments or ():
            if argument.name.value not in ("first", "last"):
                continue
            value = argument.value
            if isinstance(value, IntValueNode):
                sizes.append(min(int(value.value), self.max_page_size))
            elif isinstance(value, VariableNode):
                sizes.append(self.max_page_size)
        return max(sizes) if sizes else self.default_page_size


@dataclass(frozen=True, slots=True)
class Shape:
    """What the limits need to know of one selection set, fragments expanded."""

    depth: int = 0
    """Levels of fields below (introspection fields not counted: their shape is fixed)."""
    aliases: int = 0
    """Aliased fields at every level below."""
    keys: dict[str, int] = field(default_factory=dict)
    """Response keys of this level and how often each is selected."""
    names: frozenset[str] = frozenset()
    """Field names of this level."""
    calls: int = 0
    """Worst-case upstream calls of this level's fields, were it the root."""
    repeated: tuple[int, str] = (0, "")
    """The most often repeated response key of any one selection set below, and its count."""


def _add(a: int, b: int) -> int:
    return min(a + b, _SATURATED)


def _merge(shapes: Iterable[tuple[Shape, int]]) -> Shape:
    """The shape of selections side by side (each shape `times` times), at one level."""
    depth = aliases = calls = 0
    keys: dict[str, int] = {}
    names: set[str] = set()
    repeated = (0, "")
    for shape, times in shapes:
        depth = max(depth, shape.depth)
        aliases = _add(aliases, min(shape.aliases * times, _SATURATED))
        calls = _add(calls, min(shape.calls * times, _SATURATED))
        for key, count in shape.keys.items():
            keys[key] = _add(keys.get(key, 0), min(count * times, _SATURATED))
        names |= shape.names
        repeated = max(repeated, shape.repeated)
    if keys:
        most = max(keys.items(), key=lambda item: item[1])
        repeated = max(repeated, (most[1], most[0]))
    return Shape(depth, aliases, keys, frozenset(names), calls, repeated)


class _Summaries:
    """Shapes of a document's selection sets, each fragment summarised once."""

    def __init__(self, document: DocumentNode, estimate: CallEstimate) -> None:
        self._estimate = estimate
        self._fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        self._shapes: dict[str, Shape] = {}
        for name in self._dependency_order():
            self._shapes[name] = self.shape(self._fragments[name].selection_set)

    def _dependency_order(self) -> list[str]:
        """Fragment names, each after every fragment it spreads (cycles cut; graphql-core
        reports them). Iterative: a long chain of fragments must not exhaust the stack."""
        order: list[str] = []
        state: dict[str, bool] = {}  # False while being visited, True once ordered
        for root in self._fragments:
            if root in state:
                continue
            stack = [(root, iter(_spreads(self._fragments[root])))]
            state[root] = False
            while stack:
                name, pending = stack[-1]
                child = next(pending, None)
                if child is None:
                    stack.pop()
                    state[name] = True
                    order.append(name)
                elif child in self._fragments and child not in state:
                    state[child] = False
                    stack.append((child, iter(_spreads(self._fragments[child]))))
        return order

    def shape(self, selection_set: SelectionSetNode | None) -> Shape:
        """The shape of `selection_set`, with its fragments' shapes looked up, not walked."""
        if selection_set is None:
            return Shape()
        parts: list[tuple[Shape, int]] = []
        spreads: dict[str, int] = {}
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                parts.append((self._field_shape(selection), 1))
            elif isinstance(selection, InlineFragmentNode):
                parts.append((self.shape(selection.selection_set), 1))
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                spreads[name] = spreads.get(name, 0) + 1
        # A fragment still being summarised (a cycle) or unknown counts as empty.
        parts += [(self._shapes[name], n) for name, n in spreads.items() if name in self._shapes]
        return _merge(parts)

    def _field_shape(self, node: FieldNode) -> Shape:
        below = self.shape(node.selection_set)
        name = node.name.value
        key = node.alias.value if node.alias else name
        depth = 0 if name.startswith("__") else 1 + below.depth
        return Shape(
            depth=depth,
            aliases=_add(below.aliases, node.alias is not None),
            keys={key: 1},
            names=frozenset((name,)),
            calls=self._estimate.field_calls(node, below.names),
            repeated=below.repeated,
        )


def _spreads(fragment: FragmentDefinitionNode) -> list[str]:
    """Names of the fragments spread anywhere inside `fragment`."""
    names: list[str] = []
    pending: list[Node] = [fragment.selection_set]
    while pending:
        node = pending.pop()
        if isinstance(node, FragmentSpreadNode):
            names.append(node.name.value)
        elif isinstance(node, SelectionSetNode):
            pending.extend(node.selections)
        elif isinstance(node, FieldNode | InlineFragmentNode) and node.selection_set:
            pending.append(node.selection_set)
    return names


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    """The request limits, checked on a parsed document before graphql-core validates it."""

    max_depth: int
    max_aliases: int
    max_repeats: int
    budget: int
    estimate: CallEstimate

    def check(self, document: DocumentNode) -> list[GraphQLError]:
        """The limit errors of `document`'s operations (none: it may be validated)."""
        try:
            summaries = _Summaries(document, self.estimate)
            return [
                error
                for definition in document.definitions
                if isinstance(definition, OperationDefinitionNode)
                for error in self._operation_errors(
                    definition, summaries.shape(definition.selection_set)
                )
            ]
        except RecursionError:
            # Nested more deeply than the interpreter's stack allows: far past any max_depth.
            return [
                GraphQLError(
                    "The document is nested too deeply", extensions={"code": QUERY_TOO_DEEP}
                )
            ]

    def _operation_errors(
        self, node: OperationDefinitionNode, shape: Shape
    ) -> Iterable[GraphQLError]:
        name = node.name.value if node.name else "anonymous"

        def error(message: str, code: str) -> GraphQLError:
            return GraphQLError(message, node, extensions={"code": code})

        if shape.depth > self.max_depth:
            yield error(
                f"Operation {name} is nested deeper than {self.max_depth} levels", QUERY_TOO_DEEP
            )
        if shape.aliases > self.max_aliases:
            yield error(
                f"Operation {name} uses {_count(shape.aliases)} aliases; at most "
                f"{self.max_aliases} are allowed",
                TOO_MANY_ALIASES,
            )
        count, key = shape.repeated
        if count > self.max_repeats:
            yield error(
                f"Operation {name} selects `{key[:64]}` {_count(count)} times in one selection "
                f"set (fragments included); at most {self.max_repeats} are allowed",
                TOO_MANY_REPEATED_FIELDS,
            )
        if shape.calls > self.budget:
            yield error(
                f"Operation {name} could need {_count(shape.calls)} upstream calls; the budget "
                f"per request is {self.budget}. Ask for fewer or smaller lists per request",
                UPSTREAM_BUDGET_EXCEEDED,
            )


def _count(value: int) -> str:
    return "over a billion" if value >= _SATURATED else str(value)
