"""Upstream bodies: read within a byte bound, their encoding undone, decoded to JSON of a shape.

Bad bodies become `UPSTREAM_BAD_RESPONSE` (`BadResponse`, whose `reason` metrics count).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import httpx
import orjson

from gateway.errors import GatewayError, UpstreamTimeoutError
from gateway.upstream.content_encoding import BodyDecoder, ContentDecodingError
from gateway.upstream.statuses import BadResponse, log_excerpt

logger = logging.getLogger("gateway.upstream")

JobJSON = dict[str, Any]
"""One job as the upstream sent it, decoded from JSON but otherwise untouched."""


def decode_json(status: int, body: bytes, authorization: str) -> Any:
    """The JSON of a 2xx body; `UpstreamBadResponseError` when it is not JSON or cut short."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        logger.info(
            "The Jobs API sent a body that is not JSON: %s", log_excerpt(body, authorization)
        )
        raise BadResponse(
            "The Jobs API answered with a body that is not JSON (or was cut short)",
            "not_json",
            upstream_status=status,
        ) from None


def decode_job_list(status: int, body: bytes, authorization: str) -> list[JobJSON]:
    """The JSON array of a 2xx list response; `UpstreamBadResponseError` for anything else."""
    decoded = decode_json(status, body, authorization)
    if not isinstance(decoded, list):
        raise BadResponse(
            f"The Jobs API answered with a JSON {type(decoded).__name__} where a list of "
            "jobs was expected",
            "wrong_shape",
            upstream_status=status,
        )
    return decoded


def cache_lifetime(headers: httpx.Headers, *, shared: bool) -> float | None:
    """Seconds the upstream's Cache-Control lets this answer be stored (0: not at all).

    `no-store` and `no-cache` forbid it; so does `private` when the cache is shared with other
    processes (Redis). `s-maxage` (shared) or `max-age` cap the lifetime; None sets no cap.
    """
    directives: dict[str, str] = {}
    for part in headers.get_list("cache-control", split_commas=True):
        name, _, value = part.strip().partition("=")
        directives[name.strip().lower()] = value.strip().strip('"')
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    if shared and "private" in directives:
        return 0.0
    for name in ("s-maxage", "max-age") if shared else ("max-age",):
        if name in directives:
            try:
                return max(0.0, float(directives[name]))
            except ValueError:
                return 0.0
    return None


def decode_single_job(status: int, body: bytes, authorization: str) -> JobJSON | None:
    """The job of a 2xx single-job answer: an object, or (as the docs show) an array of one."""
    decoded = decode_json(status, body, authorization)
    if isinstance(decoded, list):
        return decoded[0] if decoded else None
    if isinstance(decoded, dict):
        return decoded
    raise BadResponse(
        f"The Jobs API answered with a JSON {type(decoded).__name__} where a job was expected",
        "wrong_shape",
        upstream_status=status,
    )


async def read_body(response: httpx.Response, limit: int, *, truncate: bool) -> bytes:
    """The body with its Content-Encoding undone, at most `limit` bytes once decoded.

    Decoding is bounded piece by piece (`gateway.content_decoding`), so a compressed bomb
    costs at most `limit` plus one piece of memory before it is refused (twice `limit` for
    an accepted body, while its pieces are joined), and the loop gets a turn between
    pieces. With `truncate` (error bodies, read only for their message) what fits is
    enough, and a body that cannot be read is empty; without it a body over `limit`,
    undecodable, cut short or stalled is an error.
    """
    body = _BoundedBody(limit, truncate, response.status_code)
    try:
        decoder = BodyDecoder(response.headers.get("content-encoding"))
        # The transport's raw stream: httpx's own readers would inflate it unbounded.
        async for chunk in cast(httpx.AsyncByteStream, response.stream):
            decoded = (chunk,) if decoder.identity else decoder.feed(chunk)
            for count, piece in enumerate(decoded):
                if count:
                    await asyncio.sleep(0)  # a large inflation: let others run
                if not body.keep(piece):
                    return body.joined()
        for piece in decoder.finish():
            if not body.keep(piece):
                return body.joined()
    except (ContentDecodingError, httpx.TransportError) as error:
        if truncate:
            return b""
        raise _unreadable(error, response.status_code) from None
    return body.joined()


class _BoundedBody:
    """Decoded pieces of a body, never more than `limit` bytes of them."""

    def __init__(self, limit: int, truncate: bool, status: int) -> None:
        self._limit, self._truncate, self._status = limit, truncate, status
        self._pieces: list[bytes] = []
        self._size = 0

    def keep(self, piece: bytes) -> bool:
        """Keep `piece` if it fits; past the limit, keep what fits and say stop (`truncate`),
        or raise `UPSTREAM_BAD_RESPONSE`."""
        if self._size + len(piece) <= self._limit:
            self._pieces.append(piece)
            self._size += len(piece)
            return True
        if self._truncate:
            self._pieces.append(piece[: self._limit - self._size])
            return False
        raise BadResponse(
            f"The Jobs API sent a response larger than {self._limit} bytes",
            "too_large",
            upstream_status=self._status,
        )

    def joined(self) -> bytes:
        """The body: one piece (the usual page) as it is, several joined once."""
        return b"".join(self._pieces)


def _unreadable(error: Exception, status: int) -> GatewayError:
    """The gateway error for a body that could not be read to its end."""
    if isinstance(error, ContentDecodingError):
        message = f"The Jobs API sent a body that could not be decoded: {error}"
        return BadResponse(message, "encoding", upstream_status=status)
    if isinstance(error, httpx.TimeoutException):
        return UpstreamTimeoutError("The Jobs API stopped sending its answer midway")
    message = f"The Jobs API's answer was cut short ({type(error).__name__})"
    return BadResponse(message, "cut_short", upstream_status=status)
