"""The DateTime scalar: what the upstream really writes passes through; nothing else does."""

from __future__ import annotations

import pytest
from graphql import GraphQLError

from gateway.scalars import SCALAR_MAP, DateTime

_SERIALIZE = SCALAR_MAP[DateTime].serialize
assert _SERIALIZE is not None
SERIALIZE = _SERIALIZE


@pytest.mark.parametrize(
    "value",
    [
        "2020-11-04T12:53:42.266Z",
        "2020-11-04T12:53:13.8Z",
        "2020-11-04T12:53:47Z",
        "2020-11-04T12:53:47.12Z",
        "2020-11-04T12:53:47.1234567Z",
        "2020-11-04T12:53:47.123456789+01:00",
        "2024-02-29T23:59:59Z",
    ],
)
def test_upstream_timestamps_pass_through_unchanged(value: str) -> None:
    """0 to 9 fractional digits with Z or an offset serialize as the very same string."""
    assert SERIALIZE(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "2020-11-04",
        "2020-11-04 12:53:47Z",
        "2020-11-04T12:53:47",
        "20201104T125347Z",
        "2020-13-04T12:53:47Z",
        "2023-02-29T12:00:00Z",
        "2020-11-04T25:00:00Z",
        "2020-11-04T12:53:47.Z",
        "yesterday",
        1604494422,
        None,
    ],
)
def test_anything_else_is_a_field_error(value: object) -> None:
    """Dates without times, missing zones, impossible dates and non-strings are refused."""
    with pytest.raises(GraphQLError, match="DateTime cannot represent"):
        SERIALIZE(value)
