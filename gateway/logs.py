"""Structured logs: JSON lines, one summary line per GraphQL request, request ids.

Every log line is one JSON object (`JsonFormatter`). Each GraphQL request ends with one line,
`"event": "graphql_request"`, carrying its request id, operation name, outcome, HTTP status,
duration, upstream calls, cache hits and error codes. The request id is the caller's
`X-Request-ID` when it is a sane token (up to 64 letters, digits, `-`, `_`, `.`), otherwise a
new one; it is returned in the response's `X-Request-ID` and sent to the upstream with every
call the request causes, so one id follows the request across both logs.

No line carries a token, an Authorization header or a cookie: the request line is built from
named fields only, and `redaction` scrubs the caller's credentials from every other record.
"""

from __future__ import annotations

import logging
import random
import re
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import orjson

if TYPE_CHECKING:
    from gateway.caller import CallLedger

REQUEST_ID_HEADER: Final = "x-request-id"
REQUEST_ID_HEADER_BYTES: Final = REQUEST_ID_HEADER.encode()
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
request_logger = logging.getLogger("gateway.request")

# Attributes every LogRecord has; anything else was passed as `extra=` and is logged as a field.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


@dataclass(slots=True)
class RequestRecord:
    """What one GraphQL request did, filled in by the HTTP layer and logged when it ends."""

    request_id: str
    started: float = field(default_factory=time.perf_counter)
    operation: str | None = None
    upstream_calls: int = 0
    cache_hits: int = 0
    error_codes: list[str] = field(default_factory=list)
    rows_scanned: int = 0
    """Rows filtered pages scanned (logged when some were)."""
    matches: int = 0
    """Jobs filtered pages returned."""
    batch: str | None = None
    """`i/n` for the i-th operation of a batched request of n (logged only then)."""

    def add(self, ledger: CallLedger) -> None:
        """Take in what the operation's upstream work cost (its caller's ledger)."""
        self.upstream_calls = ledger.calls
        self.cache_hits += ledger.cache_hits
        self.rows_scanned, self.matches = ledger.rows_scanned, ledger.matches


def request_id_from(header: str | None) -> str:
    """The caller's request id if it is sane, else a fresh one."""
    if header is not None and _SANE_REQUEST_ID.fullmatch(header):
        return header
    # A correlation id, not a secret: the process's PRNG (seeded from the OS at start) is
    # enough, and costs no system call per request, as os.urandom would.
    return f"{random.getrandbits(128):032x}"


def log_request(record: RequestRecord, *, outcome: str, status: int) -> None:
    """Log the request's summary line."""
    request_logger.info(
        "graphql request",
        extra={
            "fields": {
                "event": "graphql_request",
                "request_id": record.request_id,
                "operation": record.operation,
                "outcome": outcome,
                "status": status,
                "duration_ms": round((time.perf_counter() - record.started) * 1000, 2),
                "upstream_calls": record.upstream_calls,
                "cache_hits": record.cache_hits,
                "error_codes": record.error_codes,
                **({"batch": record.batch} if record.batch is not None else {}),
                **(
                    {"rows_scanned": record.rows_scanned, "matches": record.matches}
                    if record.rows_scanned
                    else {}
                ),
            }
        },
    )


_second: tuple[int, str] = (-1, "")


def utc_timestamp(created: float) -> str:
    """`created` as RFC 3339 UTC with milliseconds, exactly as
    `datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")` writes it, with
    the date and time of the current second formatted once (every request logs a line)."""
    global _second
    second = int(created)
    micros = round((created - second) * 1_000_000)  # datetime's own rounding
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    cached_second, prefix = _second
    if cached_second != second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = (second, prefix)
    return f"{prefix}.{micros // 1000:03d}+00:00"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": utc_timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)  # the request summary: named fields, no attribute scan
        else:
            for key in vars(record).keys() - _STANDARD_ATTRIBUTES:
                if not key.startswith("_"):
                    line[key] = getattr(record, key)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return orjson.dumps(line, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    """One line for people (`GATEWAY_LOG_FORMAT=console`, the demo's): local time, level,
    message, then the request summary's fields as `name=value`."""

    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{when} {record.levelname:<7} {record.getMessage()}"
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            shown = {key: value for key, value in fields.items() if key != "event" and value}
            line += "  " + " ".join(f"{key}={value}" for key, value in shown.items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


def configure_logging(level: str, log_format: str = "json") -> None:
    """Log lines on stderr at `level` for the gateway and the servers it runs on: JSON, or
    `console` lines for people."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ConsoleFormatter() if log_format == "console" else JsonFormatter())
    # No caller lookup (a stack walk per record), thread or process names per record: the
    # logging HOWTO's optimisations; JSON lines name their logger instead.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # httpx logs every request at INFO; the per-request line already counts upstream calls.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(level)))
