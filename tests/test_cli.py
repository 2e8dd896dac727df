"""The command line as a user runs it: real processes, real ports."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gateway.schema import export_sdl

from .conftest import ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_cli(
    *arguments: str, environ: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *arguments],
        env={**clean, **(environ or {})},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_schema_file_is_in_sync() -> None:
    """schema.graphql at the repo root equals `python -m gateway export-schema`."""
    exported = run_cli("export-schema")
    assert exported.returncode == 0
    assert exported.stdout == export_sdl()
    assert (ROOT / "schema.graphql").read_text() == exported.stdout, (
        "schema.graphql is stale: run `python -m gateway export-schema > schema.graphql`"
    )


def test_serve_without_an_upstream_stops_with_one_line() -> None:
    """A missing setting: exit status 2 and a one-line message naming it, no traceback."""
    result = run_cli("serve")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "jobs-gateway: configuration error: GATEWAY_UPSTREAM_URL is not set: Base URL of the "
        "Jobs REST API; the gateway calls `{base}/jobs/v1/`. Required."
    ]


def test_serve_names_a_malformed_flag() -> None:
    """A malformed flag is named as the flag; environment values as the variable."""
    result = run_cli("serve", "--port", "eighty", environ={"GATEWAY_UPSTREAM_URL": "http://a.test"})
    assert (result.returncode, "--port='eighty' is invalid" in result.stderr) == (2, True)
    result = run_cli(
        "serve", environ={"GATEWAY_UPSTREAM_URL": "http://a.test", "GATEWAY_PORT": "x"}
    )
    assert (result.returncode, "GATEWAY_PORT='x' is invalid" in result.stderr) == (2, True)
    assert "Traceback" not in result.stderr


def test_demo_serves_what_it_prints(tmp_path: Path) -> None:
    """`demo` starts both servers and prints a GraphiQL URL and token that work; its GraphiQL
    holds the token in the headers editor, and it logs lines for people, not JSON."""
    port, upstream_port = free_port(), free_port()
    log = (tmp_path / "stderr").open("w+")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "demo",
            "--port",
            str(port),
            "--upstream-port",
            str(upstream_port),
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")},
    )
    try:
        assert process.stdout is not None
        printed = ""
        for line in process.stdout:
            printed += line
            if line.startswith("Ctrl-C"):
                break
        url = re.search(r"GraphiQL:\s+(\S+)", printed).group(1)  # type: ignore[union-attr]
        token = re.search(r"Demo token:\s+(\S+)", printed).group(1)  # type: ignore[union-attr]
        assert url == f"http://127.0.0.1:{port}/graphql"
        assert f"curl -s {url} -H 'Authorization: Bearer {token}'" in printed
        for _ in range(100):  # the gateway starts just after printing
            try:
                response = httpx.post(
                    url,
                    json={"query": "{ jobs(first: 1) { nodes { team } } }"},
                    headers={"authorization": f"Bearer {token}"},
                )
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        assert response.json() == {"data": {"jobs": {"nodes": [{"team": "apiteam"}]}}}
        page = httpx.get(url, headers={"accept": "text/html"}).text
        assert f"Bearer {token}" in page
        assert '"forceHeaders": true' in page
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    log.seek(0)
    lines = log.read().splitlines()
    (request_line,) = [line for line in lines if "graphql request" in line]
    assert re.match(
        r"\d\d:\d\d:\d\d INFO +graphql request  request_id=\w+ outcome=ok", request_line
    )
    assert "upstream_calls=1" in request_line
    assert not any(line.startswith("{") for line in lines)


def test_serving_processes_tune_the_garbage_collector() -> None:
    """`serve` (one worker) and each worker of `serve --workers N` freeze what exists once the
    app is built and collect young objects every 10,000 allocations, not every 700; importing
    the package changes neither."""
    probe = (
        "import gc, sys, uvicorn\n"
        "from gateway import app, cli\n"
        "state = lambda: f'{gc.get_threshold()[0]} {gc.get_freeze_count() > 0}'\n"
        "print('import', state())\n"
        "uvicorn.run = lambda *_, **__: print('serve', state())\n"  # stop before listening
        "cli.main(['serve'])\n"
        "gc.unfreeze(); gc.set_threshold(700, 10, 10)\n"
        "app.create_app_from_environment()\n"
        "print('worker', state())\n"
    )
    clean = {key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")}
    environ = {**clean, "GATEWAY_UPSTREAM_URL": "http://upstream.test"}
    result = subprocess.run(
        [sys.executable, "-c", probe], env=environ, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "import 700 False",
        "serve 10000 True",
        "worker 10000 True",
    ]
