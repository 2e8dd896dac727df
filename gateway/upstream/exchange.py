"""One upstream call: the call budget, the deadline, the circuit breaker, retries, the wire.

Every call forwards the caller's `Authorization` header verbatim and nothing else of the
caller's. Requests go straight to the transport, not through an `httpx.AsyncClient`: a client's
cookie jar would carry one caller's cookies into another's requests (see
`gateway.upstream.transport`). Each request carries exactly: the caller's Authorization,
Accept, Accept-Encoding (gzip and deflate), User-Agent, and the gateway's request id.

Writes (`Exchange.write`) take the same path, with their method and JSON body, but are retried
only when no connection could be made: never once the request may have reached the upstream.

Retries use tenacity (exponential back-off with full jitter, Retry-After honoured up to
`upstream_retry_after_max`), and stop before a back-off would pass the GraphQL request's
deadline. stamina was considered: its time limit does not look at the coming back-off, and its
back-off hook cannot see the deadline, so it cannot promise "never past the deadline".
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import httpx
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
from gateway.caller import Caller
from gateway.errors import GatewayError, UpstreamTimeoutError, UpstreamUnavailableError
from gateway.logs import REQUEST_ID_HEADER_BYTES
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.upstream.breaker import CircuitBreaker, CircuitOpenError
from gateway.upstream.decoding import read_body
from gateway.upstream.statuses import (
    ERROR_BODY_BYTES,
    BadResponse,
    ConnectFailedError,
    error_for_status,
    is_retryable,
)

logger = logging.getLogger("gateway.upstream")

USER_AGENT: Final = f"jobs-graphql-gateway/{__version__}"
_RETRY_BACKOFF_MAX: Final = 2.0
_READ_MESSAGE_LENGTH: Final = 120
_WRITE_MESSAGE_LENGTH: Final = 200
"""A write's refusal quotes more of the upstream's message: it says why the change failed."""


@dataclass(frozen=True, slots=True)
class Write:
    """What makes a call a write: its method and JSON body (None: no body)."""

    method: str
    body: bytes | None = None


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
class UpstreamResponse:
    """A successful (2xx) upstream answer, read in full."""

    status: int
    headers: httpx.Headers
    body: bytes


def _could_not_connect(error: BaseException) -> bool:
    return isinstance(error, ConnectFailedError)


@functools.lru_cache(maxsize=1024)
def _url(address: str, params: tuple[tuple[str, int], ...]) -> httpx.URL:
    """The parsed URL of a call, kept: pages repeat their windows (cost in benchmarks/README)."""
    return httpx.URL(address, params=params)


class Exchange:
    """Makes upstream GETs for callers through one shared, pooled transport."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        settings: Settings,
        breaker: CircuitBreaker,
        metrics: Metrics,
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
        self._read_retryable = functools.partial(
            is_retryable, retry_after_max=settings.upstream_retry_after_max
        )
        self.breaker = breaker
        """The circuit breaker guarding the upstream."""
        self.metrics = metrics
        """Where calls, retries and bad answers are counted."""

    async def get(
        self, caller: Caller, url: str, params: dict[str, int], endpoint: str
    ) -> UpstreamResponse:
        """GET `url` for `caller`: one call of its budget, retried within its deadline.

        `endpoint` names the upstream endpoint in metrics (a fixed name, never the URL).
        """
        return await self._call(caller, url, params, endpoint, None, self._read_retryable)

    async def write(
        self, caller: Caller, url: str, params: dict[str, int], endpoint: str, write: Write
    ) -> UpstreamResponse:
        """Send a write for `caller`: one call of its budget, retried only when no connection
        could be made (so it cannot have reached the upstream), never once it may have: a
        repeated write could change a job twice."""
        return await self._call(caller, url, params, endpoint, write, _could_not_connect)

    async def _call(
        self,
        caller: Caller,
        url: str,
        params: dict[str, int],
        endpoint: str,
        write: Write | None,
        retryable: Callable[[BaseException], bool],
    ) -> UpstreamResponse:
        caller.budget.spend()
        try:
            return await self._attempt(caller, url, params, endpoint, write)
        except Exception as error:
            # The happy path needs no retry machinery; tenacity takes over after a failure.
            if not retryable(error):
                raise
            first_failure = error
        settings = self._settings
        retrying = AsyncRetrying(
            stop=stop_after_attempt(settings.upstream_retries + 1)
            | _StopBeforeDeadline(caller.deadline),
            wait=_WaitRetryAfterOrBackoff(settings.upstream_retry_backoff),
            retry=retry_if_exception(retryable),
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
                return await self._attempt(caller, url, params, endpoint, write)
        raise AssertionError("unreachable: tenacity re-raises the last failure")  # pragma: no cover

    def _before_retry(self, retry_state: RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        reason = error.code if isinstance(error, GatewayError) else type(error).__name__
        self.metrics.upstream_retries.labels(reason).inc()
        logger.info(
            "Retrying upstream call in %.2f s after attempt %d failed: %s",
            retry_state.upcoming_sleep,
            retry_state.attempt_number,
            reason,
        )

    async def _attempt(
        self,
        caller: Caller,
        url: str,
        params: dict[str, int],
        endpoint: str,
        write: Write | None = None,
    ) -> UpstreamResponse:
        started = time.perf_counter()
        status_class: str | None = "network"
        try:
            response = await self._guarded_attempt(caller, url, params, write)
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
                self.metrics.upstream_bad_responses.labels(endpoint, error.reason).inc()
            raise
        else:
            status_class = f"{response.status // 100}xx"
            return response
        finally:
            if status_class is not None:
                self._count_attempt(caller, endpoint, status_class, time.perf_counter() - started)

    def _count_attempt(
        self, caller: Caller, endpoint: str, status_class: str, seconds: float
    ) -> None:
        caller.ledger.calls += 1
        self.metrics.upstream_requests.labels(endpoint, status_class).inc()
        self.metrics.upstream_duration.labels(endpoint).observe(seconds)

    async def _guarded_attempt(
        self, caller: Caller, url: str, params: dict[str, int], write: Write | None
    ) -> UpstreamResponse:
        remaining = caller.deadline - time.monotonic()
        if remaining <= 0:
            raise UpstreamTimeoutError(
                "The Jobs API did not answer within the request's deadline "
                f"({self._settings.request_deadline:g} s)"
            )
        await self._pass_breaker(caller)
        settle: Callable[[], None] = self.breaker.record_abandoned
        try:
            async with asyncio.timeout(min(self._settings.upstream_timeout, remaining)):
                response = await self._send(caller, url, params, write)
        except TimeoutError:
            settle = self.breaker.record_failure
            waited = min(self._settings.upstream_timeout, remaining)
            raise UpstreamTimeoutError(
                f"The Jobs API did not answer within {waited:.3g} s"
            ) from None
        except (UpstreamUnavailableError, UpstreamTimeoutError):
            settle = self.breaker.record_failure
            raise
        except GatewayError:
            settle = self.breaker.record_neutral
            raise
        else:
            settle = self.breaker.record_success
            return response
        finally:
            settle()

    async def _pass_breaker(self, caller: Caller) -> None:
        """Pass the circuit breaker, waiting within the deadline for a half-open probe's
        outcome rather than failing while it is out; raise `CircuitOpenError` otherwise."""
        while True:
            try:
                self.breaker.before_call()
                return
            except CircuitOpenError as refused:
                remaining = caller.deadline - time.monotonic()
                if not refused.probe_pending or remaining <= 0:
                    raise
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self.breaker.probe_settled()

    async def _send(
        self, caller: Caller, url: str, params: dict[str, int], write: Write | None
    ) -> UpstreamResponse:
        authorization = caller.authorization
        headers = [(b"authorization", authorization.encode("latin-1")), *self._fixed_headers]
        if caller.request_id is not None:
            headers.append((REQUEST_ID_HEADER_BYTES, caller.request_id.encode()))
        if write is not None and write.body is not None:
            headers.append((b"content-type", b"application/json"))
        request = httpx.Request(
            "GET" if write is None else write.method,
            _url(url, tuple(params.items())),
            headers=headers,
            content=None if write is None else write.body,
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
                body = await read_body(response, ERROR_BODY_BYTES, truncate=True)
                limit = _WRITE_MESSAGE_LENGTH if write is not None else _READ_MESSAGE_LENGTH
                raise error_for_status(
                    response.status_code, response.headers, body, authorization, limit
                )
            body = await read_body(response, self._settings.upstream_max_bytes, truncate=False)
            return UpstreamResponse(response.status_code, response.headers, body)
        finally:
            await response.aclose()
