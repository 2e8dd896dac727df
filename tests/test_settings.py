"""Settings: parsed from a mapping, validated, each error naming its variable."""

from __future__ import annotations

import pytest

from gateway.settings import Settings, SettingsError


def test_defaults_fill_everything_but_the_upstream() -> None:
    """Only the upstream URL is required; the rest has documented defaults."""
    settings = Settings.from_env({"GATEWAY_UPSTREAM_URL": "https://gateway.workfloplus.com/"})
    assert settings == Settings(
        upstream_url="https://gateway.workfloplus.com",
        host="127.0.0.1",
        port=8000,
        default_page_size=20,
        max_page_size=100,
        upstream_timeout=10.0,
        log_level="INFO",
    )


def test_overrides_win_over_the_environment() -> None:
    """CLI flags (overrides) beat GATEWAY_* variables; None overrides are ignored."""
    environ = {"GATEWAY_UPSTREAM_URL": "http://a.test", "GATEWAY_PORT": "9000"}
    settings = Settings.from_env(environ, {"port": "9100", "host": None})
    assert (settings.port, settings.host) == (9100, "127.0.0.1")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "GATEWAY_UPSTREAM_URL is not set"),
        ({"GATEWAY_UPSTREAM_URL": "  "}, "GATEWAY_UPSTREAM_URL is not set"),
        ({"GATEWAY_UPSTREAM_URL": "gateway.workfloplus.com"}, "GATEWAY_UPSTREAM_URL="),
        ({"GATEWAY_UPSTREAM_URL": "http://a.test/?x=1"}, "without a query string"),
        (
            {"GATEWAY_UPSTREAM_URL": "http://a", "GATEWAY_PORT": "http"},
            "GATEWAY_PORT='http' is invalid: is not a number",
        ),
        ({"GATEWAY_UPSTREAM_URL": "http://a", "GATEWAY_PORT": "70000"}, "GATEWAY_PORT"),
        (
            {"GATEWAY_UPSTREAM_URL": "http://a", "GATEWAY_COMPRESSION": "gzip,deflate"},
            "GATEWAY_COMPRESSION='gzip,deflate' is invalid: 'deflate' is not one of zstd, br, gzip",
        ),
        (
            {"GATEWAY_UPSTREAM_URL": "http://a", "GATEWAY_LOG_FORMAT": "xml"},
            "GATEWAY_LOG_FORMAT='xml' is invalid: must be json or console",
        ),
        ({"GATEWAY_UPSTREAM_URL": "http://a", "GATEWAY_MAX_BATCH": "-1"}, "GATEWAY_MAX_BATCH"),
        (
            {"GATEWAY_UPSTREAM_URL": "http://a", "GATEWAY_CORS_ALLOW_HEADERS": "X Tenant"},
            "GATEWAY_CORS_ALLOW_HEADERS='X Tenant' is invalid: 'X Tenant' is not a header name",
        ),
        (
            {"GATEWAY_UPSTREAM_URL": "http://a", "GATEWAY_MAX_PAGE_SIZE": "0"},
            "GATEWAY_MAX_PAGE_SIZE",
        ),
        (
            {"GATEWAY_UPSTREAM_URL": "http://a", "GATEWAY_UPSTREAM_TIMEOUT": "-1"},
            "GATEWAY_UPSTREAM_TIMEOUT",
        ),
        ({"GATEWAY_UPSTREAM_URL": "http://a", "GATEWAY_LOG_LEVEL": "loud"}, "GATEWAY_LOG_LEVEL"),
        (
            {
                "GATEWAY_UPSTREAM_URL": "http://a",
                "GATEWAY_DEFAULT_PAGE_SIZE": "50",
                "GATEWAY_MAX_PAGE_SIZE": "10",
            },
            "GATEWAY_DEFAULT_PAGE_SIZE (50) is above GATEWAY_MAX_PAGE_SIZE (10)",
        ),
    ],
)
def test_bad_settings_name_the_variable(environ: dict[str, str], message: str) -> None:
    """A missing or malformed setting raises one SettingsError that names it."""
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(environ)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_documentation_lists_every_setting() -> None:
    """The README's configuration table is generated from the same declarations."""
    names = [row[0] for row in Settings.documentation()]
    assert names[0] == "GATEWAY_UPSTREAM_URL"
    assert "GATEWAY_MAX_PAGE_SIZE" in names
    assert "GATEWAY_UPSTREAM_TIMEOUT" in names
