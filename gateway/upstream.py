"""The only module that talks to the Jobs REST API: URLs, headers, status codes, decoding.

Every call forwards the caller's `Authorization` header verbatim and nothing else of the
caller's. Every way a call can fail becomes one of `gateway.errors`' exceptions here, so the
rest of the gateway never sees an httpx exception or an HTTP status code:

| what happened                                  | error                    | retried | breaker |
|------------------------------------------------|--------------------------|---------|---------|
| could not connect (refused, DNS, connect t/o)  | UpstreamUnavailableError | yes     | failure |
| connection dropped before an answer (*)        | UpstreamUnavailableError | no      | failure |
| no full answer within the attempt's time       | UpstreamTimeoutError     | no      | failure |
| 502, 503, 504                                  | UpstreamUnavailableError | yes     | failure |
| other 5xx                                      | UpstreamUnavailableError | no      | failure |
| 429 (Retry-After within the cap, or none)      | UpstreamRateLimitedError | yes     | neutral |
| 400/422, 401, 403, 404, other 4xx              | coded by `error_for_status` | no   | neutral |
| 2xx cut short, too large, not JSON, not a list | UpstreamBadResponseError | no      | neutral |

(*) The connection pool (aiohttp) itself resends an idempotent GET once, at once, when a
connection drops before any answer: the usual cause is a keep-alive connection the upstream
closed while it sat in the pool.

Retries use tenacity (exponential back-off with full jitter, Retry-After honoured up to
`upstream_retry_after_max`), and stop before a back-off would pass the GraphQL request's
deadline. stamina was considered: its time limit does not look at the coming back-off, and its
back-off hook cannot see the deadline, so it cannot promise "never past the deadline".
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar, cast
from urllib.parse import quote

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from gateway import __version__
from gateway.cache import Fetched, PageCache
from gateway.circuit_breaker import CircuitBreaker, CircuitOpenError
from gateway.content_decoding import BodyDecoder, ContentDecodingError
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
from gateway.limits import UpstreamBudget
from gateway.logs import REQUEST_ID_HEADER_BYTES, current_record
from gateway.metrics import Metrics
from gateway.pagination import aligned_blocks, end_probes, stitch_chunks, upstream_chunks
from gateway.redaction import redact_echoes
from gateway.settings import Settings

logger = logging.getLogger(__name__)

Decoded = TypeVar("Decoded")
JobJSON = dict[str, Any]
"""One job as the upstream sent it, decoded from JSON but otherwise untouched."""

JOBS_PATH: Final = "/jobs/v1/"
MY_JOBS_PATH: Final = "/jobs/v1/my/"
USER_AGENT: Final = f"jobs-graphql-gateway/{__version__}"
_EXCERPT_LENGTH: Final = 120
_ERROR_BODY_BYTES: Final = 4096
_RETRY_BACKOFF_MAX: Final = 2.0
_RETRIED_STATUSES: Final = frozenset({502, 503, 504})
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")
_MAX_ID_LENGTH: Final = 200
_FORBIDDEN_IN_IDS = re.compile(r"[/?#\\\x00-\x1f\x7f]")


class ConnectFailedError(UpstreamUnavailableError):
    """Raised when no connection to the upstream could be made: safe to retry."""


class BadResponse(UpstreamBadResponseError):
    """An `UpstreamBadResponseError` that says what was wrong, for metrics (`reason`)."""

    def __init__(self, message: str, reason: str, upstream_status: int | None = None) -> None:
        super().__init__(message, upstream_status=upstream_status)
        self.reason = reason


def _printable(text: str) -> str:
    text = _UNPRINTABLE.sub(" ", text).strip()
    if len(text) > _EXCERPT_LENGTH:
        text = text[:_EXCERPT_LENGTH].rstrip() + "..."
    return text


def _token(authorization: str) -> str:
    return authorization.partition(" ")[2].strip()


def log_excerpt(body: bytes, authorization: str) -> str:
    """A short, printable, token-free excerpt of an upstream body, for the log only."""
    text = body[: _EXCERPT_LENGTH * 4].decode("utf-8", errors="replace")
    return _printable(redact_echoes(text, _token(authorization))) or "(empty body)"


def upstream_message(body: bytes, authorization: str) -> str | None:
    """The `message` of a JSON error body, redacted, printable and short: the only upstream
    text a client ever sees. None when the body has no such string."""
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    message = decoded.get("message") if isinstance(decoded, dict) else None
    if not isinstance(message, str):
        return None
    return _printable(redact_echoes(message[:_ERROR_BODY_BYTES], _token(authorization))) or None


def path_segment(value: str, name: str) -> str:
    """`value` percent-encoded as exactly one URL path segment; `BadUserInputError` (before any
    call) for an id that could mean another path: empty, `.`, `..`, or holding `/`, `?`, `#`,
    `\\` or a control character, or longer than 200 characters."""
    if value in ("", ".", "..") or len(value) > _MAX_ID_LENGTH or _FORBIDDEN_IN_IDS.search(value):
        raise BadUserInputError(
            f"`{name}` must be a non-empty id of at most {_MAX_ID_LENGTH} characters, not `.` "
            "or `..`, without `/`, `?`, `#`, `\\` or control characters"
        )
    return quote(value, safe="")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
        seconds = max(0.0, seconds)
    if not 0 <= seconds < 86_400 * 365:
        return None
    return round(seconds, 3)


def error_for_status(
    status: int, headers: httpx.Headers, body: bytes, authorization: str
) -> GatewayError:
    """The gateway error for a non-2xx upstream answer."""
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
    if status >= 400:
        logger.info("The Jobs API answered HTTP %d: %s", status, log_excerpt(body, authorization))
    message = upstream_message(body, authorization)
    said = f": {message}" if message else f" (HTTP {status})"
    if status in (400, 422):
        return BadUserInputError(f"The Jobs API refused the request{said}", upstream_status=status)
    if status == 429:
        return UpstreamRateLimitedError(
            "The Jobs API is rate limiting this token; retry later",
            upstream_status=status,
            retry_after=parse_retry_after(headers.get("retry-after")),
        )
    if status >= 500:
        return UpstreamUnavailableError(
            f"The Jobs API failed with HTTP {status}",
            upstream_status=status,
            retry_after=parse_retry_after(headers.get("retry-after")),
        )
    return BadResponse(
        f"The Jobs API answered with unexpected HTTP {status}{said if message else ''}",
        "status",
        upstream_status=status,
    )


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


def is_retryable(error: BaseException, retry_after_max: float) -> bool:
    """Whether a failed GET may be tried again: connect errors, and 502/503/504 or 429 unless
    their Retry-After asks for a longer wait than the gateway makes itself."""
    if isinstance(error, ConnectFailedError):
        return True
    if isinstance(error, UpstreamRateLimitedError) or (
        isinstance(error, UpstreamUnavailableError) and error.upstream_status in _RETRIED_STATUSES
    ):
        return error.retry_after is None or error.retry_after <= retry_after_max
    return False


class _StopBeforeDeadline(stop_base):
    """Stop when the coming back-off would end at or after `deadline` (a monotonic time)."""

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return time.monotonic() + retry_state.upcoming_sleep >= self._deadline


class _WaitRetryAfterOrBackoff(wait_base):
    """Wait what a Retry-After (429, 503) asks for; otherwise exponential back-off with jitter."""

    def __init__(self, backoff: float) -> None:
        self._backoff = wait_random_exponential(multiplier=backoff, max=_RETRY_BACKOFF_MAX)

    def __call__(self, retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, GatewayError) and error.retry_after is not None:
            return error.retry_after
        return float(self._backoff(retry_state))


@dataclass(frozen=True, slots=True)
class Caller:
    """Whom upstream calls are made for, and within which limits: one GraphQL request."""

    authorization: str
    """The caller's Authorization header, forwarded verbatim."""
    deadline: float
    """The `time.monotonic()` instant all of the request's upstream work must end by."""
    budget: UpstreamBudget
    """The upstream calls the request may still make."""


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """A successful (2xx) upstream answer, read in full."""

    status: int
    headers: httpx.Headers
    body: bytes


async def _all_in_order(
    calls: list[Coroutine[Any, Any, list[JobJSON]]],
) -> list[list[JobJSON]]:
    """Run `calls` concurrently; the first failure cancels the rest and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call) for call in calls]
    except ExceptionGroup as failures:
        raise failures.exceptions[0] from None
    return [task.result() for task in tasks]


@functools.lru_cache(maxsize=1024)
def _url(address: str, params: tuple[tuple[str, int], ...]) -> httpx.URL:
    """The parsed URL of a call. Cached: windows repeat, and parsing one costs about 25 µs."""
    return httpx.URL(address, params=params)


class UpstreamClient:
    """Calls the Jobs REST API with the caller's token through one shared, pooled transport.

    Requests go straight to the transport, not through an `httpx.AsyncClient`: a client's
    cookie jar would carry one caller's cookies into another's requests (see
    `gateway.transport`). Each request carries exactly: the caller's Authorization, Accept,
    Accept-Encoding (gzip and deflate, which httpx decodes), User-Agent, and the gateway's
    request id.
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        settings: Settings,
        breaker: CircuitBreaker,
        cache: PageCache | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._transport = transport
        self._fixed_headers = [
            (b"accept", b"application/json"),
            (b"accept-encoding", b"gzip, deflate"),
            (b"user-agent", USER_AGENT.encode()),
        ]
        # Only connecting has a timeout of its own: each attempt as a whole is bounded by
        # asyncio.timeout (upstream_timeout, and the request's deadline), which is cheaper than
        # a read timer re-armed for every chunk received.
        connect = settings.upstream_connect_timeout
        self._extensions = {"timeout": {"connect": connect, "pool": connect, "read": None}}
        self._settings = settings
        self._breaker = breaker
        self._cache = cache
        self._metrics = metrics or Metrics()
        self._base_url = settings.upstream_url.rstrip("/")

    @property
    def base_url(self) -> str:
        """The upstream base URL, without a trailing slash."""
        return self._base_url

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker guarding this upstream."""
        return self._breaker

    @property
    def cache(self) -> PageCache | None:
        """The page cache in front of this upstream, if caching is on."""
        return self._cache

    async def list_jobs(
        self, caller: Caller, *, skip: int, limit: int, path: str = JOBS_PATH
    ) -> list[JobJSON]:
        """`GET {path}?skip=&limit=` (the team's jobs, or `MY_JOBS_PATH`): up to `limit` jobs
        from `skip` on.

        Without a cache, the window is fetched as is, in calls of at most `upstream_max_limit`
        rows. With one, it is fetched as aligned blocks that neighbouring windows share. Either
        way the calls run concurrently and are stitched in order (see `pagination.stitch_chunks`
        for what a short one means).
        """
        cap = self._settings.upstream_max_limit
        block_size = min(self._settings.cache_block_size, cap)
        if self._cache is None or block_size == 0:
            calls = upstream_chunks(skip, limit, cap)
        else:
            calls = aligned_blocks(skip, limit, block_size)
        if len(calls) == 1 and calls[0] == (skip, limit):
            return await self._job_list(caller, path, skip, limit)
        pages = await _all_in_order(
            [self._job_list(caller, path, start, size) for start, size in calls]
        )
        rows = stitch_chunks([size for _, size in calls], pages)
        offset = skip - calls[0][0]
        return rows[offset : offset + limit]

    async def count_jobs(self, caller: Caller, *, path: str = JOBS_PATH) -> int:
        """How many jobs `GET {path}` lists. The API has no count, so its end is searched for.

        One call of `upstream_max_limit` rows answers lists shorter than that. Longer ones are
        probed with `limit=1` at 2x, 4x, 8x... the cap until a probe is empty, then bisected
        down to one cap-sized window, which is fetched: about 2 log2(N / cap) + 2 calls in all.
        The count is cached per credential like pages.
        """

        async def fetch() -> Fetched:
            return Fetched([await self._find_end(caller, path)])

        if self._cache is None:
            return int((await fetch()).rows[0])
        key = self._cache.page_key(caller.authorization, f"count:{self._base_url}{path}")
        return int((await self._cache.get_or_fetch(key, fetch))[0])

    async def _find_end(self, caller: Caller, path: str) -> int:
        cap = self._settings.upstream_max_limit

        async def rows_at(skip: int, limit: int) -> list[JobJSON]:
            return (await self._fetch_job_list(caller, path, skip, limit)).rows

        head = await rows_at(0, cap)
        if len(head) < cap:
            return len(head)
        present, absent = cap - 1, None
        for probe in end_probes(cap):
            if await rows_at(probe, 1):
                present = probe
            else:
                absent = probe
                break
        if absent is None:
            raise UpstreamBadResponseError(
                "The Jobs API lists more jobs than the gateway can count"
            )
        while absent - present > cap:
            middle = (present + absent) // 2
            if await rows_at(middle, 1):
                present = middle
            else:
                absent = middle
        return present + len(await rows_at(present, cap))

    async def workflow_jobs(self, caller: Caller, workflow_id: str) -> list[JobJSON]:
        """`GET /jobs/v1/workflow/{workflowId}`: every job of one workflow (no paging upstream),
        cached per credential like a page."""
        path = f"{JOBS_PATH}workflow/{path_segment(workflow_id, 'workflowId')}"

        async def fetch() -> Fetched:
            response = await self.get(caller, path, {}, "workflow_jobs")
            rows = self._decoded(decode_job_list, response, caller, "workflow_jobs")
            return Fetched(rows, max_age=self._lifetime(response))

        if self._cache is None:
            return (await fetch()).rows
        key = self._cache.page_key(caller.authorization, self._base_url + path)
        return await self._cache.get_or_fetch(key, fetch)

    async def job_by_id(self, caller: Caller, job_id: str) -> JobJSON | None:
        """`GET /jobs/v1/bson/{jobId}`: one job, or None when the API answers 404."""
        path = f"{JOBS_PATH}bson/{path_segment(job_id, 'jobId')}"
        return await self._single_job(caller, path, "job_by_id")

    async def job_by_client_id(self, caller: Caller, client_job_id: str) -> JobJSON | None:
        """`GET /jobs/v1/{clientJobId}`: one job, or None when the API answers 404."""
        path = f"{JOBS_PATH}{path_segment(client_job_id, 'clientJobId')}"
        return await self._single_job(caller, path, "job_by_client_id")

    async def _single_job(self, caller: Caller, path: str, endpoint: str) -> JobJSON | None:
        async def fetch() -> Fetched:
            response = await self.get(caller, path, {}, endpoint)
            job = self._decoded(decode_single_job, response, caller, endpoint)
            return Fetched([job], max_age=self._lifetime(response))

        try:
            if self._cache is None:
                return (await fetch()).rows[0]  # type: ignore[no-any-return]
            key = self._cache.page_key(caller.authorization, self._base_url + path)
            return (await self._cache.get_or_fetch(key, fetch))[0]  # type: ignore[no-any-return]
        except NotFoundError:
            return None

    async def _job_list(self, caller: Caller, path: str, skip: int, limit: int) -> list[JobJSON]:
        def fetch() -> Awaitable[Fetched]:
            return self._fetch_job_list(caller, path, skip, limit)

        if self._cache is None:
            return (await fetch()).rows
        url = f"{self._base_url}{path}?skip={skip}&limit={limit}"
        key = self._cache.page_key(caller.authorization, url)
        return await self._cache.get_or_fetch(key, fetch)

    async def _fetch_job_list(self, caller: Caller, path: str, skip: int, limit: int) -> Fetched:
        endpoint = "my_jobs_list" if path == MY_JOBS_PATH else "jobs_list"
        response = await self.get(caller, path, {"skip": skip, "limit": limit}, endpoint)
        rows = self._decoded(decode_job_list, response, caller, endpoint)
        return Fetched(rows, max_age=self._lifetime(response))

    def _decoded(
        self,
        decode: Callable[[int, bytes, str], Decoded],
        response: UpstreamResponse,
        caller: Caller,
        endpoint: str,
    ) -> Decoded:
        """`decode` applied to a 2xx answer; a bad one is counted before it is raised."""
        try:
            return decode(response.status, response.body, caller.authorization)
        except BadResponse as error:
            self._metrics.upstream_bad_responses.labels(endpoint, error.reason).inc()
            raise

    def _lifetime(self, response: UpstreamResponse) -> float | None:
        shared = self._cache is not None and self._cache.shared
        return cache_lifetime(response.headers, shared=shared)

    async def get(
        self, caller: Caller, path: str, params: dict[str, int], endpoint: str
    ) -> UpstreamResponse:
        """GET `path` for `caller`: one call of its budget, retried within its deadline.

        `endpoint` names the upstream endpoint in metrics (a fixed name, never the URL).
        """
        caller.budget.spend()
        try:
            return await self._attempt(caller, path, params, endpoint)
        except Exception as error:
            # The happy path needs no retry machinery; tenacity takes over after a failure.
            if not is_retryable(error, self._settings.upstream_retry_after_max):
                raise
            first_failure = error
        settings = self._settings
        retrying = AsyncRetrying(
            stop=stop_after_attempt(settings.upstream_retries + 1)
            | _StopBeforeDeadline(caller.deadline),
            wait=_WaitRetryAfterOrBackoff(settings.upstream_retry_backoff),
            retry=retry_if_exception(
                lambda error: is_retryable(error, settings.upstream_retry_after_max)
            ),
            before_sleep=self._before_retry,
            reraise=True,
        )
        # Replay the first attempt's failure as tenacity's attempt 1, so its stop and wait
        # decisions (attempt count, back-off, Retry-After, deadline) stay in one place.
        replayed = False
        async for attempt in retrying:
            with attempt:
                if not replayed:
                    replayed = True
                    raise first_failure
                return await self._attempt(caller, path, params, endpoint)
        raise AssertionError("unreachable: tenacity re-raises the last failure")  # pragma: no cover

    def _before_retry(self, retry_state: RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        reason = error.code if isinstance(error, GatewayError) else type(error).__name__
        self._metrics.upstream_retries.labels(reason).inc()
        logger.info(
            "Retrying upstream call in %.2f s after attempt %d failed: %s",
            retry_state.upcoming_sleep,
            retry_state.attempt_number,
            reason,
        )

    async def _attempt(
        self, caller: Caller, path: str, params: dict[str, int], endpoint: str
    ) -> UpstreamResponse:
        started = time.perf_counter()
        status_class: str | None = "network"
        try:
            response = await self._guarded_attempt(caller, path, params)
        except CircuitOpenError:
            status_class = None  # refused here: no call was made
            raise
        except UpstreamTimeoutError:
            status_class = "timeout"
            raise
        except GatewayError as error:
            if error.upstream_status is not None:
                status_class = f"{error.upstream_status // 100}xx"
            if isinstance(error, BadResponse):
                self._metrics.upstream_bad_responses.labels(endpoint, error.reason).inc()
            raise
        else:
            status_class = f"{response.status // 100}xx"
            return response
        finally:
            if status_class is not None:
                self._count_attempt(endpoint, status_class, time.perf_counter() - started)

    def _count_attempt(self, endpoint: str, status_class: str, seconds: float) -> None:
        self._metrics.upstream_requests.labels(endpoint, status_class).inc()
        self._metrics.upstream_duration.labels(endpoint).observe(seconds)
        record = current_record()
        if record is not None:
            record.upstream_calls += 1

    async def _guarded_attempt(
        self, caller: Caller, path: str, params: dict[str, int]
    ) -> UpstreamResponse:
        remaining = caller.deadline - time.monotonic()
        if remaining <= 0:
            raise UpstreamTimeoutError(
                "The Jobs API did not answer within the request's deadline "
                f"({self._settings.request_deadline:g} s)"
            )
        await self._pass_breaker(caller)
        settle: Callable[[], None] = self._breaker.record_abandoned
        try:
            async with asyncio.timeout(min(self._settings.upstream_timeout, remaining)):
                response = await self._send(caller.authorization, path, params)
        except TimeoutError:
            settle = self._breaker.record_failure
            waited = min(self._settings.upstream_timeout, remaining)
            raise UpstreamTimeoutError(
                f"The Jobs API did not answer within {waited:.3g} s"
            ) from None
        except (UpstreamUnavailableError, UpstreamTimeoutError):
            settle = self._breaker.record_failure
            raise
        except GatewayError:
            settle = self._breaker.record_neutral
            raise
        else:
            settle = self._breaker.record_success
            return response
        finally:
            settle()

    async def _pass_breaker(self, caller: Caller) -> None:
        """Pass the circuit breaker, waiting within the deadline for a half-open probe's
        outcome rather than failing while it is out; raise `CircuitOpenError` otherwise."""
        while True:
            try:
                self._breaker.before_call()
                return
            except CircuitOpenError as refused:
                remaining = caller.deadline - time.monotonic()
                if not refused.probe_pending or remaining <= 0:
                    raise
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self._breaker.probe_settled()

    async def _send(
        self, authorization: str, path: str, params: dict[str, int]
    ) -> UpstreamResponse:
        headers = [
            (b"authorization", authorization.encode("latin-1")),
            *self._fixed_headers,
        ]
        record = current_record()
        if record is not None:
            headers.append((REQUEST_ID_HEADER_BYTES, record.request_id.encode()))
        request = httpx.Request(
            "GET",
            _url(self._base_url + path, tuple(params.items())),
            headers=headers,
            extensions=self._extensions,
        )
        try:
            response = await self._transport.handle_async_request(request)
        except httpx.TimeoutException as error:
            if isinstance(error, httpx.ConnectTimeout | httpx.PoolTimeout):
                raise ConnectFailedError(
                    "The Jobs API could not be reached (connect timeout)"
                ) from None
            raise UpstreamTimeoutError("The Jobs API did not answer in time") from None
        except httpx.ConnectError:
            raise ConnectFailedError(
                "The Jobs API could not be reached (connection failed)"
            ) from None
        except httpx.TransportError as error:
            # The class name says what failed; the exception text may carry addresses.
            raise UpstreamUnavailableError(
                f"The Jobs API dropped the connection ({type(error).__name__})"
            ) from None
        try:
            if not response.is_success:
                body = await self._read(response, _ERROR_BODY_BYTES, truncate=True)
                raise error_for_status(response.status_code, response.headers, body, authorization)
            body = await self._read(response, self._settings.upstream_max_bytes, truncate=False)
            return UpstreamResponse(response.status_code, response.headers, body)
        finally:
            await response.aclose()

    @staticmethod
    async def _read(response: httpx.Response, limit: int, *, truncate: bool) -> bytes:
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
