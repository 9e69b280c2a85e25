"""The GraphiQL page served at GET /graphql in a browser, working with no internet access.

Strawberry's own page loads GraphiQL from a CDN; ours loads only the copies vendored in
``cmdbgraph/static/graphiql/`` (refreshed by ``scripts/vendor-graphiql.sh``, versions in its
VERSIONS file), served by the app itself under ``/static/graphiql/`` with content-hashed names
and precompressed (see ``assets``). A Content-Security-Policy holds the browser to that: the
page can load scripts and styles and send requests, and open websockets, only to the server it
came from.

Queries and mutations are posted over HTTP; a subscription runs over a websocket to the same
path (graphql-ws's client, protocol ``graphql-transport-ws``), the Headers pane's headers sent
as its ``connection_init`` payload, which is how the server authenticates it. A refused or
dropped connection shows in the response pane as an error with the close code (4403: bad
credentials) rather than leaving the subscription waiting.

What a newcomer finds: four tabs (the models, the README's batch mutation, an instance with
the associations it is the source of, a subscription to association events), the demo
credentials in the Headers pane as a plain JSON object, the schema in Docs (introspection
needs no credentials, see ``graphql_view``) and the explorer plugin to build a query by
clicking.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from starlette.responses import HTMLResponse
from starlette.routing import Mount

from cmdbgraph.http.assets import StaticAssets, inline_source, page_policy

STATIC_DIR = Path(__file__).resolve().parents[1] / "static" / "graphiql"
STATIC_PATH = "/static/graphiql"
ASSETS = StaticAssets(STATIC_DIR)

# Loaded in this order: GraphiQL's UMD build expects the globals React and ReactDOM, the
# explorer plugin's the globals React and GraphiQL. graphql-ws's sets the global graphqlWs and
# needs none.
SCRIPTS = (
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphiql.min.js",
    "graphiql-plugin-explorer.umd.js",
    "graphql-ws.min.js",
)
STYLESHEETS = ("graphiql.min.css", "graphiql-plugin-explorer.css")

DEFAULT_QUERY = """\
# cmdbgraph: GraphQL for CMDB associations.
#
# Run: Ctrl-Enter or the pink button.
# Tabs (above): this query, the README's
# batch mutation, an instance with its
# associations, association events.
# Headers (below): the demo credentials of
# `cmdbgraph seed --demo`; put your own app
# code, secret and user name there (an
# object is sent as its JSON text).
# Docs and Explorer (left): every query and
# mutation; build one by clicking.
# An instance's neighbourhood as a graph:
# the topology page, /topology.

query Models {
  models {
    bkObjId
    bkObjName
  }
}
"""

# The README's example (section "GraphQL"), word for word; tests/test_graphiql_page.py holds
# the two together.
BATCH_MUTATION = """\
mutation BatchCreate {
  batchCreateInstAssociations(input: {
    bkObjId: "bk_switch", bkAsstObjId: "host", bkObjAsstId: "bk_switch_belong_host"
    details: [{bkInstId: 13, bkAsstInstId: 22}, {bkInstId: 12, bkAsstInstId: 23}]
  }) {
    __typename
    ... on BatchCreateInstAssociationsPayload {
      createdCount failedCount successCreated errorMsg
      results { index ok association { id } error { code bkErrorCode message } }
    }
    ... on RequestError { code bkErrorCode message }
    ... on PermissionDenied { code bkErrorCode message permission }
  }
}
"""

BATCH_TAB = f"""\
# The README's batch call: on the demo data it
# creates switch 13 -> host 22 and refuses
# the second item (there is no instance 12).
# Add `dryRun: true` to the input to check
# without writing.

{BATCH_MUTATION}"""

INSTANCE_TAB = """\
# Switch 13 and the associations it is the
# source of, with their targets (run the
# BatchCreate tab first to give it one).

query Instance {
  instance(bkInstId: 13) {
    bkInstName
    associationsAsSourceConnection(first: 10) {
      edges {
        node {
          id
          bkObjAsstId
          target {
            bkInstName
          }
        }
      }
    }
  }
}
"""

EVENTS_TAB = """\
# Associations created or deleted, as they
# commit, over a websocket (it carries the
# Headers pane's credentials). Run it: it
# listens until you stop it (the same
# button). Then run the BatchCreate tab in
# another browser tab: its event shows here.

subscription Events {
  instAssociationEvents {
    cursor
    eventType
    association {
      id
      bkObjAsstId
      bkInstId
      bkAsstInstId
    }
  }
}
"""

TABS = (DEFAULT_QUERY, BATCH_TAB, INSTANCE_TAB, EVENTS_TAB)

DEMO_CREDENTIALS = {"bk_app_code": "esb_test", "bk_app_secret": "xxx", "bk_username": "admin"}
# An object, not JSON escaped inside a string: the page's fetcher sends an object-valued
# header as its JSON text, which is what X-Bkapi-Authorization carries.
DEFAULT_HEADERS = json.dumps({"X-Bkapi-Authorization": DEMO_CREDENTIALS}, indent=2)


def _script_literal(value: object) -> str:
    """``value`` as a JavaScript literal that cannot close the surrounding <script> element."""
    return (
        json.dumps(value, ensure_ascii=False)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )


# The fetcher posts to the page's own path: /graphql, or the same behind a proxy's prefix, and
# sends a header whose value is a JSON object or array as that value's JSON text (a string is
# sent as it is). A subscription goes instead over a websocket to that same path, with those
# headers as the connection_init payload (the server reads its credentials there); a client per
# distinct set of headers, as the server authenticates a connection once, when it opens.
# graphql-ws would retry a connection refused with 4403 (the credentials might change on the
# server), each time after a longer wait: the page retries nothing and shows every close, so a
# subscription never hangs in silence; running it again reconnects. Headers are not persisted
# in the browser's storage (they carry secrets), so they come back from defaultHeaders on every
# load (and in every tab that holds none of its own). GraphiQL names each tab after its
# operation.
_BOOT_SCRIPT = f"""
const postGraphQL = GraphiQL.createFetcher({{ url: window.location.pathname }});
const asHeaderText = (value) =>
  value !== null && typeof value === "object" ? JSON.stringify(value) : value;
const headerTexts = (options) =>
  Object.fromEntries(
    Object.entries((options && options.headers) || {{}}).map(
      ([name, value]) => [name, asHeaderText(value)],
    ),
  );
// The operation to run: the one named, or the document's only one.
const operationToRun = (params, options) => {{
  const operations = ((options && options.documentAST) || {{ definitions: [] }}).definitions
    .filter((definition) => definition.kind === "OperationDefinition");
  if (params.operationName) {{
    return operations.find(
      (operation) => operation.name && operation.name.value === params.operationName,
    );
  }}
  return operations.length === 1 ? operations[0] : undefined;
}};
const webSocketURL =
  (window.location.protocol === "https:" ? "wss://" : "ws://") +
  window.location.host +
  window.location.pathname;
let webSocket = {{ key: null, client: null }};
const webSocketClient = (headers) => {{
  const key = JSON.stringify(headers);
  if (webSocket.key !== key) {{
    if (webSocket.client) webSocket.client.dispose();
    const client = graphqlWs.createClient({{
      url: webSocketURL,
      connectionParams: headers,
      lazy: true,
      retryAttempts: 0,
    }});
    webSocket = {{ key, client }};
  }}
  return webSocket.client;
}};
// What graphql-ws reports: the server's GraphQL errors, the socket's close event (the server's
// code and reason: 4403 Forbidden for bad credentials), its error event (a failed handshake,
// whose cause browsers tell only in their console) or an Error.
const asErrors = (error) => {{
  if (Array.isArray(error)) return error;
  let message;
  if (typeof error === "object" && error !== null && "code" in error && "reason" in error) {{
    message = `The websocket closed: ${{error.code}} ${{error.reason || "(no reason given)"}}`;
  }} else if (error instanceof Event) {{
    message = `The websocket to ${{webSocketURL}} failed (the browser's console says why)`;
  }} else {{
    message = `The websocket failed: ${{error instanceof Error ? error.message : error}}`;
  }}
  return [{{ message }}];
}};
const subscribeOverWebSocket = (params, headers) => ({{
  subscribe(observer) {{
    const dispose = webSocketClient(headers).subscribe(params, {{
      next: (result) => observer.next(result),
      error: (error) => {{
        observer.next({{ errors: asErrors(error) }});
        observer.complete();
      }},
      complete: () => observer.complete(),
    }});
    return {{ unsubscribe: dispose }};
  }},
}});
const fetcher = (params, options) => {{
  const headers = headerTexts(options);
  const operation = operationToRun(params, options);
  if (operation && operation.operation === "subscription") {{
    return subscribeOverWebSocket(params, headers);
  }}
  return postGraphQL(params, {{ ...options, headers }});
}};
const root = ReactDOM.createRoot(document.getElementById("graphiql"));
root.render(
  React.createElement(GraphiQL, {{
    fetcher,
    defaultTabs: {_script_literal([{"query": query} for query in TABS])},
    defaultQuery: {_script_literal(DEFAULT_QUERY)},
    defaultHeaders: {_script_literal(DEFAULT_HEADERS)},
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,
    defaultEditorToolsVisibility: "headers",
    plugins: [GraphiQLPluginExplorer.explorerPlugin()],
  }}),
);
"""

CONTENT_SECURITY_POLICY = page_policy(
    f"script-src 'self' {inline_source(_BOOT_SCRIPT)}",
    # GraphiQL and CodeMirror set inline styles; its fonts and icons are data: URIs.
    "style-src 'self' 'unsafe-inline'",
    "font-src 'self' data:",
)


@functools.cache
def page() -> str:
    """The page's HTML (built on first use: the asset names hash the files' contents)."""
    # Relative to /graphql, "static/graphiql/x" is /static/graphiql/x (or the same under a
    # proxy's prefix).
    styles, scripts = ASSETS.tags(STATIC_PATH.lstrip("/"), SCRIPTS, STYLESHEETS)
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


def page_response() -> HTMLResponse:
    """The GraphiQL page, with a policy that keeps the browser on this server."""
    return HTMLResponse(page(), headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})


def static_mount() -> Mount:
    """Serves the vendored assets at /static/graphiql/."""
    return Mount(STATIC_PATH, app=ASSETS, name="graphiql-static")
