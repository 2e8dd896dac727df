"""Live updates: the `jobChanged` subscription's pollers, change detection and transports.

    changes.py     pure: a window's `Baseline`, and what changed between two polls
    poller.py      one poller: polls on an interval, backs off in outages, fans changes out
    hub.py         the process's pollers, one per (credential digest, `first`), and the drain
    connection.py  a subscriber's connection as resolvers see it (credential, limits)
    transport.py   Strawberry's view for graphql-transport-ws and multipart HTTP

The GraphQL side (`Subscription.jobChanged`, `JobChange`) is `gateway.subscriptions`.
"""

from gateway.live.changes import Baseline, Change, ChangeKind
from gateway.live.connection import LiveConnection
from gateway.live.hub import LiveHub
from gateway.live.transport import SUBSCRIPTION_TRANSPORTS, LiveView, wants_multipart_subscription

__all__ = [
    "SUBSCRIPTION_TRANSPORTS",
    "Baseline",
    "Change",
    "ChangeKind",
    "LiveConnection",
    "LiveHub",
    "LiveView",
    "wants_multipart_subscription",
]
