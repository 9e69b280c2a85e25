"""The topology page (GET /topology) without a browser: served to browsers without credentials,
no inline script, a policy that keeps the browser on this server, every file it loads served by
the app itself under a content-hashed name, the vendored graph library as VERSIONS records it
(checksums, licence, precompressed copies), and the page's GraphQL documents valid against the
schema and answering on the demo data. tests/test_browser.py drives it in Chromium."""

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
from graphql import parse, validate

from cmdbgraph.api import build_schema
from cmdbgraph.app import create_app
from cmdbgraph.http import graphiql, topology_page
from cmdbgraph.settings import Settings
from tests.support.calls import graphql

BASE = "http://testserver"
PAGE_URL = f"{BASE}{topology_page.PAGE_PATH}"
ROOT = Path(__file__).resolve().parents[1]
DIRECTORY = topology_page.STATIC_DIR
HASHED = re.compile(r"(?P<stem>.+)\.(?P<hash>[0-9a-f]{8})(?P<suffix>\.(?:js|css))")
IMMUTABLE = "public, max-age=31536000, immutable"
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}
PAGE_SCRIPT = (DIRECTORY / "topology.js").read_text(encoding="utf-8")


class _Page(HTMLParser):
    """The page's scripts (src or inline text), the URLs it loads and its textareas' text."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []  # src of each <script src>
        self.inline_scripts: list[str] = []
        self.urls: list[str] = []  # every src and href
        self.links: list[str] = []  # <a href>
        self.textareas: dict[str, str] = {}
        self.style_attributes: list[str] = []
        self._in: tuple[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if "style" in attributes:
            self.style_attributes.append(tag)
        if tag == "script":
            if attributes.get("src"):
                self.scripts.append(attributes["src"])
            else:
                self._in = ("script", "")
                self.inline_scripts.append("")
        if tag == "textarea":
            self._in = ("textarea", attributes.get("id") or "")
            self.textareas[self._in[1]] = ""
        if tag == "a":
            self.links.append(attributes.get("href") or "")
        elif attributes.get("src") or attributes.get("href"):
            self.urls.append(attributes.get("src") or attributes.get("href") or "")

    def handle_endtag(self, tag):
        if self._in and tag == self._in[0]:
            self._in = None

    def handle_data(self, data):
        if self._in and self._in[0] == "script":
            self.inline_scripts[-1] += data
        elif self._in and self._in[0] == "textarea":
            self.textareas[self._in[1]] += data


def _client(tmp_path, **settings) -> httpx.AsyncClient:
    # The page and its files need no database: the app is never started (no lifespan).
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", **settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


async def _page(client) -> tuple[httpx.Response, _Page]:
    response = await client.get(topology_page.PAGE_PATH, headers={"Accept": "text/html"})
    parsed = _Page()
    parsed.feed(response.text)
    return response, parsed


def _asset_urls(page: _Page) -> list[str]:
    return [urljoin(PAGE_URL, url) for url in page.urls if not url.startswith("data:")]


def _vendored_file(url: str) -> Path:
    """The file a content-hashed asset URL names; asserts the name hashes its content."""
    match = HASHED.fullmatch(url.rsplit("/", 1)[1])
    assert match, f"{url} is not a content-hashed name"
    path = DIRECTORY / f"{match['stem']}{match['suffix']}"
    assert hashlib.sha256(path.read_bytes()).hexdigest()[:8] == match["hash"], url
    return path


async def _raw(client, url: str, **headers: str) -> tuple[httpx.Response, bytes]:
    """The response to a GET of ``url`` and its body as sent (not decoded by httpx)."""
    async with client.stream("GET", url, headers=headers) as response:
        return response, b"".join([chunk async for chunk in response.aiter_raw()])


def _policy(response: httpx.Response) -> dict[str, str]:
    return dict(
        directive.strip().split(" ", 1)
        for directive in response.headers["content-security-policy"].split(";")
    )


def _documents() -> dict[str, str]:
    """The GraphQL documents of the page's script, by constant name."""
    constants = re.findall(r'^  const (\w+) = (?:`([^`]*)`|"([^"]*)");$', PAGE_SCRIPT, re.M)
    found = {
        name: backquoted or quoted
        for name, backquoted, quoted in constants
        if re.match(r"\s*query\b", backquoted or quoted)
    }
    assert sorted(found) == ["MODELS", "NEIGHBOURHOOD", "SEARCH"], sorted(found)
    return found


# ---------------------------------------------------------------------------------------------
# The page


async def test_browsers_get_the_page_without_credentials(tmp_path):
    async with _client(tmp_path) as client:
        response, page = await _page(client)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>cmdbgraph topology</title>" in response.text
    for control in ('id="name"', 'id="results"', 'id="depth"', 'id="reset"', 'id="legend"'):
        assert control in response.text, control
    assert re.findall(r'<option value="(\d)"', response.text) == ["1", "2", "3"]
    # The demo credentials, as readable JSON, in the box whose value the page sends.
    assert json.loads(page.textareas["credentials"]) == graphiql.DEMO_CREDENTIALS
    assert "X-Bkapi-Authorization" in response.text
    # A link back to GraphiQL, relative (so it works under a proxy's prefix).
    assert "graphql" in page.links


async def test_no_inline_script_and_no_inline_style(tmp_path):
    async with _client(tmp_path) as client:
        response, page = await _page(client)
    assert page.inline_scripts == []
    assert page.style_attributes == []
    assert "<style" not in response.text
    assert [_vendored_file(urljoin(PAGE_URL, src)).name for src in page.scripts] == list(
        topology_page.SCRIPTS
    )


async def test_the_policy_keeps_the_browser_on_this_server(tmp_path):
    async with _client(tmp_path) as client:
        response, _ = await _page(client)
    policy = _policy(response)
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"  # no inline script at all, no eval
    assert policy["connect-src"] == "'self'"
    assert policy["base-uri"] == "'none'" and policy["form-action"] == "'none'"
    header = response.headers["content-security-policy"]
    assert not re.search(r"https?:|\*|'unsafe-", header), header
    # Styles from this server, and the one rule Cytoscape.js adds to the document, by its hash.
    digest = hashlib.sha256(topology_page.CYTOSCAPE_STYLE.encode()).digest()
    assert policy["style-src"].split() == [
        "'self'",
        f"'sha256-{base64.b64encode(digest).decode()}'",
    ]


def test_the_hashed_style_is_the_one_the_library_adds():
    library = (DIRECTORY / "cytoscape.min.js").read_text(encoding="utf-8")
    # It builds the rule as "." + the container's class + " { position: relative; }".
    assert 's="__________cytoscape_container"' in library
    assert '"."+s+" { position: relative; }"' in library
    assert topology_page.CYTOSCAPE_STYLE == ".__________cytoscape_container { position: relative; }"


async def test_every_file_is_served_by_the_app(tmp_path):
    async with _client(tmp_path) as client:
        _, page = await _page(client)
        assets = _asset_urls(page)
        assert sorted(_vendored_file(url).name for url in assets) == sorted(
            topology_page.SCRIPTS + topology_page.STYLESHEETS
        )
        for url in assets:
            assert urlsplit(url).path.startswith("/static/topology/"), url
            path = _vendored_file(url)
            response, body = await _raw(client, url, **{"Accept-Encoding": "br, gzip"})
            assert response.status_code == 200, url
            suffix = url[url.rindex(".") :]
            assert response.headers["content-type"].startswith(CONTENT_TYPES[suffix]), url
            assert response.headers["cache-control"] == IMMUTABLE, url
            if path.name in topology_page.PAGE_FILES:
                # The page's own files: as they are (no compressed copy to go stale).
                assert "content-encoding" not in response.headers, url
                assert body == path.read_bytes(), url
            else:
                assert response.headers["content-encoding"] == "br", url
                assert response.headers["vary"] == "Accept-Encoding", url
                # The committed copy (precompress.mjs checked that it decompresses to the file).
                assert body == path.with_name(path.name + ".br").read_bytes(), url
                response, body = await _raw(client, url, **{"Accept-Encoding": "gzip"})
                assert response.headers["content-encoding"] == "gzip", url
                assert gzip.decompress(body) == path.read_bytes(), url
        licence = await client.get("/static/topology/LICENSE.cytoscape")
        assert licence.status_code == 200 and "Permission is hereby granted" in licence.text
        for missing in ("/static/topology/cytoscape.min.00000000.js", "/static/topology/x.js"):
            assert (await client.get(missing)).status_code == 404, missing


async def test_no_other_host_is_named(tmp_path):
    async with _client(tmp_path) as client:
        response, page = await _page(client)
    html = response.text.lower()
    assert re.findall(r"https?://", html) == []
    for url in [*page.urls, *page.links]:
        assert url.startswith("data:") or urlsplit(url)[:2] == ("", ""), url
    assert re.findall(r"https?://", PAGE_SCRIPT) == []
    css = (DIRECTORY / "topology.css").read_text(encoding="utf-8")
    assert re.findall(r"url\(", css) == [] and "@import" not in css


async def test_no_page_when_graphiql_is_off(tmp_path):
    async with _client(tmp_path, graphiql=False) as client:
        response = await client.get(topology_page.PAGE_PATH, headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "<html" not in response.text.lower()


# ---------------------------------------------------------------------------------------------
# The page's script


def test_the_script_posts_to_the_endpoint_beside_the_page_with_the_credentials():
    assert 'new URL("graphql", window.location.href)' in PAGE_SCRIPT
    assert 'method: "POST"' in PAGE_SCRIPT
    assert 'const CREDENTIALS_HEADER = "X-Bkapi-Authorization";' in PAGE_SCRIPT
    # An object is sent as its JSON text, as GraphiQL sends it.
    assert "JSON.stringify(value)" in PAGE_SCRIPT
    # Nothing is kept in the browser; nothing is evaluated.
    for word in ("localStorage", "sessionStorage", "document.cookie", "indexedDB", "eval("):
        assert word not in PAGE_SCRIPT, word
    assert "new Function" not in PAGE_SCRIPT
    assert "window.topology = cy;" in PAGE_SCRIPT


def test_the_documents_are_valid_against_the_schema():
    schema = build_schema(Settings())._schema
    documents = _documents()
    for name, document in documents.items():
        assert validate(schema, parse(document)) == [], name
    assert "instancesConnection(nameContains: $name, first: $first)" in documents["SEARCH"]
    assert "const SEARCH_SIZE = 20;" in PAGE_SCRIPT
    assert "topology(depth: $depth, maxNodes: $maxNodes)" in documents["NEIGHBOURHOOD"]
    assert "const MAX_NODES = 200;" in PAGE_SCRIPT  # the server's default cap
    for field in ("bkAsstId", "bkObjId", "bkInstName", "truncated"):
        assert field in documents["NEIGHBOURHOOD"], field


def _neighbourhood(bk_inst_id: int, depth: int) -> dict[str, int]:
    """The variables the page sends with NEIGHBOURHOOD."""
    return {"bkInstId": bk_inst_id, "depth": depth, "maxNodes": 200}


async def test_the_documents_answer_on_the_demo_data(client):
    """What the page asks, on the demo data with switch 11 -> hosts 21, 22, 13 -> 22."""
    documents = _documents()
    created = await graphql(
        client,
        """mutation { batchCreateInstAssociations(input: {bkObjId: "bk_switch",
          bkAsstObjId: "host", bkObjAsstId: "bk_switch_belong_host",
          details: [{bkInstId: 11, bkAsstInstId: 21}, {bkInstId: 11, bkAsstInstId: 22},
                    {bkInstId: 13, bkAsstInstId: 22}]}) {
          ... on BatchCreateInstAssociationsPayload { createdCount } } }""",
    )
    assert created["data"]["batchCreateInstAssociations"] == {"createdCount": 3}

    found = await graphql(client, documents["SEARCH"], {"name": "sw-0", "first": 20})
    names = [edge["node"]["bkInstName"] for edge in found["data"]["instancesConnection"]["edges"]]
    assert names == ["sw-01", "sw-02", "sw-03"]
    nothing = await graphql(client, documents["SEARCH"], {"name": "no-such", "first": 20})
    assert nothing == {"data": {"instancesConnection": {"edges": []}}}

    models = await graphql(client, documents["MODELS"])
    assert {"bk_switch", "host"} <= {model["bkObjId"] for model in models["data"]["models"]}

    drawn = await graphql(client, documents["NEIGHBOURHOOD"], _neighbourhood(11, 1))
    topology = drawn["data"]["instance"]["topology"]
    assert [node["instance"]["bkInstName"] for node in topology["nodes"]] == [
        "sw-01",
        "10.0.0.1",
        "10.0.0.2",
    ]
    assert {edge["association"]["bkAsstId"] for edge in topology["edges"]} == {"belong"}
    # Fewer than maxNodes, yet truncated: there is more beyond depth 1 (sw-02, through 22).
    assert topology["truncated"] is True
    deeper = await graphql(client, documents["NEIGHBOURHOOD"], _neighbourhood(11, 3))
    topology = deeper["data"]["instance"]["topology"]
    assert [node["instance"]["bkInstName"] for node in topology["nodes"]][-1] == "sw-02"
    assert topology["truncated"] is False
    missing = await graphql(client, documents["NEIGHBOURHOOD"], _neighbourhood(999, 1))
    assert missing["data"] == {"instance": None}


# ---------------------------------------------------------------------------------------------
# The vendored library


def test_the_vendored_files_match_their_recorded_checksums():
    recorded = (DIRECTORY / "VERSIONS").read_text(encoding="utf-8")
    files = recorded.split("files (sha256):", 1)[1]
    sums = dict(reversed(line.split()) for line in files.strip().splitlines())
    # Every file but VERSIONS and the page's own files is recorded, compressed copies included.
    on_disk = sorted(path.name for path in DIRECTORY.iterdir() if path.name != "VERSIONS")
    assert sorted(sums) == sorted(set(on_disk) - set(topology_page.PAGE_FILES))
    for name, recorded_sum in sums.items():
        actual = hashlib.sha256((DIRECTORY / name).read_bytes()).hexdigest()
        assert recorded_sum == actual, (
            f"{name} differs from VERSIONS: run scripts/vendor-topology.sh"
        )
    for name in sums:
        if name.endswith((".js", ".css")):
            assert f"{name}.br" in sums and f"{name}.gz" in sums, name
    # The page's own files are there, with no compressed copies that could go stale.
    for name in topology_page.PAGE_FILES:
        assert (DIRECTORY / name).is_file(), name
        assert not (DIRECTORY / f"{name}.br").exists() and not (DIRECTORY / f"{name}.gz").exists()


def test_the_pinned_version_and_its_licence():
    script = (ROOT / "scripts" / "vendor-topology.sh").read_text(encoding="utf-8")
    (version,) = re.findall(r"^CYTOSCAPE_VERSION=(\d+\.\d+\.\d+)$", script, re.M)
    versions = (DIRECTORY / "VERSIONS").read_text(encoding="utf-8")
    assert f"cytoscape {version} (MIT)" in versions
    assert f"cytoscape-{version}.tgz" in versions
    licence = (DIRECTORY / "LICENSE.cytoscape").read_text(encoding="utf-8")
    assert "The Cytoscape Consortium" in licence and "Permission is hereby granted" in licence
    # The minified UMD build: it sets the global the page's script reads.
    library = (DIRECTORY / "cytoscape.min.js").read_text(encoding="utf-8")
    assert ".cytoscape=" in library and "cytoscape({" in PAGE_SCRIPT


# ---------------------------------------------------------------------------------------------
# Where it is found


def test_graphiql_and_the_readme_point_to_it():
    assert "/topology" in graphiql.DEFAULT_QUERY
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "<http://127.0.0.1:8000/topology>" in readme and "vendor-topology.sh" in readme
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"static/topology/*"' in pyproject
