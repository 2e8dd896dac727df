"""CORS for browser apps on other origins: what real GraphQL clients send, refusals in JSON.

Only the origins in `GATEWAY_CORS_ORIGINS` are allowed (none by default), for GET and POST,
with the request headers in `GATEWAY_CORS_ALLOW_HEADERS`: by default what fetch, Apollo Client
and urql send (`Authorization`, `Content-Type`, `Accept`, `X-Request-ID`, Apollo's
`apollographql-client-name`/`-version` and `apollo-require-preflight`). Pages may read the
response's `X-Request-ID`, to quote it in a bug report. Browsers may keep a preflight's answer
for two hours (Chromium's own cap). A refused preflight is answered 400 in the gateway's JSON
error shape, `CORS_PREFLIGHT_REFUSED`, saying what was refused, instead of Starlette's text.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp

from gateway.graphql_request import error_body, json_response
from gateway.logs import REQUEST_ID_HEADER
from gateway.settings import Settings

PREFLIGHT_MAX_AGE = 7200
CORS_PREFLIGHT_REFUSED = "CORS_PREFLIGHT_REFUSED"


class GatewayCORS(CORSMiddleware):
    """Starlette's CORS middleware, configured from the settings, refusing in JSON."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        super().__init__(
            app,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=list(settings.cors_allow_headers),
            expose_headers=[REQUEST_ID_HEADER],
            max_age=PREFLIGHT_MAX_AGE,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code < 400:
            return answer
        reason = bytes(answer.body).decode(errors="replace")  # "Disallowed CORS origin, ..."
        refused = json_response(
            error_body(
                f"{reason}: see GATEWAY_CORS_ORIGINS and GATEWAY_CORS_ALLOW_HEADERS",
                CORS_PREFLIGHT_REFUSED,
            ),
            answer.status_code,
        )
        for name in ("vary", "access-control-allow-methods", "access-control-max-age"):
            if name in answer.headers:
                refused.headers[name] = answer.headers[name]
        return refused
