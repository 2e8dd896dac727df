"""The README stays true: its configuration table, commands and upstream calls match the code."""

from __future__ import annotations

import re

import pytest

from gateway.pagination import encode_cursor
from gateway.sample_upstream import SampleUpstream
from gateway.settings import Settings

from .conftest import DEMO_AUTH, ROOT, asgi_client, graphql, in_process_gateway

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


PAGING_ROW = re.compile(
    r"^\| (none|`[^`]+`) \| [^|]+ \| ((?:`\?[^`]+`(?:, )?)+) \| ((?:`\?[^`]+`(?:, )?)+) \|$"
)


def paging_rows() -> list[tuple[str, list[str], list[str]]]:
    """(arguments, calls by default, calls uncached) of the README's pagination table."""
    rows = []
    for line in README.splitlines():
        match = PAGING_ROW.match(line)
        if match:
            arguments = "" if match[1] == "none" else match[1].strip("`")
            arguments = re.sub(r"c\((\d+)\)", lambda c: f'"{encode_cursor(int(c[1]))}"', arguments)
            calls = [re.findall(r"`\?([^`]+)`", match[group]) for group in (2, 3)]
            rows.append((arguments, calls[0], calls[1]))
    return rows


@pytest.mark.anyio
@pytest.mark.parametrize("cache_ttl", [None, 0], ids=["default", "uncached"])
async def test_the_pagination_table_shows_the_calls_the_upstream_sees(
    cache_ttl: float | None,
) -> None:
    """Each row of the README's pagination table, asked of a fresh gateway over the sample
    upstream, makes exactly the upstream calls the row shows, with default settings and with
    the cache off."""
    rows = paging_rows()
    assert len(rows) == 6
    for arguments, default_calls, uncached_calls in rows:
        sample = SampleUpstream()
        overrides = {} if cache_ttl is None else {"cache_ttl": cache_ttl}
        query = f"{{ jobs{f'({arguments})' if arguments else ''} {{ nodes {{ jobId }} }} }}"
        async with asgi_client(in_process_gateway(sample.app(), **overrides)) as client:
            body = await graphql(client, query, headers=DEMO_AUTH)
        assert "errors" not in body, body
        expected = default_calls if cache_ttl is None else uncached_calls
        assert sorted(request.query for request in sample.seen) == sorted(expected), arguments
