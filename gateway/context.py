"""What one GraphQL request carries to its resolvers: settings, the upstream client, the caller."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from strawberry.dataloader import DataLoader

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


_NOT_BEARER = (
    "The Authorization header must be `Bearer <token>`; other schemes are not accepted by the "
    "Jobs API"
)


def require_bearer(header: str | None) -> str:
    """`header`, if it is a usable bearer credential; else `UnauthenticatedError`, saying what
    is wrong. The gateway forwards what it received and never invents credentials."""
    if is_bearer(header):
        assert header is not None
        return header
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
    raise UnauthenticatedError(_NOT_BEARER)


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
        header is missing, blank or another scheme (see `require_bearer`)."""
        if self.bearer is not None:
            return self.bearer
        require_bearer(self.authorization_header)
        raise UnauthenticatedError(_NOT_BEARER)

    def loader(
        self, name: str, fetch: Callable[[Caller, str], Awaitable[Any]]
    ) -> DataLoader[str, Any]:
        """This request's DataLoader `name` over `fetch`: identical keys load once, distinct
        ones concurrently (each a call of the request's budget)."""
        loader = self.loaders.get(name)
        if loader is None:

            async def load(keys: list[str]) -> list[Any]:
                caller = self.caller()
                calls = (fetch(caller, key) for key in keys)
                return list(await asyncio.gather(*calls, return_exceptions=True))

            loader = self.loaders[name] = DataLoader(load_fn=load)
        return loader
