"""Accept-style request headers (`Accept`, `Accept-Encoding`): each item with its q-weight."""

from __future__ import annotations

CACHED_LENGTH = 256
"""Longest header value whose answer is kept: clients send a few dozen characters, and a cache
of any value would hold whatever a caller chose to send (256 headers of 16 KiB each)."""


def accept_weights(header: str) -> dict[str, float]:
    """The items of `header`, lower-cased, each with its weight: `q` (1 when absent, 0 when
    malformed), the highest if an item is listed twice. Parameters other than `q` are ignored."""
    weights: dict[str, float] = {}
    for item in header.split(","):
        name, *parameters = (part.strip() for part in item.split(";"))
        weight = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        name = name.lower()
        weights[name] = max(weight, weights.get(name, 0.0))
    return weights
