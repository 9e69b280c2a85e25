"""GraphiQL in a real browser: Debian's Chromium, headless, driven by Playwright, against servers
started as their own processes (a demo database, and one without any app). The browser may
reach only that server, so the tests also prove the pages work with no internet access.

Needs /usr/bin/chromium (scripts/test.sh installs Debian's package); Playwright drives it and
never downloads a browser of its own. Outside CI the test skips without Chromium; in CI it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import pytest

from cmdbgraph.http import graphiql
from tests.support.servers import live_server

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # No name resolves: the only host the browser can reach is the server under test.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
TIMEOUT_MS = 20_000
ASSETS = graphiql.SCRIPTS + graphiql.STYLESHEETS

MODELS_QUERY = "query ListModels { models { bkObjId bkObjName } }"
SEED_MUTATION = """mutation SeedExample {
  batchCreateInstAssociations(input: {bkObjId: "bk_switch", bkAsstObjId: "host",
    bkObjAsstId: "bk_switch_belong_host",
    details: [{bkInstId: 11, bkAsstInstId: 21}, {bkInstId: 12, bkAsstInstId: 22}]}) {
    __typename
    ... on BatchCreateInstAssociationsPayload { successCreated errorMsg }
  }
}"""


def _unavailable(reason: str):
    if os.environ.get("CI"):  # as tests/conftest.py does for PostgreSQL
        pytest.fail(f"{reason}; CI must run the browser test (scripts/test.sh installs it)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = (
        os.environ.get("CMDBGRAPH_TEST_CHROMIUM")  # another build, if need be
        or shutil.which("chromium")
        or "/usr/bin/chromium"
    )
    if not os.access(path, os.X_OK):
        _unavailable(f"no Chromium at {path} (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def sync_playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    return sync_playwright


@dataclass
class Session:
    """A page in a fresh browser profile that may reach only the server under test."""

    page: object
    elsewhere: list[str] = field(default_factory=list)  # requests for any other host
    problems: list[str] = field(default_factory=list)  # script errors, CSP, failed loads
    encodings: dict[str, str] = field(default_factory=dict)  # static asset path -> encoding


@contextlib.contextmanager
def browsing(
    sync_playwright, chromium: str, base_url: str, tmp_path, name: str, **options
) -> Iterator[Session]:
    """A ``Session`` on ``base_url``; on failure, a screenshot (named ``name``) and the
    browser's problems are added to the error. ``options`` go to the browser context."""
    origin = urlsplit(base_url).netloc
    screenshot = tmp_path / f"{name}-failure.png"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / f"{name}-profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            timeout=TIMEOUT_MS,
            viewport={"width": 1400, "height": 900},
            **options,
        )
        try:
            context.set_default_timeout(TIMEOUT_MS)
            session = Session(context.new_page())
            page = session.page

            def route(request_route) -> None:
                if urlsplit(request_route.request.url).netloc == origin:
                    request_route.continue_()
                else:
                    session.elsewhere.append(request_route.request.url)
                    request_route.abort()

            def answered(response) -> None:
                if response.status >= 400:
                    session.problems.append(f"{response.status} {response.url}")
                path = urlsplit(response.url).path
                if path.startswith("/static/"):
                    session.encodings[path] = response.headers.get("content-encoding", "identity")

            context.route("**/*", route)
            page.on("pageerror", lambda error: session.problems.append(f"page error: {error}"))
            page.on(
                "console",
                lambda message: message.type == "error" and session.problems.append(message.text),
            )
            page.on("response", answered)
            try:
                yield session
            except BaseException as error:
                try:
                    page.screenshot(path=str(screenshot), full_page=True, timeout=TIMEOUT_MS)
                except Exception as screenshot_error:  # the browser may be gone: say so
                    screenshot = f"none ({screenshot_error})"
                note = f"screenshot: {screenshot}; browser problems: {session.problems}"
                print(note, file=sys.stderr)
                error.add_note(note)
                raise
        finally:
            context.close()


def _open_graphiql(session: Session, base_url: str) -> None:
    page = session.page
    page.goto(f"{base_url}/graphql")
    page.wait_for_selector(".graphiql-query-editor .CodeMirror")


def _sidebar_button(page, title: str):
    """A plugin's button in GraphiQL's sidebar ("Show <title>", or "Hide <title>" when open)."""
    return page.locator(f'.graphiql-sidebar button[aria-label$="{title}"]')


def _editor_value(page, selector: str) -> str:
    """The text of the CodeMirror editor inside ``selector`` (all lines, not only those drawn)."""
    return page.eval_on_selector(
        f"{selector} .CodeMirror", "element => element.CodeMirror.getValue()"
    )


def _run_in_editor(page, query: str, operation_name: str) -> None:
    """Replace the query editor's text as a user would, then run it with Ctrl-Enter."""
    page.click(".graphiql-query-editor .CodeMirror")
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    # insert_text types the text in one input event: CodeMirror's bracket auto-closing does not
    # add braces to it the way key-by-key typing would.
    page.keyboard.insert_text(query)
    assert _editor_value(page, ".graphiql-query-editor") == query
    # GraphiQL parses the text 100 ms after the last change: run before that, and it would send
    # the previous operation's name with the new text.
    page.wait_for_function(
        """name => document.querySelector(".graphiql-query-editor .CodeMirror")
            .CodeMirror.operationName === name""",
        arg=operation_name,
        timeout=TIMEOUT_MS,
    )
    page.keyboard.press("Control+Enter")


def _wait_for_response(page, text: str, timeout: int = TIMEOUT_MS) -> dict:
    page.wait_for_function(
        """text => {
            const editor = document.querySelector(".graphiql-response .CodeMirror");
            return editor !== null && editor.CodeMirror.getValue().includes(text);
        }""",
        arg=text,
        timeout=timeout,
    )
    return json.loads(_editor_value(page, ".graphiql-response"))


def test_graphiql_runs_a_query_and_the_seed_mutation(
    chromium, sync_playwright, demo_server, tmp_path
):
    # Accept-Language picks the messages' language: upstream's Chinese here.
    with browsing(
        sync_playwright, chromium, demo_server, tmp_path, "graphiql", locale="zh-CN"
    ) as session:
        page = session.page
        _open_graphiql(session, demo_server)
        # The demo credentials are there for a newcomer to run a query at once, as a JSON
        # object (the page sends it as its JSON text).
        page.get_by_role("button", name="Headers").click()
        headers_editor = ".graphiql-editor-tool .graphiql-editor:not(.hidden)"
        headers = json.loads(_editor_value(page, headers_editor))
        assert headers["X-Bkapi-Authorization"]["bk_app_code"] == "esb_test"

        _run_in_editor(page, MODELS_QUERY, "ListModels")
        models = _wait_for_response(page, "交换机")["data"]["models"]
        assert {"bkObjId": "bk_switch", "bkObjName": "交换机"} in models

        _run_in_editor(page, SEED_MUTATION, "SeedExample")
        reply = _wait_for_response(page, "关联实例不存在")
        payload = reply["data"]["batchCreateInstAssociations"]
        assert payload["__typename"] == "BatchCreateInstAssociationsPayload"
        assert payload["errorMsg"] == {"1": "关联实例不存在"}
        assert list(payload["successCreated"]) == ["0"]
        created_id = payload["successCreated"]["0"]
        assert isinstance(created_id, int) and created_id > 0
        # Shown on screen, not only held by the editor.
        for shown in (f'"0": {created_id}', '"1": "关联实例不存在"'):
            page.locator(".graphiql-response .CodeMirror-line", has_text=shown).wait_for()

        assert session.elsewhere == [], "the page tried to reach another host"
        assert session.problems == []
        # Chromium takes brotli: every asset came compressed so.
        assert len(session.encodings) == len(ASSETS), session.encodings
        assert set(session.encodings.values()) == {"br"}, session.encodings


def test_the_ready_made_tabs_run_on_the_demo_data(chromium, sync_playwright, demo_server, tmp_path):
    with browsing(
        sync_playwright, chromium, demo_server, tmp_path, "tabs", locale="en-US"
    ) as session:
        page = session.page
        _open_graphiql(session, demo_server)
        tabs = page.locator(".graphiql-tab .graphiql-tab-button")
        tabs.nth(2).wait_for()
        assert tabs.all_inner_texts() == ["Models", "BatchCreate", "Instance", "Events"]

        # The batch tab holds the README's mutation, and answers what the README shows.
        _run_tab(page, tabs.nth(1), "BatchCreate")
        payload = _wait_for_response(page, "the association inst is not exist")["data"][
            "batchCreateInstAssociations"
        ]
        assert (payload["createdCount"], payload["failedCount"]) == (1, 1)
        (created_id,) = payload["successCreated"].values()

        # The instance tab, with the headers every tab starts with: switch 13 and the
        # association just created.
        _run_tab(page, tabs.nth(2), "Instance")
        reply = _wait_for_response(page, "sw-02")
        assert reply["data"]["instance"] == {
            "bkInstName": "sw-02",
            "associationsAsSourceConnection": {
                "edges": [
                    {
                        "node": {
                            "id": created_id,
                            "bkObjAsstId": "bk_switch_belong_host",
                            "target": {"bkInstName": "10.0.0.2"},
                        }
                    }
                ]
            },
        }
        page.locator(".graphiql-response .CodeMirror-line", has_text='"10.0.0.2"').wait_for()
        assert session.elsewhere == [], "the page tried to reach another host"
        assert session.problems == []


def _open_tab(page, tab, operation_name: str) -> None:
    tab.click()
    page.wait_for_function(
        """name => document.querySelector(".graphiql-query-editor .CodeMirror")
            .CodeMirror.operationName === name""",
        arg=operation_name,
        timeout=TIMEOUT_MS,
    )


def _run_tab(page, tab, operation_name: str) -> None:
    """Open ``tab`` and run it as it stands (with the headers it shows)."""
    _open_tab(page, tab, operation_name)
    page.get_by_role("button", name="Headers").click()
    headers_editor = ".graphiql-editor-tool .graphiql-editor:not(.hidden)"
    headers = json.loads(_editor_value(page, headers_editor))
    assert headers["X-Bkapi-Authorization"]["bk_app_code"] == "esb_test"
    page.click(".graphiql-query-editor .CodeMirror")
    page.keyboard.press("Control+Enter")


def _websocket_messages(page) -> list[tuple[str, dict]]:
    """The messages ``page`` sends on websockets from now on, as (socket URL, message)."""
    sent: list[tuple[str, dict]] = []
    page.on(
        "websocket",
        lambda socket: socket.on(
            "framesent", lambda payload: sent.append((socket.url, json.loads(payload)))
        ),
    )
    return sent


def _wait_until(page, condition, what: str, timeout: int = TIMEOUT_MS) -> None:
    """Wait for ``condition()``, letting ``page`` run: Playwright hands the page's events to
    Python only while it waits."""
    deadline = time.monotonic() + timeout / 1000
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} ms"
        page.wait_for_timeout(50)


def _set_headers(page, text: str) -> None:
    page.get_by_role("button", name="Headers").click()
    headers_editor = ".graphiql-editor-tool .graphiql-editor:not(.hidden)"
    page.click(f"{headers_editor} .CodeMirror")
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)
    assert _editor_value(page, headers_editor) == text


def test_a_subscription_shows_what_another_browser_tab_commits(
    chromium, sync_playwright, demo_server, tmp_path
):
    """The Events tab runs its subscription over a websocket to the page's own path, the
    Headers pane's credentials as the connection_init payload; the BatchCreate tab run in a
    second browser tab shows in the first as a CREATE event. With the credentials removed,
    the server closes the socket with 4403 and the page says so at once."""
    with browsing(
        sync_playwright, chromium, demo_server, tmp_path, "subscription", locale="en-US"
    ) as session:
        listener = session.page
        sent = _websocket_messages(listener)
        posted: list[str] = []  # a subscription must never go over HTTP
        listener.on(
            "request",
            lambda request: (
                "instAssociationEvents" in (request.post_data or "")
                and posted.append(request.post_data)
            ),
        )
        _open_graphiql(session, demo_server)
        tabs = listener.locator(".graphiql-tab .graphiql-tab-button")
        _run_tab(listener, tabs.nth(3), "Events")
        _wait_until(
            listener, lambda: any(m["type"] == "subscribe" for _, m in sent), "subscribe message"
        )
        # The socket's URL is the page's, with ws:; the credentials go as the HTTP fetcher
        # sends them (the object as its JSON text), then the tab's operation.
        websocket_url = f"ws://{urlsplit(demo_server).netloc}/graphql"
        assert [(url, message["type"]) for url, message in sent] == [
            (websocket_url, "connection_init"),
            (websocket_url, "subscribe"),
        ]
        credentials = sent[0][1]["payload"]["X-Bkapi-Authorization"]
        assert json.loads(credentials) == graphiql.DEMO_CREDENTIALS
        subscribe = sent[1][1]["payload"]
        assert (subscribe["operationName"], subscribe["query"]) == ("Events", graphiql.EVENTS_TAB)

        # Another browser tab of the same browser runs the README's batch mutation. The
        # subscription starts from the events' head when the server reads its subscribe
        # message, sent above: long before this tab has loaded GraphiQL and committed.
        writer = listener.context.new_page()
        writer.on("pageerror", lambda error: session.problems.append(f"page error: {error}"))
        writer.on(
            "console",
            lambda message: message.type == "error" and session.problems.append(message.text),
        )
        writer_sent = _websocket_messages(writer)
        writer.goto(f"{demo_server}/graphql")
        writer.wait_for_selector(".graphiql-query-editor .CodeMirror")
        writer_tabs = writer.locator(".graphiql-tab .graphiql-tab-button")
        _run_tab(writer, writer_tabs.nth(1), "BatchCreate")
        payload = _wait_for_response(writer, "the association inst is not exist")["data"][
            "batchCreateInstAssociations"
        ]
        (created_id,) = payload["successCreated"].values()

        # Back in the first tab, the event is there within seconds.
        listener.bring_to_front()
        event = _wait_for_response(listener, '"CREATE"', timeout=5_000)["data"][
            "instAssociationEvents"
        ]
        assert event["eventType"] == "CREATE" and event["cursor"]
        assert event["association"] == {
            "id": created_id,
            "bkObjAsstId": "bk_switch_belong_host",
            "bkInstId": 13,
            "bkAsstInstId": 22,
        }
        listener.locator(".graphiql-response .CodeMirror-line", has_text='"CREATE"').wait_for()
        assert posted == []

        # Without credentials: the server refuses the connection, and the page shows why
        # instead of waiting (graphql-ws alone would retry for half a minute).
        writer.bring_to_front()
        _open_tab(writer, writer_tabs.nth(3), "Events")
        _set_headers(writer, "{}")
        writer.click(".graphiql-query-editor .CodeMirror")
        writer.keyboard.press("Control+Enter")
        (error,) = _wait_for_response(writer, "4403", timeout=10_000)["errors"]
        assert error["message"].startswith("The websocket closed: 4403 "), error
        assert [message for _, message in writer_sent][0] == {
            "type": "connection_init",
            "payload": {},
        }

        assert session.elsewhere == [], "the page tried to reach another host"
        assert session.problems == []


@pytest.fixture
def appless_server(tmp_path) -> Iterator[str]:
    """Base URL of a real ``cmdbgraph serve`` on a migrated database that holds no app at all
    (no demo data): what an operator has before creating the first app."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'appless.sqlite3'}"
    env = {**os.environ, "CMDBGRAPH_DATABASE_URL": url, "CMDBGRAPH_LOG_LEVEL": "warning"}
    for command in (("db", "upgrade"), ("apps", "list")):
        done = subprocess.run(
            [sys.executable, "-m", "cmdbgraph.cli", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"
    assert done.stdout.strip() == "", f"the database holds apps: {done.stdout}"
    with live_server(url, tmp_path / "appless-server.log") as server:
        yield server.url


def test_the_schema_loads_on_a_database_without_the_demo_app(
    chromium, sync_playwright, appless_server, tmp_path
):
    """The newcomer's first hour: no app yet, the demo headers in the pane. The schema still
    loads (Docs, the explorer), and running a query says which app is missing and how to
    create it. This browser asks for gzip only (the other tests get brotli)."""
    with browsing(
        sync_playwright,
        chromium,
        appless_server,
        tmp_path,
        "appless",
        locale="en-US",
        extra_http_headers={"Accept-Encoding": "gzip"},
    ) as session:
        page = session.page
        introspections: list[int] = []
        page.on(
            "response",
            lambda response: (
                response.request.method == "POST"
                and "IntrospectionQuery" in (response.request.post_data or "")
                and introspections.append(response.status)
            ),
        )
        _open_graphiql(session, appless_server)

        _sidebar_button(page, "Documentation Explorer").click()
        docs = page.locator(".graphiql-doc-explorer")
        docs.get_by_text("Query", exact=True).first.wait_for()
        docs.get_by_text("Mutation", exact=True).first.wait_for()
        assert page.locator(".graphiql-doc-explorer-error").count() == 0
        assert "Error fetching schema" not in page.content()
        assert introspections and set(introspections) == {200}, introspections

        # The explorer plugin lists the root fields to build a query by clicking.
        _sidebar_button(page, "GraphiQL Explorer").click()
        explorer = page.locator(".graphiql-explorer-root")
        for name in ("models", "instances", "instance", "instAssociations", "auditEntries"):
            explorer.get_by_text(name, exact=True).first.wait_for()

        # The data needs an app: the answer says which one is missing and what to do.
        page.click(".graphiql-query-editor .CodeMirror")
        page.keyboard.press("Control+Enter")
        reply = _wait_for_response(page, "cmdbgraph apps create esb_test")
        (error,) = reply["errors"]
        assert error["message"] == "call source authentication failed."
        assert error["extensions"]["bkErrorCode"] == 1100004
        assert "app esb_test could not be authenticated" in error["extensions"]["hint"]

        assert session.elsewhere == [], "the page tried to reach another host"
        # The refused query is the only failure: a 401 and the browser's note of it.
        unexpected = [
            problem
            for problem in session.problems
            if not (problem.startswith("401 ") or "status of 401" in problem)
        ]
        assert unexpected == []
        assert len(session.encodings) == len(ASSETS), session.encodings
        assert set(session.encodings.values()) == {"gzip"}, session.encodings


def test_the_api_docs_page_shows_every_call(chromium, sync_playwright, demo_server, tmp_path):
    with browsing(sync_playwright, chromium, demo_server, tmp_path, "api-docs") as session:
        page = session.page
        page.goto(f"{demo_server}/api/docs")
        page.locator(".swagger-ui .info .title", has_text="cmdbgraph REST shim").wait_for()
        # The seeds' call, on its native route and on its ESB path, rendered from the
        # document (not only present in it).
        for path in (
            "/api/v3/createmany/instassociation",
            "/api/c/compapi/v2/cc/batch_create_instance_association/",
        ):
            page.locator(".opblock-summary-path", has_text=path).first.wait_for()
        shown = page.locator(".opblock-summary-path").count()
        assert shown >= 29, f"only {shown} operations shown"
        # Opening one shows its documented body and the limit in force.
        page.locator(
            ".opblock-summary-path", has_text="/api/v3/createmany/instassociation"
        ).first.click()
        page.locator(".opblock-body", has_text="details").first.wait_for()
        assert session.elsewhere == [], "the page tried to reach another host"
        assert session.problems == []
        assert set(session.encodings.values()) == {"br"}, session.encodings


# ---------------------------------------------------------------------------------------------
# The topology page

# Switch 11 -> hosts 21, 22 and switch 13 -> host 22 (belong); switch 13 -> host 23 (connect);
# router 31 -> firewall 41, which no switch reaches.
TOPOLOGY_ASSOCIATIONS = (
    ("bk_switch_belong_host", "bk_switch", "host", [(11, 21), (11, 22), (13, 22)]),
    ("bk_switch_connect_host", "bk_switch", "host", [(13, 23)]),
    ("bk_router_default_bk_firewall", "bk_router", "bk_firewall", [(31, 41)]),
)


def _create_topology_associations(base_url: str) -> None:
    for model_association, source, target, pairs in TOPOLOGY_ASSOCIATIONS:
        details = ", ".join(f"{{bkInstId: {a}, bkAsstInstId: {b}}}" for a, b in pairs)
        mutation = f"""mutation {{
          batchCreateInstAssociations(input: {{bkObjId: "{source}", bkAsstObjId: "{target}",
            bkObjAsstId: "{model_association}", details: [{details}]}}) {{
            ... on BatchCreateInstAssociationsPayload {{ createdCount errorMsg }}
          }}
        }}"""
        reply = httpx.post(
            f"{base_url}/graphql",
            json={"query": mutation},
            headers={
                "X-Bkapi-Authorization": json.dumps(graphiql.DEMO_CREDENTIALS),
                "Accept-Language": "en",
            },
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        payload = reply.json()["data"]["batchCreateInstAssociations"]
        assert payload == {"createdCount": len(pairs), "errorMsg": {}}, payload


def _graph_labels(page) -> tuple[list[str], list[str]]:
    """The drawn graph: its nodes' labels and its edges as "source -label-> target"."""
    nodes, edges = page.evaluate(
        """() => [
            window.topology.nodes().map((node) => node.data("label")),
            window.topology.edges().map((edge) =>
                `${edge.source().data("label")} -${edge.data("label")}-> ` +
                `${edge.target().data("label")}`),
        ]"""
    )
    return sorted(nodes), sorted(edges)


def _wait_for_nodes(page, labels: list[str]) -> None:
    """Wait until the graph holds exactly the nodes ``labels`` and the page is idle."""
    page.wait_for_function(
        """labels => window.topology !== undefined
            && !document.body.hasAttribute("aria-busy")
            && JSON.stringify(window.topology.nodes().map((n) => n.data("label")).sort())
               === JSON.stringify(labels)""",
        arg=sorted(labels),
        timeout=TIMEOUT_MS,
    )


def _click_node(page, label: str) -> None:
    """Click the node ``label`` where the canvas draws it, as a user would."""
    x, y = page.evaluate(
        """label => {
            const node = window.topology.nodes().filter((n) => n.data("label") === label)[0];
            const box = document.getElementById("graph").getBoundingClientRect();
            const at = node.renderedPosition();
            return [box.left + at.x, box.top + at.y];
        }""",
        label,
    )
    page.mouse.click(x, y)


def test_the_topology_page_draws_and_expands_a_neighbourhood(
    chromium, sync_playwright, demo_server, tmp_path
):
    """The topology page on the demo data: search "sw-01", pick it, its hosts drawn; a click on
    a host adds the other switch of that host; depth 2 and 3 from the switch redraw further;
    bad credentials and an empty search are said in the page. Nothing leaves the server."""
    _create_topology_associations(demo_server)
    with browsing(
        sync_playwright, chromium, demo_server, tmp_path, "topology", locale="en-US"
    ) as session:
        page = session.page
        page.goto(f"{demo_server}/topology")
        credentials = json.loads(page.input_value("#credentials"))
        assert credentials == graphiql.DEMO_CREDENTIALS
        page.fill("#name", "sw-01")
        page.click("#search button[type=submit]")
        result = page.locator("#results button", has_text="sw-01")
        result.wait_for()
        assert page.locator("#results button").count() == 1
        result.click()

        _wait_for_nodes(page, ["sw-01", "10.0.0.1", "10.0.0.2"])
        nodes, edges = _graph_labels(page)
        assert edges == ["sw-01 -belong-> 10.0.0.1", "sw-01 -belong-> 10.0.0.2"]
        # A legend of the models drawn, each with the colour of its nodes.
        legend = page.evaluate(
            """() => [...document.querySelectorAll("#legend-models li")].map((item) => [
                item.dataset.model,
                getComputedStyle(item.querySelector(".swatch")).backgroundColor,
            ])"""
        )
        assert [model for model, _ in legend] == ["bk_switch", "host"]
        colours = page.evaluate(
            """() => Object.fromEntries(window.topology.nodes().map((node) =>
                [node.data("model"), node.style("background-color")]))"""
        )
        swatches = {model: colour.replace(" ", "") for model, colour in legend}
        assert swatches == colours and len(set(colours.values())) == 2, (legend, colours)
        assert page.locator("#status").inner_text().startswith("sw-01 at depth 1: 3 instances")

        # A click on a host reads its neighbourhood and adds it: the other switch it belongs to.
        _click_node(page, "10.0.0.2")
        _wait_for_nodes(page, ["sw-01", "10.0.0.1", "10.0.0.2", "sw-02"])
        assert "sw-02 -belong-> 10.0.0.2" in _graph_labels(page)[1]
        assert page.locator("#status").inner_text().startswith("Expanded 10.0.0.2")

        # Depth 2 from the switch: the same instances, read at once; depth 3 reaches the host
        # connected to sw-02, with that association's kind on its edge.
        page.select_option("#depth", "2")
        _wait_for_nodes(page, ["sw-01", "10.0.0.1", "10.0.0.2", "sw-02"])
        assert page.locator("#status").inner_text().startswith("sw-01 at depth 2: 4 instances")
        page.select_option("#depth", "3")
        _wait_for_nodes(page, ["sw-01", "10.0.0.1", "10.0.0.2", "sw-02", "10.0.0.3"])
        assert _graph_labels(page)[1] == [
            "sw-01 -belong-> 10.0.0.1",
            "sw-01 -belong-> 10.0.0.2",
            "sw-02 -belong-> 10.0.0.2",
            "sw-02 -connect-> 10.0.0.3",
        ]
        assert page.locator("#legend-kinds li").all_inner_texts() == ["belong: 3", "connect: 1"]
        page.screenshot(path=str(tmp_path / "topology.png"), full_page=True)

        # Reset: the picked instance at the depth chosen again, the expansion dropped.
        page.select_option("#depth", "1")
        _wait_for_nodes(page, ["sw-01", "10.0.0.1", "10.0.0.2"])
        _click_node(page, "10.0.0.2")
        _wait_for_nodes(page, ["sw-01", "10.0.0.1", "10.0.0.2", "sw-02"])
        page.click("#reset")
        _wait_for_nodes(page, ["sw-01", "10.0.0.1", "10.0.0.2"])

        # Nothing found, and bad credentials: said in the page, the graph left as it was.
        page.fill("#name", "no-such-instance")
        page.click("#search button[type=submit]")
        page.locator("#error", has_text="No instance's name contains").wait_for()
        assert page.locator("#results li").count() == 0
        page.click("#credentials-box summary")
        page.fill("#credentials", json.dumps({**graphiql.DEMO_CREDENTIALS, "bk_app_secret": "no"}))
        page.fill("#name", "sw")
        page.click("#search button[type=submit]")
        page.locator("#error", has_text="call source authentication failed").wait_for()
        assert "1100004" in page.locator("#error").inner_text()
        page.screenshot(path=str(tmp_path / "topology-refused.png"), full_page=True)
        page.fill("#credentials", "{not json")
        page.click("#search button[type=submit]")
        page.locator("#error", has_text="The credentials are not JSON").wait_for()
        _wait_for_nodes(page, ["sw-01", "10.0.0.1", "10.0.0.2"])

        assert session.elsewhere == [], "the page tried to reach another host"
        # The refused search is the only failure: a 401 and the browser's note of it.
        unexpected = [
            problem
            for problem in session.problems
            if not (problem.startswith("401 ") or "status of 401" in problem)
        ]
        assert unexpected == []
        assert len([p for p in session.problems if p.startswith("401 ")]) == 1
        # Chromium takes brotli: the vendored library came compressed so; the page's own
        # files have no compressed copies.
        assert session.encodings == {
            path: ("br" if "/cytoscape." in path else "identity") for path in session.encodings
        }
        assert len(session.encodings) == 3, session.encodings
