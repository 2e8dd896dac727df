"""A real browser: Debian's headless Chromium, driven by Playwright, no internet: GraphiQL,
and a page on another origin calling the gateway (CORS).

The gateway serves GraphiQL's assets itself (they ship in the package); the tests block every
request that does not go to the gateway, so a CDN dependency would fail them.
The screenshot is kept in tests/artifacts/graphiql.png.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, Response, Route, sync_playwright
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route as Route_

from gateway.app import create_app
from gateway.background import BackgroundServer
from gateway.graphiql import ASSETS, assets_dir
from gateway.sample_upstream import SampleUpstream

from .conftest import make_settings, network_gateway

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
    assert assets_dir("") is not None, "GraphiQL's assets ship in gateway/graphiql_assets"
    with BackgroundServer(network_gateway(sample_server.url)) as server:
        yield server


class PageWatch:
    """What a page asked for: requests blocked for leaving the gateway, answers that failed,
    and the content encoding of each asset."""

    def __init__(self, gateway: str) -> None:
        self.gateway = gateway
        self.outside: list[str] = []
        self.failed: list[str] = []
        self.encodings: dict[str, str | None] = {}

    def attach(self, page: Page) -> Page:
        page.route("**/*", self._only_the_gateway)
        page.on("response", self._answered)
        return page

    def _only_the_gateway(self, route: Route) -> None:
        if route.request.url.startswith(self.gateway):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def _answered(self, response: Response) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")
        if "/graphiql/assets/" in response.url:
            name = response.url.rsplit("/", 1)[1]
            self.encodings[name] = response.headers.get("content-encoding")


def test_graphiql_runs_a_jobs_query_in_chromium(browser_gateway: BackgroundServer) -> None:
    """Open /graphql, put the token in GraphiQL's headers editor, run the query, see titles;
    no request of the page fails (the favicon too), and every asset comes precompressed with
    Brotli (Chromium asks for it over HTTPS and from loopback)."""
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: python3 dev.py test installs it"
    watch = PageWatch(browser_gateway.url)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = watch.attach(browser.new_page(viewport={"width": 1400, "height": 900}))
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
    assert watch.outside == []
    assert watch.failed == []
    assert watch.encodings == dict.fromkeys(ASSETS, "br")


def test_the_demo_and_a_shared_link_need_no_typing(sample_server: BackgroundServer) -> None:
    """The demo's GraphiQL (create_app with the demo token) runs a shared link's query,
    `/graphql?query=...`, at one press of Run: the query is in the editor, the token in the
    headers."""
    app = create_app(
        make_settings(sample_server.url), graphiql_headers={"Authorization": "Bearer demo-token"}
    )
    query = "{ jobs(first: 3) { totalCount nodes { metadata { jobTitle } } } }"
    with BackgroundServer(app) as gateway, sync_playwright() as playwright:
        watch = PageWatch(gateway.url)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = watch.attach(browser.new_page(viewport={"width": 1400, "height": 900}))
            page.goto(f"{gateway.url}/graphql?{urlencode({'query': query})}")
            page.wait_for_selector(".graphiql-execute-button", timeout=20_000)
            page.click(".graphiql-execute-button")
            response = page.locator(".graphiql-response")
            response.locator("text=totalCount").wait_for(timeout=20_000)
            text = response.inner_text()
        finally:
            browser.close()
    assert '"totalCount": 237' in text
    assert '"jobTitle": "Safety Audit #1"' in text
    assert watch.failed == []


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


def test_graphiql_runs_a_subscription_over_the_websocket() -> None:
    """In the demo's GraphiQL a `jobChanged` subscription, run at one press, shows events from
    the sample upstream's own activity: GraphiQL subscribes over the WebSocket with the
    headers pane's token in connection_init."""
    sample = SampleUpstream(churn_interval=0.3)
    query = "subscription { jobChanged(first: 10) { kind jobId } }"
    with BackgroundServer(sample.app()) as upstream:
        settings = make_settings(upstream.url, live_poll_interval=0.2, cache_ttl=0)
        app = create_app(settings, graphiql_headers={"Authorization": "Bearer demo-token"})
        with BackgroundServer(app, settings=settings) as gateway, sync_playwright() as playwright:
            watch = PageWatch(gateway.url)
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            try:
                page = watch.attach(browser.new_page(viewport={"width": 1400, "height": 900}))
                sockets: list[str] = []
                page.on("websocket", lambda socket: sockets.append(socket.url))
                page.goto(f"{gateway.url}/graphql?{urlencode({'query': query})}")
                page.wait_for_selector(".graphiql-execute-button", timeout=20_000)
                page.click(".graphiql-execute-button")
                response = page.locator(".graphiql-response")
                response.locator("text=jobChanged").wait_for(timeout=20_000)
                text = response.inner_text()
                expected_socket = gateway.url.replace("http://", "ws://") + "/graphql"
            finally:
                browser.close()
    assert '"kind": "' in text
    assert sockets == [expected_socket]
    assert watch.failed == []
