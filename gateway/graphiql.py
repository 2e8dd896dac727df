"""GraphiQL for browsers, with its assets shipped in the package and served by the gateway.

GraphiQL is a React app. Its scripts and stylesheet (pinned npm releases, MIT-licensed, their
licences beside them) live in the package's `graphiql_assets/` directory, so a wheel or image
serves GraphiQL with no network at all; `python -m gateway fetch-graphiql` re-downloads them
(with npm) and writes each file's Brotli and gzip versions, compressed once at their highest
levels. `GATEWAY_GRAPHIQL_ASSETS_DIR` names another directory of the same files.

Assets are served at `/graphiql/assets/<version>/<name>`, where the version is a digest of their
contents: the URL changes whenever a file does, so each answer may be kept for a year
(`immutable`), precompressed when the browser accepts it. When the assets are missing the gateway
logs a warning at start, and the page says what to run instead of staying blank.

The page opens with the query of its URL's `query` parameter if there is one, so a shared link
`/graphql?query=...` opens in the editor; `demo` also fills in the demo token and a sample query.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Final

import brotli
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response
from starlette.types import Receive, Scope, Send

from gateway.compression import choose_encoding

logger = logging.getLogger(__name__)

BUNDLED_ASSETS_DIR: Final = Path(__file__).parent / "graphiql_assets"
ASSETS_PATH: Final = "/graphiql/assets"

# file name -> (npm package, pinned version, path inside the package tarball)
ASSETS: Final = {
    "react.production.min.js": ("react", "18.3.1", "package/umd/react.production.min.js"),
    "react-dom.production.min.js": (
        "react-dom",
        "18.3.1",
        "package/umd/react-dom.production.min.js",
    ),
    "graphiql.min.js": ("graphiql", "3.8.3", "package/graphiql.min.js"),
    "graphiql.min.css": ("graphiql", "3.8.3", "package/graphiql.min.css"),
}
_PRECOMPRESSED: Final = {"br": ".br", "gzip": ".gz"}
_A_YEAR: Final = "public, max-age=31536000, immutable"
DEFAULT_QUERY: Final = """{
  jobs(first: 5) {
    nodes { jobId metadata { jobTitle status } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
FAVICON: Final = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect width="32" height="32" rx="6" fill="#171e32"/>'
    '<path d="M16 5 26 10.5v11L16 27 6 21.5v-11z" fill="none" stroke="#e535ab" stroke-width="2"/>'
    '<circle cx="16" cy="16" r="3.5" fill="#e535ab"/></svg>'
)


def assets_dir(configured: str) -> Path | None:
    """The directory to serve assets from, if it holds every asset; else None, with a
    warning that says what to run."""
    directory = Path(configured) if configured else BUNDLED_ASSETS_DIR
    if all((directory / name).is_file() for name in ASSETS):
        return directory
    logger.warning(
        "GraphiQL's assets are missing from %s: browsers get a page saying what to run. Run "
        "`python -m gateway fetch-graphiql` (needs npm) or set GATEWAY_GRAPHIQL_ASSETS_DIR",
        directory,
    )
    return None


def assets_version(directory: Path) -> str:
    """A digest of the assets' contents: part of their URLs, so a changed file is a new URL."""
    digest = hashlib.sha256()
    for name in sorted(ASSETS):
        digest.update(name.encode() + b"\0" + (directory / name).read_bytes())
    return digest.hexdigest()[:16]


class GraphiQLAssets:
    """The ASGI app under `/graphiql/assets`: `/<version>/<name>` for the current version,
    precompressed when the browser accepts it, cached for a year."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.version = assets_version(directory)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The last two segments: Starlette versions differ in what a mounted app's path holds.
        *_, version, name = scope["path"].split("/")
        if scope["method"] not in ("GET", "HEAD"):
            raise HTTPException(405, "Assets are read with GET", headers={"allow": "GET, HEAD"})
        if version != self.version or name not in ASSETS:
            raise HTTPException(404, "No such GraphiQL asset (it may be from an older version)")
        accept = dict(scope["headers"]).get(b"accept-encoding", b"").decode("latin-1")
        path = self.directory / name
        headers = {"cache-control": _A_YEAR, "vary": "Accept-Encoding"}
        encoding = choose_encoding(accept, tuple(_PRECOMPRESSED))
        if encoding is not None and path.with_name(name + _PRECOMPRESSED[encoding]).is_file():
            path = path.with_name(name + _PRECOMPRESSED[encoding])
            headers["content-encoding"] = encoding
        media_type = "text/css" if name.endswith(".css") else "text/javascript"
        response = FileResponse(path, headers=headers, media_type=media_type)
        await response(scope, receive, send)


async def favicon(_request: object) -> Response:
    """The gateway's icon (browsers ask for /favicon.ico on their own)."""
    return Response(FAVICON, media_type="image/svg+xml", headers={"cache-control": "max-age=86400"})


def fetch_assets(target: Path = BUNDLED_ASSETS_DIR) -> None:
    """Download the pinned GraphiQL assets and their licences from the npm registry into
    `target`, each with its Brotli and gzip versions."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to fetch GraphiQL's assets")
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        specs = sorted({f"{package}@{version}" for package, version, _ in ASSETS.values()})
        subprocess.run(  # noqa: S603 - npm, with pinned package names
            [npm, "pack", "--silent", "--pack-destination", scratch, *specs],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for name, (package, version, member) in ASSETS.items():
            with tarfile.open(Path(scratch) / f"{package}-{version}.tgz") as archive:
                content = _member(archive, member)
                (target / f"{package}.LICENSE").write_bytes(_member(archive, "package/LICENSE"))
            (target / name).write_bytes(content)
            (target / f"{name}.br").write_bytes(brotli.compress(content, quality=11))
            gzip = zlib.compressobj(9, zlib.DEFLATED, 31)
            (target / f"{name}.gz").write_bytes(gzip.compress(content) + gzip.flush())


def _member(archive: tarfile.TarFile, member: str) -> bytes:
    source = archive.extractfile(member)
    if source is None:
        raise RuntimeError(f"{member} is missing from {archive.name!r}")
    return source.read()


def graphiql_page(
    assets: GraphiQLAssets | None,
    *,
    endpoint: str = "/graphql",
    headers: dict[str, str] | None = None,
    query: str = DEFAULT_QUERY,
) -> str:
    """The HTML page that runs GraphiQL against `endpoint`, its headers editor holding
    `headers`; without assets, a page that says how to install them."""
    if assets is None:
        return _MISSING_ASSETS_PAGE
    base = f"{ASSETS_PATH}/{assets.version}"
    shown_headers = headers or {"Authorization": "Bearer <your token>"}
    options = {
        "endpoint": endpoint,
        "headers": json.dumps(shown_headers, indent=2),
        "defaultQuery": query,
        "forceHeaders": headers is not None,
    }
    # Inside <script>, "</" would end the element: JSON escapes it.
    config = json.dumps(options).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>Jobs GraphQL gateway - GraphiQL</title>
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <link rel="icon" href="/favicon.ico" type="image/svg+xml">
    <link rel="stylesheet" href="{html.escape(base)}/graphiql.min.css">
    <style>body {{ margin: 0; height: 100vh; }} #graphiql {{ height: 100vh; }}</style>
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL...</div>
    <script src="{html.escape(base)}/react.production.min.js"></script>
    <script src="{html.escape(base)}/react-dom.production.min.js"></script>
    <script src="{html.escape(base)}/graphiql.min.js"></script>
    <script>
      const config = {config};
      const url = new URLSearchParams(window.location.search);
      // Subscriptions over a WebSocket on the same path (graphql-transport-ws); the Headers
      // pane's Authorization goes in its connection_init payload.
      const socket = new URL(config.endpoint, window.location.href);
      socket.protocol = socket.protocol === "https:" ? "wss:" : "ws:";
      const root = ReactDOM.createRoot(document.getElementById("graphiql"));
      root.render(React.createElement(GraphiQL, {{
        fetcher: GraphiQL.createFetcher({{ url: config.endpoint, subscriptionUrl: socket.href }}),
        defaultEditorToolsVisibility: "headers",
        defaultQuery: config.defaultQuery,
        query: url.get("query") ?? undefined,
        variables: url.get("variables") ?? undefined,
        operationName: url.get("operationName") ?? undefined,
        headers: config.forceHeaders ? config.headers : undefined,
        defaultHeaders: config.headers,
      }}));
    </script>
  </body>
</html>
"""


_MISSING_ASSETS_PAGE: Final = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>Jobs GraphQL gateway - GraphiQL is not installed</title>
    <link rel="icon" href="/favicon.ico" type="image/svg+xml">
  </head>
  <body style="font-family: sans-serif; max-width: 42rem; margin: 3rem auto">
    <h1>GraphiQL's files are not installed</h1>
    <p>This gateway answers GraphQL at this URL, but cannot show GraphiQL: its JavaScript and
    CSS are missing from the directory it serves them from.</p>
    <p>Run <code>python -m gateway fetch-graphiql</code> (it needs npm), or point
    <code>GATEWAY_GRAPHIQL_ASSETS_DIR</code> at a directory holding them, then restart the
    gateway. The gateway's log named the directory it looked in.</p>
  </body>
</html>
"""
