"""Persisted queries (``CMDBGRAPH_PERSISTED_QUERIES``): Apollo's automatic persisted queries as
Apollo Client and urql speak them, by POST and by GET; the allow-list of documents an operator
registers with ``cmdbgraph queries register``; both databases, in-process and through real
``cmdbgraph serve`` processes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from alembic import command
from sqlalchemy import insert, inspect, select

from cmdbgraph.app import create_app
from cmdbgraph.db import migrate
from cmdbgraph.db.tables import persisted_queries as table
from cmdbgraph.services import persisted_queries
from cmdbgraph.services.persisted_queries import DocumentCache, PersistedQueries
from tests.support.calls import demo_headers
from tests.support.servers import live_server
from tests.support.subscriber import Subscriber, serving

QUERY = "query Models { models { bkObjId } }"
OTHER_QUERY = "query Kinds { associationKinds { bkAsstId } }"
MUTATION = "mutation Drop { deleteModelAssociation(id: 999999) { __typename } }"
SUBSCRIPTION = "subscription Events { instAssociationEvents { cursor } }"
INTROSPECTION = "query Schema { __schema { queryType { name } } }"

NOT_FOUND = {
    "message": "PersistedQueryNotFound",
    "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(document_or_hash: str, version: object = 1) -> dict:
    """The ``extensions`` Apollo Client sends: the hash of a document (or a hash itself)."""
    is_hash = len(document_or_hash) == 64 and "{" not in document_or_hash
    sha = document_or_hash if is_hash else sha256(document_or_hash)
    return {"persistedQuery": {"version": version, "sha256Hash": sha}}


async def post(client: httpx.AsyncClient, body: dict, **headers: str) -> httpx.Response:
    return await client.post("/graphql", json=body, headers=demo_headers(**headers))


async def get(client: httpx.AsyncClient, params: dict, **headers: str) -> httpx.Response:
    query = {
        key: json.dumps(value) if isinstance(value, dict) else value
        for key, value in params.items()
    }
    return await client.get("/graphql", params=query, headers=demo_headers(**headers))


def only_error(response: httpx.Response) -> dict:
    body = response.json()
    assert body.get("data") is None, body
    (error,) = body["errors"]
    return error


def models_of(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return sorted(model["bkObjId"] for model in body["data"]["models"])


async def stored(db) -> dict[str, bool]:
    """The persisted documents: hash -> registered."""
    async with db.read() as conn:
        rows = await conn.execute(select(table.c.sha256_hash, table.c.registered))
        return {row.sha256_hash: row.registered for row in rows}


@pytest.fixture
async def mode_client(settings, db):
    """``mode_client(mode, **settings)``: an HTTP client of the app in that persisted-query
    mode, on the test's database."""
    clients: list[httpx.AsyncClient] = []

    async def make(mode: str, **more) -> httpx.AsyncClient:
        app = create_app(settings.model_copy(update={"persisted_queries": mode, **more}), db=db)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


# --- automatic persisted queries (the default) ------------------------------------------------


async def test_an_unknown_hash_answers_what_apollo_clients_branch_on(client, db):
    response = await post(client, {"extensions": persisted(QUERY)})
    # 200: Apollo Client 3 gives up on persisted queries for good on a 400 or a 500.
    assert response.status_code == 200
    assert response.json()["errors"] == [NOT_FOUND]
    assert await stored(db) == {}


async def test_a_document_sent_with_its_hash_is_stored_then_runs_by_hash(client, db):
    expected = models_of(await post(client, {"query": QUERY}))
    # Apollo's retry: the document with its hash. It runs, and is stored.
    registering = await post(client, {"query": QUERY, "extensions": persisted(QUERY)})
    assert models_of(registering) == expected
    assert await stored(db) == {sha256(QUERY): False}
    # Then the hash alone, by POST and by GET (what useGETForHashedQueries sends).
    assert models_of(await post(client, {"extensions": persisted(QUERY)})) == expected
    by_get = await get(client, {"operationName": "Models", "extensions": persisted(QUERY)})
    assert models_of(by_get) == expected
    # Apollo Client 3 sends Accept: */* by default: the query runs, no GraphiQL page.
    star = await get(client, {"extensions": persisted(QUERY)}, Accept="*/*")
    assert star.headers["content-type"].startswith("application/json")
    assert models_of(star) == expected
    # Sent again with its document, nothing changes.
    again = await post(client, {"query": QUERY, "extensions": persisted(QUERY)})
    assert models_of(again) == expected
    assert await stored(db) == {sha256(QUERY): False}


async def test_the_hash_stored_by_one_app_serves_another_over_the_same_database(mode_client, db):
    first, second = await mode_client("auto"), await mode_client("auto")
    await post(first, {"query": QUERY, "extensions": persisted(QUERY)})
    assert models_of(await post(second, {"extensions": persisted(QUERY)}))


async def test_variables_and_the_operation_name_go_with_the_hash(client):
    document = (
        "query One($id: BigInt!) { instance(bkInstId: $id) { bkInstName } }\n"
        "query Two { models { bkObjId } }"
    )
    body = {"query": document, "variables": {"id": 11}, "operationName": "One"}
    first = await post(client, {**body, "extensions": persisted(document)})
    assert first.status_code == 200 and "errors" not in first.json(), first.text
    by_hash = await get(
        client,
        {"operationName": "One", "variables": {"id": 11}, "extensions": persisted(document)},
    )
    assert by_hash.json() == first.json()


async def test_a_hash_that_does_not_match_its_document_is_refused(client, db):
    response = await post(client, {"query": QUERY, "extensions": persisted(OTHER_QUERY)})
    assert response.status_code == 400
    error = only_error(response)
    assert error["message"] == "provided sha does not match query"
    assert error["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"
    assert await stored(db) == {}


@pytest.mark.parametrize("version", [2, 0, "1", None, True, 1.0])
async def test_only_version_1_is_spoken(client, db, version):
    response = await post(client, {"query": QUERY, "extensions": persisted(QUERY, version)})
    assert response.status_code == 400
    error = only_error(response)
    assert error == {
        "message": "Unsupported persisted query version",
        "extensions": {"code": "BAD_REQUEST"},
    }
    assert await stored(db) == {}


@pytest.mark.parametrize("sha", ["abc", "g" * 64, 12, None])
async def test_a_hash_must_be_a_sha256(client, sha):
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha}}
    response = await post(client, {"extensions": extensions})
    assert response.status_code == 400
    assert only_error(response)["extensions"]["code"] == "BAD_REQUEST"


async def test_an_uppercase_hash_finds_the_same_document(client):
    await post(client, {"query": QUERY, "extensions": persisted(QUERY)})
    assert models_of(await post(client, {"extensions": persisted(sha256(QUERY).upper())}))


async def test_a_document_that_does_not_validate_is_not_stored(client, db):
    wrong = "query Wrong { models { noSuchField } }"
    response = await post(client, {"query": wrong, "extensions": persisted(wrong)})
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    broken = "query Broken { models { "
    response = await post(client, {"query": broken, "extensions": persisted(broken)})
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert await stored(db) == {}
    assert (await post(client, {"extensions": persisted(wrong)})).json()["errors"] == [NOT_FOUND]


async def test_a_document_too_large_to_keep_runs_but_is_not_stored(client, db):
    large = "# " + "x" * persisted_queries.MAX_AUTOMATIC_BYTES + "\n" + QUERY
    assert models_of(await post(client, {"query": large, "extensions": persisted(large)}))
    assert await stored(db) == {}


async def test_a_stored_mutation_does_not_run_by_get(client, db):
    await PersistedQueries(db, max_automatic=10).store(sha256(MUTATION), MUTATION)
    response = await get(client, {"extensions": persisted(MUTATION)})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert only_error(response)["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    # By POST it runs.
    by_post = await post(client, {"extensions": persisted(MUTATION)})
    assert by_post.status_code == 200
    assert by_post.json()["data"]["deleteModelAssociation"]["__typename"]


async def test_a_hash_without_credentials_is_refused_before_the_store_is_read(app, db):
    await PersistedQueries(db, max_automatic=10).store(sha256(QUERY), QUERY)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as anonymous:
        response = await anonymous.post("/graphql", json={"extensions": persisted(QUERY)})
    assert response.status_code == 401


async def test_the_store_keeps_at_most_the_bound_dropping_the_oldest(mode_client, db):
    client = await mode_client("auto", max_persisted_queries=2)
    await persisted_queries.register(db, [INTROSPECTION])  # registered: not counted
    documents = [f"query Q{n} {{ models {{ bkObjId }} }}" for n in range(4)]
    for document in documents:
        response = await post(client, {"query": document, "extensions": persisted(document)})
        assert response.status_code == 200, response.text
    assert await stored(db) == {
        sha256(INTROSPECTION): True,
        sha256(documents[2]): False,
        sha256(documents[3]): False,
    }


async def test_off_keeps_nothing_and_says_so(mode_client, db):
    client = await mode_client("off")
    response = await post(client, {"extensions": persisted(QUERY)})
    assert response.status_code == 400
    assert only_error(response) == {
        "message": "PersistedQueryNotSupported",
        "extensions": {"code": "PERSISTED_QUERY_NOT_SUPPORTED"},
    }
    # A document with its hash runs as a plain document.
    assert models_of(await post(client, {"query": QUERY, "extensions": persisted(QUERY)}))
    assert await stored(db) == {}


# --- the allow-list ------------------------------------------------------------------------------


async def test_the_allowlist_runs_only_registered_documents(mode_client, db):
    client = await mode_client("allowlist")
    assert await persisted_queries.register(db, [QUERY]) == {sha256(QUERY): True}
    # Registered: by its full text, by hash, by GET, with its hash beside it.
    expected = models_of(await post(client, {"query": QUERY}))
    assert models_of(await post(client, {"extensions": persisted(QUERY)})) == expected
    assert models_of(await get(client, {"extensions": persisted(QUERY)})) == expected
    assert models_of(await post(client, {"query": QUERY, "extensions": persisted(QUERY)}))

    # Not registered: refused by its text, refused with its hash (clients register nothing),
    # unknown by hash alone (an Apollo client then sends the text, and is refused).
    for body in (
        {"query": OTHER_QUERY},
        {"query": OTHER_QUERY, "extensions": persisted(OTHER_QUERY)},
    ):
        response = await post(client, body)
        assert response.status_code == 403
        error = only_error(response)
        assert error["extensions"] == {"code": "PERSISTED_QUERY_NOT_ALLOWED"}
        assert "cmdbgraph queries register" in error["message"]
    assert (await post(client, {"extensions": persisted(OTHER_QUERY)})).json()["errors"] == [
        NOT_FOUND
    ]
    assert await stored(db) == {sha256(QUERY): True}


async def test_the_allowlist_ignores_documents_clients_stored_before(mode_client, db):
    auto, allowlist = await mode_client("auto"), await mode_client("allowlist")
    await post(auto, {"query": QUERY, "extensions": persisted(QUERY)})  # cached by "auto"
    assert (await post(allowlist, {"extensions": persisted(QUERY)})).json()["errors"] == [NOT_FOUND]
    assert (await post(allowlist, {"query": QUERY})).status_code == 403
    # Registering it makes it run at once: misses are not cached.
    assert await persisted_queries.register(db, [QUERY]) == {sha256(QUERY): True}
    assert models_of(await post(allowlist, {"query": QUERY}))
    assert await stored(db) == {sha256(QUERY): True}


async def test_the_allowlist_lets_graphiql_load_the_schema_while_introspection_is_on(
    mode_client, settings, db
):
    client = await mode_client("allowlist")
    # No credentials, as GraphiQL before any are typed.
    response = await client.post("/graphql", json={"query": INTROSPECTION})
    assert response.json() == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
    # A document that reads data besides is not introspection.
    mixed = "{ __schema { queryType { name } } models { bkObjId } }"
    assert (await post(client, {"query": mixed})).status_code == 403

    locked = await mode_client("allowlist", introspection=False)
    response = await post(locked, {"query": INTROSPECTION})
    assert response.status_code == 403
    assert only_error(response)["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"


async def test_the_allowlist_holds_over_websockets(settings, db):
    app = create_app(settings.model_copy(update={"persisted_queries": "allowlist"}), db=db)
    registered = SUBSCRIPTION.replace("subscription Events", "subscription Registered")
    await persisted_queries.register(db, [registered])
    async with serving(app) as url, Subscriber.connect(url) as client:
        await client.subscribe("1", SUBSCRIPTION)
        refusal = await client.receive()
        assert refusal["type"] == "error" and refusal["id"] == "1", refusal
        (error,) = refusal["payload"]
        assert error["extensions"] == {"code": "PERSISTED_QUERY_NOT_ALLOWED"}
        # Unregistered queries do not run over the websocket either.
        await client.subscribe("2", QUERY)
        assert (await client.receive())["type"] == "error"
        await client.subscribe("3", registered)
        await client.quiet(0.5)  # subscribed: no error


# --- the store itself -------------------------------------------------------------------------


def test_the_cache_keeps_the_recently_used_for_a_while():
    now = [0.0]
    cache = DocumentCache(size=2, ttl_seconds=60, clock=lambda: now[0])
    cache.put("a", "A", registered=False)
    cache.put("b", "B", registered=True)
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put("c", "C", registered=False)
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 2
    now[0] = 61
    assert cache.get("a") is None and cache.get("c") is None and len(cache) == 0

    small = DocumentCache(size=10, max_chars=5)
    small.put("a", "AAA", registered=False)
    small.put("b", "BB", registered=False)
    small.put("c", "C", registered=False)  # 6 characters: "a" goes
    assert small.get("a") is None and small.get("b") is not None and small.get("c") is not None
    small.put("d", "DDDDDD", registered=False)  # larger than all of it: not kept
    assert small.get("d") is None and len(small) == 2


async def test_the_migration_goes_down_and_up_again(db):
    config = migrate.alembic_config(db.settings.database_url)

    def run(connection, revision: str, up: bool) -> None:
        config.attributes["connection"] = connection
        (command.upgrade if up else command.downgrade)(config, revision)

    def tables(connection) -> set[str]:
        return set(inspect(connection).get_table_names())

    async with db.write() as conn:
        await conn.run_sync(run, "0007", False)
    async with db.read() as conn:
        assert "persisted_queries" not in await conn.run_sync(tables)
        assert await migrate.pending(db)
    await migrate.upgrade(db)
    async with db.write() as conn:
        await conn.execute(
            insert(table).values(
                sha256_hash=sha256(QUERY),
                document=QUERY,
                create_time=datetime.now(UTC),
            )
        )
    assert await stored(db) == {sha256(QUERY): False}  # registered defaults to false


# --- the command line and real server processes ----------------------------------------------


def cmdbgraph(*args: str, database_url: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CMDBGRAPH_")}
    environment["CMDBGRAPH_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "cmdbgraph.cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def call(server_url: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server_url}/graphql", json=body, headers=demo_headers(), timeout=30)


def test_the_command_line_registers_what_an_allowlist_server_runs(database_url, tmp_path):
    models = tmp_path / "models.graphql"
    models.write_text(QUERY + "\n")
    several = tmp_path / "several.graphql"
    several.write_text(
        "query Kinds { associationKinds { bkAsstId } }\n"
        "query Models2 { ...All }\nfragment All on Query { models { bkObjId } }\n"
    )
    done = cmdbgraph(
        "queries", "register", str(models), str(several), database_url=database_url, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    # As sha256sum prints them: the hash of each file's text.
    assert done.stdout.splitlines() == [
        f"{sha256(models.read_text())}  {models}",
        f"{sha256(several.read_text())}  {several}",
    ]
    assert "2 documents registered, 0 already registered" in done.stderr
    again = cmdbgraph("queries", "register", str(models), database_url=database_url, cwd=tmp_path)
    assert again.returncode == 0 and "0 documents registered, 1 already registered" in again.stderr

    listed = cmdbgraph("queries", "list", database_url=database_url, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split("\t")[0]: line.split("\t") for line in listed.stdout.splitlines()}
    assert rows[sha256(models.read_text())][1] == "registered"
    assert rows[sha256(several.read_text())][3] == "query Kinds, query Models2"
    shown = cmdbgraph(
        "queries", "show", sha256(models.read_text()), database_url=database_url, cwd=tmp_path
    )
    assert shown.stdout == models.read_text()

    env = {"CMDBGRAPH_PERSISTED_QUERIES": "allowlist"}
    with live_server(database_url, tmp_path / "server.log", env=env) as server:
        by_hash = call(server.url, {"extensions": persisted(sha256(models.read_text()))})
        assert by_hash.status_code == 200 and "errors" not in by_hash.json(), by_hash.text
        by_text = call(server.url, {"query": several.read_text(), "operationName": "Models2"})
        assert by_text.json()["data"] == by_hash.json()["data"]
        refused = call(server.url, {"query": OTHER_QUERY})
        assert refused.status_code == 403
        assert refused.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"

        removed = cmdbgraph(
            "queries", "remove", sha256(models.read_text()), database_url=database_url, cwd=tmp_path
        )
        assert removed.returncode == 0, removed.stderr
    gone = cmdbgraph(
        "queries", "remove", sha256(models.read_text()), database_url=database_url, cwd=tmp_path
    )
    assert gone.returncode == 1 and "no persisted document" in gone.stderr


def test_the_command_line_registers_nothing_unless_every_file_is_valid(database_url, tmp_path):
    good = tmp_path / "good.graphql"
    good.write_text(QUERY)
    wrong = tmp_path / "wrong.graphql"
    wrong.write_text("query Wrong { models { noSuchField } }")
    broken = tmp_path / "broken.graphql"
    broken.write_text("query Broken { models {")
    done = cmdbgraph(
        "queries",
        "register",
        str(good),
        str(wrong),
        str(broken),
        str(tmp_path / "missing"),
        database_url=database_url,
        cwd=tmp_path,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert f"{wrong}:1:24: Cannot query field 'noSuchField' on type 'Model'." in done.stderr
    assert f"{broken}:1:24: Syntax Error" in done.stderr
    assert "cannot read" in done.stderr and "nothing registered" in done.stderr
    listed = cmdbgraph("queries", "list", database_url=database_url, cwd=tmp_path)
    assert listed.returncode == 0 and listed.stdout == ""
    bad_hash = cmdbgraph("queries", "remove", "abc", database_url=database_url, cwd=tmp_path)
    assert bad_hash.returncode == 2 and "is not a document's hash" in bad_hash.stderr


def test_two_server_processes_share_one_stored_document(database_url, tmp_path):
    with (
        live_server(database_url, tmp_path / "first.log") as first,
        live_server(database_url, tmp_path / "second.log") as second,
    ):
        for server in (first, second):
            assert call(server.url, {"extensions": persisted(QUERY)}).json()["errors"] == [
                NOT_FOUND
            ]
        stored_by_first = call(first.url, {"query": QUERY, "extensions": persisted(QUERY)})
        assert stored_by_first.status_code == 200 and "errors" not in stored_by_first.json()
        # The other process finds it at once (misses are not cached), by POST and by GET.
        by_post = call(second.url, {"extensions": persisted(QUERY)})
        assert by_post.json() == stored_by_first.json()
        by_get = httpx.get(
            f"{second.url}/graphql",
            params={"extensions": json.dumps(persisted(QUERY))},
            headers=demo_headers(),
            timeout=30,
        )
        assert by_get.json() == stored_by_first.json()
