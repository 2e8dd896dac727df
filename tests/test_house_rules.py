"""The house rules a newcomer relies on, checked: small modules, short functions, a clean seam."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MODULES = sorted((ROOT / "gateway").rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(ROOT)))
def test_modules_and_functions_stay_small(path: Path) -> None:
    """No module in `gateway/` is over 400 lines, and no function in it over 60."""
    text = path.read_text()
    assert text.count("\n") <= MAX_MODULE_LINES
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_the_upstream_package_knows_no_graphql() -> None:
    """Importing the upstream client loads neither graphql-core nor Strawberry."""
    probe = (
        "import sys, gateway.upstream, gateway.cache; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('graphql', 'strawberry')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"
