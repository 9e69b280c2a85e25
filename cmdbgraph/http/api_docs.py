"""The REST shim's documentation page at ``GET /api/docs``: Swagger UI on the OpenAPI document,
working with no internet access.

Swagger UI is vendored from npm in ``cmdbgraph/static/swagger-ui/`` (refreshed by
``scripts/vendor-swagger-ui.sh``, version in its VERSIONS file) and served by the app itself
under ``/static/swagger-ui/`` with content-hashed names and precompressed (see ``assets``); a
Content-Security-Policy holds the browser to this server.
"""

from __future__ import annotations

import functools
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount

from cmdbgraph.http.assets import StaticAssets, inline_source, page_policy

DOCS_PATH = "/api/docs"
STATIC_DIR = Path(__file__).resolve().parents[1] / "static" / "swagger-ui"
STATIC_PATH = "/static/swagger-ui"
ASSETS = StaticAssets(STATIC_DIR)
SCRIPTS = ("swagger-ui-bundle.js",)
STYLESHEETS = ("swagger-ui.css",)

# The document's URL is relative to the page (/api/docs -> /api/openapi.json), so the page
# also works under a proxy's prefix. No validator badge: it would call validator.swagger.io.
_BOOT_SCRIPT = """
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  tryItOutEnabled: false,
  displayRequestDuration: true,
});
"""

CONTENT_SECURITY_POLICY = page_policy(
    f"script-src 'self' {inline_source(_BOOT_SCRIPT)}",
    # Swagger UI sets inline styles; its icons are data: URIs.
    "style-src 'self' 'unsafe-inline'",
    "font-src 'self' data:",
)


@functools.cache
def _page() -> str:
    """The page's HTML (built on first use: the asset names hash the files' contents)."""
    # Relative to /api/docs, "../static/swagger-ui/x" is /static/swagger-ui/x.
    base = "../" + STATIC_PATH.lstrip("/")
    styles = "\n".join(
        f'    <link rel="stylesheet" href="{base}/{ASSETS.url_name(name)}" />'
        for name in STYLESHEETS
    )
    scripts = "\n".join(
        f'    <script src="{base}/{ASSETS.url_name(name)}"></script>' for name in SCRIPTS
    )
    return f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>cmdbgraph REST API</title>
    <link rel="icon" href="data:," />
{styles}
  </head>
  <body>
    <div id="swagger-ui">Loading the API documentation…</div>
{scripts}
    <script>{_BOOT_SCRIPT}</script>
  </body>
</html>
"""


async def page(_: Request) -> HTMLResponse:
    """The docs page, with a policy that keeps the browser on this server."""
    return HTMLResponse(_page(), headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})


def static_mount() -> Mount:
    """Serves the vendored assets at /static/swagger-ui/."""
    return Mount(STATIC_PATH, app=ASSETS, name="swagger-ui-static")
