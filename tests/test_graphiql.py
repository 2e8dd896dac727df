"""GraphiQL as the gateway serves it: assets shipped in the package, versioned and
precompressed, a page that says what to run when they are missing, a favicon, shared links,
and the demo's prefilled headers (never under `serve`)."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.graphiql import ASSETS, BUNDLED_ASSETS_DIR
from gateway.sample_upstream import SampleUpstream

from .conftest import ROOT, asgi_client, in_process_gateway, make_settings

pytestmark = pytest.mark.anyio
BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


async def page_of(app: Any, path: str = "/graphql") -> httpx.Response:
    async with asgi_client(app) as client:
        return await client.get(path, headers=BROWSER)


def asset_urls(page: str) -> list[str]:
    return re.findall(r'(?:href|src)="(/graphiql/assets/[^"]+)"', page)


async def test_assets_are_versioned_precompressed_and_kept_for_a_year() -> None:
    """Each asset URL holds a digest of the assets; the answer is the precompressed file the
    browser accepts (br, else gzip), decoding to the file itself, cached immutably; another
    version is 404."""
    app = in_process_gateway(SampleUpstream().app())
    urls = asset_urls((await page_of(app)).text)
    assert sorted(url.rsplit("/", 1)[1] for url in urls) == sorted(ASSETS)
    async with asgi_client(app) as client:
        for url in urls:
            name = url.rsplit("/", 1)[1]
            original = (BUNDLED_ASSETS_DIR / name).read_bytes()
            for accept, encoding in (("gzip, deflate, br", "br"), ("gzip", "gzip")):
                response = await client.get(url, headers={"accept-encoding": accept})
                assert response.status_code == 200
                assert response.headers["content-encoding"] == encoding
                assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
                assert response.content == original
            if name == "graphiql.min.js":
                assert response.num_bytes_downloaded * 3 < len(original)
        stale = await client.get(
            re.sub(r"/assets/[0-9a-f]+/", "/assets/0123456789abcdef/", urls[0])
        )
        outside = await client.get(urls[0].rsplit("/", 1)[0] + "/../../../settings.py")
        posted = await client.post(urls[0])
    assert stale.status_code == 404
    assert stale.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert (posted.status_code, posted.headers["allow"]) == (405, "GET, HEAD")
    assert outside.status_code == 404


async def test_missing_assets_give_a_page_that_says_what_to_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With no assets where the gateway looks, it warns at start (naming the directory) and
    browsers get a page naming the command, not a blank GraphiQL."""
    caplog.set_level(logging.WARNING)
    app = in_process_gateway(SampleUpstream().app(), graphiql_assets_dir=tmp_path)
    page = (await page_of(app)).text
    assert "python -m gateway fetch-graphiql" in page
    assert asset_urls(page) == []
    (warning,) = [record for record in caplog.records if "GraphiQL" in record.getMessage()]
    assert warning.levelno == logging.WARNING
    assert str(tmp_path) in warning.getMessage()


async def test_the_favicon_is_served() -> None:
    """/favicon.ico answers (an SVG) instead of a 404 in the browser's console."""
    async with asgi_client(in_process_gateway(SampleUpstream().app())) as client:
        response = await client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.text.startswith("<svg")


async def test_a_shared_link_opens_graphiql_in_a_browser_and_runs_for_clients() -> None:
    """`/graphql?query=...` opened by a browser is GraphiQL (the page reads the query from
    its URL); the same URL fetched by a GraphQL client is still the JSON answer."""
    app = in_process_gateway(SampleUpstream().app())
    link = "/graphql?query=%7B%20jobs(first%3A%201)%20%7B%20totalCount%20%7D%20%7D"
    opened = await page_of(app, link)
    async with asgi_client(app) as client:
        fetched = await client.get(
            link,
            headers={
                "accept": "application/graphql-response+json",
                "authorization": "Bearer demo-token",
            },
        )
    assert opened.headers["content-type"].startswith("text/html")
    assert 'url.get("query")' in opened.text
    assert fetched.json() == {"data": {"jobs": {"totalCount": 237}}}


async def test_only_the_demo_fills_in_a_token() -> None:
    """The page under `serve` shows a placeholder the user's own headers replace; the demo's
    page (create_app's graphiql_headers) puts the demo token in the headers editor."""
    settings = make_settings()
    served = (await page_of(create_app(settings))).text
    demo = (
        await page_of(create_app(settings, graphiql_headers={"Authorization": "Bearer demo-token"}))
    ).text
    assert "demo-token" not in served
    assert "Bearer <your token>" in served
    assert json.dumps(json.dumps({"Authorization": "Bearer demo-token"}, indent=2)) in demo
    assert '"forceHeaders": true' in demo


@pytest.mark.e2e
def test_the_wheel_ships_graphiql(tmp_path: Path) -> None:
    """`pip wheel .` packs every asset, its precompressed versions and the licences, so
    `pip install` alone serves GraphiQL."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for asset in ASSETS:
        for suffix in ("", ".br", ".gz"):
            assert f"gateway/graphiql_assets/{asset}{suffix}" in names
    assert {
        "gateway/graphiql_assets/graphiql.LICENSE",
        "gateway/graphiql_assets/react.LICENSE",
    } <= names
