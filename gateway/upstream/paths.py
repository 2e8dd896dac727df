"""Ids from callers as URL path segments: validated and encoded before any call."""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote

from gateway.errors import BadUserInputError

_MAX_ID_LENGTH: Final = 200
_FORBIDDEN_IN_IDS = re.compile(r"[/?#\\\x00-\x1f\x7f]")


def path_segment(value: str, name: str) -> str:
    """`value` percent-encoded as exactly one URL path segment; `BadUserInputError` (before any
    call) for an id that could mean another path: empty, `.`, `..`, or holding `/`, `?`, `#`,
    `\\` or a control character, or longer than 200 characters."""
    if value in ("", ".", "..") or len(value) > _MAX_ID_LENGTH or _FORBIDDEN_IN_IDS.search(value):
        raise BadUserInputError(
            f"`{name}` must be a non-empty id of at most {_MAX_ID_LENGTH} characters, not `.` "
            "or `..`, without `/`, `?`, `#`, `\\` or control characters"
        )
    return quote(value, safe="")
