"""Production behaviour: limits, masking, health, metrics, logs, start-up and shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
import signal

import httpx
import pytest
from sqlalchemy import select

from cmdbgraph.app import create_app
from cmdbgraph.db import migrate
from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import inst_associations
from cmdbgraph.services import associations, instances
from cmdbgraph.services.caller import SYSTEM
from cmdbgraph.settings import Settings
from tests.support.calls import (
    BATCH_MUTATION,
    ESB_PATH,
    NATIVE_PATH,
    batch_input,
    demo_headers,
    rest_body,
)
from tests.support.databases import row_counts
from tests.support.servers import live_server, serve_to_exit


async def _client_for(settings: Settings):
    app = create_app(settings)
    return app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def _post_graphql(client, query, variables=None, **headers):
    return await client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers=demo_headers(**headers),
    )


# --- GraphQL limits ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings_change", "query", "expected"),
    [
        (
            {"max_query_depth": 3},
            "{ instances { items { associationsAsSource { source { bkInstId } } } } }",
            "maximum query depth of 3",
        ),
        (
            {"max_aliases": 2},
            "{ a: models { bkObjId } b: models { bkObjId } c: models { bkObjId } }",
            "more than 2 aliases",
        ),
        ({"max_tokens": 50}, "{ models { " + "bkObjId " * 60 + "} }", "more than 50 tokens"),
        ({"introspection": False}, "{ __schema { types { name } } }", "introspection"),
    ],
)
async def test_graphql_document_limits(database_url, settings_change, query, expected):
    app, client = await _client_for(Settings(database_url=database_url, **settings_change))
    async with client:
        response = await _post_graphql(client, query)
        body = response.json()
        assert body.get("data") is None
        assert expected in body["errors"][0]["message"]
        # A document within the limits still works with the same settings.
        ok = (await _post_graphql(client, "{ associationKinds { bkAsstId } }")).json()
        assert "errors" not in ok and len(ok["data"]["associationKinds"]) == 6
    await app.state.db.dispose()


async def test_validation_cache_stays_effective_with_limits(client):
    from strawberry.extensions.validation_cache import _get_validate_cache

    cache = _get_validate_cache(1024)
    query = "{ associationKinds { bkAsstId srcDes } }"
    await _post_graphql(client, query)
    before = cache.cache_info()
    for _ in range(5):
        await _post_graphql(client, query)
    after = cache.cache_info()
    assert after.hits - before.hits == 5
    assert after.misses == before.misses


@pytest.mark.parametrize(
    ("limit", "code", "message"),
    [
        (0, 1199011, "'limit' the parameter is invalid or does not exist"),
        (-1, 1199011, "'limit' the parameter is invalid or does not exist"),
        # The GraphQL maximum, named (upstream's 1199059 would suggest 200).
        (501, 1199035, "limit exceed the limit 500"),
    ],
)
async def test_page_size_limit(client, limit, code, message):
    body = (
        await _post_graphql(
            client, "query($l: Int) { instances(limit: $l) { totalCount } }", {"l": limit}
        )
    ).json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["bkErrorCode"] == code
    english = (
        await _post_graphql(
            client,
            "query($l: Int) { instances(limit: $l) { totalCount } }",
            {"l": limit},
            **{"Blueking-Language": "en"},
        )
    ).json()
    assert english["errors"][0]["message"] == message


async def test_page_size_default_and_offset(client):
    body = (
        await _post_graphql(
            client,
            '{ instances(bkObjId: "host", offset: 1, limit: 1) { totalCount items { bkInstId } } }',
        )
    ).json()
    assert body["data"]["instances"] == {"totalCount": 3, "items": [{"bkInstId": 22}]}


# --- request size and time --------------------------------------------------------------------


@pytest.mark.parametrize("path", [ESB_PATH, NATIVE_PATH, "/graphql"])
async def test_body_size_limit(database_url, path):
    app, client = await _client_for(Settings(database_url=database_url, max_body_bytes=2048))
    async with client:
        response = await client.post(
            path, content=b'{"padding": "' + b"x" * 4096 + b'"}', headers=demo_headers()
        )
    assert response.status_code == 413
    body = response.json()
    # A limit of this service's own: upstream's text for 1199035, without its leading space.
    message = body.get("message") or body.get("bk_error_msg") or body["errors"][0]["message"]
    assert message == "request body 超过限制 2048"
    assert "Traceback" not in response.text
    await app.state.db.dispose()


async def test_timeout_answers_504_and_writes_nothing(database_url):
    settings = Settings(database_url=database_url, request_timeout_seconds=0.001)
    app, client = await _client_for(settings)
    db = app.state.db
    before = await row_counts(db)
    async with client:
        response = await client.post(
            ESB_PATH, json=rest_body("bk_switch", "host", "bk_switch_belong_host", [(11, 21)])
        )
    assert response.status_code == 504
    body = response.json()
    assert body["result"] is False
    # The API gateway's code and text for a backend that takes too long.
    assert (body["code"], body["message"]) == (
        1650401,
        "Request backend service timeout [timeout=0.001 s]",
    )
    assert await row_counts(db) == before
    await db.dispose()


# --- masking ----------------------------------------------------------------------------------


async def test_unexpected_errors_are_masked(client, monkeypatch, caplog):
    async def broken(*args, **kwargs):
        raise RuntimeError("SELECT secret FROM inst_associations -- /srv/cmdbgraph/x.py")

    monkeypatch.setattr(associations, "batch_create", broken)
    monkeypatch.setattr(instances, "list_instances", broken)
    caplog.set_level(logging.ERROR)
    graphql = await _post_graphql(client, "{ instances { totalCount } }")
    rest = await client.post(
        ESB_PATH, json=rest_body("bk_switch", "host", "bk_switch_belong_host", [(11, 21)])
    )
    mutation = await _post_graphql(
        client,
        BATCH_MUTATION,
        {"input": batch_input("bk_switch", "host", "bk_switch_belong_host", [(11, 21)])},
    )
    for response in (graphql, rest, mutation):
        assert "SELECT" not in response.text and "Traceback" not in response.text
        assert "/srv/" not in response.text
    assert graphql.json()["errors"][0]["message"] == "Unexpected error."
    assert mutation.json()["errors"][0]["message"] == "Unexpected error."
    assert rest.status_code == 500 and rest.json()["code"] == 1199999
    # The operator still sees what happened.
    assert any("SELECT secret" in (r.exc_text or "") or r.exc_info for r in caplog.records)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"[]",
        b"null",
        b'{"query": 1}',
        b'{"query": "{"}',
        b"\xff\xfe",
        b'{"query": "{ x }"}',
    ],
)
async def test_malformed_graphql_never_5xx(client, content):
    response = await client.post(
        "/graphql", content=content, headers={**demo_headers(), "content-type": "application/json"}
    )
    assert response.status_code < 500
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"[]",
        b"null",
        b"\xff\xfe",
        b'{"details": "x"}',
        b'{"details": [1]}',
        b'{"bk_obj_id": 5}',
    ],
)
@pytest.mark.parametrize("path", [ESB_PATH, NATIVE_PATH])
async def test_malformed_rest_never_5xx(client, path, content):
    response = await client.post(path, content=content, headers=demo_headers())
    assert response.status_code < 500
    assert "Traceback" not in response.text
    assert response.json()["result"] is False


# --- switches ---------------------------------------------------------------------------------


async def test_graphiql_can_be_switched_off(database_url):
    app, client = await _client_for(Settings(database_url=database_url, graphiql=False))
    async with client:
        # With credentials: switched off means not served to anyone, signed in or not.
        response = await client.get("/graphql", headers=demo_headers(accept="text/html"))
    assert response.status_code == 404
    assert "<html" not in response.text.lower()
    await app.state.db.dispose()


async def test_cors_allow_list(database_url):
    settings = Settings(database_url=database_url, cors_origins=["https://ui.example"])
    app, client = await _client_for(settings)
    async with client:
        allowed = await client.options(
            "/graphql",
            headers={"origin": "https://ui.example", "access-control-request-method": "POST"},
        )
        refused = await client.options(
            "/graphql",
            headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
        )
    assert allowed.headers.get("access-control-allow-origin") == "https://ui.example"
    assert "access-control-allow-origin" not in refused.headers
    await app.state.db.dispose()


# --- health, metrics, logs --------------------------------------------------------------------


async def test_healthz_and_readyz(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


async def test_readyz_false_on_pending_migrations(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite3'}"
    db = Database(Settings(database_url=url))
    await migrate.upgrade(db, "0001")
    await db.dispose()
    app, client = await _client_for(Settings(database_url=url))
    async with client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert "cmdbgraph db upgrade" in response.json()["database"]
    await app.state.db.dispose()


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_metrics_count_requests_and_items(client):
    before = (await client.get("/metrics")).text
    await client.post(
        ESB_PATH,
        json=rest_body(
            "bk_switch", "host", "bk_switch_belong_host", [(11, 21), (12, 22), (11, 21)]
        ),
    )
    await _post_graphql(client, "query Named { models { bkObjId } }")
    after = (await client.get("/metrics")).text
    rest_ok = dict(interface="rest", operation="batch_create_instance_association", outcome="ok")
    assert (
        _metric(after, "cmdbgraph_requests_total", **rest_ok)
        - _metric(before, "cmdbgraph_requests_total", **rest_ok)
        == 1
    )
    gql = dict(interface="graphql", operation="models", outcome="ok")
    assert (
        _metric(after, "cmdbgraph_requests_total", **gql)
        - _metric(before, "cmdbgraph_requests_total", **gql)
        == 1
    )
    for labels, delta in (
        ({"result": "created", "code": "0"}, 1),
        ({"result": "failed", "code": "1101073"}, 1),
        ({"result": "failed", "code": "1101038"}, 1),
    ):
        name = "cmdbgraph_association_items_total"
        assert _metric(after, name, **labels) - _metric(before, name, **labels) == delta
    assert (
        _metric(
            after,
            "cmdbgraph_request_duration_seconds_count",
            interface="graphql",
            operation="models",
        )
        > 0
    )


async def test_one_log_line_per_request(client, caplog):
    caplog.set_level(logging.INFO, logger="cmdbgraph.access")
    await client.post(
        ESB_PATH,
        json=rest_body("bk_switch", "host", "bk_switch_belong_host", [(11, 21)]),
        headers={"X-Request-ID": "trace-42"},
    )
    await _post_graphql(
        client, "query ListModels { models { bkObjId } }", **{"X-Request-ID": "trace-43"}
    )
    records = [r for r in caplog.records if r.name == "cmdbgraph.access"]
    assert len(records) == 2
    rest, graphql = records
    assert (rest.request_id, rest.app, rest.user, rest.operation, rest.outcome, rest.status) == (
        "trace-42",
        "esb_test",
        "xxx",
        "batch_create_instance_association",
        "ok",
        200,
    )
    assert rest.duration_ms > 0
    assert (graphql.request_id, graphql.operation, graphql.client_operation, graphql.outcome) == (
        "trace-43",
        "models",
        "ListModels",
        "ok",
    )
    from cmdbgraph.logs import JsonFormatter

    line = json.loads(JsonFormatter().format(rest))
    assert line["request_id"] == "trace-42" and line["outcome"] == "ok"
    assert 'xxx"' not in JsonFormatter().format(rest).replace('"user":"xxx"', "")


# --- start-up and shutdown (real processes) ---------------------------------------------------


def test_serve_refuses_a_database_behind_its_migrations(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite3'}"

    async def old() -> None:
        db = Database(Settings(database_url=url))
        await migrate.upgrade(db, "0001")
        await db.dispose()

    asyncio.run(old())
    result = serve_to_exit(url)
    assert result.returncode == 1
    assert "cmdbgraph db upgrade" in result.stderr


def test_sigterm_lets_in_flight_requests_finish(fresh_databases, tmp_path):
    url = fresh_databases.new("sqlite", "live")
    with live_server(url, tmp_path / "server.log") as server:
        body = json.dumps(
            rest_body("bk_switch", "host", "bk_switch_belong_host", [(11, 21), (13, 22)])
        ).encode()

        async def slow_body():
            # The request is in flight (headers sent, body trickling) when SIGTERM arrives.
            yield body[:10]
            server.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(1.0)
            yield body[10:]

        async def send() -> httpx.Response:
            async with httpx.AsyncClient(timeout=30) as http:
                return await http.post(
                    f"{server.url}{ESB_PATH}",
                    content=slow_body(),
                    headers={"content-type": "application/json", "content-length": str(len(body))},
                )

        response = asyncio.run(send())
        assert response.status_code == 200
        assert response.json()["data"]["success_created"].keys() == {"0", "1"}
        # uvicorn exits cleanly, then re-raises SIGTERM so supervisors see the usual status.
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)


async def test_service_objects_are_usable_without_http(db):
    # The CLI's import path uses the services directly with the system caller.
    page = await instances.list_instances(db, instances.InstanceFilter(bk_obj_id="bk_router"))
    assert [i.bk_inst_name for i in page.items] == ["rt-01", "rt-02"]
    result = await associations.batch_create(
        db,
        SYSTEM,
        associations.BatchCreateRequest(
            "bk_router",
            "bk_firewall",
            "bk_router_default_bk_firewall",
            [associations.Detail(31, 41)],
        ),
    )
    assert result.created_count == 1


async def test_serve_with_several_workers_shares_one_database(database_url, tmp_path):
    """`cmdbgraph serve --workers 2`: concurrent conflicting batches through both processes
    each get an answer, and the 1:1 rule holds in what was stored."""
    with live_server(database_url, tmp_path / "server.log", args=("--workers", "2")) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            # Every request wants router 31 or 32 with firewall 41 or 42 under a 1:1 rule.
            bodies = [
                rest_body(
                    "bk_router",
                    "bk_firewall",
                    "bk_router_default_bk_firewall",
                    [(31 + i % 2, 41 + (i // 2) % 2)],
                )
                for i in range(24)
            ]
            replies = await asyncio.gather(*(http.post(ESB_PATH, json=b) for b in bodies))
        assert [r.status_code for r in replies] == [200] * len(bodies)
        created = [r.json()["data"]["success_created"] for r in replies]
        assert sum(len(c) for c in created) == 2  # one router per firewall, at most
    db = Database(Settings(database_url=database_url))
    try:
        async with db.read() as conn:
            rows = (
                await conn.execute(
                    select(
                        inst_associations.c.bk_inst_id, inst_associations.c.bk_asst_inst_id
                    ).where(inst_associations.c.bk_obj_asst_id == "bk_router_default_bk_firewall")
                )
            ).all()
    finally:
        await db.dispose()
    assert len(rows) == 2
    assert len({src for src, _ in rows}) == 2 and len({dest for _, dest in rows}) == 2
