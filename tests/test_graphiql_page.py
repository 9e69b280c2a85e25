"""The GraphiQL page without a browser: served to browsers without credentials, every asset it
names served by the app itself, and nothing fetched from any other host (intranets have no
internet, so no CDN)."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from cmdbgraph.app import create_app
from cmdbgraph.http import graphiql
from cmdbgraph.settings import Settings
from tests.support.calls import demo_headers

BASE = "http://testserver"
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}
CDN_WORDS = ("unpkg", "jsdelivr", "cdn", "esm.sh", "googleapis", "cloudflare")


class _Page(HTMLParser):
    """Collects the URLs the page loads and the text of its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script" and "src" not in attributes:
            self._in_inline_script = True
            self.inline_scripts.append("")
        for name in ("src", "href"):
            if attributes.get(name):
                self.urls.append(attributes[name])

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_inline_script = False

    def handle_data(self, data):
        if self._in_inline_script:
            self.inline_scripts[-1] += data


def _client(tmp_path, **settings) -> httpx.AsyncClient:
    # The page and its assets need no database: the app is never started (no lifespan).
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", **settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


async def _page(client) -> tuple[httpx.Response, _Page]:
    response = await client.get("/graphql", headers=BROWSER)
    parsed = _Page()
    parsed.feed(response.text)
    return response, parsed


async def test_browsers_get_the_page_without_credentials(tmp_path):
    async with _client(tmp_path) as client:
        response, page = await _page(client)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>cmdbgraph GraphiQL</title>" in response.text
    # The newcomer's defaults: a query to run and the demo credentials in the headers editor.
    assert "query Models" in response.text
    assert "esb_test" in response.text and "isHeadersEditorEnabled: true" in response.text
    assert len(page.inline_scripts) == 1


async def test_every_asset_is_served_by_the_app(tmp_path):
    async with _client(tmp_path) as client:
        _, page = await _page(client)
        assets = [
            urljoin(f"{BASE}/graphql", url) for url in page.urls if not url.startswith("data:")
        ]
        assert sorted(urlsplit(url).path for url in assets) == sorted(
            f"/static/graphiql/{name}" for name in graphiql.SCRIPTS + graphiql.STYLESHEETS
        )
        for url in assets:
            response = await client.get(url)
            assert response.status_code == 200, url
            suffix = url[url.rindex(".") :]
            assert response.headers["content-type"].startswith(CONTENT_TYPES[suffix]), url
            name = url.rsplit("/", 1)[1]
            assert response.content == (graphiql.STATIC_DIR / name).read_bytes()


async def test_no_other_host_is_named(tmp_path):
    async with _client(tmp_path) as client:
        response, page = await _page(client)
        stylesheets = [
            (await client.get(urljoin(f"{BASE}/graphql", url))).text
            for url in page.urls
            if url.endswith(".css")
        ]
    html = response.text.lower()
    assert re.findall(r"https?://", html) == []
    assert re.findall(r"(?<![\w-])//[\w.-]+", "\n".join(page.urls)) == []  # protocol-relative
    for word in CDN_WORDS:
        assert word not in html, word
    for url in page.urls:
        assert url.startswith("data:") or urlsplit(url)[:2] == ("", ""), url
    # A stylesheet may embed fonts and icons as data: URIs, never fetch from elsewhere.
    for css in stylesheets:
        assert re.findall(r"url\(\s*['\"]?(?!data:)[^)]*\)", css) == []
        assert "@import" not in css


async def test_the_policy_keeps_the_browser_on_this_server(tmp_path):
    async with _client(tmp_path) as client:
        response, page = await _page(client)
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert not re.search(r"https?:|\*", response.headers["content-security-policy"])
    # The inline script that starts GraphiQL is the one the policy allows by its hash.
    digest = hashlib.sha256(page.inline_scripts[0].encode()).digest()
    assert f"'sha256-{base64.b64encode(digest).decode()}'" in policy["script-src"].split()


async def test_the_vendored_files_match_their_recorded_checksums():
    recorded = graphiql.STATIC_DIR.joinpath("VERSIONS").read_text(encoding="utf-8")
    files = recorded.split("files (sha256):", 1)[1]
    sums = dict(reversed(line.split()) for line in files.strip().splitlines())
    for name in (*graphiql.SCRIPTS, *graphiql.STYLESHEETS):
        actual = hashlib.sha256((graphiql.STATIC_DIR / name).read_bytes()).hexdigest()
        assert sums[name] == actual, f"{name} differs from VERSIONS: run scripts/vendor-graphiql.sh"
    for license_name in ("LICENSE.graphiql", "LICENSE.react", "LICENSE.react-dom"):
        assert (graphiql.STATIC_DIR / license_name).is_file()


async def test_no_page_when_graphiql_is_off(database_url):
    app = create_app(Settings(database_url=database_url, graphiql=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        anonymous = await client.get("/graphql", headers=BROWSER)
        # An authenticated browser asking for the page: it is switched off, so not found.
        signed_in = await client.get("/graphql", headers={**BROWSER, **demo_headers()})
    assert anonymous.status_code == 401
    assert signed_in.status_code == 404
    assert signed_in.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    for response in (anonymous, signed_in):
        assert "graphiql" not in response.text.lower()
        assert "<html" not in response.text.lower()
    await app.state.db.dispose()


@pytest.mark.parametrize("accept", ["text/html", "application/json"])
async def test_a_get_carrying_a_query_needs_credentials_even_from_a_browser(tmp_path, accept):
    async with _client(tmp_path) as client:
        response = await client.get(
            "/graphql", params={"query": "{ models { bkObjId } }"}, headers={"Accept": accept}
        )
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "CALL_SOURCE_AUTHENTICATION_FAILED"
