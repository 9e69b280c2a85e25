"""The topology page at ``GET /topology``: find an instance by name and draw its neighbourhood as
a graph, working with no internet access.

The page is a client of the GraphQL API like any other: it posts to ``graphql`` beside it
(``instancesConnection(nameContains:)`` to search, ``instance { topology(depth:) }`` to draw
and, on a click, to expand a node one association further; ``models`` for the legend), with
the credentials of its credentials box as the ``X-Bkapi-Authorization`` header of every request
(the demo credentials at first, as in GraphiQL's Headers pane; an object is sent as its JSON
text; nothing is stored in the browser). A refusal or an empty result is shown in the page.

Its files are in ``cmdbgraph/static/topology/``, served by the app itself under
``/static/topology/`` with content-hashed names (see ``assets``): the graph library,
Cytoscape.js, vendored from npm with its licence and precompressed copies by
``scripts/vendor-topology.sh`` (versions and checksums in its VERSIONS file), and the page's
own script and stylesheet, ``topology.js`` and ``topology.css``, plain files edited by hand (no
build step, no compressed copies). There is no inline script: the Content-Security-Policy
allows scripts from this server only, and one inline style, the rule Cytoscape.js adds to the
document, by its hash.

Served while GraphiQL is (``CMDBGRAPH_GRAPHIQL``): both are browser tools for the same API.
"""

from __future__ import annotations

import functools
import html
import json
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount

from cmdbgraph.http.assets import StaticAssets, inline_source, page_policy
from cmdbgraph.http.graphiql import DEMO_CREDENTIALS

PAGE_PATH = "/topology"
STATIC_DIR = Path(__file__).resolve().parents[1] / "static" / "topology"
STATIC_PATH = "/static/topology"
ASSETS = StaticAssets(STATIC_DIR)

# Loaded in this order: the page's script reads the global ``cytoscape``.
SCRIPTS = ("cytoscape.min.js", "topology.js")
STYLESHEETS = ("topology.css",)
# The page's own files (the others are vendored: listed in VERSIONS).
PAGE_FILES = ("topology.js", "topology.css")

# The credentials box's first value: the demo app's, as GraphiQL's Headers pane shows them.
DEFAULT_CREDENTIALS = json.dumps(DEMO_CREDENTIALS, indent=2)

# The one rule Cytoscape.js adds to the document (a <style> element, once per page) for its
# container; the policy allows it by its hash rather than every inline style.
CYTOSCAPE_STYLE = ".__________cytoscape_container { position: relative; }"
CONTENT_SECURITY_POLICY = page_policy(
    "script-src 'self'", f"style-src 'self' {inline_source(CYTOSCAPE_STYLE)}"
)


@functools.cache
def _page() -> str:
    """The page's HTML (built on first use: the asset names hash the files' contents)."""
    # Relative to /topology, "static/topology/x" is /static/topology/x and "graphql" is
    # /graphql (or the same under a proxy's prefix).
    styles, scripts = ASSETS.tags(STATIC_PATH.lstrip("/"), SCRIPTS, STYLESHEETS)
    credentials = html.escape(DEFAULT_CREDENTIALS, quote=False)
    return f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>cmdbgraph topology</title>
    <link rel="icon" href="data:," />
{styles}
  </head>
  <body>
    <header>
      <h1>cmdbgraph topology</h1>
      <a href="graphql">GraphiQL</a>
    </header>
    <main>
      <aside>
        <form id="search" role="search">
          <label for="name">Instance name contains</label>
          <div class="row">
            <input id="name" type="search" autocomplete="off" spellcheck="false"
                   placeholder="sw-01" />
            <button type="submit">Search</button>
          </div>
        </form>
        <ul id="results" aria-label="Instances found"></ul>
        <div class="row">
          <label for="depth">Depth</label>
          <select id="depth">
            <option value="1" selected>1</option>
            <option value="2">2</option>
            <option value="3">3</option>
          </select>
          <button id="reset" type="button" disabled>Reset</button>
        </div>
        <p class="hint">Click an instance to expand it (dashed: not expanded yet).</p>
        <section id="legend" aria-label="Legend"></section>
        <details id="credentials-box">
          <summary>Credentials</summary>
          <label for="credentials">X-Bkapi-Authorization</label>
          <textarea id="credentials" rows="6" autocomplete="off"
                    spellcheck="false">{credentials}</textarea>
          <p class="hint">Sent with every request as this header (an object as its JSON
            text); kept in this page only.</p>
        </details>
      </aside>
      <section id="view">
        <p id="error" role="alert" hidden></p>
        <p id="status" role="status">Search for an instance by name, then pick it.</p>
        <div id="graph" aria-label="Topology graph"></div>
      </section>
    </main>
{scripts}
  </body>
</html>
"""


async def page(request: Request) -> HTMLResponse:
    """The topology page, with a policy that keeps the browser on this server; not found
    while GraphiQL is switched off."""
    if not request.app.state.settings.graphiql:
        raise HTTPException(404)
    return HTMLResponse(_page(), headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})


def static_mount() -> Mount:
    """Serves the page's files at /static/topology/."""
    return Mount(STATIC_PATH, app=ASSETS, name="topology-static")
