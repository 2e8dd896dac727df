"""The gateway's benchmark: throughput, latency and memory against the framework's ceiling.

    .venv/bin/python benchmarks/run.py            # 3 runs x 10 s per scenario (about 6 minutes)
    .venv/bin/python benchmarks/run.py --quick    # 3 runs x 1 s (under a minute)
    .venv/bin/python benchmarks/run.py --soak 60  # also: RSS every 5 s over 60 s of `many-tokens`
    .venv/bin/python benchmarks/run.py --against HEAD~3   # each scenario for that commit too

Everything runs on 127.0.0.1 and stops by itself: a fixed upstream (precomputed JSON, so it is
never the bottleneck), the gateway (`python -m gateway serve`, one worker, restarted per
scenario with its settings), and wrk (Debian's, installed with apt-get if missing) with 32
connections. Each scenario's figures are medians of the runs; peak RSS is the gateway's VmHWM.
Reference lines, measured in the same run: the upstream called directly, a plain Starlette
route answering with the precomputed response (`ceiling`), and bare Strawberry over the same
schema with the page in memory (`bare_strawberry.py`, what the issue's `miss` target was set
against). Ratios are to the ceiling's requests/s, since absolute numbers drift on a shared
machine.

With `--against REV`, each gateway scenario also runs the gateway of commit REV (checked out in
a temporary git worktree, run with this virtualenv): both gateways are up at once and their runs
alternate, so a change is measured against the commit before it under the same load on the
machine; the report adds REV's requests/s and the ratio.

Scenarios: `miss` (cache off, `jobs(first: 20)` with 15 fields including
`metadata.currentStep.singleStep`), `hit` (the same with the cache on), `wide` (`jobs(first:
100)` selecting every field, cache on), `many-tokens` (200 tokens round-robin, cache on);
`hit gzip`, `miss br`, ... and `wide zstd`: the same with a client accepting that encoding;
`filtered warm` and `filtered cold`: the narrow page with a filter matching about 1 job in 10,
cache on and off, reported against `hit` and `miss`.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import apollo_peer  # noqa: E402

PYTHON = sys.executable
CONNECTIONS = 32
NARROW_QUERY = (
    "query Bench { jobs(first: 20) { edges { cursor node { jobId team metadata { jobTitle "
    "status created updated workflowName username currentStep { singleStep { stepTitle "
    "stepNumber stepType started } } } } } pageInfo { hasNextPage endCursor } } }"
)


# The narrow query filtered to about 1 job in 10 (24 of the 237): `first: 20` scans about 200
# rows, two or three 100-row blocks.
FILTERED_QUERY = NARROW_QUERY.replace(
    "jobs(first: 20)",
    'jobs(first: 20, filter: {titleContains: "Audit", status: ["Completed", "Paused"]})',
)


def every_field_query() -> str:
    sys.path.insert(0, str(ROOT))
    from graphql import GraphQLObjectType, get_named_type

    from gateway.schema import build_schema

    def selection(type_: object) -> str:
        if not isinstance(type_, GraphQLObjectType):
            return ""
        parts = []
        for name, field in type_.fields.items():
            if name == "snapshots":
                continue  # another endpoint, one call per job: not what `wide` measures
            inner = selection(get_named_type(field.type))
            parts.append(f"{name} {{ {inner} }}" if inner else name)
        return " ".join(parts)

    job = build_schema()._schema.type_map["Job"]
    return f"query Wide {{ jobs(first: 100) {{ nodes {{ {selection(job)} }} }} }}"


@dataclass(frozen=True)
class Scenario:
    name: str
    query: str
    cache_ttl: str
    tokens: int = 1
    workers: int = 1
    redis: bool = False
    accept_encoding: str | None = None
    """The client's Accept-Encoding (none: wrk sends none, and gets plain JSON)."""
    slow: bool = False
    """Over the upstream with the latency model (`--latency-ms`) instead of the fast one."""
    seconds: int | None = None
    """Seconds per run, whatever `--seconds` says (a run that must cross TTL expiries)."""


@dataclass
class Figures:
    rps: float
    p50_ms: float
    p99_ms: float
    rss_mb: float | None = None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(url: str, method: str = "GET") -> None:
    for _ in range(300):
        try:
            httpx.request(method, url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def process(
    arguments: list[str], environ: dict[str, str] | None = None, root: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    """`arguments` running from `root` (its `gateway` package first on the path)."""
    child = subprocess.Popen(
        arguments,
        cwd=root,
        env={**os.environ, **(environ or {}), "PYTHONPATH": str(root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield child
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()


def uvicorn(app: str, port: int) -> list[str]:
    address = ["--host", "127.0.0.1", "--port", str(port)]
    return [PYTHON, "-m", "uvicorn", app, *address, "--log-level", "warning", "--no-access-log"]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def current_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wrk_script(
    directory: Path, query: str | None, tokens: int, accept_encoding: str | None = None
) -> Path:
    """A wrk Lua script: POST the query (or GET) with `tokens` bearer tokens round-robin."""
    script = directory / f"bench-{tokens}-{abs(hash((query, accept_encoding)))}.lua"
    encoding = "" if accept_encoding is None else f'["Accept-Encoding"] = "{accept_encoding}",'

    if query is None:
        script.write_text('wrk.method = "GET"\nwrk.headers["Authorization"] = "Bearer bench-0"\n')
        return script
    body = httpx.Request("POST", "http://x", json={"query": query}).content.decode()
    lua_body = body.replace("\\", "\\\\").replace('"', '\\"')
    script.write_text(
        f'''wrk.method = "POST"
wrk.body = "{lua_body}"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
request = function()
  counter = counter + 1
  local headers = {{
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer bench-" .. (counter % {tokens}),
    {encoding}
  }}
  return wrk.format(nil, nil, headers, nil)
end
'''
    )
    return script


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(url: str, script: Path, seconds: float) -> Figures:
    output = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    latencies = {}
    pattern = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
    for percent, value, unit in pattern.findall(output):
        latencies[percent] = float(value) * _UNITS[unit]
    if "Non-2xx" in output:
        raise RuntimeError(f"non-2xx answers from {url}:\n{output}")
    return Figures(rps, latencies["50"], latencies["99"])


def median_figures(runs: list[Figures]) -> Figures:
    return Figures(
        statistics.median(run.rps for run in runs),
        statistics.median(run.p50_ms for run in runs),
        statistics.median(run.p99_ms for run in runs),
    )


def ensure_installed(program: str, package: str) -> str:
    """The path of `program`, installing its Debian package when missing (as root)."""
    found = shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit(f"{program} is needed: apt-get install {package}")
    subprocess.run(
        ["apt-get", "install", "-y", "-q", package], check=True, stdout=subprocess.DEVNULL
    )
    return shutil.which(program) or sys.exit(f"{package} did not install {program}")


def workers_peak_rss_mb(pid: int) -> float:
    """The sum of the peak RSS of `pid`'s child processes (uvicorn's workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return sum(peak_rss_mb(int(child)) for child in children) if children else peak_rss_mb(pid)


def run_scenario(
    scenario: Scenario,
    upstream: str,
    redis_port: int,
    roots: list[Path],
    directory: Path,
    args: argparse.Namespace,
    seconds: int,
) -> list[Figures]:
    """The figures of `scenario` for the gateway of each of `roots`, their runs alternating."""
    environ = {
        "GATEWAY_UPSTREAM_URL": upstream,
        "GATEWAY_CACHE_TTL": scenario.cache_ttl,
        "GATEWAY_CACHE_MAX_ENTRIES": "5000",  # read by commits before the byte budget
        "GATEWAY_CACHE_MAX_BYTES": str(512 << 20),
        "GATEWAY_WORKERS": str(scenario.workers),
    }
    if scenario.redis:
        environ["GATEWAY_CACHE_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        environ["GATEWAY_CACHE_KEY_SECRET"] = secrets.token_hex(32)
    script = wrk_script(directory, scenario.query, scenario.tokens, scenario.accept_encoding)
    with ExitStack() as gateways:
        urls, pids = [], []
        for root in roots:
            port = free_port()
            gateway = gateways.enter_context(
                process(
                    [PYTHON, "-m", "gateway", "serve"], {**environ, "GATEWAY_PORT": str(port)}, root
                )
            )
            url = f"http://127.0.0.1:{port}/graphql"
            wait_for(f"http://127.0.0.1:{port}/healthz")
            first = httpx.post(
                url, json={"query": scenario.query}, headers={"authorization": "Bearer bench-0"}
            )
            if "errors" in first.json() and root != ROOT:
                # The other commit predates what the scenario asks for (a filter, ...).
                print(f"{scenario.name}: skipped for {root.name}: {first.text[:120]}")
                continue
            assert "errors" not in first.json(), first.text[:500]
            if scenario.name == "miss" and root == ROOT:
                (directory / "response.json").write_bytes(first.content)
            run_wrk(url, script, min(seconds, 2))  # warm-up
            urls.append(url)
            pids.append(gateway.pid)
        # Alternate the gateways run by run, in turn first and second (A B, B A, ...): both
        # see the same machine, and neither always follows the other.
        runs: list[list[Figures]] = [[] for _ in urls]
        for round_ in range(args.runs):
            order = list(enumerate(urls))
            for index, url in order if round_ % 2 == 0 else reversed(order):
                runs[index].append(run_wrk(url, script, seconds))
        figures = []
        for collected, pid in zip(runs, pids, strict=True):
            figures.append(median_figures(collected))
            figures[-1].rss_mb = workers_peak_rss_mb(pid)
        if args.soak and scenario.name == "many-tokens":
            soak(urls[0], script, args.soak, pids[0])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark the gateway against its ceiling.")
    parser.add_argument("--quick", action="store_true", help="1 s runs: under a minute in all")
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (median)")
    parser.add_argument("--seconds", type=int, help="whole seconds per run (default 10, quick 1)")
    parser.add_argument(
        "--soak", type=float, default=0, help="seconds of RSS sampling under many-tokens"
    )
    parser.add_argument("--only", help="comma-separated scenario names")
    parser.add_argument("--against", metavar="REV", help="also run each scenario for commit REV")
    parser.add_argument(
        "--latency-ms", type=float, default=50, help="the slow upstream's delay (+- 20%% jitter)"
    )
    parser.add_argument(
        "--session", action="store_true", help="then run benchmarks/session.py (defaults)"
    )
    args = parser.parse_args()
    seconds = args.seconds or (1 if args.quick else 10)
    ensure_installed("wrk", "wrk")
    scenarios = [
        Scenario("miss", NARROW_QUERY, "0"),
        Scenario("hit", NARROW_QUERY, "60"),
        Scenario("wide", every_field_query(), "60"),
        Scenario("many-tokens", NARROW_QUERY, "60", tokens=200),
        # Compression (issue 14): what each encoding costs a hit and a miss.
        *(
            Scenario(f"{name} {encoding}", NARROW_QUERY, ttl, accept_encoding=encoding)
            for name, ttl in (("hit", "60"), ("miss", "0"))
            for encoding in ("gzip", "br", "zstd")
        ),
        Scenario("wide zstd", every_field_query(), "60", accept_encoding="zstd"),
        # Filters (issue 16): the narrow page filtered, warm (blocks cached) and cold.
        Scenario("filtered warm", FILTERED_QUERY, "60"),
        Scenario("filtered cold", FILTERED_QUERY, "0"),
        # Multi-core: the many-tokens load over the Redis cache, one worker against two.
        Scenario("redis 1 worker", NARROW_QUERY, "60", tokens=200, workers=1, redis=True),
        Scenario("redis 2 workers", NARROW_QUERY, "60", tokens=200, workers=2, redis=True),
        # Latency users feel (issue 18): a hit over 60 s that crosses twelve 5 s TTL expiries,
        # over the upstream with the latency model: expiries must not show in p99.
        Scenario("hit expiries", NARROW_QUERY, "5", slow=True, seconds=60),
    ]
    if args.only:
        scenarios = [scenario for scenario in scenarios if scenario.name in args.only.split(",")]
    results: dict[str, Figures] = {}
    upstream_port, slow_port = free_port(), free_port()
    fixed_upstream = uvicorn("benchmarks.fixed_upstream:app", upstream_port)
    slow_upstream = [PYTHON, "-c", "pass"]
    model = {
        "BENCH_UPSTREAM_DELAY_MS": f"{args.latency_ms:g}",
        "BENCH_UPSTREAM_JITTER_MS": f"{args.latency_ms / 5:g}",
    }
    if any(scenario.slow for scenario in scenarios):
        slow_upstream = uvicorn("benchmarks.fixed_upstream:app", slow_port)
    redis_port = free_port()
    redis = [PYTHON, "-c", "pass"]  # nothing to start unless a scenario uses Redis
    if any(scenario.redis for scenario in scenarios):
        redis_server = ensure_installed("redis-server", "redis-server")
        redis = [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""]
    against: dict[str, Figures] = {}
    with (
        tempfile.TemporaryDirectory() as scratch,
        worktree(args.against) as other_root,
        process(fixed_upstream),
        process(slow_upstream, model),
        process(redis),
    ):
        directory = Path(scratch)
        upstream = f"http://127.0.0.1:{upstream_port}"
        wait_for(upstream + "/jobs/v1/")
        get_script = wrk_script(directory, None, 1)
        direct = f"{upstream}/jobs/v1/?skip=0&limit=21"
        results["upstream direct"] = median_figures(
            [run_wrk(direct, get_script, seconds) for _ in range(args.runs)]
        )
        response_file = directory / "response.json"
        roots = [ROOT] if other_root is None else [ROOT, other_root]
        for scenario in scenarios:
            over = f"http://127.0.0.1:{slow_port}" if scenario.slow else upstream
            length = scenario.seconds or seconds
            figures = run_scenario(scenario, over, redis_port, roots, directory, args, length)
            results[scenario.name] = figures[0]
            if len(figures) > 1:
                against[scenario.name] = figures[1]
        script = wrk_script(directory, NARROW_QUERY, 1)
        results.update(apollo_lines(args.only, upstream, script, seconds, args.runs))
        results["bare strawberry"] = reference(
            "benchmarks.bare_strawberry:app", {}, script, seconds, args.runs
        )
        if response_file.exists():
            environ = {"BENCH_RESPONSE_FILE": str(response_file)}
            results["ceiling"] = reference(
                "benchmarks.ceiling:app", environ, script, seconds, args.runs
            )
    report(results, seconds, args.runs)
    if args.against:
        compare(results, against, args.against)
    if args.session:
        subprocess.run([PYTHON, str(ROOT / "benchmarks" / "session.py")], check=True)


def apollo_lines(
    only: str | None, upstream: str, script: Path, seconds: int, runs: int
) -> dict[str, Figures]:
    """The Apollo peer on the fast upstream, at TTL 0 (to set beside `miss`) and at TTL 5 (to
    set beside `hit`): the reference a Node team would pick (`apollo_peer.py`)."""
    lines: dict[str, Figures] = {}
    for name, ttl in (("apollo ttl 0", 0), ("apollo ttl 5", 5)):
        if only and name not in only.split(","):
            continue
        if not apollo_peer.available():
            print(f"{name}: the Apollo peer is not at {apollo_peer.SOURCE}; left out")
            continue
        with apollo_peer.peer(upstream, free_port(), ttl) as url:
            run_wrk(url, script, min(seconds, 2))  # warm-up (V8 compiles the hot paths)
            lines[name] = median_figures([run_wrk(url, script, seconds) for _ in range(runs)])
    return lines


@contextmanager
def worktree(revision: str | None) -> Iterator[Path | None]:
    """A temporary checkout of `revision` (None: nothing), removed afterwards."""
    if revision is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="bench-against-") as scratch:
        path = Path(scratch) / "tree"
        git = ["git", "-C", str(ROOT)]
        subprocess.run([*git, "worktree", "add", "--detach", "-q", str(path), revision], check=True)
        try:
            yield path
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(path)], check=False)


def compare(results: dict[str, Figures], against: dict[str, Figures], revision: str) -> None:
    """Each scenario's requests/s against those of `revision`, measured in the same run."""
    print(f"\nagainst {revision}, runs alternating in this run")
    print(f"{'scenario':<17}{'req/s':>9}{revision[:10]:>11}{'ratio':>8}{'p99 ms':>9}{'p99 REV':>9}")
    for name, figures in results.items():
        other = against.get(name)
        if other is None:
            continue
        print(
            f"{name:<17}{figures.rps:>9.0f}{other.rps:>11.0f}{figures.rps / other.rps:>8.2f}"
            f"{figures.p99_ms:>9.2f}{other.p99_ms:>9.2f}"
        )


def reference(app: str, environ: dict[str, str], script: Path, seconds: int, runs: int) -> Figures:
    """Median figures of a reference ASGI app under uvicorn, answering the narrow query."""
    port = free_port()
    with process(uvicorn(app, port), environ):
        url = f"http://127.0.0.1:{port}/graphql"
        wait_for(url, "POST")
        run_wrk(url, script, min(seconds, 2))  # warm-up
        return median_figures([run_wrk(url, script, seconds) for _ in range(runs)])


def soak(url: str, script: Path, seconds: float, pid: int) -> None:
    """Run wrk for `seconds` while sampling the gateway's RSS every 5 s."""
    load = subprocess.Popen(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{int(seconds)}s", "-s", str(script), url],
        stdout=subprocess.DEVNULL,
    )
    samples = []
    started = time.monotonic()
    while load.poll() is None:
        samples.append((time.monotonic() - started, current_rss_mb(pid)))
        time.sleep(5)
    print("soak (many-tokens): RSS MB every 5 s:", " ".join(f"{rss:.0f}" for _, rss in samples))
    first, last = samples[0][1], samples[-1][1]
    print(f"soak: first {first:.1f} MB, last {last:.1f} MB, peak {peak_rss_mb(pid):.1f} MB")


def report(results: dict[str, Figures], seconds: float, runs: int) -> None:
    ceiling = results.get("ceiling")
    print(f"\n{CONNECTIONS} connections, {runs} runs x {seconds:g} s each, medians")
    print("ratio = requests/s divided by the ceiling's")
    print(f"{'scenario':<17}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'peak RSS MB':>13}{'ratio':>8}")
    names: tuple[str, ...] = (
        *("upstream direct", "ceiling", "bare strawberry", "apollo ttl 0", "apollo ttl 5"),
        *("miss", "hit", "wide", "many-tokens", "filtered warm", "filtered cold", "hit expiries"),
    )
    for name in (*names, "redis 1 worker", "redis 2 workers"):
        if name not in results:
            continue
        figures = results[name]
        ratio = f"{figures.rps / ceiling.rps:.2f}" if ceiling else "-"
        rss = f"{figures.rss_mb:.0f}" if figures.rss_mb else "-"
        print(
            f"{name:<17}{figures.rps:>9.0f}{figures.p50_ms:>9.2f}{figures.p99_ms:>9.2f}{rss:>13}{ratio:>8}"
        )
    report_ratios(results)


def report_ratios(results: dict[str, Figures]) -> None:
    """The ratios the targets are stated in, for the scenarios that ran."""
    if "wide" in results and "miss" in results:
        print(f"wide p99 / miss p99 = {results['wide'].p99_ms / results['miss'].p99_ms:.1f}")
    if "bare strawberry" in results and "miss" in results:
        times = results["miss"].rps / results["bare strawberry"].rps
        print(f"miss / bare strawberry = {times:.1f}")
    for filtered, plain in (("filtered warm", "hit"), ("filtered cold", "miss")):
        if filtered in results and plain in results:
            share = results[filtered].rps / results[plain].rps
            print(f"{filtered} / {plain} = {share:.2f}")
    for ours, theirs in (("miss", "apollo ttl 0"), ("hit", "apollo ttl 5")):
        if ours in results and theirs in results:
            print(f"{ours} / {theirs} = {results[ours].rps / results[theirs].rps:.1f} (requests/s)")
    if "hit expiries" in results:
        spread = results["hit expiries"].p99_ms / results["hit expiries"].p50_ms
        print(f"hit expiries: p99 / p50 = {spread:.1f}")
    if "redis 1 worker" in results and "redis 2 workers" in results:
        scaling = results["redis 2 workers"].rps / results["redis 1 worker"].rps
        print(f"2 workers / 1 worker (Redis cache) = {scaling:.2f}")


if __name__ == "__main__":
    main()
