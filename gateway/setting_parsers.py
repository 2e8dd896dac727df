"""How one setting's text becomes its value: the parsers `Settings` declares its options with.

Each parser takes the raw text of a `GATEWAY_*` variable or CLI flag and returns the value, or
raises `ValueError` with a reason that `Settings.from_env` puts after the variable's name.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import field
from typing import Any
from urllib.parse import urlsplit

from gateway.compression import ENCODINGS


def positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be a whole number of at least 1")
    return value


def non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be a whole number of at least 0")
    return value


def non_negative_float(raw: str) -> float:
    value = float(raw)
    if not 0 <= value < math.inf:
        raise ValueError("must be a number of seconds, 0 or more")
    return value


def port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("must be a TCP port from 0 to 65535")
    return value


def positive_float(raw: str) -> float:
    value = float(raw)
    if not 0 < value < math.inf:
        raise ValueError("must be a number of seconds above 0")
    return value


def http_url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            "must be an http:// or https:// URL, for example https://gateway.workfloplus.com"
        )
    if parts.query or parts.fragment:
        raise ValueError("must be a base URL without a query string or fragment")
    # The gateway appends /jobs/v1/...; a trailing slash would double it.
    return raw.strip().rstrip("/")


def log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("must be one of debug, info, warning, error, critical")
    return level


def text(raw: str) -> str:
    return raw


def boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def origins(raw: str) -> tuple[str, ...]:
    origins = tuple(origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip())
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            raise ValueError(
                f"{origin!r} is not an origin like https://app.example.com (no wildcards, no paths)"
            )
    return origins


_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def header_names(raw: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    for name in names:
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a header name")
    return names


def cache_url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme == "memory":
        return "memory://"
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError("must be memory:// or redis://host:port/db (rediss:// for TLS)")
    try:
        parts.port  # noqa: B018 - parsing the port raises for a malformed one
        db = parts.path.strip("/")
        if db and int(db) < 0:
            raise ValueError
    except ValueError:
        raise ValueError("has a malformed port or database number") from None
    return raw.strip()


def option(default: Any, parse: Callable[[str], Any], doc: str, *, secret: bool = False) -> Any:
    """Declare a setting: its default (`dataclasses.MISSING` when required), parser and meaning.

    A `secret` one (a key, a URL that may hold a password) is left out of the settings' repr.
    """
    metadata = {"parse": parse, "doc": doc}
    if default is dataclasses.MISSING:
        return field(metadata=metadata, repr=not secret)
    return field(default=default, metadata=metadata, repr=not secret)


def encodings(raw: str) -> tuple[str, ...]:
    if raw.strip().lower() == "none":
        return ()
    names = tuple(name.strip().lower() for name in raw.split(",") if name.strip())
    for name in names:
        if name not in ENCODINGS:
            raise ValueError(f"{name!r} is not one of {', '.join(ENCODINGS)}")
    return names


def log_format(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("json", "console"):
        raise ValueError("must be json or console")
    return value
