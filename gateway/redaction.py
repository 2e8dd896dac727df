"""Keeps callers' credentials out of every log line, whoever logs it.

The HTTP layer registers the credentials of the request it is serving (`redacting`); a log
record factory, installed once per process (`install_log_redaction`), replaces them with
`[redacted]` in each record's message and in its formatted exception, at the moment the record
is created, so no handler or formatter downstream can see them. The credentials live in a
context variable: each request (and the tasks it starts) sees only its own.

Text the upstream wrote is held to a stricter standard (`redact_echoes`), since an upstream
may echo the token back in another form: JSON-escaped (`\\/`, `\\u002B`), percent-encoded, or cut
off at the edge of an excerpt. Such text is read with those escapes undone, and every run of
`ECHO_RUN` or more characters that also occurs in the token is masked, in whatever form it
was written.
"""

from __future__ import annotations

import contextvars
import logging
import traceback

REDACTED = "[redacted]"
ECHO_RUN = 10
"""The shortest run of a token's characters that `redact_echoes` masks."""
_MIN_SECRET_LENGTH = 4  # shorter strings would redact ordinary words
_secrets: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "gateway_secrets", default=()
)
_installed = False


def token_of(authorization: str) -> str:
    """The credential of an Authorization header: what follows its scheme."""
    return authorization.strip().partition(" ")[2].strip()


def secrets_of(authorization: str | None) -> tuple[str, ...]:
    """What must never be logged of an Authorization header: the whole value and its token."""
    if not authorization:
        return ()
    found = {authorization, authorization.strip(), token_of(authorization)}
    return tuple(sorted((s for s in found if len(s) >= _MIN_SECRET_LENGTH), key=len, reverse=True))


_JSON_ESCAPES = {
    "/": "/",
    "\\": "\\",
    '"': '"',
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_HEX = frozenset("0123456789abcdefABCDEF")


def _unescaped(text: str) -> tuple[str, list[int]]:
    """`text` with JSON and percent escapes undone, and where each of its characters starts in
    `text` (plus a last entry: the end)."""
    chars: list[str] = []
    starts: list[int] = []
    index, end = 0, len(text)
    while index < end:
        char, width = text[index], 1
        following = text[index + 1 : index + 6]
        if (
            char == "\\"
            and following[:1] == "u"
            and len(following) == 5
            and _HEX.issuperset(following[1:])
        ):
            char, width = chr(int(following[1:], 16)), 6
        elif char == "\\" and following[:1] in _JSON_ESCAPES and following:
            char, width = _JSON_ESCAPES[following[0]], 2
        elif char == "%" and len(following) >= 2 and _HEX.issuperset(following[:2]):
            char, width = chr(int(following[:2], 16)), 3
        chars.append(char)
        starts.append(index)
        index += width
    starts.append(end)
    return "".join(chars), starts


def redact_echoes(text: str, token: str) -> str:
    """`text` with every echo of `token` masked: the token or any run of `ECHO_RUN` of its
    characters, written plainly, JSON-escaped or percent-encoded."""
    if len(token) < _MIN_SECRET_LENGTH:
        return text
    run = min(ECHO_RUN, len(token))
    pieces = {token[start : start + run] for start in range(len(token) - run + 1)}
    plain, starts = _unescaped(text)
    masked = [False] * len(plain)
    for start in range(len(plain) - run + 1):
        if plain[start : start + run] in pieces:
            masked[start : start + run] = [True] * run
    if not any(masked):
        return text
    out: list[str] = []
    position = 0
    while position < len(plain):
        if not masked[position]:
            out.append(text[starts[position] : starts[position + 1]])
            position += 1
            continue
        while position < len(plain) and masked[position]:
            position += 1
        out.append(REDACTED)
    return "".join(out)


def redact(text: str, secrets: tuple[str, ...] | None = None) -> str:
    """`text` with every secret of the current request (or `secrets`) replaced where it is
    written whole: the gateway's own log text, which holds a secret only as it was given.
    Text the upstream wrote goes through `redact_echoes` instead."""
    for secret in _secrets.get() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class redacting:
    """Within this block, log records redact `authorization` and its token.

    A class rather than a `contextlib.contextmanager` generator: it runs on every request.
    """

    def __init__(self, authorization: str | None) -> None:
        self._secrets = secrets_of(authorization)
        self._reset: contextvars.Token[tuple[str, ...]] | None = None

    def __enter__(self) -> None:
        self._reset = _secrets.set(self._secrets)

    def __exit__(self, *_exc: object) -> None:
        assert self._reset is not None
        _secrets.reset(self._reset)


def install_log_redaction() -> None:
    """Make every log record of this process redact the current request's credentials."""
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()

    def redacting_record(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        secrets = _secrets.get()
        if not secrets:
            return record
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: logging reports it later
            message = str(record.msg)
        record.msg, record.args = redact(message, secrets), None
        if record.exc_info and record.exc_info[1] is not None:
            formatted = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = redact(formatted, secrets)
            # The traceback is kept only as redacted text; the live exception would leak again.
            record.exc_info = None
        return record

    logging.setLogRecordFactory(redacting_record)
