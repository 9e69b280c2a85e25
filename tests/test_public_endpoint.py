"""A public endpoint that holds: what outside testing found, one test per finding (in-process,
on both databases; the findings that only show in a real server process are in
test_live_edges.py).

Each test was checked against the defect it guards: it fails on the code before the fix.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert

from cmdbgraph.app import create_app
from cmdbgraph.db.tables import instances as instances_table
from cmdbgraph.services import instances
from cmdbgraph.services.caller import SYSTEM
from cmdbgraph.settings import Settings
from tests.support.calls import demo_headers, rest_body
from tests.support.databases import writes_nothing

INT64_MAX = 2**63 - 1
ESB = "/api/c/compapi/v2/cc"
ESB_UNVERSIONED = "/api/c/compapi/cc"


async def gql(client: httpx.AsyncClient, query: str, variables: dict | None = None, **extra):
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}, **extra},
        headers=demo_headers(),
    )
    return response, response.json()


def only_error(body: dict) -> dict:
    assert body["data"] is None, body
    (error,) = body["errors"]
    return error


# --- 2. query cost ------------------------------------------------------------------------

THE_FREEZING_QUERY = """{ instances(bkObjId: "bk_switch", limit: 500) { items {
  bkInstName associationsAsSource { id target { bkInstName associationsAsTarget { id } } } } } }"""


async def test_the_query_that_froze_the_server_is_refused_before_running(client, db):
    started = time.perf_counter()
    response, body = await gql(client, THE_FREEZING_QUERY)
    assert time.perf_counter() - started < 2
    error = only_error(body)
    extensions = error["extensions"]
    assert extensions["code"] == "QUERY_TOO_COSTLY"
    # 500 instances x (name + list of 10 associations x (id + target (name + list of 10 ids)))
    assert extensions["cost"] == 2 + 500 * (1 + 1 + 10 * (1 + 1 + 1 + 1 + 10))
    assert extensions["limit"] == Settings().max_query_cost
    assert str(extensions["cost"]) in error["message"]
    assert str(extensions["limit"]) in error["message"]


@pytest.mark.parametrize(
    ("query", "variables", "cost"),
    [
        # A page without a limit counts at the default page size (50).
        ('{ instances(bkObjId: "host") { totalCount items { bkInstId } } }', {}, 2 + 1 + 50),
        # The limit from a variable counts.
        (
            "query($n: Int) { instances(limit: $n) { items { bkInstId bkInstName } } }",
            {"n": 400},
            2 + 400 * 2,
        ),
        # Nested lists: their own limit, else the nested default (10).
        (
            "{ instances(limit: 10) { items { associationsAsSource(limit: 3) { id } "
            "associationsAsTarget { id } } } }",
            {},
            2 + 10 * ((1 + 3) + (1 + 10)),
        ),
        # A fragment spread twice counts twice.
        (
            "fragment F on Instance { bkInstId bkInstName } "
            "{ instances(limit: 100) { items { ...F ...F } } }",
            {},
            2 + 100 * 4,
        ),
        # Lists without a page size count at their maximum (the page size maximum, 500).
        ("{ models { bkObjId bkObjName } }", {}, 1 + 500 * 2),
    ],
)
async def test_cost_is_page_sizes_times_nesting(database_url, query, variables, cost):
    app = create_app(Settings(database_url=database_url, max_query_cost=cost - 1))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as tight:
        _, body = await gql(tight, query, variables)
        assert only_error(body)["extensions"] == {
            "code": "QUERY_TOO_COSTLY",
            "cost": cost,
            "limit": cost - 1,
        }
    app = create_app(Settings(database_url=database_url, max_query_cost=cost))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as enough:
        _, body = await gql(enough, query, variables)
        assert "errors" not in body, body


async def test_nested_association_lists_are_paged(client, db):
    made = await instances.create_instances(
        db, SYSTEM, "host", [instances.NewInstance(f"paged-{i}") for i in range(5)]
    )
    body = rest_body(
        "bk_switch", "host", "bk_switch_belong_host", [(11, m.bk_inst_id) for m in made]
    )
    reply = await client.post(f"{ESB}/batch_create_instance_association/", json=body)
    assert len(reply.json()["data"]["success_created"]) == 5
    query = "query($n: Int) { instance(bkInstId: 11) { associationsAsSource(limit: $n) { id } } }"
    _, body = await gql(client, query, {"n": 2})
    ids = [a["id"] for a in body["data"]["instance"]["associationsAsSource"]]
    assert len(ids) == 2 and ids == sorted(ids)
    _, body = await gql(client, query, {"n": None})
    assert len(body["data"]["instance"]["associationsAsSource"]) == 5
    _, body = await gql(client, query, {"n": Settings().max_nested_page_size + 1})
    assert body["errors"][0]["extensions"]["bkErrorCode"] == 1199035
    assert body["errors"][0]["message"] == f"limit 超过限制 {Settings().max_nested_page_size}"
    _, body = await gql(client, query, {"n": 0})
    assert body["errors"][0]["extensions"]["bkErrorCode"] == 1199011


# --- 3. 64-bit ids ------------------------------------------------------------------------


async def test_ids_beyond_32_bits_are_carried_by_graphql(client, db):
    big = 2**40 + 7
    async with db.write() as conn:
        await conn.execute(
            insert(instances_table).values(
                bk_inst_id=big,
                bk_obj_id="host",
                bk_inst_name="far-host",
                attributes={},
                create_time=datetime.now(UTC),
                last_time=datetime.now(UTC),
            )
        )
    reply = await client.post(
        f"{ESB}/batch_create_instance_association/",
        json=rest_body("bk_switch", "host", "bk_switch_belong_host", [(11, big)]),
    )
    assert list(reply.json()["data"]["success_created"]) == ["0"], reply.text
    _, body = await gql(client, '{ instances(bkObjId: "host") { items { bkInstId } } }')
    assert "errors" not in body, body
    assert big in [i["bkInstId"] for i in body["data"]["instances"]["items"]]
    _, body = await gql(
        client,
        "query($id: BigInt!) { instance(bkInstId: $id) { bkInstName "
        "associationsAsTarget { bkInstId bkAsstInstId } } }",
        {"id": big},
    )
    assert body["data"]["instance"]["bkInstName"] == "far-host"
    assert body["data"]["instance"]["associationsAsTarget"] == [
        {"bkInstId": 11, "bkAsstInstId": big}
    ]
    _, body = await gql(client, f"{{ instance(bkInstId: {2**31}) {{ bkInstId }} }}")
    assert body == {"data": {"instance": None}}
    _, body = await gql(client, f"{{ instance(bkInstId: {INT64_MAX}) {{ bkInstId }} }}")
    assert body == {"data": {"instance": None}}


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**64, 1.5, "11", True])
async def test_ids_beyond_64_bits_are_a_clear_validation_error(client, value):
    _, body = await gql(
        client, "query($id: BigInt!) { instance(bkInstId: $id) { bkInstId } }", {"id": value}
    )
    error = only_error(body)
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "Unexpected error" not in error["message"]
    if isinstance(value, int) and not isinstance(value, bool):
        # As a literal in the document too.
        _, body = await gql(client, f"{{ instance(bkInstId: {value}) {{ bkInstId }} }}")
        error = only_error(body)
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert "BigInt" in error["message"]


# --- 4. several operations ----------------------------------------------------------------

TWO_OPERATIONS = """
mutation First { createModel(input: {bkObjId: "first_model", bkObjName: "First"}) {
  __typename } }
query Second { models { bkObjId } }
"""


async def test_several_operations_without_an_operation_name_run_nothing(client, db):
    _, body = await gql(client, TWO_OPERATIONS)
    error = only_error(body)
    assert error["extensions"]["code"] == "OPERATION_RESOLUTION_FAILURE"
    _, body = await gql(client, TWO_OPERATIONS, operationName="Second")
    assert "first_model" not in [m["bkObjId"] for m in body["data"]["models"]]
    _, body = await gql(client, TWO_OPERATIONS, operationName="First")
    assert body["data"]["createModel"]["__typename"] == "Model"


# --- 5. metrics labels --------------------------------------------------------------------


async def test_metrics_labels_never_come_from_client_text(client):
    for name in ("zzz_a1", "zzz_b2", "zzz_c3"):
        await gql(client, f"{{ {name} }}")
        await gql(client, f"query {name} {{ models {{ bkObjId }} }}")
    metrics = (await client.get("/metrics")).text
    assert "zzz_" not in metrics
    assert 'operation="invalid"' in metrics
    assert 'operation="models"' in metrics


# --- 6. integers out of range in conditions -----------------------------------------------

HUGE_CONDITIONS = [
    {"bk_inst_id": 2**63},
    {"bk_inst_id": 2**64 - 1},
    {"bk_inst_id": -(2**63) - 1},
    {"bk_inst_id": [2**63, 2**64 - 1]},
    {"bk_inst_id": {"$in": [2**63]}},
    {"bk_inst_id": {"$eq": 2**64 - 1}},
    {"rack_units": 2**63},
    {"rack_units": {"$in": [2**70, 3]}},
]


@pytest.mark.parametrize("condition", HUGE_CONDITIONS)
@pytest.mark.parametrize(
    "path",
    [
        f"{ESB}/search_inst_by_object/",
        f"{ESB_UNVERSIONED}/search_inst_by_object/",
        "/api/v3/find/instance/object/bk_switch",
        "/api/v3/inst/search/0/bk_switch",
    ],
)
async def test_integers_beyond_int64_in_conditions_match_nothing(client, path, condition):
    body = {**rest_body("bk_switch", "", "", []), "condition": condition}
    reply = await client.post(path, json=body)
    assert reply.status_code == 200, reply.text
    envelope = reply.json()
    assert envelope["result"] is True, envelope
    assert envelope["data"] == {"count": 0, "info": []}


# --- 7. models that do not exist ----------------------------------------------------------

UNKNOWN_MODEL_CALLS = [
    ("POST", f"{ESB}/search_inst_by_object/", {"bk_obj_id": "nosuch"}),
    ("POST", f"{ESB}/search_inst/", {"bk_obj_id": "nosuch"}),
    ("POST", "/api/v3/find/instassociation/object/nosuch", {}),
    ("POST", "/api/v3/find/instance/object/nosuch", {}),
    (
        "POST",
        f"{ESB}/find_instance_association/",
        {"bk_obj_id": "nosuch", "condition": {"bk_obj_asst_id": "bk_switch_belong_host"}},
    ),
    (
        "POST",
        f"{ESB}/search_related_inst_asso/",
        {"condition": {"bk_obj_id": "nosuch", "bk_inst_id": 11}, "fields": ["id"]},
    ),
    ("POST", f"{ESB}/delete_instance_association/", {"bk_obj_id": "nosuch", "id": 1}),
    ("DELETE", "/api/v3/delete/instassociation/nosuch/1", {}),
    ("POST", f"{ESB}/delete_related_inst_asso/", {"bk_obj_id": "nosuch", "id": [1]}),
]


@pytest.mark.parametrize(("method", "path", "fields"), UNKNOWN_MODEL_CALLS)
async def test_a_call_naming_an_unknown_model_answers_an_error(client, method, path, fields):
    reply = await client.request(method, path, json={**rest_body("", "", "", []), **fields})
    envelope = reply.json()
    assert envelope["result"] is False, envelope
    code = envelope.get("code", envelope.get("bk_error_code"))
    message = envelope.get("message", envelope.get("bk_error_msg"))
    assert (code, message) == (1199011, "'bk_obj_id' 参数无效或不存在")


async def test_graphql_instances_of_an_unknown_model_is_an_error(client):
    _, body = await gql(client, '{ instances(bkObjId: "nosuch") { totalCount } }')
    assert only_error(body)["extensions"]["bkErrorCode"] == 1199011
    _, body = await gql(client, '{ instances(bkObjId: "bk_router") { totalCount } }')
    assert body["data"]["instances"]["totalCount"] == 2


# --- 8. big numbers in attributes ---------------------------------------------------------

CREATE_WITH_ATTRIBUTES = """mutation($a: JSON) { createInstances(input: {bkObjId: "host",
  instances: [{bkInstName: "numbers", attributes: $a}]}) {
  __typename ... on CreateInstancesPayload { instances { attributes } } } }"""


@pytest.mark.parametrize(
    "attributes",
    [{"n": 2**70}, {"n": -(2**63) - 1}, {"deep": [{"n": 2**64}]}, {"n": 1e20}, {"n": 1.5e308}],
)
async def test_numbers_that_cannot_be_stored_exactly_are_refused(client, db, attributes):
    async with writes_nothing(db):
        _, body = await gql(client, CREATE_WITH_ATTRIBUTES, {"a": attributes})
    error = only_error(body)
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "cannot be stored exactly" in error["message"]
    literal = (
        'mutation { createInstances(input: {bkObjId: "host", instances: '
        f'[{{bkInstName: "literal", attributes: {{n: {2**70}}}}}]}}) {{ __typename }} }}'
    )
    response, body = await gql(client, literal)
    assert response.status_code == 200
    assert "cannot be stored exactly" in only_error(body)["message"]


async def test_numbers_that_fit_come_back_exactly(client):
    attributes = {"max": INT64_MAX, "min": -(2**63), "half": 0.5, "big": 9.2e18, "s": "x"}
    _, body = await gql(client, CREATE_WITH_ATTRIBUTES, {"a": attributes})
    (created,) = body["data"]["createInstances"]["instances"]
    assert created["attributes"] == {**attributes, "bk_inst_name": "numbers"}


# --- 9. transport errors are JSON ---------------------------------------------------------

MUTATION = 'mutation { createModel(input: {bkObjId: "m", bkObjName: "m"}) { __typename } }'


@pytest.mark.parametrize(
    ("method", "params", "content", "content_type", "status", "code"),
    [
        ("GET", {"query": MUTATION}, None, None, 405, "METHOD_NOT_ALLOWED"),
        ("POST", None, b"not json", "application/json", 400, "BAD_REQUEST"),
        (
            "POST",
            None,
            b'[{"query": "{ models { bkObjId } }"}]',
            "application/json",
            400,
            "BAD_REQUEST",
        ),
        (
            "POST",
            None,
            # A persisted query's hash that is no SHA-256 (the rest: test_persisted_queries.py).
            b'{"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "ab"}}}',
            "application/json",
            400,
            "BAD_REQUEST",
        ),
        (
            "POST",
            None,
            b'{"query": "{ models { bkObjId } }", "variables": [1]}',
            "application/json",
            400,
            "BAD_REQUEST",
        ),
        (
            "POST",
            None,
            b'{"query": "{ models { bkObjId } }", "operationName": "Nope"}',
            "application/json",
            400,
            "OPERATION_RESOLUTION_FAILURE",
        ),
        ("POST", None, b"{ models { bkObjId } }", "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
        ("PUT", None, b"{}", "application/json", 405, "METHOD_NOT_ALLOWED"),
        ("POST", None, b'{"query": "{ models "}', "application/json", 200, "GRAPHQL_PARSE_FAILED"),
    ],
)
async def test_graphql_refusals_are_json_with_a_code(
    client, method, params, content, content_type, status, code
):
    headers = demo_headers()
    if content_type:
        headers["content-type"] = content_type
    response = await client.request(
        method, "/graphql", params=params, content=content, headers=headers
    )
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    error = only_error(response.json())
    assert error["extensions"]["code"] == code
    assert error["message"]


@pytest.mark.parametrize(
    ("method", "path", "status", "envelope"),
    [
        ("POST", f"{ESB}/no_such_call/", 404, "esb"),
        ("POST", f"{ESB_UNVERSIONED}/no_such_call/", 404, "esb"),
        ("GET", f"{ESB}/batch_create_instance_association/", 405, "esb"),
        ("GET", "/api/v3/createmany/instassociation", 405, "native"),
        ("POST", "/api/v3/no/such/route", 404, "native"),
    ],
)
async def test_rest_refusals_are_an_envelope_with_a_code(client, method, path, status, envelope):
    response = await client.request(method, path, json={}, headers=demo_headers())
    assert response.status_code == status
    body = response.json()
    assert body["result"] is False and body["data"] is None
    key = "code" if envelope == "esb" else "bk_error_code"
    assert body[key] == 1640401
    assert path in body["message" if envelope == "esb" else "bk_error_msg"]
    if status == 405:
        assert response.headers["allow"] == "POST"


# --- 10. one rule: authentication is transport-level, the rest are domain results --------


@pytest.mark.parametrize("where", ["graphql", "esb", "native"])
async def test_the_same_failure_has_the_same_shape_on_every_interface(client, db, where):
    app_only = {"X-Bkapi-Authorization": '{"bk_app_code": "esb_test", "bk_app_secret": "xxx"}'}
    bad_token = {
        "X-Bkapi-Authorization": '{"bk_app_code": "esb_test", "bk_app_secret": "xxx", '
        '"bk_token": "not-a-token"}'
    }
    batch = rest_body("bk_switch", "host", "bk_switch_belong_host", [(11, 21)])
    for key in ("bk_app_code", "bk_app_secret", "bk_username", "bk_token"):
        batch.pop(key)

    async def send(headers: dict) -> httpx.Response:
        if where == "graphql":
            return await client.post(
                "/graphql",
                json={
                    "query": "mutation($i: BatchCreateInstAssociationsInput!) { "
                    "batchCreateInstAssociations(input: $i) { __typename } }",
                    "variables": {
                        "i": {
                            "bkObjId": "bk_switch",
                            "bkAsstObjId": "host",
                            "bkObjAsstId": "bk_switch_belong_host",
                            "details": [{"bkInstId": 11, "bkAsstInstId": 21}],
                        }
                    },
                },
                headers=headers,
            )
        path = (
            f"{ESB}/batch_create_instance_association/"
            if where == "esb"
            else "/api/v3/createmany/instassociation"
        )
        return await client.post(path, json=batch, headers=headers)

    async with writes_nothing(db):
        for headers, code in ((app_only, 1199027), (bad_token, 1199027)):
            response = await send(headers)
            assert response.status_code == 401, response.text
            body = response.json()
            if where == "graphql":
                assert only_error(body)["extensions"]["bkErrorCode"] == code
            else:
                assert body["result"] is False
                assert body.get("code", body.get("bk_error_code")) == code


# --- 14. NUL characters, 15. long filters -------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/api/v3/delete/instassociation/%00/1"),
        ("POST", "/api/v3/find/instassociation/object/%00"),
        ("POST", "/api/v3/find/instassociation/object/host%00"),
        ("POST", f"{ESB}/search_inst_by_object/?x=%00"),
    ],
)
async def test_nul_in_a_path_or_query_string_is_refused(client, db, method, path):
    async with writes_nothing(db):
        response = await client.request(method, path, json={}, headers=demo_headers())
    assert response.status_code == 400
    body = response.json()
    assert body.get("code", body.get("bk_error_code")) == 1199003


async def test_nul_in_graphql_text_is_refused(client):
    query = '{ instances(nameContains: "a\\u0000b") { totalCount } }'
    response, body = await gql(client, query)
    assert response.status_code in (200, 400)
    assert "NUL" in only_error(body)["message"]
    response = await client.get("/graphql", params={"query": query}, headers=demo_headers())
    assert "NUL" in only_error(response.json())["message"]
    _, body = await gql(client, '{ instances(nameContains: "a\\u{0}b") { totalCount } }')
    error = only_error(body)
    assert "NUL" in error["message"] and error["extensions"]["code"] == "BAD_USER_INPUT"
    _, body = await gql(
        client, "query($n: String) { instances(nameContains: $n) { totalCount } }", {"n": "a\0"}
    )
    assert "NUL" in only_error(body)["message"]


async def test_long_free_text_filters_are_refused_clearly(client):
    most = Settings().max_filter_length
    query = "query($n: String) { instances(nameContains: $n) { totalCount } }"
    _, body = await gql(client, query, {"n": "x" * most})
    assert body["data"]["instances"]["totalCount"] == 0
    _, body = await gql(client, query, {"n": "x" * 900 * 1024})
    error = only_error(body)
    assert error["extensions"]["bkErrorCode"] == 1199035
    assert "nameContains" in error["message"] and str(most) in error["message"]


async def test_text_longer_than_its_column_is_refused_clearly(client, db):
    async with writes_nothing(db):
        _, body = await gql(
            client,
            'mutation($n: String!) { createInstances(input: {bkObjId: "host", instances: '
            "[{bkInstName: $n}]}) { __typename ... on RequestError { bkErrorCode message } } }",
            {"n": "x" * 257},
        )
    assert body["data"]["createInstances"] == {
        "__typename": "RequestError",
        "bkErrorCode": 1199006,
        "message": "'bk_inst_name' 数据参数校验不通过",
    }


# --- 13. fragments cannot make validation exponential -------------------------------------


def fragment_bomb(levels: int) -> str:
    fragments = ["fragment F0 on Query { models { bkObjId } }"]
    fragments += [f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels)]
    return " ".join(fragments) + f" query {{ ...F{levels - 1} }}"


async def test_a_fragment_bomb_is_refused_quickly(client):
    document = fragment_bomb(23)
    assert len(document.encode()) < 1200
    started = time.perf_counter()
    _, body = await gql(client, document)
    assert time.perf_counter() - started < 1.0
    error = only_error(body)
    assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert error["extensions"]["cost"] == 2**22 * (1 + 500)


# --- 2. a request timeout stops the work ---------------------------------------------------


async def test_a_timed_out_graphql_request_leaves_no_work_running(database_url, monkeypatch):
    from cmdbgraph.services import associations

    finished: list[int] = []

    async def slow_lookup(db, inst_ids, *, limit):
        await asyncio.sleep(1.5)
        finished.append(len(inst_ids))
        return {inst_id: [] for inst_id in inst_ids}

    monkeypatch.setattr(associations, "associations_by_source", slow_lookup)
    app = create_app(Settings(database_url=database_url, request_timeout_seconds=0.3))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        started = time.perf_counter()
        response, body = await gql(
            client, "{ instance(bkInstId: 11) { associationsAsSource { id } } }"
        )
        assert response.status_code == 504
        assert time.perf_counter() - started < 1.0
        await asyncio.sleep(2)
    assert finished == [], "the batch of the loader ran on after its request timed out"


async def test_a_cancelled_sqlite_write_is_interrupted(tmp_path):
    from cmdbgraph.db.engine import Database

    db = Database(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'slow.sqlite3'}"))
    # About 20 s of work for SQLite's thread, unless interrupted.
    slow = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) "
        "SELECT count(*) FROM c"
    )
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3), db.write() as conn:
                await conn.exec_driver_sql(slow)
                await conn.exec_driver_sql("CREATE TABLE t (x)")
        # The next write must not wait for the cancelled one: it held the write lock.
        started = time.perf_counter()
        async with db.write() as conn:
            await conn.exec_driver_sql("CREATE TABLE t (x)")
        assert time.perf_counter() - started < 2.0
    finally:
        await db.dispose()


# --- messages (the first hour of a new operator, item 7) ------------------------------------


async def test_our_limits_use_upstreams_text_without_its_odd_space(client, db):
    instances_input = [{"bkInstName": f"many-{i}"} for i in range(201)]
    _, body = await gql(
        client,
        'mutation($i: [NewInstanceInput!]!) { createInstances(input: {bkObjId: "host", '
        "instances: $i}) { __typename ... on RequestError { bkErrorCode message } } }",
        {"i": instances_input},
    )
    assert body["data"]["createInstances"] == {
        "__typename": "RequestError",
        "bkErrorCode": 1199035,
        "message": "instances 超过限制 200",
    }
    # Upstream's own check keeps upstream's text exactly, leading space included.
    too_many = rest_body("bk_switch", "host", "bk_switch_belong_host", [(11, 21)] * 201)
    reply = (await client.post(f"{ESB}/batch_create_instance_association/", json=too_many)).json()
    assert (reply["code"], reply["message"]) == (1199035, " details 超过限制 200")


def test_internal_errors_have_one_name():
    sdl = Path(__file__).resolve().parents[1].joinpath("schema.graphql").read_text()
    assert "INTERNAL_SERVER_ERROR" in sdl
    assert not re.search(r"^\s+INTERNAL$", sdl, re.M)
