"""Upstream answers that are not a success, as gateway errors: the one place statuses are read.

| what happened                                  | error                    | retried | breaker |
|------------------------------------------------|--------------------------|---------|---------|
| could not connect (refused, DNS, connect t/o)  | UpstreamUnavailableError | yes     | failure |
| connection dropped before an answer (*)        | UpstreamUnavailableError | no      | failure |
| no full answer within the attempt's time       | UpstreamTimeoutError     | no      | failure |
| 502, 503, 504                                  | UpstreamUnavailableError | yes     | failure |
| other 5xx                                      | UpstreamUnavailableError | no      | failure |
| 429 (Retry-After within the cap, or none)      | UpstreamRateLimitedError | yes     | neutral |
| 400/422, 401, 403, 404, 409, other 4xx         | coded by `error_for_status` | no   | neutral |
| 2xx cut short, too large, not JSON, not a list | UpstreamBadResponseError | no      | neutral |

(*) The connection pool (aiohttp) itself resends an idempotent GET once, at once, when a
connection drops before any answer: the usual cause is a keep-alive connection the upstream
closed while it sat in the pool.

Only a redacted, printable excerpt of an upstream body's JSON `message` ever reaches a client
(`upstream_message`); the log gets a redacted excerpt of the body (`log_excerpt`).
"""

from __future__ import annotations

import email.utils
import logging
import re
from datetime import UTC, datetime
from typing import Final

import httpx
import orjson

from gateway.errors import (
    BadUserInputError,
    ConflictError,
    ForbiddenError,
    GatewayError,
    NotFoundError,
    UnauthenticatedError,
    UpstreamBadResponseError,
    UpstreamRateLimitedError,
    UpstreamUnavailableError,
)
from gateway.redaction import redact_echoes, token_of

logger = logging.getLogger("gateway.upstream")

_EXCERPT_LENGTH: Final = 120
ERROR_BODY_BYTES: Final = 4096
"""How much of an error answer's body is read (for its message)."""
_RETRIED_STATUSES: Final = frozenset({502, 503, 504})
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


class ConnectFailedError(UpstreamUnavailableError):
    """Raised when no connection to the upstream could be made: safe to retry."""


class BadResponse(UpstreamBadResponseError):
    """An `UpstreamBadResponseError` that says what was wrong, for metrics (`reason`)."""

    def __init__(self, message: str, reason: str, upstream_status: int | None = None) -> None:
        super().__init__(message, upstream_status=upstream_status)
        self.reason = reason


def _printable(text: str, limit: int = _EXCERPT_LENGTH) -> str:
    text = _UNPRINTABLE.sub(" ", text).strip()
    if len(text) > limit:
        text = text[:limit].rstrip() + "..."
    return text


def log_excerpt(body: bytes, authorization: str) -> str:
    """A short, printable, token-free excerpt of an upstream body, for the log only."""
    text = body[: _EXCERPT_LENGTH * 4].decode("utf-8", errors="replace")
    return _printable(redact_echoes(text, token_of(authorization))) or "(empty body)"


def upstream_message(body: bytes, authorization: str, limit: int = _EXCERPT_LENGTH) -> str | None:
    """The `message` of a JSON error body, redacted, printable and at most `limit` characters:
    the only upstream text a client ever sees. None when the body has no such string."""
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    message = decoded.get("message") if isinstance(decoded, dict) else None
    if not isinstance(message, str):
        return None
    redacted = redact_echoes(message[:ERROR_BODY_BYTES], token_of(authorization))
    return _printable(redacted, limit) or None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
        seconds = max(0.0, seconds)
    if not 0 <= seconds < 86_400 * 365:
        return None
    return round(seconds, 3)


def error_for_status(
    status: int,
    headers: httpx.Headers,
    body: bytes,
    authorization: str,
    message_limit: int = _EXCERPT_LENGTH,
) -> GatewayError:
    """The gateway error for a non-2xx upstream answer (quoting at most `message_limit`
    characters of the upstream's own message: writes quote more, their refusals explain)."""
    if status == 401:
        return UnauthenticatedError(
            "The Jobs API rejected the bearer token (expired, revoked or not issued for it)",
            upstream_status=status,
        )
    if status == 403:
        return ForbiddenError(
            "The bearer token is valid but lacks the policy this query needs "
            "(Job_ReadAll for job lists)",
            upstream_status=status,
        )
    if status == 404:
        return NotFoundError(
            "The Jobs API answered 404 for a list endpoint, which means the gateway's "
            "GATEWAY_UPSTREAM_URL is misconfigured",
            upstream_status=status,
        )
    if status >= 400:
        logger.info("The Jobs API answered HTTP %d: %s", status, log_excerpt(body, authorization))
    message = upstream_message(body, authorization, message_limit)
    said = f": {message}" if message else f" (HTTP {status})"
    if status in (400, 422):
        return BadUserInputError(f"The Jobs API refused the request{said}", upstream_status=status)
    if status == 409:
        return ConflictError(f"The Jobs API refused the change{said}", upstream_status=status)
    if status == 429:
        return UpstreamRateLimitedError(
            "The Jobs API is rate limiting this token; retry later",
            upstream_status=status,
            retry_after=parse_retry_after(headers.get("retry-after")),
        )
    if status >= 500:
        return UpstreamUnavailableError(
            f"The Jobs API failed with HTTP {status}",
            upstream_status=status,
            retry_after=parse_retry_after(headers.get("retry-after")),
        )
    return BadResponse(
        f"The Jobs API answered with unexpected HTTP {status}{said if message else ''}",
        "status",
        upstream_status=status,
    )


def is_retryable(error: BaseException, retry_after_max: float) -> bool:
    """Whether a failed GET may be tried again: connect errors, and 502/503/504 or 429 unless
    their Retry-After asks for a longer wait than the gateway makes itself."""
    if isinstance(error, ConnectFailedError):
        return True
    if isinstance(error, UpstreamRateLimitedError) or (
        isinstance(error, UpstreamUnavailableError) and error.upstream_status in _RETRIED_STATUSES
    ):
        return error.retry_after is None or error.retry_after <= retry_after_max
    return False
