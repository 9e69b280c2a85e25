"""The GraphiQL page without a browser: served to browsers without credentials, every asset it
names served by the app itself (content-hashed names, cached for good, precompressed), nothing
fetched from any other host (intranets have no internet, so no CDN), the schema served to it
without credentials, and a newcomer's defaults (tabs, readable demo headers, the explorer)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from graphql import get_introspection_query

from cmdbgraph.app import create_app
from cmdbgraph.http import api_docs, graphiql
from cmdbgraph.http.graphql_view import introspection_only
from cmdbgraph.settings import Settings
from tests.support.calls import demo_headers

BASE = "http://testserver"
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}
CDN_WORDS = ("unpkg", "jsdelivr", "cdn", "esm.sh", "googleapis", "cloudflare")
README = Path(__file__).resolve().parents[1] / "README.md"
HASHED = re.compile(r"(?P<stem>.+)\.(?P<hash>[0-9a-f]{8})(?P<suffix>\.(?:js|css))")
IMMUTABLE = "public, max-age=31536000, immutable"
# What GraphiQL sends to load the schema.
INTROSPECTION = get_introspection_query(descriptions=True)


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


def _asset_urls(page: _Page) -> list[str]:
    return [urljoin(f"{BASE}/graphql", url) for url in page.urls if not url.startswith("data:")]


def _vendored_file(url: str, directory: Path = graphiql.STATIC_DIR) -> Path:
    """The file a content-hashed asset URL names; asserts the name hashes its content."""
    match = HASHED.fullmatch(url.rsplit("/", 1)[1])
    assert match, f"{url} is not a content-hashed name"
    path = directory / f"{match['stem']}{match['suffix']}"
    assert hashlib.sha256(path.read_bytes()).hexdigest()[:8] == match["hash"], url
    return path


async def _raw(client, url: str, **headers: str) -> tuple[httpx.Response, bytes]:
    """The response to a GET of ``url`` and its body as sent (not decoded by httpx)."""
    async with client.stream("GET", url, headers=headers) as response:
        return response, b"".join([chunk async for chunk in response.aiter_raw()])


def _boot_literal(script: str, name: str) -> object:
    """The JSON literal the boot script passes as GraphiQL's ``name`` prop."""
    match = re.search(rf"^    {name}: (.*),$", script, re.M)
    assert match, name
    return json.loads(match[1])


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


async def test_the_page_opens_ready_made_tabs(tmp_path):
    async with _client(tmp_path) as client:
        _, page = await _page(client)
    tabs = _boot_literal(page.inline_scripts[0], "defaultTabs")
    queries = [tab["query"] for tab in tabs]
    assert queries == [
        graphiql.DEFAULT_QUERY,
        graphiql.BATCH_TAB,
        graphiql.INSTANCE_TAB,
        graphiql.EVENTS_TAB,
    ]
    # GraphiQL names a tab after its operation: every tab's operation has a name.
    names = [
        re.search(r"^(?:query|mutation|subscription) (\w+)", query, re.M)[1] for query in queries
    ]
    assert names == ["Models", "BatchCreate", "Instance", "Events"]
    # The batch tab is the README's first GraphQL example, word for word.
    readme = README.read_text(encoding="utf-8")
    section = readme.split("\n## GraphQL\n", 1)[1].split("\n## ", 1)[0]
    example = re.findall(r"```graphql\n(.*?)```", section, re.S)[0]
    assert example == graphiql.BATCH_MUTATION
    assert graphiql.BATCH_TAB.endswith(example)
    assert "instance(bkInstId: 13)" in graphiql.INSTANCE_TAB
    assert "instAssociationEvents {" in graphiql.EVENTS_TAB


async def test_the_demo_headers_read_as_plain_json(tmp_path):
    async with _client(tmp_path) as client:
        _, page = await _page(client)
    text = _boot_literal(page.inline_scripts[0], "defaultHeaders")
    assert isinstance(text, str)
    # Indented, short lines, and the credentials a JSON object, not JSON escaped in a string.
    lines = text.splitlines()
    assert len(lines) > 3 and max(len(line) for line in lines) <= 40, text
    assert "\\" not in text
    assert json.loads(text) == {
        "X-Bkapi-Authorization": {
            "bk_app_code": "esb_test",
            "bk_app_secret": "xxx",
            "bk_username": "admin",
        }
    }
    # The page's fetcher sends such an object as its JSON text (what the server reads).
    assert "JSON.stringify(value)" in page.inline_scripts[0]


async def test_the_explorer_plugin_is_loaded_and_enabled(tmp_path):
    async with _client(tmp_path) as client:
        _, page = await _page(client)
    names = [HASHED.fullmatch(url.rsplit("/", 1)[1]) for url in page.urls if "explorer" in url]
    assert sorted(f"{m['stem']}{m['suffix']}" for m in names if m) == [
        "graphiql-plugin-explorer.css",
        "graphiql-plugin-explorer.umd.js",
    ]
    assert "plugins: [GraphiQLPluginExplorer.explorerPlugin()]" in page.inline_scripts[0]
    # Its UMD build reads the globals the page's GraphiQL sets.
    plugin = (graphiql.STATIC_DIR / "graphiql-plugin-explorer.umd.js").read_text()
    assert "z.GraphiQLPluginExplorer={},z.React,z.GraphiQL.React,z.GraphiQL.GraphQL" in plugin


async def test_subscriptions_go_over_the_vendored_websocket_client(tmp_path):
    async with _client(tmp_path) as client:
        _, page = await _page(client)
    names = [HASHED.fullmatch(url.rsplit("/", 1)[1]) for url in page.urls if "graphql-ws" in url]
    assert [f"{m['stem']}{m['suffix']}" for m in names if m] == ["graphql-ws.min.js"]
    assert "graphqlWs.createClient({" in page.inline_scripts[0]
    assert 'operation.operation === "subscription"' in page.inline_scripts[0]
    # Its UMD build sets the global the boot script reads.
    client = (graphiql.STATIC_DIR / "graphql-ws.min.js").read_text()
    assert ".graphqlWs={}" in client


async def test_every_asset_is_served_by_the_app(tmp_path):
    async with _client(tmp_path) as client:
        _, page = await _page(client)
        assets = _asset_urls(page)
        assert sorted(_vendored_file(url).name for url in assets) == sorted(
            graphiql.SCRIPTS + graphiql.STYLESHEETS
        )
        for url in assets:
            assert urlsplit(url).path.startswith("/static/graphiql/"), url
            response, body = await _raw(client, url, **{"Accept-Encoding": "identity"})
            assert response.status_code == 200, url
            suffix = url[url.rindex(".") :]
            assert response.headers["content-type"].startswith(CONTENT_TYPES[suffix]), url
            assert "content-encoding" not in response.headers
            assert body == _vendored_file(url).read_bytes()


async def test_assets_are_served_compressed_and_cached_for_good(tmp_path):
    async with _client(tmp_path) as client:
        _, page = await _page(client)
        for url in _asset_urls(page):
            original = _vendored_file(url)
            brotli = original.with_name(original.name + ".br").read_bytes()
            gzipped = original.with_name(original.name + ".gz").read_bytes()
            assert gzip.decompress(gzipped) == original.read_bytes()
            assert len(brotli) < len(original.read_bytes())
            for accept, encoding, body in (
                ("gzip, deflate, br, zstd", "br", brotli),  # what Chromium sends
                ("gzip, deflate", "gzip", gzipped),
                ("br;q=0, gzip", "gzip", gzipped),
                ("gzip;q=0.5, br;q=0.8", "br", brotli),
                ("*", "br", brotli),
                ("identity", None, original.read_bytes()),
                ("", None, original.read_bytes()),
            ):
                response, sent = await _raw(client, url, **{"Accept-Encoding": accept})
                assert response.status_code == 200, (url, accept)
                assert response.headers.get("content-encoding") == encoding, (url, accept)
                assert sent == body, (url, accept)
                assert response.headers["content-length"] == str(len(body))
                assert response.headers["vary"] == "Accept-Encoding"
                assert response.headers["cache-control"] == IMMUTABLE
                suffix = url[url.rindex(".") :]
                assert response.headers["content-type"].startswith(CONTENT_TYPES[suffix])
                # A revalidation (rare, with such a cache) is answered without the body.
                etag = response.headers["etag"]
                again = await client.get(
                    url, headers={"Accept-Encoding": accept, "If-None-Match": etag}
                )
                assert again.status_code == 304 and again.content == b""
            # HEAD answers the headers only.
            head = await client.head(url, headers={"Accept-Encoding": "br"})
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == str(len(brotli))


async def test_plain_names_revalidate_and_others_are_not_found(tmp_path):
    async with _client(tmp_path) as client:
        plain, body = await _raw(
            client, "/static/graphiql/graphiql.min.js", **{"Accept-Encoding": "gzip"}
        )
        assert plain.status_code == 200 and plain.headers["content-encoding"] == "gzip"
        assert plain.headers["cache-control"] == "no-cache"
        assert gzip.decompress(body) == (graphiql.STATIC_DIR / "graphiql.min.js").read_bytes()
        licence = await client.get("/static/graphiql/LICENSE.graphiql-plugin-explorer")
        assert licence.status_code == 200 and "MIT License" in licence.text
        for missing in (
            "/static/graphiql/graphiql.min.00000000.js",  # another version's name
            "/static/graphiql/graphiql.min.js.gz",  # a compressed copy is never named
            "/static/graphiql/nothing.js",
        ):
            response = await client.get(missing)
            assert response.status_code == 404, missing
        posted = await client.post("/static/graphiql/graphiql.min.js")
        assert posted.status_code == 405


async def test_the_api_docs_assets_are_hashed_and_compressed_too(tmp_path):
    async with _client(tmp_path) as client:
        page = await client.get("/api/docs")
        urls = re.findall(r'(?:src|href)="(\.\./static/swagger-ui/[^"]+)"', page.text)
        assert len(urls) == 2
        for url in urls:
            absolute = urljoin(f"{BASE}/api/docs", url)
            original = _vendored_file(absolute, api_docs.STATIC_DIR)
            response, sent = await _raw(client, absolute, **{"Accept-Encoding": "gzip"})
            assert response.status_code == 200
            assert response.headers["content-encoding"] == "gzip"
            assert response.headers["cache-control"] == IMMUTABLE
            assert gzip.decompress(sent) == original.read_bytes()


async def test_no_other_host_is_named(tmp_path):
    async with _client(tmp_path) as client:
        response, page = await _page(client)
        stylesheets = [
            (await client.get(urljoin(f"{BASE}/graphql", url))).text
            for url in page.urls
            if url.endswith(".css")
        ]
    assert len(stylesheets) == len(graphiql.STYLESHEETS)
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
    assert policy["script-src"].split()[0] == "'self'"
    assert len(policy["script-src"].split()) == 2  # this server, and the boot script by hash
    assert not re.search(r"https?:|\*|'unsafe-eval'", response.headers["content-security-policy"])
    # The inline script that starts GraphiQL is the one the policy allows by its hash.
    digest = hashlib.sha256(page.inline_scripts[0].encode()).digest()
    assert f"'sha256-{base64.b64encode(digest).decode()}'" in policy["script-src"].split()


@pytest.mark.parametrize("directory", [graphiql.STATIC_DIR, api_docs.STATIC_DIR])
async def test_the_vendored_files_match_their_recorded_checksums(directory):
    recorded = directory.joinpath("VERSIONS").read_text(encoding="utf-8")
    files = recorded.split("files (sha256):", 1)[1]
    sums = dict(reversed(line.split()) for line in files.strip().splitlines())
    # Every file but VERSIONS itself is recorded, the compressed copies included.
    on_disk = sorted(path.name for path in directory.iterdir() if path.name != "VERSIONS")
    assert sorted(sums) == on_disk
    for name, recorded_sum in sums.items():
        actual = hashlib.sha256((directory / name).read_bytes()).hexdigest()
        assert recorded_sum == actual, f"{name} differs from VERSIONS: run scripts/vendor-*.sh"
    scripts_and_styles = [name for name in on_disk if name.endswith((".js", ".css"))]
    for name in scripts_and_styles:
        assert f"{name}.br" in sums and f"{name}.gz" in sums, name


async def test_the_vendored_licences_are_there():
    for licence in (
        "LICENSE.graphiql",
        "LICENSE.react",
        "LICENSE.react-dom",
        "LICENSE.graphiql-plugin-explorer",
        "LICENSE.graphiql-explorer",
        "LICENSE.graphql-ws",
    ):
        assert "MIT License" in (graphiql.STATIC_DIR / licence).read_text(), licence
    versions = (graphiql.STATIC_DIR / "VERSIONS").read_text()
    assert "@graphiql/plugin-explorer 3.2.6 (MIT)" in versions
    assert "graphiql 3.9.0 (MIT)" in versions
    assert "graphql-ws 6.4.2 (MIT)" in versions


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


# ---------------------------------------------------------------------------------------------
# The schema, to anyone while introspection is on (the data never)


def _unknown_app() -> dict[str, str]:
    return {"X-Bkapi-Authorization": json.dumps({"bk_app_code": "no_app", "bk_app_secret": "x"})}


def _wrong_secret() -> dict[str, str]:
    return {"X-Bkapi-Authorization": json.dumps({"bk_app_code": "esb_test", "bk_app_secret": "y"})}


@pytest.mark.parametrize(
    "headers",
    [{}, _unknown_app(), _wrong_secret(), {"X-Bkapi-Authorization": "{not json"}, demo_headers()],
    ids=["no-credentials", "unknown-app", "wrong-secret", "malformed", "good-credentials"],
)
async def test_the_schema_is_served_without_credentials(client, headers):
    """GraphiQL's own introspection query (what it sends before anyone has an app), with no
    credentials, refused ones or good ones."""
    posted = await client.post("/graphql", json={"query": INTROSPECTION}, headers=headers)
    got = await client.get(
        "/graphql", params={"query": '{ __type(name: "Query") { name } }'}, headers=headers
    )
    assert posted.status_code == 200, posted.text
    schema = posted.json()["data"]["__schema"]
    assert schema["queryType"]["name"] == "Query"
    assert {"Query", "Mutation", "Instance"} <= {t["name"] for t in schema["types"]}
    assert got.status_code == 200 and got.json() == {"data": {"__type": {"name": "Query"}}}
    # The data still needs the credentials.
    data = await client.post("/graphql", json={"query": "{ models { bkObjId } }"}, headers=headers)
    assert data.status_code == (200 if headers == demo_headers() else 401)


async def test_the_schema_needs_no_database(tmp_path):
    """Without credentials, introspection reads nothing: here there is no database at all."""
    async with _client(tmp_path) as client:
        response = await client.post("/graphql", json={"query": INTROSPECTION})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["__schema"]["queryType"]["name"] == "Query"
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(
    "query",
    [
        "{ __schema { types { name } } models { bkObjId } }",
        "{ __typename ... on Query { models { bkObjId } } }",
        "query { ...Data } fragment Data on Query { models { bkObjId } }",
        "query A { __typename } query B { models { bkObjId } }",
        "mutation { __typename }",
        "{ __schema { types { name } }",  # a syntax error: the normal path answers it
        "{ models { bkObjId __typename } }",
    ],
)
async def test_anything_else_still_needs_credentials(tmp_path, query):
    async with _client(tmp_path) as client:
        for response in (
            await client.post("/graphql", json={"query": query}),
            await client.get("/graphql", params={"query": query}),
        ):
            assert response.status_code == 401, (query, response.text)
            (error,) = response.json()["errors"]
            assert error["extensions"]["code"] == "CALL_SOURCE_AUTHENTICATION_FAILED"


async def test_no_schema_without_credentials_when_introspection_is_off(tmp_path, monkeypatch):
    monkeypatch.setenv("CMDBGRAPH_INTROSPECTION", "false")
    async with _client(tmp_path) as client:
        for query in (INTROSPECTION, "{ __typename }"):
            response = await client.post("/graphql", json={"query": query})
            assert response.status_code == 401, response.text
            assert (
                response.json()["errors"][0]["extensions"]["code"]
                == "CALL_SOURCE_AUTHENTICATION_FAILED"
            )


@pytest.mark.parametrize(
    ("query", "only"),
    [
        (INTROSPECTION, True),
        ("{ __typename }", True),
        ('{ a: __schema { queryType { name } } b: __type(name: "X") { name } }', True),
        ("query { ...S } fragment S on Query { __schema { types { name } } }", True),
        ("query { ... on Query { ... @include(if: true) { __typename } } }", True),
        (
            "query { ...A } fragment A on Query { __typename ...A }",
            True,
        ),  # a cycle: validation refuses it
        ("query { ...Missing }", False),
        ("{ __schema { types { name } } models { bkObjId } }", False),
        ("{ __typename ... on Query { models { bkObjId } } }", False),
        (
            "query { ...S } fragment S on Query { __typename ...T } fragment T on Query { models }",
            False,
        ),
        ("subscription { __typename }", False),
        ("type Query { a: Int }", False),
        ("{ models { bkObjId } }", False),
        ("{ __schema ", False),
        ("", False),
        ("{" * 100_000 + "__typename" + "}" * 100_000, False),
    ],
)
def test_what_counts_as_introspection_only(query, only):
    assert introspection_only(query, max_tokens=10_000) is only
