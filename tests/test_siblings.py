"""The batch call's REST siblings (behaviour spec sections 1, 5 and 9).

Every call is sent on its ESB path (``/api/c/compapi/v2/cc/<name>/``, credentials in the body)
and on its native route (credentials in the ``X-Bkapi-Authorization`` header, as the SDK sends
them), and its failures are checked in Chinese (the default) and in English. Every test runs on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from cmdbgraph.db import bulk
from cmdbgraph.db.tables import audit_entries
from cmdbgraph.services import accounts
from tests.support.calls import demo_headers
from tests.support.databases import new_instances, row_counts
from tests.support.siblings import (
    BELONG,
    CONNECT,
    DEFAULT,
    DEMO_NAMES,
    ESB_CREDENTIALS,
    FIRST,
    LANGUAGES,
    MAINLINE,
    ROUTES,
    Reply,
    assert_answer,
    association_json,
    call,
    fill,
    store,
    stored_ids,
)
from tests.support.upstream import (
    BAD_JSON,
    BAD_JSON_CHECK,
    DENIED,
    MAINLINE_REFUSED,
    ONE_TO_MANY,
    ONE_TO_ONE,
    PAGE_LIMIT,
    SOURCE_MISSING,
    SUCCESS,
    TARGET_MISSING,
    UNKNOWN_ASSOCIATION,
    Upstream,
    invalid,
    mongodb,
    unassigned,
)


@pytest.fixture
async def stored(db) -> dict[str, list[int]]:
    """Associations among the demo instances: 11->21, 11->22, 13->21 (belong), 31->41
    (default), 14->23 (connect)."""
    return {
        BELONG: await store(db, BELONG, (11, 21), (11, 22), (13, 21)),
        DEFAULT: await store(db, DEFAULT, (31, 41)),
        CONNECT: await store(db, CONNECT, (14, 23)),
    }


# ---------------------------------------------------------------------------------------------
# add_instance_association


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("route", ROUTES)
async def test_add_instance_association_creates_one_and_answers_its_id(client, db, route, language):
    before = await row_counts(db)
    body = {"bk_obj_asst_id": BELONG, "bk_inst_id": 13, "bk_asst_inst_id": 23}
    reply = await call(client, "add_instance_association", route, body, language=language)
    assert_answer(reply, SUCCESS, language)
    assert list(reply.data) == ["id"]
    new_id = reply.data["id"]
    assert type(new_id) is int and new_id > 1000
    assert await row_counts(db) == (before[0] + 1, before[1] + 1)

    found = await call(
        client,
        "find_instance_association",
        route,
        {"bk_obj_id": "bk_switch", "condition": {"bk_obj_asst_id": BELONG}},
    )
    assert found.data == [association_json(new_id, BELONG, 13, 23)]
    async with db.read() as conn:
        entry = (
            await conn.execute(
                select(
                    audit_entries.c.action,
                    audit_entries.c.resource_type,
                    audit_entries.c.resource_id,
                    audit_entries.c.bk_username,
                ).where(audit_entries.c.resource_type == "instance_association")
            )
        ).one()
    assert tuple(entry) == ("create", "instance_association", 13, "admin")


# Upstream's add_instance_association: an n:n pair that exists is its generic duplicate.
DUPLICATE_PAIR = Upstream(
    1199014,
    "数据唯一性校验失败， association 重复",
    "duplicated instances exist, fields [association] duplicated",
)

ADD_FAILURES = [
    pytest.param(
        {"bk_obj_asst_id": BELONG, "bk_inst_id": 11, "bk_asst_inst_id": 21},
        DUPLICATE_PAIR,
        id="duplicate",
    ),
    # The mapping is checked first: before the pair and before the instances.
    pytest.param(
        {"bk_obj_asst_id": DEFAULT, "bk_inst_id": 31, "bk_asst_inst_id": 41},
        ONE_TO_ONE,
        id="one-to-one-duplicate",
    ),
    pytest.param(
        {"bk_obj_asst_id": DEFAULT, "bk_inst_id": 31, "bk_asst_inst_id": 99},
        ONE_TO_ONE,
        id="one-to-one-before-missing-target",
    ),
    pytest.param(
        {"bk_obj_asst_id": CONNECT, "bk_inst_id": 99, "bk_asst_inst_id": 23},
        ONE_TO_MANY,
        id="one-to-many-before-missing-source",
    ),
    pytest.param(
        {"bk_obj_asst_id": BELONG, "bk_inst_id": 12, "bk_asst_inst_id": 23},
        SOURCE_MISSING,
        id="source-missing",
    ),
    pytest.param(
        {"bk_obj_asst_id": BELONG, "bk_inst_id": 14, "bk_asst_inst_id": 31},
        TARGET_MISSING,
        id="target-missing",
    ),
    pytest.param(
        {"bk_obj_asst_id": DEFAULT, "bk_inst_id": 31, "bk_asst_inst_id": 42},
        ONE_TO_ONE,
        id="one-to-one-source-taken",
    ),
    pytest.param(
        {"bk_obj_asst_id": DEFAULT, "bk_inst_id": 32, "bk_asst_inst_id": 41},
        ONE_TO_ONE,
        id="one-to-one-target-taken",
    ),
    pytest.param(
        {"bk_obj_asst_id": CONNECT, "bk_inst_id": 11, "bk_asst_inst_id": 23},
        ONE_TO_MANY,
        id="one-to-many-target-has-a-source",
    ),
    # Upstream looks the empty id up, and finds no model association.
    pytest.param({"bk_inst_id": 14, "bk_asst_inst_id": 23}, UNKNOWN_ASSOCIATION, id="no-asst"),
    pytest.param(
        {"bk_obj_asst_id": "", "bk_inst_id": 14, "bk_asst_inst_id": 23},
        UNKNOWN_ASSOCIATION,
        id="empty-asst",
    ),
    pytest.param(
        {"bk_obj_asst_id": "bk_switch_run_host", "bk_inst_id": 14, "bk_asst_inst_id": 23},
        UNKNOWN_ASSOCIATION,
        id="unknown-model-association",
    ),
    pytest.param(
        {"bk_obj_asst_id": MAINLINE, "bk_inst_id": 21, "bk_asst_inst_id": 21},
        MAINLINE_REFUSED,
        id="mainline",
    ),
    pytest.param(
        {"bk_obj_asst_id": BELONG, "bk_inst_id": "14", "bk_asst_inst_id": 23},
        BAD_JSON_CHECK,
        id="string-for-int",
    ),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("body", "expected"), ADD_FAILURES)
async def test_add_instance_association_failures_are_request_errors(
    client, db, stored, route, language, body, expected
):
    before = await row_counts(db)
    reply = await call(client, "add_instance_association", route, body, language=language)
    assert_answer(reply, expected, language)
    assert await row_counts(db) == before


# ---------------------------------------------------------------------------------------------
# delete_instance_association


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("scope", ["bk_switch", "host"], ids=["by-source-model", "by-target"])
async def test_delete_instance_association_deletes_exactly_that_one(
    client, db, stored, route, scope
):
    doomed, *kept = stored[BELONG]
    before = await row_counts(db)
    if route == "esb":
        reply = await call(
            client, "delete_instance_association", "esb", {"id": doomed, "bk_obj_id": scope}
        )
    else:
        # The native route carries its arguments in the path; no body at all.
        reply = await call(
            client,
            "delete_instance_association",
            "native",
            path={"bk_obj_id": scope, "id": doomed},
        )
    assert_answer(reply, SUCCESS, "zh")
    assert reply.data is None
    remaining = await stored_ids(db)
    assert doomed not in remaining and set(kept) <= remaining
    assert await row_counts(db) == (before[0] - 1, before[1] + 1)


@pytest.mark.parametrize("route", ROUTES)
async def test_delete_instance_association_of_another_model_or_unknown_deletes_nothing(
    client, db, stored, route
):
    before = await row_counts(db)
    for bk_obj_id, association_id in [
        ("bk_router", stored[BELONG][0]),  # exists, but joins neither side's model
        ("bk_switch", 999_999),  # no such association
    ]:
        body = {"id": association_id, "bk_obj_id": bk_obj_id}
        path = {"bk_obj_id": bk_obj_id, "id": association_id}
        reply = await call(
            client,
            "delete_instance_association",
            route,
            body if route == "esb" else None,
            path=path,
        )
        assert_answer(reply, SUCCESS, "zh")
    assert await row_counts(db) == before


ESB_DELETE_ONE_FAILURES = [
    pytest.param({"id": 0, "bk_obj_id": "bk_switch"}, invalid("id"), id="zero-id"),
    pytest.param({"id": -7, "bk_obj_id": "bk_switch"}, invalid("id"), id="negative-id"),
    pytest.param({"bk_obj_id": "bk_switch"}, invalid("id"), id="no-id"),
    pytest.param({"id": FIRST}, invalid("bk_obj_id"), id="no-bk-obj-id"),
    pytest.param({"id": 1.5, "bk_obj_id": "bk_switch"}, BAD_JSON, id="float-id"),
]
NOT_AN_INTEGER = Upstream(
    1199009, "'association_id' 参数必须是整型", "'association_id' parameters must be integral"
)
NATIVE_DELETE_ONE_FAILURES = [
    pytest.param({"bk_obj_id": "bk_switch", "id": "abc"}, NOT_AN_INTEGER, id="non-numeric-id"),
    pytest.param({"bk_obj_id": "bk_switch", "id": "0"}, invalid("id"), id="zero-id"),
    pytest.param({"bk_obj_id": "bk_switch", "id": "-3"}, invalid("id"), id="negative-id"),
    pytest.param({"bk_obj_id": "bk_switch", "id": "1.5"}, NOT_AN_INTEGER, id="fraction-id"),
    pytest.param({"bk_obj_id": "bk_switch", "id": str(2**63)}, NOT_AN_INTEGER, id="above-int64"),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("body", "expected"), ESB_DELETE_ONE_FAILURES)
async def test_delete_instance_association_refuses_a_bad_body(
    client, db, stored, language, body, expected
):
    body = fill(body, stored[BELONG][0])
    before = await row_counts(db)
    reply = await call(client, "delete_instance_association", "esb", body, language=language)
    assert_answer(reply, expected, language)
    assert await row_counts(db) == before


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("path", "expected"), NATIVE_DELETE_ONE_FAILURES)
async def test_delete_instance_association_refuses_a_bad_path(
    client, db, stored, language, path, expected
):
    before = await row_counts(db)
    reply = await call(
        client, "delete_instance_association", "native", path=path, language=language
    )
    assert_answer(reply, expected, language)
    assert await row_counts(db) == before


# ---------------------------------------------------------------------------------------------
# delete_related_inst_asso


@pytest.mark.parametrize("route", ROUTES)
async def test_delete_related_inst_asso_answers_the_number_deleted(client, db, stored, route):
    belong = stored[BELONG]
    before = await row_counts(db)
    ids = [belong[0], belong[2], 999_999, belong[0], stored[DEFAULT][0]]
    reply = await call(
        client, "delete_related_inst_asso", route, {"id": ids, "bk_obj_id": "bk_switch"}
    )
    # The unknown id, the repeated one and the router's association (outside bk_switch) do
    # not count.
    assert_answer(reply, SUCCESS, "zh")
    assert reply.data == 2
    remaining = await stored_ids(db)
    assert remaining.isdisjoint({belong[0], belong[2]})
    assert {belong[1], stored[DEFAULT][0], *stored[CONNECT]} <= remaining
    assert await row_counts(db) == (before[0] - 2, before[1] + 2)

    again = await call(
        client, "delete_related_inst_asso", route, {"id": ids, "bk_obj_id": "bk_switch"}
    )
    assert again.data == 0


@pytest.mark.parametrize("route", ROUTES)
async def test_delete_related_inst_asso_takes_500_ids(client, db, route):
    switches = await new_instances(db, "bk_switch", "del500-sw", 25)
    hosts = await new_instances(db, "host", "del500-host", 20)
    ids: list[int] = []
    for s in switches:
        ids += await store(db, BELONG, *((s, h) for h in hosts))
    assert len(ids) == 500
    before = await row_counts(db)
    reply = await call(client, "delete_related_inst_asso", route, {"id": ids, "bk_obj_id": "host"})
    assert_answer(reply, SUCCESS, "zh")
    assert reply.data == 500
    assert await row_counts(db) == (before[0] - 500, before[1] + 500)


NO_IDS_UPSTREAM = Upstream(1199003, "输入参数无效", "invalid input parameter")

# Upstream's order: the body, the ids (none, more than 500), then bk_obj_id.
DELETE_MANY_FAILURES = [
    pytest.param({"id": list(range(1, 502)), "bk_obj_id": "bk_switch"}, PAGE_LIMIT, id="501"),
    pytest.param({"id": list(range(1, 502))}, PAGE_LIMIT, id="501-before-bk-obj-id"),
    pytest.param({"id": [], "bk_obj_id": "bk_switch"}, NO_IDS_UPSTREAM, id="empty"),
    pytest.param({"bk_obj_id": "bk_switch"}, NO_IDS_UPSTREAM, id="missing"),
    pytest.param({}, NO_IDS_UPSTREAM, id="nothing"),
    pytest.param({"id": [FIRST]}, unassigned("bk_obj_id"), id="no-bk-obj-id"),
    pytest.param({"id": [FIRST, "7"], "bk_obj_id": "bk_switch"}, BAD_JSON_CHECK, id="string-id"),
    pytest.param({"id": FIRST, "bk_obj_id": "bk_switch"}, BAD_JSON_CHECK, id="id-not-a-list"),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("body", "expected"), DELETE_MANY_FAILURES)
async def test_delete_related_inst_asso_refusals(
    client, db, stored, route, language, body, expected
):
    body = fill(body, stored[BELONG][0])
    before = await row_counts(db)
    reply = await call(client, "delete_related_inst_asso", route, body, language=language)
    assert_answer(reply, expected, language)
    assert await row_counts(db) == before


@pytest.mark.parametrize("route", ROUTES)
async def test_delete_related_inst_asso_is_one_transaction(client, db, stored, route, monkeypatch):
    real_insert = bulk.insert_audit_entries

    async def audit_the_database_refuses(conn, **kwargs):
        # The associations are deleted already; the audit rows violate NOT NULL.
        await real_insert(conn, **{**kwargs, "resource_type": None})

    monkeypatch.setattr(bulk, "insert_audit_entries", audit_the_database_refuses)
    before = await row_counts(db)
    ids_before = await stored_ids(db)
    reply = await call(
        client,
        "delete_related_inst_asso",
        route,
        {"id": stored[BELONG], "bk_obj_id": "bk_switch"},
    )
    assert (reply.status, reply.code) == (500, 1199999)
    assert reply.message == "'delete_related_inst_asso' 服务器内部错误"
    assert await row_counts(db) == before
    assert await stored_ids(db) == ids_before


# ---------------------------------------------------------------------------------------------
# Deletes: audited, and permission-checked.


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("name", ["delete_instance_association", "delete_related_inst_asso"])
async def test_each_deleted_association_has_one_audit_entry(client, db, stored, route, name):
    belong = stored[BELONG]
    request_id = f"audit-delete-{name}-{route}"
    if name == "delete_instance_association":
        deleted = {belong[0]: (11, 21)}
        body = {"id": belong[0], "bk_obj_id": "host"}
        path = {"bk_obj_id": "host", "id": belong[0]}
    else:
        deleted = {belong[0]: (11, 21), belong[2]: (13, 21)}
        body = {"id": [belong[0], belong[2]], "bk_obj_id": "host"}
        path = None
    reply = await call(
        client,
        name,
        route,
        None if route == "native" and path else body,
        path=path,
        headers={"X-Request-ID": request_id},
    )
    assert reply.code == 0, reply
    a = audit_entries.c
    async with db.read() as conn:
        rows = (
            await conn.execute(
                select(
                    a.audit_type,
                    a.resource_type,
                    a.action,
                    a.resource_id,
                    a.resource_name,
                    a.operation_detail,
                    a.bk_username,
                    a.app_code,
                    a.bk_supplier_account,
                ).where(a.request_id == request_id)
            )
        ).all()
    # Upstream's operation_detail keys (behaviour spec, section 5); more may be recorded.
    detail_keys = ("asst_id", "asst_kind", "src_obj_id", "dest_obj_id", "dest_inst_id")
    entries = sorted(
        (
            {
                **{k: v for k, v in row._mapping.items() if k != "operation_detail"},
                **{k: row.operation_detail[k] for k in (*detail_keys, "dest_inst_name")},
            }
            for row in rows
        ),
        key=lambda e: (e["resource_id"], e["dest_inst_id"]),
    )
    assert entries == [
        {
            "audit_type": "model_instance",
            "resource_type": "instance_association",
            "action": "delete",
            "resource_id": src,
            "resource_name": DEMO_NAMES[src],
            "asst_id": BELONG,
            "asst_kind": "belong",
            "src_obj_id": "bk_switch",
            "dest_obj_id": "host",
            "dest_inst_id": dest,
            "dest_inst_name": DEMO_NAMES[dest],
            "bk_username": "admin",
            "app_code": "esb_test",
            "bk_supplier_account": "0",
        }
        for src, dest in sorted(deleted.values())
    ]


UNGRANTED_USER = "sibling_without_grants"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("name", ["delete_instance_association", "delete_related_inst_asso"])
async def test_deletes_need_a_grant(client, db, stored, route, name, language):
    await accounts.create_user(db, UNGRANTED_USER)
    credentials = {**ESB_CREDENTIALS, "bk_username": UNGRANTED_USER}
    first, second, _ = stored[BELONG]
    if name == "delete_instance_association":
        body = {"id": first, "bk_obj_id": "bk_switch"}
        denied = ([11], [21])
    else:
        body = {"id": [first, second], "bk_obj_id": "bk_switch"}
        denied = ([11], [21, 22])
    before = await row_counts(db)
    ids_before = await stored_ids(db)
    reply = await call(
        client,
        name,
        route,
        body,
        path={"bk_obj_id": "bk_switch", "id": first},
        language=language,
        credentials=credentials,
    )
    assert_answer(reply, DENIED, language)
    # Upstream's permission object names every instance to apply for.
    named = [
        (action["related_resource_types"][0]["type_name"], instance["id"], instance["name"])
        for action in reply.permission["actions"]
        for (instance,) in action["related_resource_types"][0]["instances"]
    ]
    # Type names in the caller's language: upstream's English ones are the model's id and Host.
    switch, host = ("bk_switch", "Host") if language == "en" else ("交换机", "主机")
    assert sorted(named) == sorted(
        [(switch, str(i), DEMO_NAMES[i]) for i in denied[0]]
        + [(host, str(i), DEMO_NAMES[i]) for i in denied[1]]
    )
    assert await row_counts(db) == before
    assert await stored_ids(db) == ids_before

    # The same call by the demo user, who holds every grant, goes through.
    allowed = await call(client, name, route, body, path={"bk_obj_id": "bk_switch", "id": first})
    assert allowed.code == 0


# ---------------------------------------------------------------------------------------------
# find_instance_association


# (stored index, model association): 0-2 belong 11->21, 11->22, 13->21; 3 connect 14->23.
BELONGS = [(0, BELONG), (1, BELONG), (2, BELONG)]
CONNECTS = [(0, CONNECT)]
PAIRS = {BELONG: [(11, 21), (11, 22), (13, 21)], CONNECT: [(14, 23)], DEFAULT: [(31, 41)]}

FIND_CASES = [
    pytest.param({"bk_obj_asst_id": BELONG}, "bk_switch", BELONGS, id="by-model-association"),
    pytest.param(
        {"bk_obj_asst_id": BELONG, "bk_asst_id": "belong", "bk_asst_obj_id": "host"},
        "bk_switch",
        BELONGS,
        id="every-condition",
    ),
    # Upstream's documented example: the filters it does not use are "".
    pytest.param(
        {"bk_obj_asst_id": BELONG, "bk_asst_id": "", "bk_asst_obj_id": ""},
        "bk_switch",
        BELONGS,
        id="documented-example",
    ),
    pytest.param({"bk_obj_asst_id": BELONG, "bk_asst_id": "run"}, "bk_switch", [], id="other-kind"),
    pytest.param(
        {"bk_obj_asst_id": BELONG, "bk_asst_obj_id": "bk_firewall"},
        "bk_switch",
        [],
        id="other-target-model",
    ),
    pytest.param({"bk_obj_asst_id": BELONG}, "bk_router", [], id="model-on-neither-side"),
    pytest.param({"bk_obj_asst_id": "bk_switch_run_host"}, "bk_switch", [], id="unknown"),
    # Upstream keeps each association under its source and its target model.
    pytest.param({"bk_obj_asst_id": BELONG}, "host", BELONGS, id="target-model"),
    # What upstream's UI sends: every association of one instance.
    pytest.param({"bk_obj_id": "bk_switch", "bk_inst_id": 11}, "bk_switch", BELONGS[:2], id="ui"),
    pytest.param({}, "bk_switch", [*BELONGS, (0, CONNECT)], id="no-condition"),
    pytest.param({"bk_asst_inst_id": 21}, "host", [BELONGS[0], BELONGS[2]], id="target-instance"),
    pytest.param(
        {"bk_inst_id": {"$in": [13, 14]}}, "bk_switch", [BELONGS[2], (0, CONNECT)], id="in"
    ),
    pytest.param(
        {"$or": [{"bk_asst_inst_id": 22}, {"bk_obj_asst_id": CONNECT}]},
        "host",
        [BELONGS[1], (0, CONNECT)],
        id="or",
    ),
    pytest.param(
        {"bk_obj_asst_id": {"$regex": "^bk_switch_c"}}, "bk_switch", [(0, CONNECT)], id="regex"
    ),
    pytest.param({"bk_inst_id": {"$ne": 11}}, "bk_switch", [BELONGS[2], (0, CONNECT)], id="ne"),
    pytest.param({"bk_inst_id": "11"}, "bk_switch", [], id="string-is-not-a-number"),
    pytest.param({"no_such_field": {"$exists": False}}, "bk_router", [(0, DEFAULT)], id="missing"),
]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("condition", "bk_obj_id", "expected"), FIND_CASES)
async def test_find_instance_association(client, stored, route, condition, bk_obj_id, expected):
    reply = await call(
        client,
        "find_instance_association",
        route,
        {"condition": condition, "bk_obj_id": bk_obj_id},
    )
    assert_answer(reply, SUCCESS, "zh")
    wanted = [association_json(stored[name][i], name, *PAIRS[name][i]) for i, name in expected]
    assert reply.data == sorted(wanted, key=lambda item: item["id"])
    # Upstream's InstAsst: Go's field order, no bk_biz_id when it is 0.
    for item in reply.data:
        assert list(item) == list(association_json(0, BELONG, 0, 0))


async def test_find_instance_association_by_id_and_by_the_condition_id(client, stored):
    first = stored[BELONG][1]
    for condition in (
        {"id": first},
        {"id": {"$in": [first, 10**18]}},
        {"id": {"$gte": first, "$lte": first}},
    ):
        reply = await call(
            client,
            "find_instance_association",
            "native",
            {"condition": condition, "bk_obj_id": "host"},
        )
        assert [item["id"] for item in reply.data] == [first], condition


FIND_FAILURES = [
    pytest.param({"condition": {"bk_obj_asst_id": BELONG}}, unassigned("bk_obj_id"), id="no-obj"),
    pytest.param({}, unassigned("bk_obj_id"), id="empty-object"),
    pytest.param(
        {"condition": [BELONG], "bk_obj_id": "bk_switch"}, BAD_JSON_CHECK, id="list-condition"
    ),
    pytest.param({"condition": {}, "bk_obj_id": 5}, BAD_JSON_CHECK, id="number-model"),
    pytest.param(
        {"condition": {"bk_inst_id": {"$foo": 1}}, "bk_obj_id": "bk_switch"},
        mongodb("(BadValue) unknown operator: $foo"),
        id="unknown-operator",
    ),
    pytest.param(
        {"condition": {"$where": "sleep(10000)"}, "bk_obj_id": "bk_switch"},
        mongodb('operator "$where" is forbidden'),
        id="where",
    ),
    pytest.param(
        {"condition": {"bk_inst_id": {"$in": 11}}, "bk_obj_id": "bk_switch"},
        mongodb("(BadValue) $in needs an array"),
        id="in-not-an-array",
    ),
    pytest.param({"condition": {}, "bk_obj_id": "nomodel"}, invalid("bk_obj_id"), id="no-model"),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("body", "expected"), FIND_FAILURES)
async def test_find_instance_association_refusals(client, route, language, body, expected):
    reply = await call(client, "find_instance_association", route, body, language=language)
    assert_answer(reply, expected, language)


async def test_find_instance_association_with_no_body_is_unassigned(client):
    """No body at all reads as an empty object, as upstream's decoder leaves it."""
    reply = await call(client, "find_instance_association", "native", None)
    assert_answer(reply, unassigned("bk_obj_id"), "zh")


# ---------------------------------------------------------------------------------------------
# search_related_inst_asso


@pytest.mark.parametrize("route", ROUTES)
async def test_search_related_inst_asso_finds_both_directions(client, stored, route):
    belong, connect = stored[BELONG], stored[CONNECT]

    async def related(bk_inst_id: int, bk_obj_id: str, **extra) -> Reply:
        body = {
            "condition": {"bk_inst_id": bk_inst_id, "bk_obj_id": bk_obj_id},
            "fields": EVERY_FIELD,
            **extra,
        }
        reply = await call(client, "search_related_inst_asso", route, body)
        assert_answer(reply, SUCCESS, "zh")
        return reply

    # 21 is the target of 11->21 and 13->21; 11 the source of 11->21 and 11->22.
    assert (await related(21, "host")).data == [
        association_json(belong[0], BELONG, 11, 21),
        association_json(belong[2], BELONG, 13, 21),
    ]
    assert [a["id"] for a in (await related(11, "bk_switch")).data] == belong[:2]
    assert [a["id"] for a in (await related(23, "host")).data] == connect
    assert (await related(21, "bk_switch")).data == []  # 21 is a host, never a switch
    assert (await related(42, "bk_firewall")).data == []

    # Only the fields asked for, in InstAsst's order whatever the order asked in.
    only = await related(11, "bk_switch", fields=["bk_asst_inst_id", "id", "no_such_field"])
    assert only.data == [
        {"id": belong[0], "bk_asst_inst_id": 21},
        {"id": belong[1], "bk_asst_inst_id": 22},
    ]
    assert [list(item) for item in only.data] == [["id", "bk_asst_inst_id"]] * 2
    # No page, or a page of 0: every one of them (upstream has no default limit here).
    assert len((await related(21, "host", page={"limit": 0})).data) == 2
    assert len((await related(21, "host", page={"start": 1})).data) == 1
    second_page = await related(21, "host", fields=["id"], page={"start": 1, "limit": 1})
    assert second_page.data == [{"id": belong[2]}]
    at_the_limit = await related(21, "host", fields=["id"], page={"start": 0, "limit": 500})
    assert len(at_the_limit.data) == 2


EVERY_FIELD = [
    "id",
    "bk_inst_id",
    "bk_obj_id",
    "bk_asst_inst_id",
    "bk_asst_obj_id",
    "bk_supplier_account",
    "bk_obj_asst_id",
    "bk_asst_id",
    "bk_biz_id",
]
RELATED_UNASSIGNED = unassigned("'bk_inst_id' & 'bk_obj_id'")
# Upstream formats its decoder's words into 1199006's template here.
RELATED_BAD_JSON = Upstream(
    1199006,
    "'反序列化JSON数据失败' 数据参数校验不通过",
    "'Deserializing JSON data failed' data parameter verification does not pass",
)

RELATED_FAILURES = [
    pytest.param(
        {
            "condition": {"bk_inst_id": 21, "bk_obj_id": "host"},
            "fields": ["id"],
            "page": {"limit": 501},
        },
        PAGE_LIMIT,
        id="limit-501",
    ),
    pytest.param(
        {
            "condition": {"bk_inst_id": 21, "bk_obj_id": "host"},
            "fields": ["id"],
            "page": {"start": -1},
        },
        invalid("page.start"),
        id="negative-start",
    ),
    pytest.param(
        {"condition": {"bk_obj_id": "host"}, "fields": ["id"]}, RELATED_UNASSIGNED, id="no-inst"
    ),
    pytest.param(
        {"condition": {"bk_inst_id": 21}, "fields": ["id"]}, RELATED_UNASSIGNED, id="no-obj"
    ),
    pytest.param({}, RELATED_UNASSIGNED, id="nothing"),
    pytest.param(
        {"condition": {"bk_inst_id": 21, "bk_obj_id": "host"}}, unassigned("fields"), id="no-fields"
    ),
    pytest.param(
        {"condition": {"bk_inst_id": 21, "bk_obj_id": "host"}, "fields": []},
        unassigned("fields"),
        id="empty-fields",
    ),
    pytest.param(
        {"condition": {"bk_inst_id": "21", "bk_obj_id": "host"}}, RELATED_BAD_JSON, id="string-inst"
    ),
    pytest.param(
        {"condition": {"bk_inst_id": 21, "bk_obj_id": "host"}, "fields": [1]},
        RELATED_BAD_JSON,
        id="number-field",
    ),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("body", "expected"), RELATED_FAILURES)
async def test_search_related_inst_asso_refusals(client, route, language, body, expected):
    reply = await call(client, "search_related_inst_asso", route, body, language=language)
    assert_answer(reply, expected, language)


# ---------------------------------------------------------------------------------------------
# find_object_association and search_objects


OBJECT_ASSOCIATION_CASES = [
    pytest.param({"bk_obj_id": "bk_switch"}, [CONNECT, BELONG], id="by-source"),
    pytest.param({"bk_asst_obj_id": "bk_firewall"}, [DEFAULT], id="by-target"),
    pytest.param({"bk_obj_id": "bk_switch", "bk_asst_id": "belong"}, [BELONG], id="by-kind"),
    pytest.param({"bk_obj_id": "bk_switch", "bk_asst_id": "run"}, [], id="none"),
    pytest.param(
        {"bk_asst_id": "bk_mainline"},
        ["set_bk_mainline_biz", "module_bk_mainline_set", "host_bk_mainline_module"],
        id="mainline",
    ),
]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("condition", "expected"), OBJECT_ASSOCIATION_CASES)
async def test_find_object_association(client, route, condition, expected):
    reply = await call(client, "find_object_association", route, {"condition": condition})
    assert_answer(reply, SUCCESS, "zh")
    assert sorted(m["bk_obj_asst_id"] for m in reply.data) == sorted(expected)
    for found in reply.data:
        assert set(found) == {
            "id",
            "bk_obj_asst_id",
            "bk_obj_asst_name",
            "bk_obj_id",
            "bk_asst_obj_id",
            "bk_asst_id",
            "mapping",
            "on_delete",
            "ispre",
            "bk_supplier_account",
        }
        for name, value in condition.items():
            assert found[name] == value
    by_id = {m["bk_obj_asst_id"]: m for m in reply.data}
    if BELONG in by_id:
        assert (by_id[BELONG]["mapping"], by_id[BELONG]["ispre"]) == ("n:n", False)
    if CONNECT in by_id:
        assert (by_id[CONNECT]["mapping"], by_id[CONNECT]["ispre"]) == ("1:n", True)


@pytest.mark.parametrize("route", ROUTES)
async def test_search_objects(client, route):
    every = await call(client, "search_objects", route, {})
    assert_answer(every, SUCCESS, "zh")
    every_id = [m["bk_obj_id"] for m in every.data]
    for built_in in ("biz", "set", "module", "host", "bk_switch", "bk_router", "bk_firewall"):
        assert built_in in every_id

    switch = await call(client, "search_objects", route, {"bk_obj_id": "bk_switch"})
    (model,) = switch.data
    assert (model["bk_obj_id"], model["bk_obj_name"], model["ispre"]) == (
        "bk_switch",
        "交换机",
        True,
    )

    # Built-in models carry upstream's names for them in the caller's language; the condition
    # still matches the stored name.
    english = await call(client, "search_objects", route, {"bk_obj_name": "交换机"}, language="en")
    assert [(m["bk_obj_id"], m["bk_obj_name"]) for m in english.data] == [("bk_switch", "Switch")]
    names = {
        m["bk_obj_id"]: m["bk_obj_name"]
        for m in (await call(client, "search_objects", route, {}, language="en")).data
    }
    assert (names["host"], names["plat"], names["bk_load_balance"]) == (
        "Host",
        "Plat",
        "Load Balance",
    )

    host_class = await call(
        client, "search_objects", route, {"bk_classification_id": "bk_host_manage"}
    )
    assert "host" in [m["bk_obj_id"] for m in host_class.data]
    assert all(m["bk_classification_id"] == "bk_host_manage" for m in host_class.data)

    presets = await call(client, "search_objects", route, {"ispre": True})
    assert sorted(m["bk_obj_id"] for m in presets.data) == sorted(
        m["bk_obj_id"] for m in every.data if m["ispre"]
    )
    assert (await call(client, "search_objects", route, {"bk_obj_id": "nothing"})).data == []


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("name", "body"),
    [
        # MongoDB compares within a type: a string never equals a boolean, nor a number a
        # string, nor a list a string field.
        ("search_objects", {"ispre": "true"}),
        ("search_objects", {"bk_obj_id": 7}),
        ("find_object_association", {"condition": {"bk_obj_id": ["bk_switch"]}}),
    ],
)
async def test_catalog_lookups_compare_within_a_type(client, route, name, body):
    reply = await call(client, name, route, body)
    assert_answer(reply, SUCCESS, "zh")
    assert reply.data == []


OBJECT_ASSOCIATION_CONDITIONS = [
    pytest.param({"mapping": "1:1"}, lambda m: m["mapping"] == "1:1", id="mapping"),
    pytest.param({"ispre": False}, lambda m: not m["ispre"], id="ispre"),
    pytest.param(
        {"$or": [{"bk_obj_id": "host"}, {"bk_asst_obj_id": "host"}]},
        lambda m: "host" in (m["bk_obj_id"], m["bk_asst_obj_id"]),
        id="or",
    ),
    pytest.param(
        {"bk_obj_asst_id": {"$regex": "^bk_switch"}},
        lambda m: m["bk_obj_asst_id"].startswith("bk_switch"),
        id="regex",
    ),
    pytest.param(
        {"bk_asst_id": {"$in": ["belong", "connect"]}, "mapping": {"$ne": "n:n"}},
        lambda m: m["bk_asst_id"] in ("belong", "connect") and m["mapping"] != "n:n",
        id="in-and-ne",
    ),
    pytest.param({"id": {"$gt": 0}}, lambda m: True, id="id"),
    pytest.param({"bk_supplier_account": "42"}, lambda m: True, id="owner-is-the-callers"),
]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("condition", "wanted"), OBJECT_ASSOCIATION_CONDITIONS)
async def test_find_object_association_applies_every_filter(client, db, route, condition, wanted):
    """Every key and operator of the condition applies (none is silently ignored)."""
    from cmdbgraph.services import catalog

    every = [serialize_model_association(m) for m in await catalog.list_model_associations(db)]
    reply = await call(client, "find_object_association", route, {"condition": condition})
    assert_answer(reply, SUCCESS, "zh")
    assert reply.data == [m for m in every if wanted(m)]
    assert reply.data, "the case selects something"
    # Upstream's metadata.Association: Go's field order.
    for item in reply.data:
        assert list(item) == [
            "id",
            "bk_supplier_account",
            "bk_obj_asst_id",
            "bk_obj_asst_name",
            "bk_obj_id",
            "bk_asst_obj_id",
            "bk_asst_id",
            "mapping",
            "on_delete",
            "ispre",
        ]


def serialize_model_association(m) -> dict:
    from cmdbgraph.rest import serialize

    return dict(serialize.model_association(m))


EMPTY_CONDITION = Upstream(
    1199011,
    "'%s' 参数无效或不存在",
    "'%s' the parameter is invalid or does not exist",
)

OBJECT_ASSOCIATION_FAILURES = [
    pytest.param({}, EMPTY_CONDITION, id="no-condition"),
    pytest.param({"condition": {}}, EMPTY_CONDITION, id="empty-condition"),
    pytest.param({"condition": None}, EMPTY_CONDITION, id="null-condition"),
    pytest.param(
        {"condition": "bk_switch"},
        Upstream(
            1199011,
            "the value of the key(condition) is not a map[string]interface{} type",
            "the value of the key(condition) is not a map[string]interface{} type",
        ),
        id="string-condition",
    ),
    pytest.param(
        {"bk_obj_id": "bk_switch"}, mongodb("(BadValue) $in needs an array"), id="older-form"
    ),
    pytest.param(
        {"condition": {"mapping": {"$foo": 1}}},
        mongodb("(BadValue) unknown operator: $foo"),
        id="unknown-operator",
    ),
    pytest.param(
        {"condition": {"$or": {"mapping": "1:1"}}},
        Upstream(
            1199030,
            "(BadValue) $and/$or/$nor must be a nonempty array",
            "(BadValue) $and/$or/$nor must be a nonempty array",
        ),
        id="or-not-a-list",
    ),
    pytest.param(
        {"condition": {"$expr": {"$eq": [1, 1]}}},
        mongodb('operator "$expr" is forbidden'),
        id="expr",
    ),
]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_find_object_association_refuses_a_body_that_is_not_an_object(client, language):
    reply = await call(client, "find_object_association", "native", [1], language=language)
    assert_answer(reply, BAD_JSON, language)


SEARCH_OBJECTS_FAILURES = [
    pytest.param(
        {"bk_obj_id": {"$foo": 1}},
        Upstream(
            1102020,
            "模型DB操作失败%!(EXTRA string=(BadValue) unknown operator: $foo)",
            "object DB operation failed%!(EXTRA string=(BadValue) unknown operator: $foo)",
        ),
        id="unknown-operator",
    ),
    pytest.param(
        {"$and": "x"},
        Upstream(1199998, "未知或未能识别的异常", "Unknown or unrecognized error"),
        id="and-not-a-list",
    ),
]


CATALOG_FAILURES = [
    *[
        pytest.param("find_object_association", *p.values, id=p.id)
        for p in OBJECT_ASSOCIATION_FAILURES
    ],
    *[pytest.param("search_objects", *p.values, id=p.id) for p in SEARCH_OBJECTS_FAILURES],
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("name", "body", "expected"), CATALOG_FAILURES)
async def test_catalog_lookup_refusals(client, route, language, name, body, expected):
    reply = await call(client, name, route, body, language=language)
    assert_answer(reply, expected, language)


@pytest.mark.parametrize("route", ROUTES)
async def test_search_objects_items_are_upstreams_objects(client, route):
    reply = await call(
        client, "search_objects", route, {"bk_obj_id": {"$in": ["host", "bk_switch"]}}
    )
    assert_answer(reply, SUCCESS, "zh")
    assert sorted(m["bk_obj_id"] for m in reply.data) == ["bk_switch", "host"]
    for model in reply.data:
        assert list(model) == [
            "id",
            "bk_classification_id",
            "bk_obj_icon",
            "bk_obj_id",
            "bk_obj_name",
            "bk_ishidden",
            "ispre",
            "bk_ispaused",
            "position",
            "bk_supplier_account",
            "description",
            "creator",
            "modifier",
            "create_time",
            "last_time",
            "obj_sort_number",
        ]
        assert type(model["id"]) is int and model["id"] > 0
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", model["create_time"])
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", model["last_time"])
        assert (model["bk_ishidden"], model["position"], model["description"]) == (False, "", "")
        assert model["obj_sort_number"] == 0


SEARCH_OBJECTS_CONDITIONS = [
    pytest.param({"creator": {"$ne": "cc_system"}}, lambda m: m["creator"] != "cc_system", id="ne"),
    pytest.param({"obj_sort_number": 0}, lambda m: True, id="sort-number"),
    pytest.param(
        {"bk_obj_name": {"$regex": "^bk", "$options": "i"}},
        lambda m: m["bk_obj_name"].lower().startswith("bk"),
        id="regex",
    ),
    pytest.param(
        {"$or": [{"bk_obj_id": "host"}, {"bk_classification_id": "bk_network"}]},
        lambda m: m["bk_obj_id"] == "host" or m["bk_classification_id"] == "bk_network",
        id="or",
    ),
    pytest.param({"ispre": True, "bk_ispaused": False}, lambda m: m["ispre"], id="two-fields"),
]


@pytest.mark.parametrize(("condition", "wanted"), SEARCH_OBJECTS_CONDITIONS)
async def test_search_objects_applies_every_filter(client, condition, wanted):
    every = (await call(client, "search_objects", "native", {})).data
    reply = await call(client, "search_objects", "native", condition)
    assert_answer(reply, SUCCESS, "zh")
    assert reply.data == [m for m in every if wanted(m)]


# ---------------------------------------------------------------------------------------------
# search_inst_by_object and search_inst

SEARCH_ROUTES = [
    pytest.param("search_inst_by_object", "esb", id="esb"),
    pytest.param("search_inst_by_object", "native", id="native"),
    pytest.param("search_inst_by_object@owner", "native", id="native-owner"),
    pytest.param("search_inst_by_object@gateway", "native", id="gateway"),
]


async def search(client, name, route, bk_obj_id, language="zh", **body) -> Reply:
    return await call(
        client,
        name,
        route,
        {"bk_obj_id": bk_obj_id, **body},
        path={"bk_obj_id": bk_obj_id},
        language=language,
    )


@pytest.mark.parametrize(("name", "route"), SEARCH_ROUTES)
async def test_search_inst_by_object(client, db, name, route):
    ids = await new_instances(db, "bk_router", "rt-search", 5, bk_vendor="acme")
    names = {i: f"rt-search-{n:03}" for n, i in enumerate(ids)}

    every = await search(client, name, route, "bk_router")
    assert_answer(every, SUCCESS, "zh")
    assert every.data["count"] == 7  # rt-01 and rt-02 of the demo, and these five
    assert [i["bk_inst_id"] for i in every.data["info"]] == [31, 32, *ids]
    first = every.data["info"][2]
    assert (first["bk_obj_id"], first["bk_inst_name"], first["bk_vendor"]) == (
        "bk_router",
        names[ids[0]],
        "acme",
    )
    # One map per row, keys sorted as upstream's encoder writes maps; times as MongoDB's.
    assert list(first) == sorted(first)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z", first["create_time"])
    assert first["bk_created_at"] == first["create_time"]

    picked = await search(
        client,
        name,
        route,
        "bk_router",
        condition={"bk_inst_name": {"$in": [names[ids[1]], names[ids[3]], "rt-01", "nothing"]}},
        fields=["bk_inst_id", "bk_inst_name"],
        page={"start": 0, "limit": 10, "sort": "-bk_inst_name"},
    )
    assert picked.data == {
        "count": 3,
        "info": [
            {"bk_inst_id": ids[3], "bk_inst_name": names[ids[3]]},
            {"bk_inst_id": ids[1], "bk_inst_name": names[ids[1]]},
            {"bk_inst_id": 31, "bk_inst_name": "rt-01"},
        ],
    }
    # The fields asked for, in the row's order (a map's sorted keys), not the order asked.
    reversed_fields = await search(
        client, name, route, "bk_router", fields=["bk_inst_name", "bk_inst_id"]
    )
    assert list(reversed_fields.data["info"][0]) == ["bk_inst_id", "bk_inst_name"]

    by_attribute = await search(
        client,
        name,
        route,
        "bk_router",
        condition={"bk_vendor": "acme", "bk_inst_id": {"$in": ids[:2] + [31]}},
        fields=["bk_inst_id"],
    )
    assert by_attribute.data == {"count": 2, "info": [{"bk_inst_id": i} for i in ids[:2]]}

    operators = await search(
        client,
        name,
        route,
        "bk_router",
        condition={
            "bk_inst_name": {"$regex": "^rt-search-00[0-2]$"},
            "bk_inst_id": {"$ne": ids[1]},
            "$or": [{"bk_vendor": "acme"}, {"bk_vendor": {"$exists": False}}],
        },
        fields=["bk_inst_id"],
    )
    assert operators.data == {"count": 2, "info": [{"bk_inst_id": ids[0]}, {"bk_inst_id": ids[2]}]}

    paged = await search(
        client,
        name,
        route,
        "bk_router",
        condition={"bk_vendor": {"$eq": "acme"}},
        fields=["bk_inst_id"],
        page={"start": 3, "limit": 200, "sort": "bk_inst_id"},
    )
    assert paged.data == {"count": 5, "info": [{"bk_inst_id": i} for i in ids[3:]]}

    assert (await search(client, name, route, "bk_load_balance")).data == {"count": 0, "info": []}


@pytest.mark.parametrize(("name", "route"), SEARCH_ROUTES)
async def test_search_inst_by_object_time_condition(client, db, name, route):
    ids = await new_instances(db, "bk_router", "rt-time", 2)
    now = datetime.now(UTC)
    past = (now - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    future = (now + timedelta(days=1)).isoformat()

    async def found(time_condition) -> list[int]:
        reply = await search(
            client,
            name,
            route,
            "bk_router",
            condition={"bk_inst_name": {"$regex": "^rt-time"}},
            time_condition=time_condition,
            fields=["bk_inst_id"],
        )
        assert_answer(reply, SUCCESS, "zh")
        return [i["bk_inst_id"] for i in reply.data["info"]]

    rule = {"field": "bk_created_at", "start": past, "end": future}
    assert await found({"oper": "and", "rules": [rule]}) == ids
    assert await found({"oper": "and", "rules": [{"field": "create_time", "end": past}]}) == []
    assert await found({"oper": "and", "rules": [{"field": "last_time", "start": future}]}) == []


TIME_FAILURES = [
    pytest.param({"oper": "or", "rules": []}, "time condition oper is invalid", 1199006, id="or"),
    pytest.param({"oper": "and", "rules": []}, "time condition rules not set", 1199010, id="none"),
    pytest.param(
        {"oper": "and", "rules": [{"field": "", "start": "2026-01-01 00:00:00"}]},
        "time condition field not set",
        1199010,
        id="no-field",
    ),
    pytest.param(
        {"oper": "and", "rules": [{"field": "create_time"}]},
        "time condition start and end both not set",
        1199006,
        id="no-bounds",
    ),
]


@pytest.mark.parametrize(("time_condition", "text", "code"), TIME_FAILURES)
async def test_search_inst_by_object_time_condition_refusals(client, time_condition, text, code):
    reply = await search(
        client, "search_inst_by_object", "native", "bk_router", time_condition=time_condition
    )
    assert (reply.code, reply.message) == (code, text)


SEARCH_FAILURES = [
    pytest.param({"page": {"limit": 201}}, PAGE_LIMIT, id="limit-201"),
    pytest.param({"page": {"start": -1, "limit": 10}}, invalid("page.start"), id="negative-start"),
    pytest.param({"page": {"sort": "bk_vendor"}}, invalid("sort"), id="unsortable"),
    pytest.param(
        {"condition": {"bk_inst_name": {"$foo": "rt"}}},
        Upstream(1199998, "未知或未能识别的异常", "Unknown or unrecognized error"),
        id="unknown-operator",
    ),
    pytest.param({"page": {"limit": "10"}}, BAD_JSON, id="string-limit"),
    pytest.param({"condition": []}, BAD_JSON, id="list-condition"),
    pytest.param(
        {
            "time_condition": {
                "oper": "and",
                "rules": [{"field": "create_time", "start": "yesterday"}],
            }
        },
        BAD_JSON,
        id="unreadable-time",
    ),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("name", "route"), SEARCH_ROUTES)
@pytest.mark.parametrize(("body", "expected"), SEARCH_FAILURES)
async def test_search_inst_by_object_refusals(client, name, route, language, body, expected):
    reply = await search(client, name, route, "bk_router", language=language, **body)
    assert_answer(reply, expected, language)


async def test_a_refused_condition_says_why_in_the_hint(client):
    response = await client.post(
        "/api/v3/find/instance/object/bk_router",
        json={"condition": {"bk_inst_name": {"$foo": "rt"}}},
        headers=demo_headers(),
    )
    assert response.json()["bk_error_code"] == 1199998
    assert response.headers["X-Cmdbgraph-Hint"] == "(BadValue) unknown operator: $foo"


INNER = Upstream(
    1199084,
    "禁止使用通用实例接口操作内置模型实例",
    "forbidden operate inner model instance with common instance API",
)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(
    ("name", "route"), [*SEARCH_ROUTES, ("search_inst", "esb"), ("search_inst", "native")]
)
@pytest.mark.parametrize("model", ["host", "biz", "set", "module"])
async def test_instance_searches_refuse_built_in_models(client, name, route, language, model):
    reply = await search(client, name, route, model, language=language)
    assert_answer(reply, INNER, language)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", ["search_inst_by_object", "search_inst"])
async def test_search_inst_needs_a_model_on_esb(client, name, language):
    reply = await call(client, name, "esb", {"condition": {}}, language=language)
    assert_answer(reply, invalid("bk_obj_id"), language)


@pytest.fixture
async def linked(db) -> dict[str, int]:
    """Three new switches: the first belongs to host 10.0.0.1 (21), the second to 10.0.0.2
    (22), the third to nothing."""
    ids = await new_instances(db, "bk_switch", "sw-link", 3, rack="r1")
    await store(db, BELONG, (ids[0], 21), (ids[1], 22))
    return {"a": ids[0], "b": ids[1], "c": ids[2]}


@pytest.mark.parametrize("route", ["esb", "native"])
async def test_search_inst_finds_instances_through_their_associations(client, linked, route):
    a, b, c = linked["a"], linked["b"], linked["c"]

    async def found(condition, **body) -> Reply:
        reply = await search(
            client,
            "search_inst",
            route,
            "bk_switch",
            condition=condition,
            fields={"bk_switch": ["bk_inst_id"]},
            **body,
        )
        assert_answer(reply, SUCCESS, "zh")
        return reply

    own = {"bk_switch": [{"field": "bk_inst_name", "operator": "$regex", "value": "sw-link"}]}
    every = await found(own)
    assert every.data == {"count": 3, "info": [{"bk_inst_id": i} for i in (a, b, c)]}
    # The switches whose associations point at host 10.0.0.1 (21).
    via_host = {
        **own,
        "host": [{"field": "bk_inst_name", "operator": "$eq", "value": "10.0.0.1"}],
    }
    assert (await found(via_host)).data == {"count": 1, "info": [{"bk_inst_id": a}]}
    # Two hosts: the union.
    via_hosts = {
        **own,
        "host": [{"field": "bk_inst_name", "operator": "$in", "value": ["10.0.0.1", "10.0.0.2"]}],
    }
    assert (await found(via_hosts)).data["count"] == 2
    # A host that matches nothing restricts nothing (upstream's rule).
    nowhere = {**own, "host": [{"field": "bk_inst_name", "operator": "$eq", "value": "none"}]}
    assert (await found(nowhere)).data["count"] == 3
    # Only other models, and no association leads here: upstream answers info null.
    only_other = {"bk_firewall": [{"field": "bk_inst_name", "operator": "$eq", "value": "none"}]}
    assert (await found(only_other)).data == {"count": 0, "info": None}
    # $regex on the model's own fields is a plain substring: "." is not any character.
    dotted = {"bk_switch": [{"field": "bk_inst_name", "operator": "$regex", "value": "sw.link"}]}
    assert (await found(dotted)).data == {"count": 0, "info": []}
    ranged = {
        "bk_switch": [
            {"field": "bk_inst_id", "operator": "$gte", "value": b},
            {"field": "bk_inst_id", "operator": "$lte", "value": c},
        ]
    }
    assert (await found(ranged)).data == {
        "count": 2,
        "info": [{"bk_inst_id": b}, {"bk_inst_id": c}],
    }


async def test_search_inst_answers_upstreams_documented_example(client, linked):
    """The documented request, on the demo's models."""
    reply = await search(
        client,
        "search_inst",
        "esb",
        "bk_switch",
        page={"start": 0, "limit": 10, "sort": "bk_inst_id"},
        fields={"bk_switch": ["bk_asset_id", "bk_inst_id", "bk_inst_name", "bk_obj_id"]},
        condition={
            "bk_switch": [{"field": "bk_inst_name", "operator": "$regex", "value": "sw-link"}]
        },
        time_condition={
            "oper": "and",
            "rules": [
                {
                    "field": "create_time",
                    "start": "2021-05-13 01:00:00",
                    "end": "2999-05-14 01:00:00",
                }
            ],
        },
    )
    assert_answer(reply, SUCCESS, "zh")
    assert reply.data["count"] == 3
    assert list(reply.data["info"][0]) == ["bk_inst_id", "bk_inst_name", "bk_obj_id"]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_no_body_reads_as_every_field_zero(client, language):
    """Upstream's decoder leaves an empty body's fields at their zero values: the batch then
    answers as for empty fields, not as for bad JSON."""
    headers = {**demo_headers(), **({"Blueking-Language": "en"} if language == "en" else {})}
    response = await client.post("/api/v3/createmany/instassociation", headers=headers)
    reply = response.json()
    assert (response.status_code, reply["bk_error_code"]) == (200, 1199011), reply


@pytest.mark.parametrize("route", ROUTES)
async def test_a_conditions_account_is_the_callers_on_every_read(client, db, stored, route):
    """Upstream's reads put the caller's account in place of the condition's
    ``bk_supplier_account`` (SetQueryOwner): another account in it filters nothing."""
    found = await call(
        client,
        "find_instance_association",
        route,
        {
            "bk_obj_id": "bk_switch",
            "condition": {"bk_obj_asst_id": BELONG, "bk_supplier_account": "someone-else"},
        },
    )
    assert sorted(a["id"] for a in found.data) == sorted(stored[BELONG])
    instances = await call(
        client,
        "search_inst_by_object",
        route,
        {
            "bk_obj_id": "bk_switch",
            "condition": {"bk_inst_name": "sw-01", "bk_supplier_account": "someone-else"},
            "page": {"limit": 10},
        },
        path={"bk_obj_id": "bk_switch"},
    )
    assert [i["bk_inst_name"] for i in instances.data["info"]] == ["sw-01"]
