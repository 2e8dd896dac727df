"""A real browser: Debian's headless Chromium, driven by Playwright, no internet: GraphiQL,
and a page on another origin calling the gateway (CORS).

The gateway serves GraphiQL's assets itself (`python -m gateway fetch-graphiql`); the test
blocks every request that does not go to the gateway, so a CDN dependency would fail it.
The screenshot is kept in tests/artifacts/graphiql.png.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Route, sync_playwright
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route as Route_

from gateway.background import BackgroundServer
from gateway.graphiql import assets_dir

from .conftest import network_gateway

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser_gateway(sample_server: BackgroundServer) -> Iterator[BackgroundServer]:
    if assets_dir("") is None:
        pytest.fail(
            "GraphiQL assets are missing: run python -m gateway fetch-graphiql (dev.py does)"
        )
    with BackgroundServer(network_gateway(sample_server.url)) as server:
        yield server


def test_graphiql_runs_a_jobs_query_in_chromium(browser_gateway: BackgroundServer) -> None:
    """Open /graphql, put the token in GraphiQL's headers editor, run the query, see titles."""
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: python3 dev.py test installs it"
    outside: list[str] = []

    def only_the_gateway(route: Route) -> None:
        if route.request.url.startswith(browser_gateway.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.route("**/*", only_the_gateway)
            page.goto(f"{browser_gateway.url}/graphql")
            page.wait_for_selector(".graphiql-execute-button", timeout=20_000)
            headers = page.locator(
                ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"
            )
            headers.click()
            page.keyboard.press("Control+A")
            page.keyboard.type('{"Authorization": "Bearer demo-token"}')
            page.click(".graphiql-execute-button")
            response = page.locator(".graphiql-response")
            response.locator("text=Safety Audit #1").wait_for(timeout=20_000)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "graphiql.png"))
            text = response.inner_text()
        finally:
            browser.close()
    assert '"jobTitle": "Safety Audit #1"' in text
    assert '"hasNextPage": true' in text
    assert outside == []


FETCH_FROM_THE_PAGE = """async (gateway) => {
  try {
    const response = await fetch(gateway + "/graphql", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/graphql-response+json",
        authorization: "Bearer demo-token",
        "x-request-id": "from-the-page-1",
        "apollographql-client-name": "dashboard",
        "apollographql-client-version": "1.2.3",
        "apollo-require-preflight": "true",
      },
      body: JSON.stringify({ query: "{ jobs(first: 2) { nodes { jobId } } }" }),
    });
    const body = await response.json();
    return { status: response.status, requestId: response.headers.get("x-request-id"),
             jobs: body.data.jobs.nodes.length };
  } catch (error) {
    return { refused: String(error) };
  }
}"""


def test_a_page_on_another_origin_calls_the_gateway_in_chromium(
    sample_server: BackgroundServer,
) -> None:
    """From a page on an allowed origin, Chromium's fetch with Apollo Client's headers and an
    X-Request-ID passes the preflight and reads the answer's X-Request-ID; from an origin not
    listed, the browser refuses the call."""
    page_app = Starlette(routes=[Route_("/", lambda _: HTMLResponse("<p>app</p>"))])
    with BackgroundServer(page_app) as allowed_page, BackgroundServer(page_app) as other_page:
        gateway_app = network_gateway(sample_server.url, cors_origins=allowed_page.url)
        with BackgroundServer(gateway_app) as gateway, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page()
                page.goto(f"{allowed_page.url}/")
                allowed = page.evaluate(FETCH_FROM_THE_PAGE, gateway.url)
                page.goto(f"{other_page.url}/")
                refused = page.evaluate(FETCH_FROM_THE_PAGE, gateway.url)
            finally:
                browser.close()
    assert allowed == {"status": 200, "requestId": "from-the-page-1", "jobs": 2}
    assert "Failed to fetch" in refused["refused"]
