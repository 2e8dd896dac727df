"""The Dockerfile's invariants that can be checked without a Docker engine."""

from __future__ import annotations

import re

from .conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions(keyword: str) -> list[str]:
    """Every instruction `keyword` (continuation lines joined), in order."""
    joined = DOCKERFILE.replace("\\\n", " ")
    return [
        line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(keyword + " ")
    ]


def final_stage() -> str:
    return DOCKERFILE.rsplit("\nFROM ", 1)[1]


def test_it_runs_as_a_non_root_user() -> None:
    """The last USER of the final stage is not root."""
    users = re.findall(r"^USER (\S+)", final_stage(), flags=re.MULTILINE)
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")


def test_the_base_images_are_pinned() -> None:
    """Every image names an exact patch release, never `latest`."""
    for image in instructions("FROM"):
        assert re.match(r"python:3\.11\.\d+-slim-\w+", image), image
    for image in re.findall(r"--from=(\S+:\S+)", DOCKERFILE):
        assert re.match(r"node:\d+\.\d+\.\d+-\w+", image), image


def test_the_image_serves_graphiql_from_the_package() -> None:
    """The image installs the package, which carries GraphiQL's assets (the wheel test in
    test_graphiql.py checks that): no Node step, no other assets directory."""
    assert any("pip install --no-cache-dir --no-deps ." in run for run in instructions("RUN"))
    assert "GRAPHIQL_ASSETS_DIR" not in DOCKERFILE
    assert "--from=node" not in DOCKERFILE
    assert "npm" not in DOCKERFILE


def test_it_installs_exactly_what_ci_installs() -> None:
    """The image installs requirements.lock with the command dev.py (and so CI) runs."""
    dev = (ROOT / "dev.py").read_text()
    command = re.search(r'INSTALL_RUNTIME = "([^"]+)"', dev).group(1)  # type: ignore[union-attr]
    assert any(run.strip() == command for run in instructions("RUN"))


def test_the_healthcheck_asks_healthz() -> None:
    """HEALTHCHECK asks /healthz (liveness: no token, no upstream) on the configured port."""
    (check,) = instructions("HEALTHCHECK")
    assert "/healthz" in check
    assert "GATEWAY_PORT" in check


def test_it_serves_on_all_interfaces_configured_by_environment() -> None:
    """The container listens on 0.0.0.0 and runs `python -m gateway serve`."""
    assert "GATEWAY_HOST=0.0.0.0" in final_stage()
    assert instructions("CMD")[-1] == '["python", "-m", "gateway", "serve"]'


def test_only_the_runtime_reaches_the_image() -> None:
    """The build context is an allow-list: no tests, no .venv, no .git."""
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line]
    rules = [line for line in lines if not line.startswith("#")]
    assert rules[0] == "*"
    allowed = {line[1:] for line in rules if line.startswith("!")}
    assert allowed == {"requirements.lock", "pyproject.toml", "README.md", "gateway/"}


def test_the_lock_pins_every_runtime_dependency() -> None:
    """requirements.lock (what the image and CI install) pins each [project.dependencies] entry."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line
    }
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=\[ ;]", requirement, maxsplit=1)[0].lower()
        assert name in pinned, f"{name} is not in requirements.lock: run python3 dev.py lock"
