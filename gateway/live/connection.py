"""One subscriber's connection, as subscription resolvers see it (`info.context`).

A WebSocket carries any number of subscriptions (up to `GATEWAY_LIVE_MAX_SUBSCRIPTIONS`); a
multipart HTTP request carries one. Strawberry makes one context per connection and hands it
to every operation on it, and to the fields of every event, so a `LiveConnection` holds only
what is the connection's: the credential (the `connection_init` payload's `Authorization`, or
the upgrade request's header), the open subscriptions, and the process's hub. Whatever an
event's fields need from the upstream (`Job.snapshots`) gets a `Caller` of its own, with a
fresh deadline and budget, through a DataLoader that lives only as long as that one field.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from strawberry.dataloader import DataLoader

from gateway.caller import Caller, CredentialDigests
from gateway.context import require_bearer
from gateway.errors import SubscriptionLimitExceededError
from gateway.live.hub import LiveHub, live_caller
from gateway.settings import Settings
from gateway.upstream import UpstreamClient


def authorization_in(params: object) -> str | None:
    """The `Authorization` value of a `connection_init` payload (any case of the key), if it is
    a string."""
    if not isinstance(params, dict):
        return None
    for key, value in params.items():
        if isinstance(key, str) and key.lower() == "authorization" and isinstance(value, str):
            return value
    return None


class LiveConnection:
    """What a subscription's resolvers read as `info.context`."""

    def __init__(
        self,
        settings: Settings,
        upstream: UpstreamClient,
        hub: LiveHub,
        credentials: CredentialDigests,
        header: str | None,
        *,
        max_subscriptions: int,
    ) -> None:
        self.settings = settings
        self.upstream = upstream
        self.hub = hub
        self._credentials = credentials
        self._header = header
        self._max_subscriptions = max_subscriptions
        self.subscriptions = 0
        self.connection_params: object = None
        """The `connection_init` payload (Strawberry sets it; None over HTTP)."""

    @property
    def authorization_header(self) -> str | None:
        """The credential: the `connection_init` payload's, else the request's header."""
        return authorization_in(self.connection_params) or self._header

    def credential(self) -> tuple[str, str]:
        """The bearer header and its keyed digest; `UnauthenticatedError` without one."""
        header = require_bearer(self.authorization_header)
        return header, self._credentials.digest(header)

    async def caller(self) -> Caller:
        """A `Caller` for the upstream reads of one event's field."""
        authorization, credential = self.credential()
        return await live_caller(self.upstream, self.settings, authorization, credential)

    def loader(
        self, name: str, fetch: Callable[[Caller, str], Awaitable[Any]]
    ) -> DataLoader[str, Any]:
        """A DataLoader over `fetch` for one field of one event (nothing is kept between
        events, so a later event never sees an earlier one's answer)."""

        async def load(keys: list[str]) -> list[Any]:
            caller = await self.caller()
            return list(
                await asyncio.gather(*(fetch(caller, key) for key in keys), return_exceptions=True)
            )

        return DataLoader(load_fn=load, cache=False)

    def check_room(self) -> None:
        """Raise if this connection holds as many subscriptions as it may."""
        if self.subscriptions >= self._max_subscriptions:
            raise SubscriptionLimitExceededError(
                f"One connection may hold {self._max_subscriptions} subscriptions at once; "
                "complete one first"
            )

    @contextlib.contextmanager
    def subscription(self) -> Iterator[None]:
        """Count one open subscription of this connection for the length of the block."""
        self.check_room()
        self.subscriptions += 1
        try:
            yield
        finally:
            self.subscriptions -= 1
