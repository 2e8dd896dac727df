"""Per-request limits that keep one request from hurting the gateway or the upstream.

Checked before execution, as validation rules (so the cached validation of a repeated document
checks them once), each failure a request error with its own `extensions.code` and no upstream
call:

- `QUERY_TOO_DEEP`: selection sets nested deeper than `GATEWAY_MAX_DEPTH`;
- `TOO_MANY_ALIASES`: more aliased fields than `GATEWAY_MAX_ALIASES`;
- `UPSTREAM_BUDGET_EXCEEDED`: the worst case of upstream calls the operation's list fields can
  cause is above `GATEWAY_UPSTREAM_CALL_BUDGET` (30 aliased `jobs` fields cannot fan out).

Token count (`TOO_MANY_TOKENS`) is enforced by the parser, body size (413) by the HTTP layer.
`UpstreamBudget` counts the calls a request really makes, as a backstop at run time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    VariableNode,
)

from gateway.errors import GatewayError

QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
UPSTREAM_BUDGET_EXCEEDED = "UPSTREAM_BUDGET_EXCEEDED"

# Root fields that page through a list the upstream pages, by name.
LIST_FIELDS = frozenset({"jobs", "myJobs"})
# Root fields that cost one upstream call each (a list fetched whole, one job).
SINGLE_CALL_FIELDS = frozenset({"workflowJobs", "node", "job"})
# The longest list totalCount is budgeted for: its end is found in 2 log2(N / cap) + 2 calls.
COUNTED_LIST_LENGTH = 1_000_000


class UpstreamBudgetExceededError(GatewayError):
    """Raised when a request would make more upstream calls than its budget allows."""

    code = UPSTREAM_BUDGET_EXCEEDED


@dataclass
class UpstreamBudget:
    """How many more upstream calls this request may make."""

    limit: int
    spent: int = field(default=0)

    @property
    def remaining(self) -> int:
        """Upstream calls still allowed."""
        return self.limit - self.spent

    def require(self, calls: int) -> None:
        """Raise, before any call, if `calls` more calls would pass the limit."""
        if calls > self.remaining:
            raise UpstreamBudgetExceededError(
                f"This request needs {calls} more upstream calls; {self.remaining} of "
                f"{self.limit} are left. Ask for fewer ids per request"
            )

    def spend(self, calls: int = 1) -> None:
        """Count `calls` upstream calls; raise when that passes the limit (before calling)."""
        if self.spent + calls > self.limit:
            raise UpstreamBudgetExceededError(
                f"This request needs more than {self.limit} upstream calls; ask for fewer or "
                "smaller lists per request"
            )
        self.spent += calls


@dataclass(frozen=True, slots=True)
class CallEstimate:
    """How many upstream calls one list field may cost, at worst."""

    default_page_size: int
    max_page_size: int
    rows_per_call: int
    aligned: bool
    upstream_cap: int = 100

    def calls(self, page_size: int) -> int:
        """Calls for a window of `page_size` rows (plus the one extra row for hasNextPage)."""
        calls = math.ceil((page_size + 1) / self.rows_per_call)
        # An aligned window can straddle one more block than its length alone needs.
        return calls + 1 if self.aligned else calls

    def count_calls(self, upstream_cap: int) -> int:
        """Calls to find the end of a list of up to `COUNTED_LIST_LENGTH` rows."""
        return 2 * math.ceil(math.log2(COUNTED_LIST_LENGTH / upstream_cap)) + 2

    def field_calls(self, field_node: FieldNode, context: ValidationContext) -> int:
        """The worst case of upstream calls one root field can cost."""
        name = field_node.name.value
        if name in SINGLE_CALL_FIELDS:
            return 1
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
        counted = counted or any(
            selection.name.value == "totalCount"
            for selection in _selections(field_node.selection_set, context, set())
        )
        return self.calls(_page_size(field_node, self)) + (
            self.count_calls(self.upstream_cap) if counted else 0
        )


def _selections(
    selection_set: SelectionSetNode | None, context: ValidationContext, seen: set[str]
) -> Iterable[FieldNode]:
    """The fields of `selection_set`, with fragments and inline fragments expanded."""
    if selection_set is None:
        return
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _selections(selection.selection_set, context, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = context.get_fragment(name)
            if fragment is not None and name not in seen:
                yield from _selections(fragment.selection_set, context, seen | {name})


def _depth(selection_set: SelectionSetNode | None, context: ValidationContext, limit: int) -> int:
    """Depth of the deepest field under `selection_set` (stops counting past `limit`)."""
    deepest = 0
    for field_node in _selections(selection_set, context, set()):
        if field_node.name.value.startswith("__"):
            continue  # introspection has its own fixed shape
        below = 0
        if deepest <= limit:
            below = _depth(field_node.selection_set, context, limit)
        deepest = max(deepest, 1 + below)
        if deepest > limit:
            break
    return deepest


def _aliases(selection_set: SelectionSetNode | None, context: ValidationContext) -> int:
    count = 0
    for field_node in _selections(selection_set, context, set()):
        count += field_node.alias is not None
        count += _aliases(field_node.selection_set, context)
    return count


def _page_size(field_node: FieldNode, estimate: CallEstimate) -> int:
    """The rows a list field asks for: literal `first`/`last`, or the worst case."""
    sizes = []
    for argument in field_node.arguments or ():
        if argument.name.value not in ("first", "last"):
            continue
        value = argument.value
        if isinstance(value, IntValueNode):
            sizes.append(min(int(value.value), estimate.max_page_size))
        elif isinstance(value, VariableNode):
            sizes.append(estimate.max_page_size)
    return max(sizes) if sizes else estimate.default_page_size


def limit_rules(
    *, max_depth: int, max_aliases: int, budget: int, estimate: CallEstimate
) -> list[type[ASTValidationRule]]:
    """The validation rules enforcing the request limits."""

    class OperationLimits(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            context = self.context
            name = node.name.value if node.name else "anonymous"
            if _depth(node.selection_set, context, max_depth) > max_depth:
                self.report(
                    f"Operation {name} is nested deeper than {max_depth} levels",
                    QUERY_TOO_DEEP,
                    node,
                )
            aliases = _aliases(node.selection_set, context)
            if aliases > max_aliases:
                self.report(
                    f"Operation {name} uses {aliases} aliases; at most {max_aliases} are allowed",
                    TOO_MANY_ALIASES,
                    node,
                )
            calls = sum(
                estimate.field_calls(field_node, context)
                for field_node in _selections(node.selection_set, context, set())
            )
            if calls > budget:
                self.report(
                    f"Operation {name} could need {calls} upstream calls; the budget per "
                    f"request is {budget}. Ask for fewer or smaller lists per request",
                    UPSTREAM_BUDGET_EXCEEDED,
                    node,
                )

        def report(self, message: str, code: str, node: OperationDefinitionNode) -> None:
            self.report_error(GraphQLError(message, node, extensions={"code": code}))

    return [OperationLimits]
