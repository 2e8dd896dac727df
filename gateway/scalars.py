"""Custom GraphQL scalars: `DateTime` as the upstream really writes it, and free-form `JSON`."""

from __future__ import annotations

import re
from datetime import datetime
from typing import NewType

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON
from strawberry.types.scalar import ScalarDefinition

__all__ = ["JSON", "SCALAR_MAP", "DateTime"]

# RFC 3339 date-time. The Jobs API writes 0 to 7 fractional digits (".266Z", ".8Z", "47Z",
# .NET's 7-digit ticks); 9 are allowed so nanosecond sources fit too.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})", re.ASCII
)


def checked_timestamp(value: object) -> str:
    """`value` itself if it is an RFC 3339 timestamp with a real date and time; else an error."""
    if type(value) is str and value in VALID_TIMESTAMPS:
        return value
    checked = _check_timestamp(value)
    if len(VALID_TIMESTAMPS) >= VALID_TIMESTAMPS_KEPT:
        VALID_TIMESTAMPS.clear()
    VALID_TIMESTAMPS.add(checked)
    return checked


# Pages are read again and again, so each distinct valid timestamp is checked once (bounded;
# cleared, never replaced, when full: the projection reads this very set).
VALID_TIMESTAMPS: set[str] = set()
VALID_TIMESTAMPS_KEPT = 100_000


def _check_timestamp(value: object) -> str:
    if not isinstance(value, str) or _RFC3339.fullmatch(value) is None:
        raise GraphQLError(f"DateTime cannot represent {_shorten(value)}: expected RFC 3339")
    # The regex checks the form; fromisoformat checks the calendar (no month 13, no Feb 30).
    # Python keeps microseconds, so digits past six are cut before the check, not in the output.
    head, dot, rest = value.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        rest = rest[: min(digits, 6)] + rest[digits:]
    try:
        datetime.fromisoformat(head + dot + rest)
    except ValueError:
        raise GraphQLError(
            f"DateTime cannot represent {_shorten(value)}: no such date or time"
        ) from None
    return value


def _shorten(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


DateTime = NewType("DateTime", str)
"""An RFC 3339 timestamp string as the upstream wrote it; GraphQL's `DateTime` scalar."""

SCALAR_MAP: dict[object, ScalarDefinition] = {
    DateTime: strawberry.scalar(
        name="DateTime",
        description=(
            "A point in time as an RFC 3339 string, passed through exactly as the Jobs API wrote "
            "it (UTC `Z`, 0 to 7 fractional digits), e.g. `2020-11-04T12:53:42.266Z`. Values that "
            "are not valid timestamps become null with an error at their path."
        ),
        serialize=checked_timestamp,
        parse_value=checked_timestamp,
    )
}
"""The scalar definitions the schema's config maps the Python types above to."""
