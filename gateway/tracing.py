"""Optional OpenTelemetry tracing: a span per GraphQL operation and resolver, the upstream call
as a child span of the resolver that made it, and W3C trace context sent upstream.

Switched on by `GATEWAY_TRACING=true`; needs the `otel` extra
(`pip install 'jobs-graphql-gateway[otel]'`). Where spans go is OpenTelemetry's own business:
the standard `OTEL_*` variables configure the OTLP exporter (for example
`OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318`). A tracer provider set up beforehand (by
`opentelemetry-instrument`, or a test) is used as it is.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import httpx

from gateway.settings import SettingsError

_REQUIRED = ("opentelemetry.sdk", "opentelemetry.instrumentation.httpx")


def require_tracing() -> None:
    """Fail at start, with one line, when tracing is asked for but not installed."""
    missing = [module for module in _REQUIRED if importlib.util.find_spec(module) is None]
    if missing:
        raise SettingsError(
            "GATEWAY_TRACING=true needs the otel extra: pip install 'jobs-graphql-gateway[otel]' "
            f"(missing: {', '.join(missing)})"
        )


def ensure_tracer_provider() -> None:
    """Install an SDK tracer provider exporting over OTLP, unless one is set already."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    provider = TracerProvider(resource=Resource.create({"service.name": "jobs-graphql-gateway"}))
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:  # the extra's exporter is optional; spans then stay in process
        pass
    else:
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def schema_extension() -> Any:
    """Strawberry's OpenTelemetry extension (a span per operation, parse, validate, resolver)."""
    from strawberry.extensions.tracing import OpenTelemetryExtension

    return OpenTelemetryExtension


def traced_transport(transport: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
    """`transport`, making every upstream call a client span of the current span, with trace
    headers sent."""
    from opentelemetry.instrumentation.httpx import AsyncOpenTelemetryTransport

    return AsyncOpenTelemetryTransport(transport)
