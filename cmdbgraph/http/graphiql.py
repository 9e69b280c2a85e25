"""The GraphiQL page served at GET /graphql in a browser, working with no internet access.

Strawberry's own page loads GraphiQL from a CDN; ours loads only the copies vendored in
``cmdbgraph/static/graphiql/`` (refreshed by ``scripts/vendor-graphiql.sh``, versions in its
VERSIONS file), served by the app itself under ``/static/graphiql/``. A Content-Security-Policy
holds the browser to that: the page can load scripts and styles and send requests only to the
server it came from.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from starlette.responses import HTMLResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parents[1] / "static" / "graphiql"
STATIC_PATH = "/static/graphiql"

# Loaded in this order: GraphiQL's UMD build expects the globals React and ReactDOM.
SCRIPTS = ("react.production.min.js", "react-dom.production.min.js", "graphiql.min.js")
STYLESHEETS = ("graphiql.min.css",)

DEFAULT_QUERY = """\
# cmdbgraph: GraphQL for CMDB associations.
#
# Run: Ctrl-Enter or the pink button.
# Headers (below): the demo credentials of
# `cmdbgraph seed --demo`; put your own app
# code, secret and user name there.
# Docs (top left): every query and mutation,
# batchCreateInstAssociations among them.

query Models {
  models {
    bkObjId
    bkObjName
  }
}
"""

DEMO_CREDENTIALS = {"bk_app_code": "esb_test", "bk_app_secret": "xxx", "bk_username": "admin"}
DEFAULT_HEADERS = json.dumps({"X-Bkapi-Authorization": json.dumps(DEMO_CREDENTIALS)}, indent=2)


def _script_literal(value: object) -> str:
    """``value`` as a JavaScript literal that cannot close the surrounding <script> element."""
    return (
        json.dumps(value, ensure_ascii=False)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )


# The fetcher posts to the page's own path: /graphql, or the same behind a proxy's prefix.
# Headers are not persisted in the browser's storage (they carry secrets), so they come back
# from defaultHeaders on every load.
_BOOT_SCRIPT = f"""
const root = ReactDOM.createRoot(document.getElementById("graphiql"));
root.render(
  React.createElement(GraphiQL, {{
    fetcher: GraphiQL.createFetcher({{ url: window.location.pathname }}),
    defaultQuery: {_script_literal(DEFAULT_QUERY)},
    defaultHeaders: {_script_literal(DEFAULT_HEADERS)},
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,
    defaultEditorToolsVisibility: "headers",
  }}),
);
"""

_BOOT_HASH = base64.b64encode(hashlib.sha256(_BOOT_SCRIPT.encode()).digest()).decode()

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        f"script-src 'self' 'sha256-{_BOOT_HASH}'",
        # GraphiQL and CodeMirror set inline styles; its fonts and icons are data: URIs.
        "style-src 'self' 'unsafe-inline'",
        "font-src 'self' data:",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'self'",
    ]
)


def _page() -> str:
    # Relative to /graphql, "static/graphiql/x" is /static/graphiql/x (or the same under a
    # proxy's prefix).
    base = STATIC_PATH.lstrip("/")
    styles = "\n".join(
        f'    <link rel="stylesheet" href="{base}/{name}" />' for name in STYLESHEETS
    )
    scripts = "\n".join(f'    <script src="{base}/{name}"></script>' for name in SCRIPTS)
    return f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>cmdbgraph GraphiQL</title>
    <link rel="icon" href="data:," />
{styles}
    <style>
      body {{ margin: 0; height: 100vh; overflow: hidden; }}
      #graphiql {{ height: 100vh; }}
    </style>
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL…</div>
{scripts}
    <script>{_BOOT_SCRIPT}</script>
  </body>
</html>
"""


PAGE = _page()


def page_response() -> HTMLResponse:
    """The GraphiQL page, with a policy that keeps the browser on this server."""
    return HTMLResponse(PAGE, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})


def static_mount() -> Mount:
    """Serves the vendored assets at /static/graphiql/."""
    return Mount(STATIC_PATH, app=StaticFiles(directory=STATIC_DIR), name="graphiql-static")
