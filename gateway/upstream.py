"""The only module that talks to the Jobs REST API: URLs, headers, status codes, decoding.

Every call forwards the caller's `Authorization` header verbatim and nothing else of the
caller's. Every way a call can fail becomes one of `gateway.errors`' exceptions here, so the
rest of the gateway never sees an httpx exception or an HTTP status code.
"""

from __future__ import annotations

import re
from typing import Any, Final

import httpx
import orjson

from gateway import __version__
from gateway.errors import (
    BadUserInputError,
    ForbiddenError,
    GatewayError,
    NotFoundError,
    UnauthenticatedError,
    UpstreamBadResponseError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

JobJSON = dict[str, Any]
"""One job as the upstream sent it, decoded from JSON but otherwise untouched."""

JOBS_PATH: Final = "/jobs/v1/"
USER_AGENT: Final = f"jobs-graphql-gateway/{__version__}"
_EXCERPT_LENGTH: Final = 120
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


def body_excerpt(body: bytes, authorization: str) -> str:
    """A short, printable, token-free excerpt of an upstream body, for error messages."""
    text = body[: _EXCERPT_LENGTH * 4].decode("utf-8", errors="replace")
    token = authorization.partition(" ")[2].strip()
    if token:
        text = text.replace(token, "[redacted]")
    text = _UNPRINTABLE.sub(" ", text).strip()
    if len(text) > _EXCERPT_LENGTH:
        text = text[:_EXCERPT_LENGTH].rstrip() + "..."
    return text or "(empty body)"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header in its delta-seconds form; None when absent or a date."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def error_for_status(response: httpx.Response, authorization: str) -> GatewayError:
    """The gateway error for a non-2xx upstream answer."""
    status = response.status_code
    excerpt = body_excerpt(response.content, authorization)
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
    if status in (400, 422):
        return BadUserInputError(
            f"The Jobs API refused the request: {excerpt}", upstream_status=status
        )
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return UpstreamRateLimitedError(
            "The Jobs API is rate limiting this token; retry later",
            upstream_status=status,
            retry_after=retry_after,
        )
    if status >= 500:
        return UpstreamUnavailableError(
            f"The Jobs API failed with HTTP {status}", upstream_status=status
        )
    return UpstreamBadResponseError(
        f"The Jobs API answered with unexpected HTTP {status}: {excerpt}", upstream_status=status
    )


def decode_job_list(response: httpx.Response, authorization: str) -> list[JobJSON]:
    """The JSON array of a 2xx list response; `UpstreamBadResponseError` for anything else."""
    try:
        decoded = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise UpstreamBadResponseError(
            "The Jobs API answered with a body that is not JSON (or was cut short): "
            + body_excerpt(response.content, authorization),
            upstream_status=response.status_code,
        ) from None
    if not isinstance(decoded, list):
        raise UpstreamBadResponseError(
            f"The Jobs API answered with a JSON {type(decoded).__name__} where a list of "
            "jobs was expected",
            upstream_status=response.status_code,
        )
    return decoded


class UpstreamClient:
    """Calls the Jobs REST API with the caller's token over one shared, pooled httpx client."""

    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")

    @property
    def base_url(self) -> str:
        """The upstream base URL, without a trailing slash."""
        return self._base_url

    async def list_jobs(self, authorization: str, *, skip: int, limit: int) -> list[JobJSON]:
        """`GET /jobs/v1/?skip=&limit=`: up to `limit` jobs of the token's team from `skip` on."""
        response = await self._get(authorization, JOBS_PATH, {"skip": skip, "limit": limit})
        return decode_job_list(response, authorization)

    async def _get(self, authorization: str, path: str, params: dict[str, int]) -> httpx.Response:
        headers = {"authorization": authorization, "accept": "application/json"}
        try:
            response = await self._http.get(self._base_url + path, params=params, headers=headers)
        except httpx.TimeoutException:
            raise UpstreamTimeoutError("The Jobs API did not answer in time") from None
        except httpx.TransportError as error:
            # The class name says what failed (ConnectError, RemoteProtocolError...); the
            # exception text may carry addresses, so it stays out of the client's message.
            raise UpstreamUnavailableError(
                f"The Jobs API could not be reached ({type(error).__name__})"
            ) from None
        if not response.is_success:
            raise error_for_status(response, authorization)
        return response


def new_http_client(
    timeout: float, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The one pooled client a running gateway shares across all requests.

    `transport` replaces the network, for tests that inject faults (`httpx.MockTransport`).
    """
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
        headers={"user-agent": USER_AGENT},
        follow_redirects=False,
    )
