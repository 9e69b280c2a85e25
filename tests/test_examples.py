"""The front-end examples in ``examples/``: every ``.graphql`` file is one named operation that
validates against the schema and is described in ``examples/README.md``, and ``run.mjs`` runs
them with the pinned Node.js clients (graphql-request, graphql-ws) against a real
``cmdbgraph serve`` on both databases.

Needs Node.js and npm; the pinned packages are installed from the npm registry once per test
session. Without them the tests fail rather than skip: the README's test command runs them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from graphql import OperationDefinitionNode, parse, validate

from cmdbgraph.api import build_schema
from tests.support.calls import demo_headers
from tests.support.servers import live_server

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DOCUMENTS = sorted(EXAMPLES.glob("*.graphql"))
# What run.mjs needs beside the documents; node_modules and the lock file stay out of the tree.
SCRIPT_FILES = ("run.mjs", "package.json")

# The pairs the test creates before the script runs (bk_switch_belong_host, n:n), and the one
# the script creates.
EXISTING = [(11, 21), (11, 22), (11, 23), (13, 21), (13, 22), (13, 23), (14, 21), (14, 22)]
PAIR = (14, 23)
PAGE_SIZE = 3


def test_the_examples_are_the_operations_a_front_end_needs():
    operations = {
        path.name: [
            (d.operation.value, d.name.value if d.name else None)
            for d in parse(path.read_text(encoding="utf-8")).definitions
            if isinstance(d, OperationDefinitionNode)
        ]
        for path in DOCUMENTS
    }
    for name, kind in [
        ("associations.graphql", "query"),
        ("neighbourhood.graphql", "query"),
        ("batch-create.graphql", "mutation"),
        ("refetch.graphql", "query"),
        ("watch.graphql", "subscription"),
        ("topology.graphql", "query"),
    ]:
        assert name in operations, f"examples/{name} is missing"
        assert operations[name][0][0] == kind, f"examples/{name} is not a {kind}"


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: path.name)
def test_every_example_validates_against_the_schema(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#"), f"examples/{path.name} needs a comment saying what it is for"
    document = parse(text)
    errors = validate(build_schema()._schema, document)
    assert not errors, f"examples/{path.name}:\n" + "\n".join(str(e) for e in errors)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    assert len(operations) == 1 and operations[0].name, (
        f"examples/{path.name} must hold exactly one named operation"
    )


def test_every_example_file_is_described_in_the_examples_readme():
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`([\w.-]+\.(?:graphql|mjs|json))`", readme))
    files = {path.name for path in DOCUMENTS} | set(SCRIPT_FILES)
    assert files <= listed, f"not in examples/README.md: {sorted(files - listed)}"
    assert listed <= files | {"package-lock.json"}, (
        f"examples/README.md names files that do not exist: {sorted(listed - files)}"
    )


def test_the_node_clients_are_pinned_exactly():
    package = json.loads((EXAMPLES / "package.json").read_text(encoding="utf-8"))
    dependencies = package["dependencies"]
    assert {"graphql-request", "graphql-ws", "graphql", "ws"} <= set(dependencies)
    for name, version in dependencies.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} is not pinned: {version}"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: tests/test_examples.py runs examples/run.mjs with "
            "Node.js 20 or later and npm (e.g. apt-get install nodejs npm)"
        )
    return path


@pytest.fixture(scope="session")
def examples_with_packages(tmp_path_factory) -> Path:
    """A copy of examples/ with its pinned packages installed (npm install, once a session):
    ES modules resolve packages from the script's own folder, so the script runs there."""
    node, npm = _tool("node"), _tool("npm")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    major = int(re.match(r"v(\d+)", version.stdout).group(1))
    assert major >= 20, f"examples/run.mjs needs Node.js 20 or later, found {version.stdout}"
    folder = tmp_path_factory.mktemp("examples")
    for path in [*DOCUMENTS, *(EXAMPLES / name for name in SCRIPT_FILES)]:
        shutil.copy(path, folder / path.name)
    done = subprocess.run(
        [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"npm install failed:\n{done.stdout}\n{done.stderr}"
    return folder


def _run_script(folder: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_tool("node"), "run.mjs", url, *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _create(url: str, pairs: list[tuple[int, int]]) -> list[int]:
    """Create ``pairs`` with the batch-create example; their association ids."""
    variables = {
        "input": {
            "bkObjId": "bk_switch",
            "bkAsstObjId": "host",
            "bkObjAsstId": "bk_switch_belong_host",
            "details": [{"bkInstId": s, "bkAsstInstId": t} for s, t in pairs],
        }
    }
    query = (EXAMPLES / "batch-create.graphql").read_text(encoding="utf-8")
    reply = httpx.post(
        f"{url}/graphql",
        json={"query": query, "variables": variables},
        headers=demo_headers(),
        timeout=30,
    ).json()
    result = reply["data"]["batchCreateInstAssociations"]
    assert result["createdCount"] == len(pairs), reply
    return [item["association"]["id"] for item in result["results"]]


def test_run_mjs_runs_the_examples_against_a_server(database_url, tmp_path, examples_with_packages):
    with live_server(database_url, tmp_path / "server.log") as server:
        existing = dict(zip(EXISTING, _create(server.url, EXISTING), strict=True))

        done = _run_script(
            examples_with_packages,
            server.url,
            "--pair",
            f"{PAIR[0]}:{PAIR[1]}",
            "--page-size",
            str(PAGE_SIZE),
        )
        assert done.returncode == 0, (
            f"run.mjs failed:\n{done.stdout}\n{done.stderr}\nserver log:\n{server.log()}"
        )
        summary = json.loads(done.stdout)

        # Paged by cursor to the end: every association once, in id order, in full pages.
        paged = summary["associations"]
        assert paged["ids"] == sorted(existing.values())
        assert paged["totalCount"] == len(EXISTING)
        assert paged["pages"] == -(-len(EXISTING) // PAGE_SIZE)

        created = summary["created"]
        assert (created["bkInstId"], created["bkAsstInstId"]) == PAIR
        assert created["id"] not in existing.values()

        # The subscription started before the creation and received its event, and only it
        # (the associations created before it started are not replayed).
        assert summary["event"] == {
            "eventType": "CREATE",
            "cursor": summary["event"]["cursor"],
            "associationId": created["id"],
            "source": "sw-03",
            "target": "10.0.0.3",
        }
        assert summary["eventsReceived"] == 1

        # The source's neighbourhood holds the associations it is the source of, new one included.
        neighbourhood = summary["neighbourhood"]
        assert (neighbourhood["bkInstId"], neighbourhood["bkInstName"]) == (14, "sw-03")
        expected = {ids: id_ for ids, id_ in existing.items() if ids[0] == 14}
        expected[PAIR] = created["id"]
        assert {
            (14, a["target"]["bkInstId"]): a["id"] for a in neighbourhood["asSource"]
        } == expected
        assert neighbourhood["asTarget"] == []

        # Two associations deep from switch 14, either way: the hosts, then the other switches;
        # every association between them, the new one included; nothing beyond.
        topology = summary["topology"]
        assert {(n["bkInstId"], n["depth"]) for n in topology["nodes"]} == {
            (14, 0),
            (21, 1),
            (22, 1),
            (23, 1),
            (11, 2),
            (13, 2),
        }
        assert topology["nodes"][0]["bkInstId"] == 14
        assert sorted(topology["associations"]) == sorted([*existing.values(), created["id"]])
        assert topology["truncated"] is False

        # The refetch by nodeId found it.
        assert summary["refetched"] == {
            "__typename": "InstAssociation",
            "nodeId": created["nodeId"],
            "id": created["id"],
            "bkInstId": PAIR[0],
            "bkAsstInstId": PAIR[1],
        }

        # Run again, the pair exists: a clear message and a non-zero exit, no summary.
        again = _run_script(examples_with_packages, server.url, "--pair", f"{PAIR[0]}:{PAIR[1]}")
        assert again.returncode == 1, again.stdout + again.stderr
        assert again.stdout == ""
        assert "ASSOCIATION_ALREADY_EXISTS (1101038)" in again.stderr
