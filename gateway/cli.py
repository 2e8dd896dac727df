"""The command line: `serve`, `demo` and `export-schema` (`python -m gateway` or `jobs-gateway`)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import uvicorn

from gateway import __version__
from gateway.app import create_app, trusted_documents_of
from gateway.background import BackgroundServer
from gateway.graphiql import BUNDLED_ASSETS_DIR, fetch_assets
from gateway.logs import configure_logging
from gateway.sample_upstream import DEMO_TOKEN, WRITER_TOKEN, SampleUpstream
from gateway.schema import export_sdl
from gateway.serving import prepare_serving_process, uvicorn_options
from gateway.settings import ENV_PREFIX, Settings, SettingsError

DEMO_QUERY = (
    "query { jobs(first: 5) { edges { cursor node { jobId metadata { jobTitle status "
    "created currentStep { singleStep { stepTitle stepNumber } } } } } "
    "pageInfo { hasNextPage endCursor } } }"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobs-gateway",
        description="A GraphQL gateway over the WorkfloPlus Jobs REST API.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the gateway (settings from GATEWAY_* variables; flags win)"
    )
    serve.add_argument("--host", help="interface to listen on (GATEWAY_HOST)")
    serve.add_argument("--port", help="TCP port (GATEWAY_PORT)")
    serve.add_argument("--workers", help="worker processes (GATEWAY_WORKERS)")
    serve.add_argument(
        "--upstream",
        dest="upstream_url",
        metavar="URL",
        help="Jobs API base URL (GATEWAY_UPSTREAM_URL)",
    )

    demo = commands.add_parser(
        "demo", help="run the bundled sample upstream and the gateway together, on loopback"
    )
    demo.add_argument("--port", default="8000", help="gateway port (default 8000)")
    demo.add_argument(
        "--churn",
        type=float,
        default=10.0,
        help="seconds between the sample jobs' own changes, for live subscriptions (0: none)",
    )
    demo.add_argument(
        "--upstream-port", type=int, default=8001, help="sample upstream port (default 8001)"
    )

    commands.add_parser("export-schema", help="print the GraphQL schema (SDL)")
    fetch = commands.add_parser(
        "fetch-graphiql",
        help="download GraphiQL's assets from the npm registry so the gateway serves them itself",
    )
    fetch.add_argument("--dir", type=Path, default=BUNDLED_ASSETS_DIR, help="target directory")
    return parser


def _serve(
    settings: Settings,
    environ: Mapping[str, str],
    graphiql_headers: dict[str, str] | None = None,
) -> None:
    configure_logging(settings.log_level, settings.log_format)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,  # keep the JSON logging configured above
        "access_log": False,  # one line per GraphQL request is logged by the gateway itself
        "proxy_headers": False,
        "timeout_graceful_shutdown": settings.shutdown_grace,
        **uvicorn_options(settings),
    }
    if settings.workers == 1:
        app = create_app(settings, graphiql_headers=graphiql_headers)
        prepare_serving_process()
        uvicorn.run(app, **options)
        return
    trusted_documents_of(settings)  # a bad manifest stops `serve` here, not in each worker
    # Workers are fresh processes that build the app from the environment: hand them the
    # settings as GATEWAY_* variables, and a directory for prometheus-client's multiprocess mode.
    os.environ.update(settings_environment(settings, environ))
    with tempfile.TemporaryDirectory(prefix="gateway-metrics-") as metrics_dir:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_dir)
        uvicorn.run(
            "gateway.app:create_app_from_environment",
            factory=True,
            workers=settings.workers,
            **options,
        )


def settings_environment(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """GATEWAY_* variables that rebuild `settings` in a worker (flags folded in)."""
    variables = {key: value for key, value in environ.items() if key.startswith(ENV_PREFIX)}
    variables[ENV_PREFIX + "UPSTREAM_URL"] = settings.upstream_url
    variables[ENV_PREFIX + "HOST"] = settings.host
    variables[ENV_PREFIX + "PORT"] = str(settings.port)
    variables[ENV_PREFIX + "WORKERS"] = str(settings.workers)
    return variables


def _demo(port: str, upstream_port: int, churn: float, environ: Mapping[str, str]) -> None:
    sample = SampleUpstream(churn_interval=max(churn, 0.0))
    with BackgroundServer(sample.app(), port=upstream_port) as upstream:
        overrides = {"upstream_url": upstream.url, "host": "127.0.0.1", "port": port}
        # Lines for people, unless the environment asks for JSON.
        log_format = environ.get(ENV_PREFIX + "LOG_FORMAT") or "console"
        settings = Settings.from_env(
            environ, {**overrides, "workers": "1", "log_format": log_format}
        )
        graphql_url = f"http://127.0.0.1:{settings.port}/graphql"
        body = '{"query": "' + DEMO_QUERY.replace('"', '\\"') + '"}'
        curl = (
            f"curl -s {graphql_url} -H 'Authorization: Bearer {DEMO_TOKEN}' "
            f"-H 'Content-Type: application/json' -d {shlex.quote(body)}"
        )
        teams = ", ".join(f"{team} ({count} jobs)" for team, count in sample.teams.items())
        sys.stdout.write(
            "\n".join(
                [
                    f"Sample Jobs API: {upstream.url}/jobs/v1/  (teams: {teams})",
                    f"GraphiQL:        {graphql_url}",
                    f"Demo token:      {DEMO_TOKEN}   (other tokens: "
                    + ", ".join(token for token in sample.grants if token != DEMO_TOKEN)
                    + ")",
                    f"Mutations:       {WRITER_TOKEN} holds the write policies; {DEMO_TOKEN} "
                    "may read, abort and assign",
                    "GraphiQL opens with the demo token in its Headers pane: press Run.",
                    f"Live updates:    subscription {{ jobChanged(first: 10) {{ kind jobId }} }} "
                    f"in GraphiQL (the sample jobs change every {churn:g} s)",
                    "Try it from a shell:",
                    f"  {curl}",
                    "Ctrl-C stops both.",
                    "",
                ]
            )
            + "\n"
        )
        sys.stdout.flush()
        _serve(settings, environ, {"Authorization": f"Bearer {DEMO_TOKEN}"})


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    try:
        if args.command == "export-schema":
            sys.stdout.write(export_sdl())
        elif args.command == "serve":
            overrides = {
                "host": args.host,
                "port": args.port,
                "upstream_url": args.upstream_url,
                "workers": args.workers,
            }
            _serve(Settings.from_env(environ, overrides), environ)
        elif args.command == "demo":
            _demo(args.port, args.upstream_port, args.churn, environ)
        elif args.command == "fetch-graphiql":
            fetch_assets(args.dir)
            sys.stdout.write(f"GraphiQL assets saved in {args.dir}\n")
    except SettingsError as error:
        sys.stderr.write(f"jobs-gateway: configuration error: {error}\n")
        return 2
    return 0
