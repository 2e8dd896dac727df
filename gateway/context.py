"""What one GraphQL request carries to its resolvers: settings, the upstream client, the caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.caller import Caller
from gateway.errors import UnauthenticatedError
from gateway.settings import Settings
from gateway.upstream import UpstreamClient


def is_bearer(header: str | None) -> bool:
    """Whether `header` is a usable bearer credential: `Bearer <token>`, printable ASCII."""
    if header is None or not header.isascii() or not header.isprintable():
        return False
    scheme, _, token = header.strip().partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Per-request state, built by the HTTP layer and read by resolvers as `info.context`."""

    settings: Settings
    upstream: UpstreamClient
    authorization_header: str | None
    """The caller's `Authorization` header exactly as received, or None."""
    bearer: Caller | None
    """The request as upstream calls see it, built once when the header is a bearer token."""
    loaders: dict[str, Any] = field(default_factory=dict)
    """This request's DataLoaders, by name (made on first use by `resolvers`)."""

    def caller(self) -> Caller:
        """The request's `Caller`; `UnauthenticatedError` (before any upstream call) when the
        header is missing, blank or another scheme: the gateway forwards what it received and
        never invents credentials."""
        if self.bearer is not None:
            return self.bearer
        header = self.authorization_header
        if header is None or not header.strip():
            raise UnauthenticatedError(
                "Send an `Authorization: Bearer <token>` header: the gateway forwards it to "
                "the Jobs API"
            )
        if not header.isascii() or not header.isprintable():
            # A bearer token is ASCII (RFC 6750); other bytes could not be forwarded as sent.
            raise UnauthenticatedError(
                "The Authorization header holds bytes a bearer token cannot: only printable "
                "ASCII is accepted"
            )
        raise UnauthenticatedError(
            "The Authorization header must be `Bearer <token>`; other schemes are not "
            "accepted by the Jobs API"
        )
