#!/usr/bin/env python3
"""Developer entry point: set-up included, on a fresh machine with only Python 3.11+.

    python3 dev.py demo     create .venv if needed, install, run the demo (sample upstream
                            + gateway)
    python3 dev.py test     ... then every check: ruff, ruff format, mypy --strict, pytest
    python3 dev.py test-lowest  pytest again in .venv-lowest, on the lowest version of every
                            direct dependency that pyproject.toml allows (CI runs both)
    python3 dev.py lock     re-pin requirements.lock from pyproject.toml's dependencies

Uses only the standard library, so it runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".dev-stamp"
LOWEST_VENV = ROOT / ".venv-lowest"
# The Dockerfile runs this very command; tests/test_dockerfile.py keeps the two the same.
INSTALL_RUNTIME = "pip install --no-cache-dir -r requirements.lock"


def say(message: str) -> None:
    print(f"dev.py: {message}", flush=True)


def run(*command: str | Path, **kwargs: object) -> None:
    subprocess.run([str(part) for part in command], cwd=ROOT, check=True, **kwargs)  # type: ignore[call-overload]


def ensure_venv() -> None:
    """Create .venv and install the project with its dev extras, again whenever they changed."""
    if sys.version_info < (3, 11):
        sys.exit(f"dev.py: Python 3.11 or newer is needed (this is {sys.version.split()[0]})")
    wanted = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + (ROOT / "requirements.lock").read_bytes()
    ).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        say("creating .venv")
        run(sys.executable, "-m", "venv", VENV)
    say("installing the gateway and its development tools into .venv")
    pip = (PYTHON, "-m", "pip", "--disable-pip-version-check", "-q")
    run(*pip, *INSTALL_RUNTIME.split()[1:])
    run(*pip, "install", "-e", ".[dev]")
    STAMP.write_text(wanted)


def lowest_constraints() -> str:
    """`name==X` for every direct dependency's lower bound `>=X` in pyproject.toml."""
    import tomllib  # Python 3.11+, checked by ensure_venv before this runs

    pins = []
    for requirement in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]:
        match = re.match(r"\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*>=\s*([^,;\s]+)", requirement)
        if match is None:
            sys.exit(f"dev.py: {requirement!r} has no lower bound (>=) to test")
        pins.append(f"{match.group(1)}=={match.group(2)}")
    return "\n".join(pins) + "\n"


def ensure_lowest_venv() -> Path:
    """.venv-lowest: the project and its dev tools, with every direct dependency at its lowest
    allowed version (transitive ones resolved as pip does)."""
    constraints = lowest_constraints()
    python = LOWEST_VENV / "bin" / "python"
    stamp = LOWEST_VENV / ".dev-stamp"
    wanted = hashlib.sha256(constraints.encode() + (ROOT / "pyproject.toml").read_bytes())
    if stamp.exists() and stamp.read_text() == wanted.hexdigest() and python.exists():
        return python
    if not python.exists():
        say("creating .venv-lowest")
        run(sys.executable, "-m", "venv", LOWEST_VENV)
    say(
        "installing the lowest allowed versions into .venv-lowest: "
        + constraints.replace("\n", " ")
    )
    pinned = LOWEST_VENV / "lowest-constraints.txt"
    pinned.write_text(constraints)
    pip = (python, "-m", "pip", "--disable-pip-version-check", "-q")
    run(*pip, "install", "-c", pinned, "-e", ".[dev]")
    stamp.write_text(wanted.hexdigest())
    return python


# Programs the tests drive for real: (executable, Debian package, what needs it).
SYSTEM_PROGRAMS = [
    ("redis-server", "redis-server", "the cache tests"),
    ("chromium", "chromium", "the GraphiQL browser test"),
    ("npm", "npm", "the GraphQL-over-HTTP audit and the Apollo Client test"),
]


def ensure_system_programs() -> None:
    """Install, with Debian's apt-get, the programs the tests need and the machine lacks."""
    missing = [
        (program, package, reason)
        for program, package, reason in SYSTEM_PROGRAMS
        if not (shutil.which(program) or Path(f"/usr/bin/{program}").exists())
    ]
    if not missing:
        return
    packages = [package for _, package, _ in missing]
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        say("installing " + ", ".join(packages) + " (apt-get) for the tests")
        environ = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        quiet = {"stdout": subprocess.DEVNULL, "env": environ}
        run("apt-get", "update", "-q", **quiet)
        run("apt-get", "install", "-y", "-q", "--no-install-recommends", *packages, **quiet)
        return
    needs = "; ".join(f"{program} for {reason}" for program, _, reason in missing)
    install = " ".join(packages)
    sys.exit(f"dev.py: the tests need {needs}. Install them (Debian: apt-get install {install}).")


def demo(arguments: list[str]) -> int:
    ensure_venv()
    os.execv(PYTHON, [str(PYTHON), "-m", "gateway", "demo", *arguments])
    return 0  # not reached


def test(arguments: list[str]) -> int:
    ensure_system_programs()
    ensure_venv()
    tools = VENV / "bin"
    checks = [
        ("ruff check", [tools / "ruff", "check", "."]),
        ("ruff format --check", [tools / "ruff", "format", "--check", "."]),
        (
            "mypy --strict gateway tests benchmarks",
            [tools / "mypy", "--strict", "gateway", "tests", "benchmarks"],
        ),
    ]
    failed = []
    for name, command in checks:
        say(name)
        if subprocess.run([str(part) for part in command], cwd=ROOT, check=False).returncode:
            failed.append(name)
    say("pytest (the schema-sync check is tests/test_cli.py::test_schema_file_is_in_sync)")
    status = subprocess.run(
        [str(PYTHON), "-m", "pytest", *arguments], cwd=ROOT, check=False
    ).returncode
    if status == 5:
        say("pytest collected no tests: that is a failure")
    if status:
        failed.append("pytest")
    if failed:
        say("FAILED: " + ", ".join(failed))
        return 1
    say("all checks passed")
    return 0


def test_lowest(arguments: list[str]) -> int:
    """pytest on the lowest allowed versions (the lint and type checks ran with `test`)."""
    ensure_system_programs()
    ensure_venv()  # GraphiQL's assets, shared through the editable install
    python = ensure_lowest_venv()
    say("pytest on the lowest allowed versions (.venv-lowest)")
    status = subprocess.run([str(python), "-m", "pytest", *arguments], cwd=ROOT, check=False)
    if status.returncode:
        say("FAILED: pytest on the lowest allowed versions")
        return 1
    say("all checks passed on the lowest allowed versions")
    return 0


def lock(_arguments: list[str]) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        venv = Path(scratch) / "venv"
        run(sys.executable, "-m", "venv", venv)
        run(venv / "bin" / "python", "-m", "pip", "-q", "install", ROOT)
        frozen = subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "freeze",
                "--exclude",
                "jobs-graphql-gateway",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    header = (
        "# Runtime dependencies, pinned: what the Docker image and every test run install first.\n"
        "# Regenerate after changing [project.dependencies]: python3 dev.py lock\n"
    )
    (ROOT / "requirements.lock").write_text(header + frozen)
    say("requirements.lock updated")
    return 0


COMMANDS = {"demo": demo, "test": test, "test-lowest": test_lowest, "lock": lock}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        sys.exit(2)
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
