"""The gateway's configuration: one frozen object, built once from `GATEWAY_*` variables or flags.

Nothing here is read at import time. `Settings.from_env(os.environ)` (or any mapping, in tests)
parses and validates every option and raises `SettingsError` naming the first bad one; the CLI
turns that into a one-line message and a non-zero exit. The object is then passed down to
whatever needs it: the app factory, the upstream client, the resolvers (through the context).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway import setting_parsers as parse
from gateway.setting_parsers import option

ENV_PREFIX = "GATEWAY_"


class SettingsError(ValueError):
    """Raised when a setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the gateway. The environment variable of `foo_bar` is `GATEWAY_FOO_BAR`."""

    upstream_url: str = option(
        dataclasses.MISSING,
        parse.http_url,
        "Base URL of the Jobs REST API; the gateway calls `{base}/jobs/v1/`. Required.",
    )
    host: str = option("127.0.0.1", parse.text, "Interface to listen on (`0.0.0.0` in containers).")
    port: int = option(8000, parse.port, "TCP port to listen on.")
    default_page_size: int = option(
        20,
        parse.positive_int,
        "Page size when neither `first` nor `last` is given (the upstream's default).",
    )
    max_page_size: int = option(
        100,
        parse.positive_int,
        "Largest `first`/`last` a query may ask for; larger is `BAD_USER_INPUT`.",
    )
    upstream_timeout: float = option(
        10.0,
        parse.positive_float,
        "Seconds one upstream attempt may take in all: connect, send, wait, read the body.",
    )
    upstream_connect_timeout: float = option(
        3.0, parse.positive_float, "Seconds to wait for a TCP (and TLS) connection to the upstream."
    )
    request_deadline: float = option(
        20.0,
        parse.positive_float,
        "Seconds one GraphQL request may spend on upstream calls, retries and back-off included.",
    )
    upstream_retries: int = option(
        2,
        parse.non_negative_int,
        "Retries of a failed upstream GET (connect errors, 502/503/504, 429); 0 turns them off.",
    )
    upstream_retry_backoff: float = option(
        0.2,
        parse.positive_float,
        "Base of the exponential back-off between retries, in seconds (full jitter, max 2 s).",
    )
    upstream_retry_after_max: float = option(
        5.0,
        parse.non_negative_float,
        "Longest Retry-After (seconds) the gateway waits out itself; a longer one is passed on.",
    )
    breaker_failures: int = option(
        5,
        parse.non_negative_int,
        "Consecutive upstream failures that open the circuit breaker; 0 disables it.",
    )
    breaker_cooldown: float = option(
        10.0,
        parse.positive_float,
        "Seconds the open breaker fails fast before letting a probe through.",
    )
    upstream_max_limit: int = option(
        100,
        parse.positive_int,
        "Largest `limit` sent upstream; bigger windows are fetched as several concurrent calls.",
    )
    upstream_max_bytes: int = option(
        16 * 1024 * 1024,
        parse.positive_int,
        "Largest upstream response body accepted, in bytes; larger is UPSTREAM_BAD_RESPONSE.",
    )
    cache_ttl: float = option(
        5.0,
        parse.non_negative_float,
        "Seconds a successful upstream page is cached; 0 turns caching and deduplication off.",
    )
    cache_stale: float = option(
        30.0,
        parse.non_negative_float,
        "Seconds past its TTL a page may still be served: at once while one background call "
        "refreshes it (stale-while-revalidate), and instead of an error while the upstream "
        "fails (stale-if-error); responses built on one say `extensions.stale`. 0 turns it off.",
    )
    prefetch_concurrency: int = option(
        16,
        parse.non_negative_int,
        "Background fetches of the next block a process runs at once when a page ends in the "
        "last quarter of its block (next-block prefetch); 0 turns prefetch off.",
    )
    cache_url: str = option(
        "memory://",
        parse.cache_url,
        "`memory://` (per process) or `redis://[user:password@]host:port/db` (`rediss://` for "
        "TLS), shared by every replica pointed at it.",
        secret=True,
    )
    cache_key_secret: str = option(
        "",
        parse.text,
        "Key of the credential digests (keyed BLAKE2b) in cache keys. Required with Redis (the "
        "same on every replica); random per process when unset with `memory://`.",
        secret=True,
    )
    cache_timeout: float = option(
        0.25,
        parse.positive_float,
        "Seconds one cache (Redis) operation may take before it is skipped.",
    )
    cache_block_size: int = option(
        100,
        parse.non_negative_int,
        "With caching on, fetch aligned blocks of this many rows so neighbouring pages share "
        "them (capped at `GATEWAY_UPSTREAM_MAX_LIMIT`); 0 fetches exact windows.",
    )
    cache_max_bytes: int = option(
        64 * 1024 * 1024,
        parse.positive_int,
        "Bytes of process memory for pages (`memory://`), whole responses and persisted queries "
        "(`memory://`) together, by encoded size; the least recently used go first.",
    )
    max_depth: int = option(
        12,
        parse.positive_int,
        "Deepest nesting of selection sets a query may have (`QUERY_TOO_DEEP`).",
    )
    max_aliases: int = option(
        15, parse.non_negative_int, "Most aliased fields in one operation (`TOO_MANY_ALIASES`)."
    )
    max_field_repeats: int = option(
        10,
        parse.positive_int,
        "Most times one response key may be selected in one selection set, fragments included "
        "(`TOO_MANY_REPEATED_FIELDS`).",
    )
    max_tokens: int = option(
        2000, parse.positive_int, "Most lexical tokens in one document (`TOO_MANY_TOKENS`)."
    )
    max_body_bytes: int = option(
        65536,
        parse.positive_int,
        "Largest request body in bytes; larger is HTTP 413 before parsing.",
    )
    max_batch: int = option(
        10,
        parse.non_negative_int,
        "Most operations in one batched POST (a JSON array, as Apollo Client's BatchHttpLink "
        "sends); they share one upstream-call budget. 0 refuses batches (`BATCH_REFUSED`).",
    )
    compression: tuple[str, ...] = option(
        parse.encodings("zstd,br,gzip"),
        parse.encodings,
        "Content encodings offered for GraphQL responses, in order of preference, to clients "
        "whose Accept-Encoding allows them (`zstd`, `br`, `gzip`); `none` turns compression off.",
    )
    compression_min_bytes: int = option(
        1024, parse.non_negative_int, "Smallest GraphQL response body that is compressed."
    )
    max_header_bytes: int = option(
        16384,
        parse.positive_int,
        "Largest total of request header names and values, in bytes; larger is HTTP 431 "
        "(`REQUEST_HEADER_FIELDS_TOO_LARGE`) with nothing forwarded. A GET's query string may be "
        "up to `GATEWAY_MAX_BODY_BYTES` (else 414).",
    )
    client_timeout: float = option(
        10.0,
        parse.positive_float,
        "Seconds a client may take to send one request, headers and body; a slower one gets 408 "
        "(`REQUEST_TIMEOUT`) or has its connection closed.",
    )
    keepalive_timeout: float = option(
        5.0, parse.positive_float, "Seconds an idle keep-alive connection is kept open."
    )
    max_connections: int = option(
        1000,
        parse.positive_int,
        "Most connections (or requests in flight) one process serves at once; past it uvicorn "
        "answers 503.",
    )
    filter_scan_rows: int = option(
        1000,
        parse.positive_int,
        "Most rows of the underlying list one filtered page may scan; past it the page holds "
        "what was found and its cursor says where the scan stopped.",
    )
    upstream_call_budget: int = option(
        40,
        parse.positive_int,
        "Most upstream calls one request may cause, judged before execution from its list "
        "fields' sizes (`UPSTREAM_BUDGET_EXCEEDED`) and counted while it runs.",
    )
    live_poll_interval: float = option(
        5.0,
        parse.positive_float,
        "Seconds between two polls of one `jobChanged` poller (one per token and `first`, shared "
        "by all of its subscribers); polls read through the page cache.",
    )
    live_max_subscriptions: int = option(
        20,
        parse.positive_int,
        "Most subscriptions one WebSocket connection may hold at once; past it "
        "`SUBSCRIPTION_LIMIT_EXCEEDED`.",
    )
    live_max_pollers: int = option(
        200,
        parse.positive_int,
        "Most `jobChanged` pollers (distinct token and `first`) one process runs at once; past "
        "it a new one is refused (`POLLER_LIMIT_EXCEEDED`).",
    )
    live_ping_interval: float = option(
        20.0,
        parse.positive_float,
        "Seconds between WebSocket pings on an idle socket; one not answered within as many "
        "seconds again is closed.",
    )
    introspection: bool = option(
        True,
        parse.boolean,
        "Allow introspection queries (GraphiQL's docs and autocompletion need it).",
    )
    graphiql: bool = option(True, parse.boolean, "Serve GraphiQL to browsers on `GET /graphql`.")
    graphiql_assets_dir: str = option(
        "",
        parse.text,
        "Directory of GraphiQL's JS/CSS (as `python -m gateway fetch-graphiql` writes it), "
        "served at `/graphiql/assets/`; unset: the copy shipped in the package.",
    )
    cors_origins: tuple[str, ...] = option(
        (),
        parse.origins,
        "Comma-separated origins allowed to call the API from a browser, e.g. "
        "`https://app.example.com`; none by default.",
    )
    cors_allow_headers: tuple[str, ...] = option(
        parse.header_names(
            "Authorization,Content-Type,Accept,X-Request-ID,apollographql-client-name,"
            "apollographql-client-version,apollo-require-preflight"
        ),
        parse.header_names,
        "Comma-separated request headers browsers may send cross-origin (with the origins above).",
    )
    trusted_documents: str = option(
        "",
        parse.text,
        'Path of a trusted-documents manifest (`{"<sha256>": "<document>"}`, as '
        "graphql-codegen's client preset or Relay write it): only those operations run, named "
        "by `documentId` or APQ hash. Checked at start; unset runs any query.",
    )
    apq_ttl: float = option(
        86400.0,
        parse.non_negative_float,
        "Seconds an automatic persisted query is remembered; 0 turns persisted queries off.",
    )
    workers: int = option(
        1, parse.positive_int, "Worker processes for `serve` (use the cores; share a Redis cache)."
    )
    shutdown_grace: float = option(
        20.0,
        parse.positive_float,
        "Seconds a SIGTERM'd gateway keeps serving the requests in flight before it stops.",
    )
    tracing: bool = option(
        False,
        parse.boolean,
        "Send OpenTelemetry traces (needs the `otel` extra; exporter set by `OTEL_*` variables).",
    )
    log_level: str = option("INFO", parse.log_level, "Log level: debug, info, warning, error.")
    log_format: str = option(
        "json",
        parse.log_format,
        "`json` (one object per line, for collectors) or `console` (lines for people; the "
        "demo's default).",
    )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], overrides: Mapping[str, str | None] | None = None
    ) -> Settings:
        """Settings from `GATEWAY_*` variables, with `overrides` (field name -> raw text) on top.

        `overrides` is how CLI flags win over the environment; a `None` override is ignored.
        """
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            env_name = ENV_PREFIX + spec.name.upper()
            raw = (overrides or {}).get(spec.name)
            source = f"--{spec.name.replace('_', '-')}"
            if raw is None:
                raw = environ.get(env_name)
                source = env_name
            if raw is None or raw.strip() == "":
                if spec.default is dataclasses.MISSING:
                    raise SettingsError(f"{env_name} is not set: {spec.metadata['doc']}")
                continue
            try:
                values[spec.name] = spec.metadata["parse"](raw)
            except ValueError as error:
                reason = str(error)
                if reason.startswith(("invalid literal", "could not convert")):
                    reason = "is not a number"
                raise SettingsError(f"{source}={raw!r} is invalid: {reason}") from None
        settings = cls(**values)
        if settings.uses_redis and settings.cache_ttl > 0 and not settings.cache_key_secret:
            raise SettingsError(
                "GATEWAY_CACHE_KEY_SECRET is not set: a Redis cache needs a key for its "
                "credential hashes, the same on every replica"
            )
        if settings.default_page_size > settings.max_page_size:
            raise SettingsError(
                f"GATEWAY_DEFAULT_PAGE_SIZE ({settings.default_page_size}) is above "
                f"GATEWAY_MAX_PAGE_SIZE ({settings.max_page_size})"
            )
        return settings

    @property
    def uses_redis(self) -> bool:
        """Whether the cache is a Redis shared with other processes."""
        return self.cache_url.startswith(("redis://", "rediss://"))

    @property
    def fetch_block_size(self) -> int:
        """Rows per aligned block list windows are fetched in: `cache_block_size` when pages
        are cached (neighbouring windows then share blocks), 0 (windows as they are) when not."""
        return self.cache_block_size if self.cache_ttl > 0 else 0

    @classmethod
    def documentation(cls) -> list[tuple[str, str, str]]:
        """(variable, default, meaning) for every setting: the source of the README's table."""
        rows = []
        for spec in dataclasses.fields(cls):
            if spec.default is dataclasses.MISSING:
                default = "required"
            elif spec.default in ("", ()):
                default = "unset"
            elif isinstance(spec.default, bool):
                default = f"`{str(spec.default).lower()}`"
            elif isinstance(spec.default, tuple):
                default = f"`{','.join(spec.default)}`"
            else:
                default = f"`{spec.default}`"
            rows.append((ENV_PREFIX + spec.name.upper(), default, spec.metadata["doc"]))
        return rows
