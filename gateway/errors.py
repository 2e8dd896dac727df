"""The gateway's error contract: every failure a client can see, each with a stable code.

    GatewayError                    (never raised itself)
    ├── BadUserInputError           BAD_USER_INPUT         bad arguments, cursors; upstream 400, 422
    ├── UnauthenticatedError        UNAUTHENTICATED        no bearer token; upstream 401
    ├── ForbiddenError              FORBIDDEN              upstream 403 (token lacks the policy)
    ├── NotFoundError               NOT_FOUND              upstream 404
    ├── ConflictError               CONFLICT               upstream 409 (a write that clashes)
    ├── UpstreamRateLimitedError    UPSTREAM_RATE_LIMITED  upstream 429 (+ retryAfter seconds)
    ├── UpstreamTimeoutError        UPSTREAM_TIMEOUT       upstream did not answer in time
    ├── UpstreamUnavailableError    UPSTREAM_UNAVAILABLE   connect/reset/DNS failure, 5xx, breaker
    ├── UpstreamBadResponseError    UPSTREAM_BAD_RESPONSE  2xx that is not the documented JSON
    └── LiveError                   (subscriptions: `gateway.live`)
        ├── SubscriptionLimitExceededError  SUBSCRIPTION_LIMIT_EXCEEDED  too many on one socket
        ├── PollerLimitExceededError        POLLER_LIMIT_EXCEEDED        too many pollers
        ├── SubscriberTooSlowError          SUBSCRIBER_TOO_SLOW          events piled up unread
        └── ShuttingDownError               SHUTTING_DOWN                the process is draining

Resolvers raise these; graphql-core copies `extensions` onto the GraphQL error it builds, so the
client sees `extensions.code` (and `extensions.upstreamStatus` where the upstream answered).
Anything else that escapes a resolver is a bug: `error_contract.coded_error` logs it and shows
the client only `INTERNAL_SERVER_ERROR`. Only `gateway/upstream/` turns HTTP outcomes into these.
Messages are written for the frontend developer and never contain a token.
"""

from __future__ import annotations

from typing import Any, ClassVar

INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


class GatewayError(Exception):
    """A failure the client is meant to see, with a stable `extensions.code`."""

    code: ClassVar[str] = INTERNAL_SERVER_ERROR

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.upstream_status = upstream_status
        self.retry_after = retry_after

    @property
    def extensions(self) -> dict[str, Any]:
        """What the GraphQL error carries under `extensions`."""
        extensions: dict[str, Any] = {"code": self.code}
        if self.upstream_status is not None:
            extensions["upstreamStatus"] = self.upstream_status
        if self.retry_after is not None:
            extensions["retryAfter"] = self.retry_after
        return extensions


class BadUserInputError(GatewayError):
    """Raised for arguments or cursors the gateway cannot use, before any upstream call."""

    code = "BAD_USER_INPUT"


class UnauthenticatedError(GatewayError):
    """Raised when the caller sent no usable bearer token, or the upstream answered 401."""

    code = "UNAUTHENTICATED"


class ForbiddenError(GatewayError):
    """Raised when the upstream answered 403: the token lacks the endpoint's policy."""

    code = "FORBIDDEN"


class NotFoundError(GatewayError):
    """Raised when the upstream answered 404."""

    code = "NOT_FOUND"


class ConflictError(GatewayError):
    """Raised when the upstream answered 409 to a write: it clashes with the job's state."""

    code = "CONFLICT"


class UpstreamRateLimitedError(GatewayError):
    """Raised when the upstream answered 429; carries Retry-After in seconds when it was sent."""

    code = "UPSTREAM_RATE_LIMITED"


class UpstreamTimeoutError(GatewayError):
    """Raised when the upstream did not answer within the configured time."""

    code = "UPSTREAM_TIMEOUT"


class UpstreamUnavailableError(GatewayError):
    """Raised when the upstream could not be reached, answered with a 5xx, or the circuit
    breaker is open (then with `retryAfter`, the seconds until it lets a probe through)."""

    code = "UPSTREAM_UNAVAILABLE"


class UpstreamBadResponseError(GatewayError):
    """Raised when the upstream answered 2xx with something other than the documented JSON."""

    code = "UPSTREAM_BAD_RESPONSE"


class LiveError(GatewayError):
    """A subscription (`jobChanged`) the gateway will not start or keep (never raised itself)."""


class SubscriptionLimitExceededError(LiveError):
    """Raised when one WebSocket connection asks for more subscriptions than it may hold."""

    code = "SUBSCRIPTION_LIMIT_EXCEEDED"


class PollerLimitExceededError(LiveError):
    """Raised when a subscription would start a poller past the process's limit."""

    code = "POLLER_LIMIT_EXCEEDED"


class SubscriberTooSlowError(LiveError):
    """Ends a subscription whose client left too many events unread (its memory is bounded)."""

    code = "SUBSCRIBER_TOO_SLOW"


class ShuttingDownError(LiveError):
    """Raised for a subscription asked for while the process drains: retry on another replica."""

    code = "SHUTTING_DOWN"
