"""Compressed responses: which encoding a client gets, and the bytes in it.

The gateway offers the encodings of `GATEWAY_COMPRESSION` (`zstd,br,gzip` by default), in that
order of preference, to clients whose `Accept-Encoding` allows them, for bodies of at least
`GATEWAY_COMPRESSION_MIN_BYTES`. Levels are fixed here, chosen from the figures in
`benchmarks/README.md` (issue 14): the cheapest level of each, because a dynamic answer is
compressed on the request's time, and the next level up saves a few percent of bytes for two
to four times the CPU. GraphiQL's static assets are compressed once, at their highest levels,
by `python -m gateway fetch-graphiql` (`graphiql_assets`).
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from typing import Final

import brotli
import zstandard
from starlette.responses import Response

from gateway.accept_headers import CACHED_LENGTH, accept_weights

ENCODINGS: Final = ("zstd", "br", "gzip")
"""Every encoding the gateway can produce, in its order of preference."""

_ZSTD = zstandard.ZstdCompressor(level=1)


def _gzip(body: bytes) -> bytes:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # 31: the gzip container
    return compressor.compress(body) + compressor.flush()


COMPRESSORS: Final[dict[str, Callable[[bytes], bytes]]] = {
    "zstd": _ZSTD.compress,
    "br": functools.partial(brotli.compress, quality=1),
    "gzip": _gzip,
}


def choose_encoding(accept_encoding: str | None, offered: tuple[str, ...]) -> str | None:
    """`_choose_encoding`, its answers kept for short headers (`CACHED_LENGTH`)."""
    if accept_encoding is not None and len(accept_encoding) > CACHED_LENGTH:
        return _choose_encoding.__wrapped__(accept_encoding, offered)
    return _choose_encoding(accept_encoding, offered)


@functools.lru_cache(maxsize=256)
def _choose_encoding(accept_encoding: str | None, offered: tuple[str, ...]) -> str | None:
    """The first of `offered` that `accept_encoding` accepts (q above 0), or None.

    `*` accepts every encoding not named; `identity` is never chosen here (no compression is
    the answer without an encoding)."""
    if not accept_encoding or not offered:
        return None
    weights = accept_weights(accept_encoding)
    default = weights.get("*", 0.0)
    return next((name for name in offered if weights.get(name, default) > 0), None)


def compress(body: bytes, encoding: str) -> bytes:
    """`body` in `encoding` (one of `ENCODINGS`)."""
    return COMPRESSORS[encoding](body)


def encoded(response: Response, encoding: str | None, min_bytes: int) -> Response:
    """`response` with its body in `encoding`, when there is one, the body has at least
    `min_bytes`, and it is not encoded already (a kept response is kept encoded)."""
    body = response.body
    if encoding is None or len(body) < min_bytes:
        return response
    raw = response.raw_headers
    if any(name == b"content-encoding" for name, _ in raw):
        return response
    compressed = compress(bytes(body), encoding)
    response.body = compressed
    raw[:] = [(name, value) for name, value in raw if name != b"content-length"]
    raw += [
        (b"content-length", str(len(compressed)).encode()),
        (b"content-encoding", encoding.encode()),
    ]
    return response
