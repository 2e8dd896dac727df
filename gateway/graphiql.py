"""GraphiQL for browsers, with its assets served by the gateway itself (closed networks too).

GraphiQL is a React app. Its scripts and stylesheet come from the npm registry: `python -m
gateway fetch-graphiql` (run by `dev.py` at install time and by the Dockerfile at build time)
packs pinned versions with npm and copies the four files below into the package's
`graphiql_assets/` directory, which the app serves at `/graphiql/assets/`. A different
directory can be named with `GATEWAY_GRAPHIQL_ASSETS_DIR`. With no assets at all the page falls
back to the jsDelivr CDN, which works wherever browsers reach the internet.
"""

from __future__ import annotations

import html
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Final

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
_CDN = "https://cdn.jsdelivr.net/npm"
DEFAULT_QUERY = """{
  jobs(first: 5) {
    nodes { jobId metadata { jobTitle status } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def assets_dir(configured: str) -> Path | None:
    """The directory to serve assets from, if it holds every asset."""
    directory = Path(configured) if configured else BUNDLED_ASSETS_DIR
    return directory if all((directory / name).is_file() for name in ASSETS) else None


def asset_urls(local: bool) -> dict[str, str]:
    """Where the page loads each asset from: the gateway itself, or the CDN."""
    if local:
        return {name: f"{ASSETS_PATH}/{name}" for name in ASSETS}
    return {
        name: f"{_CDN}/{package}@{version}/{member.removeprefix('package/')}"
        for name, (package, version, member) in ASSETS.items()
    }


def fetch_assets(target: Path = BUNDLED_ASSETS_DIR) -> None:
    """Download the pinned GraphiQL assets from the npm registry into `target`."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed; GraphiQL will load its assets from a CDN")
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
                source = archive.extractfile(member)
                if source is None:
                    raise RuntimeError(f"{member} is missing from {package}@{version}")
                (target / name).write_bytes(source.read())


def graphiql_page(urls: dict[str, str], endpoint: str = "/graphql") -> str:
    """The HTML page that runs GraphiQL against `endpoint`."""
    escaped = {name: html.escape(url, quote=True) for name, url in urls.items()}
    return f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>Jobs GraphQL gateway - GraphiQL</title>
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <link rel="stylesheet" href="{escaped["graphiql.min.css"]}">
    <style>body {{ margin: 0; height: 100vh; }} #graphiql {{ height: 100vh; }}</style>
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL...</div>
    <script src="{escaped["react.production.min.js"]}"></script>
    <script src="{escaped["react-dom.production.min.js"]}"></script>
    <script src="{escaped["graphiql.min.js"]}"></script>
    <script>
      const fetcher = GraphiQL.createFetcher({{ url: {endpoint!r} }});
      const root = ReactDOM.createRoot(document.getElementById("graphiql"));
      root.render(React.createElement(GraphiQL, {{
        fetcher,
        defaultEditorToolsVisibility: "headers",
        headers: JSON.stringify({{ Authorization: "Bearer <your token>" }}, null, 2),
        defaultQuery: {DEFAULT_QUERY!r},
      }}));
    </script>
  </body>
</html>
"""
