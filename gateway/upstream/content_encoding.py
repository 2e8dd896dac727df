"""Bounded decoding of upstream bodies: Content-Encoding undone a piece at a time.

The gateway asks the upstream for `gzip, deflate` and decodes answers itself, because a
decoder that inflates each received chunk whole lets 2 MB of gzip become 2 GiB in memory before
any size check runs. Here every zlib call is capped (`max_length`), so the decoded body is
counted piece by piece against `GATEWAY_UPSTREAM_MAX_BYTES` and the read stops at the first
byte over it: memory per response stays within the limit plus one piece, and the caller can
yield to the event loop between pieces.

| Content-Encoding          | decoded as                                          |
|---------------------------|-----------------------------------------------------|
| none, `identity`          | as received                                         |
| `gzip`, `x-gzip`          | gzip                                                |
| `deflate`                 | zlib-wrapped deflate, or raw deflate (as httpx does) |
| several, comma-separated  | each in turn, last applied first                    |
| anything else             | `ContentDecodingError`                              |

A corrupt stream, or one that ends before its compressed data does, is a
`ContentDecodingError`: the upstream client turns it into `UPSTREAM_BAD_RESPONSE`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Final, Protocol

PIECE: Final = 256 * 1024
"""The most bytes one decoding step produces."""


class ContentDecodingError(ValueError):
    """Raised when a body cannot be decoded as its Content-Encoding says."""


class _Stage(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def finish(self) -> Iterator[bytes]: ...


class _Identity:
    def feed(self, data: bytes) -> Iterator[bytes]:
        if data:
            yield data

    def finish(self) -> Iterator[bytes]:
        return iter(())


class _Inflate:
    """zlib with every step capped at `PIECE` bytes of output."""

    def __init__(self, wbits: int, *, raw_fallback: bool = False) -> None:
        self._inflater = zlib.decompressobj(wbits)
        self._raw_fallback = raw_fallback
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        try:
            yield from self._drain(data)
        except zlib.error as error:
            if not (self._raw_fallback and not self._started):
                raise ContentDecodingError(f"corrupt compressed body ({error})") from None
            # `deflate` without the zlib wrapper, as some servers send it.
            self._inflater, self._raw_fallback = zlib.decompressobj(-zlib.MAX_WBITS), False
            yield from self.feed(data)

    def _drain(self, data: bytes) -> Iterator[bytes]:
        while True:
            piece = self._inflater.decompress(data, PIECE)
            data = self._inflater.unconsumed_tail
            if piece:
                self._started = True
                yield piece
            if not data and len(piece) < PIECE:
                return

    def finish(self) -> Iterator[bytes]:
        try:
            yield from self._drain(b"")
        except zlib.error as error:
            raise ContentDecodingError(f"corrupt compressed body ({error})") from None
        if not self._inflater.eof:
            raise ContentDecodingError("the compressed body ends before its data does")


def _stage(encoding: str) -> _Stage:
    if encoding in ("", "identity"):
        return _Identity()
    if encoding in ("gzip", "x-gzip"):
        return _Inflate(zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        return _Inflate(zlib.MAX_WBITS, raw_fallback=True)
    raise ContentDecodingError(f"unsupported Content-Encoding {encoding[:32]!r}")


class BodyDecoder:
    """Undoes a Content-Encoding chunk by chunk, in pieces of at most `PIECE` bytes."""

    def __init__(self, content_encoding: str | None) -> None:
        names = [name.strip().lower() for name in (content_encoding or "").split(",")]
        # Applied in the order listed, so undone from the last.
        self._stages = [_stage(name) for name in reversed(names) if name not in ("", "identity")]
        self.identity = not self._stages
        """Whether chunks pass through unchanged."""

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """The decoded pieces of `chunk`."""
        return self._through(0, chunk)

    def finish(self) -> Iterator[bytes]:
        """The last pieces, once the body has ended; raises if a stream was cut short."""
        for index, stage in enumerate(self._stages):
            for piece in stage.finish():
                yield from self._through(index + 1, piece)

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self._stages):
            if data:
                yield data
            return
        for piece in self._stages[index].feed(data):
            yield from self._through(index + 1, piece)
