"""Changing the catalog: model associations (create, update, delete_object_association) and
association kinds (create, update, delete_association_type), as upstream's UI and scripts call
them, on the native routes and the ESB paths, in both languages, on both databases; and the
same through GraphQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cmdbgraph.db.tables import association_kinds, audit_entries, model_associations
from cmdbgraph.services import accounts, permissions
from tests.support.calls import demo_headers
from tests.support.siblings import BELONG, CONNECT, LANGUAGES, ROUTES, assert_answer, call, store
from tests.support.upstream import (
    BAD_JSON,
    BAD_JSON_CHECK,
    DENIED,
    MAINLINE_REFUSED,
    SUCCESS,
    Upstream,
    invalid,
    unassigned,
)

MAINLINE = "host_bk_mainline_module"  # preset, kind bk_mainline

MISSING_PARAMETERS = Upstream(
    1101045, "模型关联关系缺少相关参数", "object association missing parameters."
)
FORBIDDEN_FIELDS = Upstream(1101047, "包含了不允许更新的字段", "updated the forbidden fields.")
NOT_FOUND = Upstream(1101046, "模型的关联关系不存在", "object association does not exist.")
PRESET_NOT_UPDATABLE = Upstream(
    1101054, "禁止更新预定义的关联关系", "can not update a predefined association."
)
PRESET_NOT_DELETABLE = Upstream(
    1101055, "禁止删除预定义的关联关系", "can not delete a predefined association."
)
INSTANTIATED = Upstream(
    1101043,
    "模型的关联关系已经被实例化，不能被删除",
    "object association has already been instantiated, can not be deleted.",
)
ID_INVALID = Upstream(
    1101041,
    "无效的关联关系ID，应该为正整数",
    "invalid object association id, should be a int64 value",
)
PRESET_KIND = Upstream(
    1101051, "预置的关联类型不能被删除", "can not delete a pre-defined association kind."
)
KIND_IN_USE = Upstream(1101060, "关联类型已经被使用", "association kind has already been used.")
# 1199011 with its template unfilled: upstream's answer to a body it cannot decode.
UNFILLED_INVALID = Upstream(
    1199011, "'%s' 参数无效或不存在", "'%s' the parameter is invalid or does not exist"
)


def duplicated(value: str) -> Upstream:
    return Upstream(
        1199014,
        f"数据唯一性校验失败， {value} 重复",
        f"duplicated instances exist, fields [{value}] duplicated",
    )


def exceeds(name: str, most: int) -> Upstream:
    return Upstream(
        1199073, f"字段{name}超过最大值{most}", f"{name} field exceeds maximum value {most}"
    )


def parse_int_failed(text: str, reason: str = "invalid syntax") -> Upstream:
    words = f'strconv.ParseInt: parsing "{text}": {reason}'
    return Upstream(1199006, words, words)


async def send(client, name, route, body=None, *, id=None, language="zh", credentials=None):
    """``name`` with ``id`` in the native route's path, or in the body on the ESB path."""
    if id is not None and route == "esb":
        body = {"id": id, **(body or {})}
    path = {"id": id} if id is not None else None
    return await call(
        client, name, route, body, path=path, language=language, credentials=credentials
    )


async def model_association(db, bk_obj_asst_id: str):
    async with db.read() as conn:
        return (
            await conn.execute(
                select(model_associations).where(
                    model_associations.c.bk_obj_asst_id == bk_obj_asst_id
                )
            )
        ).first()


async def kind_row(db, bk_asst_id: str):
    async with db.read() as conn:
        return (
            await conn.execute(
                select(association_kinds).where(association_kinds.c.bk_asst_id == bk_asst_id)
            )
        ).first()


async def audit_trail(db, resource_type: str) -> list[tuple]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(
                audit_entries.c.audit_type,
                audit_entries.c.action,
                audit_entries.c.resource_id,
                audit_entries.c.resource_name,
                audit_entries.c.bk_username,
                audit_entries.c.operation_detail,
            )
            .where(audit_entries.c.resource_type == resource_type)
            .order_by(audit_entries.c.id)
        )
        return [tuple(row) for row in rows]


# The request upstream's UI sends to create a model association (relation-detail.vue).
UI_CREATE = {
    "bk_obj_id": "bk_router",
    "bk_asst_obj_id": "host",
    "bk_asst_id": "connect",
    "bk_obj_asst_id": "bk_router_connect_host",
    "bk_obj_asst_name": "uplink",
    "mapping": "1:n",
    "on_delete": "none",
}


# --- create_object_association ------------------------------------------------------------


@pytest.mark.parametrize("route", [*ROUTES, "esb-alias"])
async def test_create_object_association_echoes_the_request_with_its_id(client, db, route):
    name = "add_object_association" if route == "esb-alias" else "create_object_association"
    reply = await call(client, name, route, {**UI_CREATE, "on_delete": ""})
    assert_answer(reply, SUCCESS, "zh")
    stored = await model_association(db, "bk_router_connect_host")
    # Upstream's metadata.Association, in its order: what was sent, the new id, on_delete
    # defaulted; the account and ispre as sent (none).
    assert list(reply.data.items()) == [
        ("id", stored.id),
        ("bk_supplier_account", ""),
        ("bk_obj_asst_id", "bk_router_connect_host"),
        ("bk_obj_asst_name", "uplink"),
        ("bk_obj_id", "bk_router"),
        ("bk_asst_obj_id", "host"),
        ("bk_asst_id", "connect"),
        ("mapping", "1:n"),
        ("on_delete", "none"),
        ("ispre", None),
    ]
    assert (stored.mapping, stored.on_delete, stored.ispre, stored.bk_supplier_account) == (
        "1:n",
        "none",
        False,
        "0",
    )
    found = await call(
        client,
        "find_object_association",
        route if route != "esb-alias" else "esb",
        {"condition": {"bk_obj_asst_id": "bk_router_connect_host"}},
    )
    assert [a["id"] for a in found.data] == [stored.id]
    (entry,) = await audit_trail(db, "model_association")
    assert entry[:5] == ("model", "create", stored.id, "bk_router_connect_host", "admin")
    assert entry[5]["details"]["pre_data"] is None
    assert entry[5]["details"]["cur_data"]["bk_obj_asst_id"] == "bk_router_connect_host"


CREATE_REFUSALS = [
    # Upstream's checks, in its order.
    (
        "mainline kind first",
        {**UI_CREATE, "bk_asst_id": "bk_mainline", "bk_obj_id": ""},
        MAINLINE_REFUSED,
    ),
    ("no source model", {**UI_CREATE, "bk_obj_id": ""}, MISSING_PARAMETERS),
    ("no target model", {**UI_CREATE, "bk_asst_obj_id": ""}, MISSING_PARAMETERS),
    ("no kind", {**UI_CREATE, "bk_asst_id": ""}, MISSING_PARAMETERS),
    (
        "the two models and kind already associated",
        {**UI_CREATE, "bk_obj_id": "bk_switch", "bk_asst_id": "belong", "bk_obj_asst_id": "x"},
        Upstream(
            1101038,
            "关联关系 bk_switch->host 重复",
            "the associations bk_switch->host already exist",
        ),
    ),
    (
        "neither model exists",
        {**UI_CREATE, "bk_obj_id": "nope", "bk_asst_obj_id": "nada"},
        invalid("bk_obj_id&bk_asst_obj_id"),
    ),
    ("source model missing", {**UI_CREATE, "bk_obj_id": "nope"}, invalid("bk_obj_id")),
    ("target model missing", {**UI_CREATE, "bk_asst_obj_id": "nope"}, invalid("bk_asst_obj_id")),
    ("no association id", {**UI_CREATE, "bk_obj_asst_id": ""}, unassigned("bk_obj_asst_id")),
    ("association id taken", {**UI_CREATE, "bk_obj_asst_id": BELONG}, duplicated(BELONG)),
    # This service's own, after upstream's.
    ("unknown kind", {**UI_CREATE, "bk_asst_id": "nope"}, invalid("bk_asst_id")),
    ("unknown mapping", {**UI_CREATE, "mapping": "2:2"}, invalid("mapping")),
    ("no mapping", {**UI_CREATE, "mapping": ""}, invalid("mapping")),
    ("unknown on_delete", {**UI_CREATE, "on_delete": "cascade"}, invalid("on_delete")),
    ("a preset asked for", {**UI_CREATE, "ispre": True}, invalid("ispre")),
    (
        "id off the convention",
        {**UI_CREATE, "bk_obj_asst_id": "router_to_host"},
        Upstream(
            1199006,
            "'bk_obj_asst_id' 数据参数校验不通过",
            "'bk_obj_asst_id' data parameter verification does not pass",
        ),
    ),
    (
        "name too long",
        {**UI_CREATE, "bk_obj_asst_name": "n" * 129},
        Upstream(
            1199006,
            "'bk_obj_asst_name' 数据参数校验不通过",
            "'bk_obj_asst_name' data parameter verification does not pass",
        ),
    ),
    ("wrong types", {**UI_CREATE, "mapping": 1}, UNFILLED_INVALID),
    ("ispre not a boolean", {**UI_CREATE, "ispre": "true"}, UNFILLED_INVALID),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "body,expected", [c[1:] for c in CREATE_REFUSALS], ids=[c[0] for c in CREATE_REFUSALS]
)
async def test_create_object_association_refusals(client, db, route, language, body, expected):
    reply = await call(client, "create_object_association", route, body, language=language)
    assert_answer(reply, expected, language)
    assert await model_association(db, "bk_router_connect_host") is None
    assert await audit_trail(db, "model_association") == []


# --- update_object_association ------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
async def test_update_object_association_renames_and_ignores_the_rest(client, db, route):
    row = await model_association(db, BELONG)
    reply = await send(
        client,
        "update_object_association",
        route,
        # Upstream writes the name only: the kind and on_delete are dropped; an id of 0 passes.
        {"bk_obj_asst_name": "rack", "bk_asst_id": "connect", "on_delete": "delete_src"}
        | ({"id": 0} if route == "native" else {}),
        id=row.id,
    )
    assert_answer(reply, SUCCESS, "zh")
    assert reply.data is None
    after = await model_association(db, BELONG)
    assert (after.bk_obj_asst_name, after.bk_asst_id, after.on_delete) == ("rack", "belong", "none")
    (entry,) = await audit_trail(db, "model_association")
    assert entry[:4] == ("model", "update", row.id, BELONG)
    details = entry[5]["details"]
    assert (details["pre_data"]["bk_obj_asst_name"], details["cur_data"]["bk_obj_asst_name"]) == (
        "",
        "rack",
    )


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "field,value",
    [
        ("bk_supplier_account", "0"),
        ("bk_obj_asst_id", "x"),
        ("bk_obj_id", "host"),
        ("bk_asst_obj_id", "host"),
        ("mapping", "1:1"),
        ("ispre", False),
    ],
)
async def test_update_object_association_refuses_fields_it_cannot_change(
    client, db, route, language, field, value
):
    row = await model_association(db, BELONG)
    body = {"bk_obj_asst_name": "rack", field: value}
    reply = await send(
        client, "update_object_association", route, body, id=row.id, language=language
    )
    if field == "bk_supplier_account":
        # The body's account is the caller's, as for every call of the shim: not a field.
        assert_answer(reply, SUCCESS, language)
        return
    assert_answer(reply, FORBIDDEN_FIELDS, language)
    assert (await model_association(db, BELONG)).bk_obj_asst_name == ""


@pytest.mark.parametrize("language", LANGUAGES)
async def test_update_object_association_refusals(client, db, language):
    belong = (await model_association(db, BELONG)).id
    connect = (await model_association(db, CONNECT)).id
    cases = [
        # The path's id is read first: upstream's template, unfilled.
        ("abc", {"bk_obj_asst_name": "x"}, UNFILLED_INVALID),
        ("99999999999999999999", {}, UNFILLED_INVALID),
        (str(belong), {"id": 5}, FORBIDDEN_FIELDS),
        (str(belong), {"id": "x"}, FORBIDDEN_FIELDS),
        ("424242", {"bk_obj_asst_name": "x"}, NOT_FOUND),
        (str(connect), {"bk_obj_asst_name": "x"}, PRESET_NOT_UPDATABLE),
        (
            str(belong),
            {"bk_obj_asst_name": 5},
            Upstream(
                1199006,
                "'bk_obj_asst_name' 数据参数校验不通过",
                "'bk_obj_asst_name' data parameter verification does not pass",
            ),
        ),
    ]
    for path_id, body, expected in cases:
        reply = await send(
            client, "update_object_association", "native", body, id=path_id, language=language
        )
        assert_answer(reply, expected, language)
    assert (await model_association(db, BELONG)).bk_obj_asst_name == ""
    bad = await client.put(
        f"/api/v3/update/objectassociation/{belong}",
        content=b"{not json",
        headers={"Content-Type": "application/json", **_headers(language)},
    )
    assert (bad.json()["bk_error_code"], bad.json()["bk_error_msg"]) == (
        BAD_JSON.code,
        BAD_JSON.text(language),
    )


def _headers(language: str) -> dict:
    return {**demo_headers(), **({"Blueking-Language": "en"} if language == "en" else {})}


# --- delete_object_association ------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
async def test_delete_object_association_deletes_one_no_instance_uses(client, db, route):
    created = await call(client, "create_object_association", route, UI_CREATE)
    new_id = created.data["id"]
    reply = await send(client, "delete_object_association", route, id=new_id)
    assert_answer(reply, SUCCESS, "zh")
    assert reply.data is None
    assert await model_association(db, "bk_router_connect_host") is None
    assert [e[1] for e in await audit_trail(db, "model_association")] == ["create", "delete"]
    # Again: nothing has the id, and that is no error.
    again = await send(client, "delete_object_association", route, id=new_id)
    assert_answer(again, SUCCESS, "zh")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("route", ROUTES)
async def test_delete_object_association_refusals(client, db, route, language):
    await store(db, BELONG, (11, 21))
    belong = (await model_association(db, BELONG)).id
    cases = [
        (0, ID_INVALID),
        (-3, ID_INVALID),
        ((await model_association(db, MAINLINE)).id, MAINLINE_REFUSED),
        ((await model_association(db, CONNECT)).id, PRESET_NOT_DELETABLE),
        (belong, INSTANTIATED),
    ]
    if route == "native":
        cases.append(("abc", ID_INVALID))
    for target, expected in cases:
        reply = await send(client, "delete_object_association", route, id=target, language=language)
        assert_answer(reply, expected, language)
    assert await model_association(db, BELONG) is not None
    assert await audit_trail(db, "model_association") == []


# --- association kinds ----------------------------------------------------------------------

UI_KIND = {
    "bk_asst_id": "backup",
    "bk_asst_name": "备份",
    "src_des": "备份到",
    "dest_des": "备份自",
    "direction": "src_to_dest",
}


@pytest.mark.parametrize("route", ROUTES)
async def test_association_type_lifecycle(client, db, route):
    created = await call(client, "create_association_type", route, UI_KIND)
    assert_answer(created, SUCCESS, "zh")
    assert list(created.data) == ["id"]
    kind_id = created.data["id"]
    found = await call(client, "search_association_type", route, {"condition": {"id": kind_id}})
    assert found.data["info"] == [
        {
            "id": kind_id,
            "bk_asst_id": "backup",
            "bk_asst_name": "备份",
            "bk_supplier_account": "0",
            "src_des": "备份到",
            "dest_des": "备份自",
            "direction": "src_to_dest",
            "ispre": False,
        }
    ]
    # Upstream sets all four texts: an absent one becomes "" (a direction of "" is none).
    updated = await send(
        client, "update_association_type", route, {"bk_asst_name": "copy"}, id=kind_id
    )
    assert_answer(updated, SUCCESS, "zh")
    assert updated.data is None
    row = await kind_row(db, "backup")
    assert (row.bk_asst_name, row.src_des, row.dest_des, row.direction) == ("copy", "", "", "none")
    # A model association uses it: it stays.
    ui = {**UI_CREATE, "bk_asst_id": "backup", "bk_obj_asst_id": "bk_router_backup_host"}
    await call(client, "create_object_association", route, ui)
    in_use = await send(client, "delete_association_type", route, id=kind_id)
    assert_answer(in_use, KIND_IN_USE, "zh")
    model_id = (await model_association(db, "bk_router_backup_host")).id
    await send(client, "delete_object_association", route, id=model_id)
    deleted = await send(client, "delete_association_type", route, id=kind_id)
    assert_answer(deleted, SUCCESS, "zh")
    assert await kind_row(db, "backup") is None
    assert [e[1] for e in await audit_trail(db, "association_kind")] == [
        "create",
        "update",
        "delete",
    ]
    # Updating or deleting what does not exist is no error, as upstream.
    for name in ("update_association_type", "delete_association_type"):
        reply = await send(client, name, route, {"bk_asst_name": "x"}, id=kind_id)
        assert_answer(reply, SUCCESS, "zh")
    assert [e[1] for e in await audit_trail(db, "association_kind")] == [
        "create",
        "update",
        "delete",
    ]


CREATE_KIND_REFUSALS = [
    # Upstream's order: taken, too long, not an id.
    ("taken", {**UI_KIND, "bk_asst_id": "belong"}, duplicated("belong")),
    (
        "taken beats too long",
        {**UI_KIND, "bk_asst_id": "belong", "direction": "up"},
        duplicated("belong"),
    ),
    ("129 characters", {**UI_KIND, "bk_asst_id": "k" * 129}, exceeds("bk_asst_id", 128)),
    ("starts with a digit", {**UI_KIND, "bk_asst_id": "1kind"}, invalid("1kind")),
    ("not ASCII", {**UI_KIND, "bk_asst_id": "kïnd"}, invalid("kïnd")),
    ("empty", {**UI_KIND, "bk_asst_id": ""}, invalid("")),
    ("operator injection", {**UI_KIND, "bk_asst_id": "$where"}, invalid("$where")),
    # This service's own.
    ("name too long", {**UI_KIND, "bk_asst_name": "n" * 129}, exceeds("bk_asst_name", 128)),
    ("unknown direction", {**UI_KIND, "direction": "dest_to_src"}, invalid("direction")),
    ("a preset asked for", {**UI_KIND, "ispre": True}, invalid("ispre")),
    ("wrong types", {**UI_KIND, "bk_asst_name": 7}, BAD_JSON_CHECK),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "body,expected",
    [c[1:] for c in CREATE_KIND_REFUSALS],
    ids=[c[0] for c in CREATE_KIND_REFUSALS],
)
async def test_create_association_type_refusals(client, db, route, language, body, expected):
    reply = await call(client, "create_association_type", route, body, language=language)
    assert_answer(reply, expected, language)
    assert await audit_trail(db, "association_kind") == []


async def test_a_kind_id_of_128_characters_is_upstreams_longest(client, db):
    longest = "k" * 128
    reply = await call(
        client, "create_association_type", "native", {**UI_KIND, "bk_asst_id": longest}
    )
    assert_answer(reply, SUCCESS, "zh")
    assert (await kind_row(db, longest)).id == reply.data["id"]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_association_type_path_ids_as_go_reads_them(client, db, language):
    for name in ("update_association_type", "delete_association_type"):
        for text, expected in [
            ("abc", parse_int_failed("abc")),
            ("1.5", parse_int_failed("1.5")),
            ("9223372036854775808", parse_int_failed("9223372036854775808", "value out of range")),
        ]:
            reply = await send(client, name, "native", {}, id=text, language=language)
            assert_answer(reply, expected, language)
    wrong = await send(
        client, "update_association_type", "native", {"direction": 1}, id=1, language=language
    )
    assert_answer(wrong, BAD_JSON_CHECK, language)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("route", ROUTES)
async def test_preset_kinds_cannot_be_deleted(client, db, route, language):
    belong = await kind_row(db, "belong")
    reply = await send(client, "delete_association_type", route, id=belong.id, language=language)
    assert_answer(reply, PRESET_KIND, language)
    assert await kind_row(db, "belong") is not None


# --- permission: upstream's IAM actions -----------------------------------------------------

MODELER = "modeler"


@pytest.fixture
async def modeler(db):
    """A user with no grant on the catalog; the service enforces permission for its calls."""
    await accounts.create_user(db, MODELER)
    return {"bk_app_code": "esb_test", "bk_app_secret": "xxx", "bk_username": MODELER}


def sys_model_denial(language: str, models: list[tuple[int, str]]) -> dict:
    english = language == "en"
    system = "cmdb" if english else "配置平台"
    kind = "Model" if english else "模型"
    return {
        "system_id": "bk_cmdb",
        "system_name": system,
        "actions": [
            {
                "id": "edit_sys_model",
                "name": "Edit Model" if english else "模型编辑",
                "related_resource_types": [
                    {
                        "system_id": "bk_cmdb",
                        "system_name": system,
                        "type": "sys_model",
                        "type_name": kind,
                        "instances": [
                            [{"type": "sys_model", "type_name": kind, "id": str(i), "name": n}]
                            for i, n in models
                        ],
                    }
                ],
            }
        ],
    }


def kind_denial(language: str, action: str, names: tuple[str, str], kind: tuple[int, str] | None):
    english = language == "en"
    system = "cmdb" if english else "配置平台"
    related = []
    if kind is not None:
        type_name = "Association Type" if english else "关联类型"
        related.append(
            {
                "system_id": "bk_cmdb",
                "system_name": system,
                "type": "sys_association_type",
                "type_name": type_name,
                "instances": [
                    [
                        {
                            "type": "sys_association_type",
                            "type_name": type_name,
                            "id": str(kind[0]),
                            "name": kind[1],
                        }
                    ]
                ],
            }
        )
    return {
        "system_id": "bk_cmdb",
        "system_name": system,
        "actions": [{"id": action, "name": names[english], "related_resource_types": related}],
    }


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("route", ROUTES)
async def test_catalog_changes_need_the_catalog_grant(client, db, modeler, route, language):
    """Each denial asks for upstream's IAM action on upstream's resources; nothing changes.
    With the grant on every model, the same calls go through."""
    model_ids = {}
    async with db.read() as conn:
        from cmdbgraph.db.tables import models

        for obj, model_id, name in await conn.execute(
            select(models.c.bk_obj_id, models.c.id, models.c.bk_obj_name)
        ):
            model_ids[obj] = (model_id, name)
    await kinds_fixture(db)
    belong_kind = await kind_row(db, "spare")
    belong = await model_association(db, BELONG)
    attempts = [
        (
            "create_object_association",
            UI_CREATE,
            None,
            sys_model_denial(language, [model_ids["bk_router"], model_ids["host"]]),
        ),
        (
            "update_object_association",
            {"bk_obj_asst_name": "x"},
            belong.id,
            sys_model_denial(language, [model_ids["bk_switch"], model_ids["host"]]),
        ),
        (
            "delete_object_association",
            {},
            belong.id,
            sys_model_denial(language, [model_ids["bk_switch"], model_ids["host"]]),
        ),
        (
            "create_association_type",
            UI_KIND,
            None,
            kind_denial(
                language,
                "create_association_type",
                ("关联类型新建", "Create Association Type"),
                None,
            ),
        ),
        (
            "update_association_type",
            {"bk_asst_name": "x"},
            belong_kind.id,
            kind_denial(
                language,
                "edit_association_type",
                ("关联类型编辑", "Edit Association Type"),
                (belong_kind.id, "备用"),
            ),
        ),
        (
            "delete_association_type",
            {},
            belong_kind.id,
            kind_denial(
                language,
                "delete_association_type",
                ("关联类型删除", "Delete Association Type"),
                (belong_kind.id, "备用"),
            ),
        ),
    ]
    credentials = modeler if route == "native" else {"bk_username": MODELER}
    for name, body, target, expected in attempts:
        reply = await send(
            client, name, route, body, id=target, language=language, credentials=credentials
        )
        assert_answer(reply, DENIED, language)
        assert reply.permission == expected, name
        assert list(reply.permission["actions"][0]) == ["id", "name", "related_resource_types"]
    assert await model_association(db, "bk_router_connect_host") is None
    assert (await model_association(db, BELONG)).bk_obj_asst_name == ""
    assert (await kind_row(db, "spare")).bk_asst_name == "备用"
    assert await audit_trail(db, "model_association") == []

    await accounts.add_grant(db, MODELER, permissions.ALL_MODELS)
    for name, body, target, _ in attempts:
        reply = await send(client, name, route, body, id=target, credentials=credentials)
        assert_answer(reply, SUCCESS, "zh")


async def kinds_fixture(db) -> None:
    from cmdbgraph.services import kinds
    from cmdbgraph.services.caller import SYSTEM

    await kinds.create_kind(db, SYSTEM, kinds.NewKind("spare", "备用", "备用", "备用于"))


# --- GraphQL ----------------------------------------------------------------------------


async def operation_of(client, document: str, operation: str, variables: dict) -> dict:
    response = await client.post(
        "/graphql",
        json={"query": document, "operationName": operation, "variables": variables},
        headers=demo_headers(),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body


KIND_MUTATIONS = """
mutation Create($input: CreateAssociationKindInput!) {
  createAssociationKind(input: $input) {
    __typename
    ... on AssociationKind { id bkAsstId bkAsstName srcDes destDes direction ispre }
    ... on RequestError { code bkErrorCode message }
  }
}
mutation Update($input: UpdateAssociationKindInput!) {
  updateAssociationKind(input: $input) {
    __typename
    ... on UpdateAssociationKindPayload { kind { id bkAsstName srcDes direction } }
    ... on RequestError { code bkErrorCode message }
  }
}
mutation Delete($id: BigInt!) {
  deleteAssociationKind(id: $id) {
    __typename
    ... on DeleteAssociationKindPayload { deleted { id bkAsstId } }
    ... on RequestError { code bkErrorCode message }
  }
}
"""

MODEL_ASSOCIATION_MUTATIONS = """
mutation Create($input: CreateModelAssociationInput!) {
  createModelAssociation(input: $input) {
    __typename
    ... on ModelAssociation { id bkObjAsstId }
    ... on RequestError { code bkErrorCode message }
  }
}
mutation Update($input: UpdateModelAssociationInput!) {
  updateModelAssociation(input: $input) {
    __typename
    ... on ModelAssociation { id bkObjAsstName }
    ... on RequestError { code bkErrorCode message }
  }
}
mutation Delete($id: BigInt!) {
  deleteModelAssociation(id: $id) {
    __typename
    ... on DeleteModelAssociationPayload { deleted { id bkObjAsstId } }
    ... on RequestError { code bkErrorCode message }
  }
}
"""


async def test_graphql_association_kind_mutations(client, db):
    async def run(operation, variables):
        body = await operation_of(client, KIND_MUTATIONS, operation, variables)
        return next(iter(body["data"].values()))

    created = await run("Create", {"input": {"bkAsstId": "backup", "bkAsstName": "备份"}})
    assert created["__typename"] == "AssociationKind"
    assert (created["bkAsstId"], created["direction"], created["ispre"]) == (
        "backup",
        "src_to_dest",
        False,
    )
    kind_id = created["id"]
    # Only what is given changes.
    updated = await run("Update", {"input": {"id": kind_id, "srcDes": "备份到"}})
    assert updated["kind"] == {
        "id": kind_id,
        "bkAsstName": "备份",
        "srcDes": "备份到",
        "direction": "src_to_dest",
    }
    taken = await run("Create", {"input": {"bkAsstId": "backup"}})
    assert (taken["__typename"], taken["bkErrorCode"]) == ("RequestError", 1199014)
    bad = await run("Update", {"input": {"id": kind_id, "direction": "sideways"}})
    assert (bad["code"], bad["bkErrorCode"]) == ("PARAMETER_INVALID", 1199011)
    preset = await run("Delete", {"id": (await kind_row(db, "belong")).id})
    assert (preset["code"], preset["bkErrorCode"]) == ("PRESET_KIND_NOT_DELETABLE", 1101051)
    deleted = await run("Delete", {"id": kind_id})
    assert deleted["deleted"] == {"id": kind_id, "bkAsstId": "backup"}
    assert (await run("Delete", {"id": kind_id}))["deleted"] is None
    assert (await run("Update", {"input": {"id": kind_id, "srcDes": "x"}}))["kind"] is None


async def test_graphql_model_association_mutations(client, db):
    async def run(operation, variables):
        body = await operation_of(client, MODEL_ASSOCIATION_MUTATIONS, operation, variables)
        return next(iter(body["data"].values()))

    created = await run(
        "Create",
        {"input": {"bkObjId": "bk_router", "bkAsstObjId": "host", "bkAsstId": "connect"}},
    )
    assert created["bkObjAsstId"] == "bk_router_connect_host"
    renamed = await run("Update", {"input": {"id": created["id"], "bkObjAsstName": "uplink"}})
    assert renamed == {
        "__typename": "ModelAssociation",
        "id": created["id"],
        "bkObjAsstName": "uplink",
    }
    missing = await run("Update", {"input": {"id": 424242, "bkObjAsstName": "x"}})
    assert (missing["code"], missing["bkErrorCode"]) == ("MODEL_ASSOCIATION_NOT_FOUND", 1101046)
    await store(db, BELONG, (11, 21))
    used = await run("Delete", {"id": (await model_association(db, BELONG)).id})
    assert (used["code"], used["bkErrorCode"]) == ("MODEL_ASSOCIATION_INSTANTIATED", 1101043)
    deleted = await run("Delete", {"id": created["id"]})
    assert deleted["deleted"] == {"id": created["id"], "bkObjAsstId": "bk_router_connect_host"}
    assert (await run("Delete", {"id": created["id"]}))["deleted"] is None


# --- concurrency ----------------------------------------------------------------------------


async def test_a_kind_deleted_while_a_model_association_takes_it(db):
    """Deleting a kind and creating a model association with it at the same time: one of the
    two wins, the other answers what its checks would have (1101060, or 1199011 naming the
    kind), never a 500 nor a wrong code; the database holds no association of a missing kind."""
    import asyncio

    from cmdbgraph.services import catalog, kinds
    from cmdbgraph.services.caller import SYSTEM
    from cmdbgraph.services.errors import CmdbError

    for round_ in range(12):
        kind = await kinds.create_kind(db, SYSTEM, kinds.NewKind(f"race{round_}", "race"))

        async def outcome(work):
            try:
                await work
            except CmdbError as error:
                return error.code.value, error.args_
            return 0, ()

        deleted, created = await asyncio.gather(
            outcome(kinds.delete_kind(db, SYSTEM, kind.id)),
            outcome(
                catalog.create_model_association(
                    db,
                    SYSTEM,
                    catalog.NewModelAssociation("bk_router", "host", kind.bk_asst_id),
                )
            ),
        )
        assert (deleted, created) in [
            ((0, ()), (1199011, ("bk_asst_id",))),
            ((1101060, ()), (0, ())),
        ], (deleted, created)
        stored = await model_association(db, f"bk_router_race{round_}_host")
        assert (stored is not None) == (created[0] == 0)
        assert (await kind_row(db, kind.bk_asst_id) is not None) == (deleted[0] != 0)


# --- upstream's archived documents ----------------------------------------------------------

# docs/apidoc/archived/topo/object_association.md, each made valid JSON (the document has
# trailing commas and a comment). The document is older than upstream's code, which this
# service follows: data is null, not "success"; the created model association is echoed.
ARCHIVED_KIND = {
    "bk_asst_id": "belong",
    "bk_asst_name": "属于",
    "src_des": "属于",
    "dest_des": "被属于",
    "direction": "none",
}
ARCHIVED_MODEL_ASSOCIATION = {
    "bk_obj_asst_id": "bk_switch_belong_bk_host",
    "bk_obj_asst_name": "",
    "bk_asst_id": "belong",
    "bk_obj_id": "bk_switch",
    "bk_asst_obj_id": "bk_host",
    "mapping": "1:n",
    "on_delete": "none",
}


async def test_upstreams_archived_examples(client, db):
    # The preset belong exists: upstream's code answers the id taken.
    taken = await call(client, "create_association_type", "native", ARCHIVED_KIND)
    assert_answer(taken, duplicated("belong"), "zh")
    fresh = {**ARCHIVED_KIND, "bk_asst_id": "belong_to"}
    created = await call(client, "create_association_type", "native", fresh)
    assert_answer(created, SUCCESS, "zh")
    kind_id = created.data["id"]
    updated = await send(
        client,
        "update_association_type",
        "native",
        {k: v for k, v in ARCHIVED_KIND.items() if k != "bk_asst_id"},
        id=kind_id,
    )
    assert (updated.code, updated.data) == (0, None)
    row = await kind_row(db, "belong_to")
    assert (row.bk_asst_name, row.src_des, row.dest_des, row.direction) == (
        "属于",
        "属于",
        "被属于",
        "none",
    )
    # The documented model association names a model (bk_host) upstream's presets call host.
    missing = await call(client, "create_object_association", "native", ARCHIVED_MODEL_ASSOCIATION)
    assert_answer(missing, invalid("bk_asst_obj_id"), "zh")
    with_host = {
        **ARCHIVED_MODEL_ASSOCIATION,
        "bk_asst_obj_id": "host",
        "bk_asst_id": "belong_to",
        "bk_obj_asst_id": "bk_switch_belong_to_host",
    }
    made = await call(client, "create_object_association", "native", with_host)
    assert_answer(made, SUCCESS, "zh")
    assert made.data == {
        "id": made.data["id"],
        "bk_supplier_account": "",
        **with_host,
        "ispre": None,
    }
    # The documented update sends fields upstream's code no longer writes: it succeeds and
    # changes nothing.
    ignored = await send(
        client,
        "update_object_association",
        "native",
        {"bk_asst_name": "属于", "bk_asst_id": "belong", "on_delete": ""},
        id=made.data["id"],
    )
    assert (ignored.code, ignored.data) == (0, None)
    stored = await model_association(db, "bk_switch_belong_to_host")
    assert (stored.bk_asst_id, stored.on_delete, stored.bk_obj_asst_name) == (
        "belong_to",
        "none",
        "",
    )
    for name, target in (
        ("delete_object_association", made.data["id"]),
        ("delete_association_type", kind_id),
    ):
        gone = await send(client, name, "native", id=target)
        assert (gone.code, gone.data) == (0, None)
    assert await kind_row(db, "belong_to") is None
