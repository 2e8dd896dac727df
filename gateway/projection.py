"""Fast completion of plain objects: the executor projects them instead of resolving each field.

graphql-core completes an object by running a resolver per field and completing each value,
which for a page of 20 jobs is hundreds of calls through Strawberry and graphql-core. But the
gateway's objects are plain data: the job types read JSON keys, the connection types read
attributes, no field has arguments or a resolver of its own. For such a selection,
`ProjectingExecutionContext` compiles a plan once per request (which key to read, how to
check each value) and interprets it, building the whole result with plain dict and list
operations.

The projection only ever takes the fast path when every value is valid. At the first value
it cannot vouch for (a null in a non-null field, a string where an Int belongs, a bad
timestamp, a non-object where an object belongs), it gives the object back to graphql-core's
own completion, which produces exactly the usual result and errors at their exact paths (its
nested objects are projected again). So the fast path changes speed, never results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graphql import (
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
)

from gateway.error_contract import CodingExecutionContext
from gateway.scalars import VALID_TIMESTAMPS, checked_timestamp

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


class _Fallback(Exception):
    """A value the projection cannot vouch for: let graphql-core complete this object."""


_FALLBACK = _Fallback()


def _string(value: Any) -> Any:
    if type(value) is str:
        return value
    raise _FALLBACK


def _int(value: Any) -> Any:
    if type(value) is int and _INT_MIN <= value <= _INT_MAX:
        return value
    raise _FALLBACK


def _boolean(value: Any) -> Any:
    if type(value) is bool:
        return value
    raise _FALLBACK


def _id(value: Any) -> Any:
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    raise _FALLBACK


def _date_time(value: Any) -> Any:
    try:
        return checked_timestamp(value)
    except Exception:  # noqa: BLE001 - graphql-core will report it properly
        raise _FALLBACK from None


def _json(value: Any) -> Any:
    return value


_SCALARS: dict[str, Callable[[Any], Any]] = {
    "String": _string,
    "Int": _int,
    "Boolean": _boolean,
    "ID": _id,
    "DateTime": _date_time,
    "JSON": _json,
}

# Field kinds of a plan
_TYPENAME, _SCALAR, _OBJECT, _SCALAR_LIST, _OBJECT_LIST, _COMPUTED = range(6)


@dataclass(slots=True)
class _Field:
    response_key: str
    source_name: str
    kind: int
    non_null: bool
    items_non_null: bool
    coerce: Callable[[Any], Any] | None = None
    plan: Any = None
    """The sub-plan of an object field, or the function of a computed one."""


# Scalar fields of a plan whose check is inlined in `_Plan.project`, by their coercion.
_STRING, _BOOLEAN, _UNCHECKED, _DATE_TIME, _ID = range(6, 11)
_INLINED: dict[Any, int] = {
    _string: _STRING,
    _boolean: _BOOLEAN,
    _json: _UNCHECKED,
    _date_time: _DATE_TIME,
    _id: _ID,
}

_Row = tuple[str, str, int, bool, bool, Any, Any]
"""A field as `_Plan.project` reads it: response key, source name, kind (scalar kinds refined
by `_INLINED`), non-null, items non-null, coercion, sub-plan's projection or computation."""


@dataclass(slots=True)
class _Plan:
    type_name: str
    is_type_of: Callable[[Any, Any], Any] | None
    fields: list[_Field]
    keys: tuple[str, ...] = ()
    """Every response key, in the order of the selection: the result's template."""
    strings: tuple[tuple[str, str, bool], ...] = ()
    """(key, source name, non-null) of the String fields: most of a job's fields."""
    objects: tuple[tuple[str, str, bool, Callable[[Any], Any]], ...] = ()
    """(key, source name, non-null, sub-plan's projection) of the object fields."""
    others: tuple[_Row, ...] = ()
    """Every other field."""

    def __post_init__(self) -> None:
        rows = [
            (
                field.response_key,
                field.source_name,
                _INLINED.get(field.coerce, _SCALAR) if field.kind == _SCALAR else field.kind,
                field.non_null,
                field.items_non_null,
                field.coerce,
                field.plan.project if field.kind in (_OBJECT, _OBJECT_LIST) else field.plan,
            )
            for field in self.fields
        ]
        self.keys = tuple(row[0] for row in rows)
        self.strings = tuple((row[0], row[1], row[3]) for row in rows if row[2] == _STRING)
        self.objects = tuple((row[0], row[1], row[3], row[6]) for row in rows if row[2] == _OBJECT)
        self.others = tuple(row for row in rows if row[2] not in (_STRING, _OBJECT))

    def project(self, source: Any) -> dict[str, Any]:
        """The result dict of `source`; `_Fallback` at the first value it cannot vouch for.

        The result starts as a template of the selection's keys, in order; then strings and
        objects, most of a job, are filled in by two tight loops, and the other kinds by a
        third: this runs for every object of every page (figures in benchmarks/README.md).
        """
        if self.is_type_of is not None and not self.is_type_of(source, None):
            raise _FALLBACK
        get = source.get if type(source) is dict else source.__getattribute__
        result = dict.fromkeys(self.keys)
        for key, name, non_null in self.strings:
            value = get(name)
            if type(value) is not str and (value is not None or non_null):
                raise _FALLBACK
            result[key] = value
        for key, name, non_null, project in self.objects:
            value = get(name)
            if value is not None:
                result[key] = project(value)
            elif non_null:
                raise _FALLBACK
        for row in self.others:
            kind = row[2]
            if kind in (_DATE_TIME, _ID):
                # Valid timestamps and string ids, the common case, without a call.
                value = get(row[1])
                if type(value) is str and (kind == _ID or value in VALID_TIMESTAMPS):
                    result[row[0]] = value
                    continue
            result[row[0]] = self._other(row, source, get)
        return result

    def _other(self, row: _Row, source: Any, get: Callable[[str], Any]) -> Any:
        """The value of a field of the less common kinds."""
        _, name, kind, non_null, items_non_null, coerce, sub = row
        if kind == _TYPENAME:
            return self.type_name
        value = sub(source) if kind == _COMPUTED else get(name)
        if value is None:
            if non_null or kind == _COMPUTED:
                raise _FALLBACK  # let graphql-core say why
            return None
        if kind == _DATE_TIME:
            if type(value) is str and value in VALID_TIMESTAMPS:
                return value
            return _date_time(value)
        if kind == _OBJECT_LIST:
            if type(value) is not list:
                raise _FALLBACK
            return [_null_item(items_non_null) if i is None else sub(i) for i in value]
        if kind == _ID:
            return value if type(value) is str else _id(value)
        return value if kind == _UNCHECKED else _converted(kind, value, coerce, items_non_null)


def _converted(kind: int, value: Any, coerce: Any, items_non_null: bool) -> Any:
    """A non-null value of the less common kinds (booleans, other scalars, scalar lists)."""
    if kind == _BOOLEAN:
        if type(value) is not bool:
            raise _FALLBACK
        return value
    if kind == _SCALAR_LIST:
        if type(value) is not list:
            raise _FALLBACK
        return [_null_item(items_non_null) if i is None else coerce(i) for i in value]
    return coerce(value)


def _null_item(items_non_null: bool) -> Any:
    """A null list item: kept, unless the list's items may not be null."""
    if items_non_null:
        raise _FALLBACK
    return None


def _unwrap(type_: Any) -> tuple[Any, bool, bool, bool]:
    """(named type, non-null, is list, list items non-null) of a field's output type."""
    non_null = isinstance(type_, GraphQLNonNull)
    inner: Any = type_.of_type if non_null else type_
    if not isinstance(inner, GraphQLList):
        return inner, non_null, False, False
    item = inner.of_type
    items_non_null = isinstance(item, GraphQLNonNull)
    item = item.of_type if items_non_null else item
    return item, non_null, True, items_non_null


# Plans shared across requests, for documents without directives (whose selections cannot
# change with variables): (type name, ids of the field nodes) -> (the nodes, kept alive so
# their ids stay theirs; the plan). Documents come from the parser cache, so a repeated query
# has the same nodes. Bounded: cleared when full.
_SHARED_PLANS: dict[tuple[Any, ...], tuple[Any, _Plan | None]] = {}
_SHARED_PLANS_KEPT = 4096
_DIRECTIVE_FREE: dict[int, tuple[Any, bool]] = {}


def _directive_free(document_parts: tuple[Any, ...]) -> bool:
    """Whether no node of the operation or its fragments carries a directive."""
    key = id(document_parts[0])
    cached = _DIRECTIVE_FREE.get(key)
    if cached is not None and cached[0] is document_parts[0]:
        return cached[1]
    free = all(not _has_directive(part) for part in document_parts)
    if len(_DIRECTIVE_FREE) >= _SHARED_PLANS_KEPT:
        _DIRECTIVE_FREE.clear()
    _DIRECTIVE_FREE[key] = (document_parts[0], free)
    return free


def _has_directive(node: Any) -> bool:
    if getattr(node, "directives", None):
        return True
    selection_set = getattr(node, "selection_set", None)
    return selection_set is not None and any(
        _has_directive(child) for child in selection_set.selections
    )


class ProjectingExecutionContext(CodingExecutionContext):
    """Strawberry's executor, completing plain objects by projection (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (type name, id of field details list) -> (the list, kept alive; plan or None)
        self._plans: dict[tuple[str, int], tuple[Any, _Plan | None]] = {}
        parts = (self.operation, *self.fragments.values())
        self._share_plans = _directive_free(parts)

    def complete_object_value(
        self,
        return_type: GraphQLObjectType,
        field_details_list: Any,
        info: Any,
        path: Any,
        result: Any,
        position_context: Any,
    ) -> Any:
        plan = self._plan_for(return_type, field_details_list)
        if plan is not None:
            try:
                return plan.project(result)
            except _Fallback:
                pass
        return super().complete_object_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def _plan_for(self, type_: GraphQLObjectType, field_details_list: Any) -> _Plan | None:
        key = (type_.name, id(field_details_list))
        cached = self._plans.get(key)
        if cached is not None:
            return cached[1]
        if self._share_plans:
            nodes = tuple(details.node for details in field_details_list)
            shared_key = (type_.name, *map(id, nodes))
            shared = _SHARED_PLANS.get(shared_key)
            if shared is None:
                if len(_SHARED_PLANS) >= _SHARED_PLANS_KEPT:
                    _SHARED_PLANS.clear()
                shared = _SHARED_PLANS[shared_key] = (
                    nodes,
                    self._compile(type_, field_details_list),
                )
            plan = shared[1]
        else:
            plan = self._compile(type_, field_details_list)
        self._plans[key] = (field_details_list, plan)
        return plan

    def _compile(self, type_: GraphQLObjectType, field_details_list: Any) -> _Plan | None:
        grouped = self.collect_subfields(type_, field_details_list).grouped_field_set
        fields = []
        for response_key, details in grouped.items():
            node = details[0].node
            name = node.name.value
            if name == "__typename":
                fields.append(_Field(response_key, name, _TYPENAME, True, False))
                continue
            field_def = type_.fields.get(name)
            if field_def is None or node.arguments:
                return None
            definition = field_def.extensions.get("strawberry-definition")
            source_name = getattr(definition, "python_name", name)
            named, non_null, is_list, items_non_null = _unwrap(field_def.type)
            if not getattr(field_def.resolve, "_is_default", False):
                base = getattr(definition, "base_resolver", None)
                function = getattr(base, "wrapped_func", None)
                coerce = _SCALARS.get(getattr(named, "name", ""))
                if not getattr(function, "projectable", False) or coerce is None or is_list:
                    return None  # a field with a resolver of its own: graphql-core's way
                fields.append(
                    _Field(response_key, source_name, _COMPUTED, non_null, False, coerce, function)
                )
                continue
            if isinstance(named, GraphQLScalarType):
                coerce = _SCALARS.get(named.name)
                if coerce is None:
                    return None
                kind = _SCALAR_LIST if is_list else _SCALAR
                fields.append(
                    _Field(response_key, source_name, kind, non_null, items_non_null, coerce)
                )
            elif isinstance(named, GraphQLObjectType):
                sub_plan = self._plan_for(named, details)
                if sub_plan is None:
                    return None
                kind = _OBJECT_LIST if is_list else _OBJECT
                fields.append(
                    _Field(
                        response_key, source_name, kind, non_null, items_non_null, None, sub_plan
                    )
                )
            else:
                return None  # enums, interfaces, unions: graphql-core's way
        return _Plan(type_.name, type_.is_type_of, fields)
