"""Upstream helpers: Retry-After parsing, body excerpts, the retry policy, log redaction."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import aiohttp
import httpx
import pytest
from aiohttp.client_reqrep import ConnectionKey, RequestInfo
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway.errors import UpstreamRateLimitedError, UpstreamUnavailableError
from gateway.redaction import install_log_redaction, redact_echoes, redacting, secrets_of
from gateway.upstream.statuses import (
    ConnectFailedError,
    is_retryable,
    log_excerpt,
    parse_retry_after,
    upstream_message,
)
from gateway.upstream.transport import httpx_error

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (" 0.5 ", 0.5),
        ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),
        ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0),
        ("soon", None),
        ("-4", None),
        (None, None),
    ],
)
def test_retry_after_in_both_forms(header: str | None, seconds: float | None) -> None:
    """Delta-seconds and HTTP-dates both work; junk and negatives are ignored."""
    assert parse_retry_after(header, now=NOW) == seconds


def test_log_excerpts_are_short_printable_and_token_free() -> None:
    """At most 120 characters, control bytes folded, the token replaced."""
    excerpt = log_excerpt(b"<html>\x00\x1b[31m tok3n-value " + b"y" * 900, "Bearer tok3n-value")
    assert "tok3n" not in excerpt
    assert "\x00" not in excerpt
    assert len(excerpt) <= 123
    assert log_excerpt(b"", "Bearer x") == "(empty body)"


TOKEN = "eyJhbGciOi+JIUzI1/NiJ9.payload-part.sig_nature"


@pytest.mark.parametrize(
    "echo",
    [
        TOKEN,
        TOKEN.replace("/", "\\/"),  # JSON's optional escape of /
        TOKEN.replace("+", "\\u002B").replace("J", "\\u004a"),  # JSON \u escapes, either case
        TOKEN.replace("/", "%2F").replace("+", "%2b"),  # percent-encoded
        TOKEN[:17],  # cut off by an excerpt window
        TOKEN[-12:],  # the end of it
    ],
)
def test_echoes_of_the_token_are_masked_in_every_encoding(echo: str) -> None:
    """The token, escaped, encoded or any run of 10 of its characters, never survives."""
    text = f'{{"message": "bad token {echo} here"}}'
    redacted = redact_echoes(text, TOKEN)
    assert "[redacted]" in redacted
    assert redacted.startswith('{"message": "bad token ')
    assert redacted.endswith(' here"}')
    for start in range(len(TOKEN) - 9):
        assert TOKEN[start : start + 10] not in redacted.replace("\\", "").replace("%2F", "/")


def test_short_runs_and_other_text_are_kept() -> None:
    """Nine characters of the token, and text that shares none, are left alone."""
    assert redact_echoes("id eyJhbGciO ok", TOKEN) == "id eyJhbGciO ok"
    assert redact_echoes("\\u00zz %zz \\", TOKEN) == "\\u00zz %zz \\"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"message": "skip must be a number"}', "skip must be a number"),
        (b'{"message": "token ' + TOKEN.encode() + b' is bad"}', "token [redacted] is bad"),
        (b'{"message": 42}', None),
        (b'{"error": "not the message key"}', None),
        (b"<html>skip must be a number</html>", None),
        (b'["message"]', None),
    ],
)
def test_only_a_json_message_reaches_a_client(body: bytes, message: str | None) -> None:
    """An upstream body reaches the client only as the redacted `message` of a JSON object."""
    assert upstream_message(body, f"Bearer {TOKEN}") == message


def test_the_retry_policy() -> None:
    """Connect failures, and 502/503/504 and 429s whose Retry-After the gateway may wait out,
    are retried; nothing else."""
    assert is_retryable(ConnectFailedError("x"), 5)
    for status, expected in ((502, True), (503, True), (504, True), (500, False), (None, False)):
        assert is_retryable(UpstreamUnavailableError("x", upstream_status=status), 5) is expected
    assert is_retryable(UpstreamRateLimitedError("x", upstream_status=429), 5)
    assert is_retryable(UpstreamRateLimitedError("x", upstream_status=429, retry_after=5), 5)
    assert not is_retryable(UpstreamRateLimitedError("x", upstream_status=429, retry_after=6), 5)
    assert not is_retryable(ValueError("x"), 5)
    assert is_retryable(UpstreamUnavailableError("x", upstream_status=503, retry_after=5), 5)
    assert not is_retryable(UpstreamUnavailableError("x", upstream_status=503, retry_after=6), 5)


def test_secrets_of_an_authorization_header() -> None:
    """The whole header and the bare token are secrets; empty and tiny strings are not."""
    assert secrets_of("Bearer abc.def") == ("Bearer abc.def", "abc.def")
    assert secrets_of(None) == ()
    assert secrets_of("Bearer x") == ("Bearer x",)


def test_log_records_redact_the_current_requests_token(caplog: pytest.LogCaptureFixture) -> None:
    """Messages, arguments and tracebacks logged during a request lose its token."""
    install_log_redaction()
    logger = logging.getLogger("gateway.test")
    with caplog.at_level(logging.DEBUG), redacting("Bearer sekrit-123"):
        logger.debug("header was %s", "Bearer sekrit-123")
        try:
            raise RuntimeError("failed with sekrit-123")
        except RuntimeError:
            logger.exception("boom")
    logger.warning("outside a request sekrit-123 is just text")
    assert "Bearer sekrit-123" not in caplog.text
    assert caplog.text.count("sekrit-123") == 1
    assert "header was [redacted]" in caplog.text
    assert "RuntimeError: failed with [redacted]" in caplog.text


_KEY = ConnectionKey("upstream.test", 443, True, True, None, None, None)
_URL = URL("https://upstream.test/jobs/v1/")
_INFO = RequestInfo(_URL, "GET", CIMultiDictProxy(CIMultiDict()), _URL)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (aiohttp.ConnectionTimeoutError("connect"), httpx.ConnectTimeout),
        (aiohttp.SocketTimeoutError("read"), httpx.ReadTimeout),
        (aiohttp.ServerTimeoutError("read"), httpx.ReadTimeout),
        (aiohttp.ClientConnectorError(_KEY, OSError(111, "refused")), httpx.ConnectError),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (
            aiohttp.ClientResponseError(_INFO, (), status=400, message="bad"),
            httpx.RemoteProtocolError,
        ),
        (aiohttp.ClientPayloadError("cut short"), httpx.ReadError),
        (aiohttp.ClientOSError(104, "reset"), httpx.ReadError),
        (aiohttp.InvalidURL("ftp://upstream.test"), httpx.UnsupportedProtocol),
        (aiohttp.ClientError("anything else"), httpx.NetworkError),
    ],
)
def test_each_aiohttp_error_becomes_the_httpx_error_of_its_cause(
    error: Exception, expected: type[httpx.TransportError]
) -> None:
    """The transport's table: a timeout while connecting is a connect timeout (retried), a
    dropped connection is a protocol error (not retried), and so on, never a coarser class."""
    assert type(httpx_error(error)) is expected
