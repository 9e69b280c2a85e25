"""GraphiQL in a real browser: Debian's Chromium, headless, driven by Playwright, against a demo
server started as its own process. The browser may reach only that server, so the test also
proves the page works with no internet access.

Needs /usr/bin/chromium (scripts/test.sh installs Debian's package); Playwright drives it and
never downloads a browser of its own. Outside CI the test skips without Chromium; in CI it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from urllib.parse import urlsplit

import pytest

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


def _wait_for_response(page, text: str) -> dict:
    page.wait_for_function(
        """text => {
            const editor = document.querySelector(".graphiql-response .CodeMirror");
            return editor !== null && editor.CodeMirror.getValue().includes(text);
        }""",
        arg=text,
        timeout=TIMEOUT_MS,
    )
    return json.loads(_editor_value(page, ".graphiql-response"))


def test_graphiql_runs_a_query_and_the_seed_mutation(
    chromium, sync_playwright, demo_server, tmp_path
):
    origin = urlsplit(demo_server).netloc
    elsewhere: list[str] = []  # requests for any other host: there must be none
    problems: list[str] = []  # script errors, CSP violations, failed loads
    screenshot = tmp_path / "graphiql-failure.png"

    def route(request_route) -> None:
        if urlsplit(request_route.request.url).netloc == origin:
            request_route.continue_()
        else:
            elsewhere.append(request_route.request.url)
            request_route.abort()

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            timeout=TIMEOUT_MS,
            viewport={"width": 1400, "height": 900},
            # Accept-Language picks the messages' language: upstream's Chinese here.
            locale="zh-CN",
        )
        try:
            context.set_default_timeout(TIMEOUT_MS)
            context.route("**/*", route)
            page = context.new_page()
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on(
                "console",
                lambda message: message.type == "error" and problems.append(message.text),
            )
            page.on(
                "response",
                lambda response: (
                    response.status >= 400 and problems.append(f"{response.status} {response.url}")
                ),
            )
            try:
                page.goto(f"{demo_server}/graphql")
                page.wait_for_selector(".graphiql-query-editor .CodeMirror")
                # The demo credentials are there for a newcomer to run a query at once.
                page.get_by_role("button", name="Headers").click()
                headers_editor = ".graphiql-editor-tool .graphiql-editor:not(.hidden)"
                headers = json.loads(_editor_value(page, headers_editor))
                assert json.loads(headers["X-Bkapi-Authorization"])["bk_app_code"] == "esb_test"

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

                assert elsewhere == [], "the page tried to reach another host"
                assert problems == []
            except BaseException as error:
                try:
                    page.screenshot(path=str(screenshot), full_page=True, timeout=TIMEOUT_MS)
                except Exception as screenshot_error:  # the browser may be gone: say so
                    screenshot = f"none ({screenshot_error})"
                note = f"screenshot: {screenshot}; browser problems: {problems}"
                print(note, file=sys.stderr)
                error.add_note(note)
                raise
        finally:
            context.close()


def test_the_api_docs_page_shows_every_call(chromium, sync_playwright, demo_server, tmp_path):
    origin = urlsplit(demo_server).netloc
    elsewhere: list[str] = []
    problems: list[str] = []

    def route(request_route) -> None:
        if urlsplit(request_route.request.url).netloc == origin:
            request_route.continue_()
        else:
            elsewhere.append(request_route.request.url)
            request_route.abort()

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            timeout=TIMEOUT_MS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            context.set_default_timeout(TIMEOUT_MS)
            context.route("**/*", route)
            page = context.new_page()
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on(
                "console",
                lambda message: message.type == "error" and problems.append(message.text),
            )
            page.on(
                "response",
                lambda response: (
                    response.status >= 400 and problems.append(f"{response.status} {response.url}")
                ),
            )
            try:
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
                assert elsewhere == [], "the page tried to reach another host"
                assert problems == []
            except BaseException as error:
                screenshot = tmp_path / "api-docs-failure.png"
                try:
                    page.screenshot(path=str(screenshot), full_page=True, timeout=TIMEOUT_MS)
                except Exception as screenshot_error:
                    screenshot = f"none ({screenshot_error})"
                error.add_note(f"screenshot: {screenshot}; browser problems: {problems}")
                raise
        finally:
            context.close()
