"""The README stays true: its configuration table and commands match the code."""

from __future__ import annotations

from gateway.settings import Settings

from .conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table() -> None:
    """Each setting's row (variable, default, meaning) appears in the README verbatim."""
    for variable, default, meaning in Settings.documentation():
        assert f"| `{variable}` | {default} | {meaning} |" in README, variable


def test_the_quick_start_is_the_two_commands_ci_runs() -> None:
    """The README's test command is what .ci/run executes (then the lowest-versions pass)."""
    assert "python3 dev.py demo" in README
    assert "python3 dev.py test" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\npython3 dev.py test\n" in ci
    assert "exec python3 dev.py test-lowest" in ci
