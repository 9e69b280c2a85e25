"""Authentication and permission on every write path, every credential route and both envelopes.

Users set up through the services (on top of the demo data):

- ``NOBODY`` has no grant at all;
- ``MODELER`` may edit every instance of ``bk_switch`` and of ``host`` (model grants);
- ``PICKER`` gets instance grants, test by test;
- ``CATALOGER`` holds the catalog grant (``*``: every model, models and model associations).

The app ``APP_CODE`` / ``APP_SECRET`` is created by the ``world`` fixture; the client address
of the default test client (127.0.0.1) is a trusted proxy in this file's settings.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from cmdbgraph.app import create_app
from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import (
    apps,
    audit_entries,
    grants,
    inst_associations,
    instances,
    model_associations,
    models,
    tokens,
    users,
)
from cmdbgraph.services import accounts, associations, auth, catalog, hashes, permissions
from cmdbgraph.services import instances as instance_service
from cmdbgraph.services.caller import SYSTEM
from cmdbgraph.settings import Settings
from tests.support.calls import BATCH_MUTATION, ESB_PATH, NATIVE_PATH
from tests.support.databases import row_counts
from tests.support.upstream import (
    APP_FAILED,
    CODE_NAMES,
    DENIED,
    EN,
    USER_FAILED,
    ZH,
    Upstream,
)

TRUSTED_PROXY = "127.0.0.1"  # httpx.ASGITransport's default client address
UNTRUSTED_ADDRESS = ("10.20.30.40", 50000)

APP_CODE, APP_SECRET = "auth_test_app", "Known-App-Secret-5f7c1e9a"
GONE_APP_CODE, GONE_APP_SECRET = "auth_gone_app", "Gone-App-Secret-88aa31"
WRONG_SECRET = "Not-The-Secret-31d94b"
NOBODY, MODELER, PICKER, CATALOGER = "auth_nobody", "auth_modeler", "auth_picker", "auth_catalog"

ESB_KEYS = ["result", "code", "message", "permission", "request_id", "data"]
NATIVE_KEYS = ["result", "bk_error_code", "bk_error_msg", "permission", "data"]
INTERFACES = ["esb", "native", "graphql"]
# Where each interface carries its credentials unless a test says otherwise.
DEFAULT_PLACEMENT = {"esb": "body", "native": "header", "graphql": "header"}

SWITCH_HOST = "bk_switch_belong_host"  # demo, n:n
DEMO_NAMES = {11: "sw-01", 13: "sw-02", 14: "sw-03", 21: "10.0.0.1", 22: "10.0.0.2", 23: "10.0.0.3"}


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture
def settings(database_url) -> Settings:
    return Settings(database_url=database_url, trusted_proxies=[TRUSTED_PROXY])


@pytest.fixture
async def untrusted_client(app):
    transport = httpx.ASGITransport(app=app, client=UNTRUSTED_ADDRESS)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@dataclass
class World:
    token: str  # MODELER's valid token
    expired_token: str  # MODELER's, expired
    revoked_token: str  # MODELER's, revoked
    model_ids: dict[str, int] = field(default_factory=dict)


@pytest.fixture
async def world(db) -> World:
    assert await accounts.create_app(db, APP_CODE, APP_SECRET) == APP_SECRET
    for user in (NOBODY, MODELER, PICKER, CATALOGER):
        await accounts.create_user(db, user)
    await accounts.add_grant(db, MODELER, "bk_switch")
    await accounts.add_grant(db, MODELER, "host")
    await accounts.add_grant(db, CATALOGER, permissions.ALL_MODELS)
    token = await accounts.create_token(db, MODELER)
    expired = await accounts.create_token(db, MODELER, ttl=timedelta(seconds=-1))
    revoked = await accounts.create_token(db, MODELER)
    assert await accounts.revoke_token(db, revoked)
    async with db.read() as conn:
        rows = await conn.execute(select(models.c.bk_obj_id, models.c.id))
        model_ids = {bk_obj_id: model_id for bk_obj_id, model_id in rows}
    return World(token, expired, revoked, model_ids)


@pytest.fixture
async def gone_app(db, world) -> None:
    """An app that existed and was revoked."""
    await accounts.create_app(db, GONE_APP_CODE, GONE_APP_SECRET)
    assert await accounts.revoke_app(db, GONE_APP_CODE)


@pytest.fixture
async def fleet(db) -> tuple[list[int], list[int]]:
    """200 switches and 200 hosts, created by the system caller."""
    made = []
    for obj, prefix in (("bk_switch", "auth-sw"), ("host", "auth-host")):
        created = await instance_service.create_instances(
            db,
            SYSTEM,
            obj,
            [instance_service.NewInstance(f"{prefix}-{i:03d}") for i in range(200)],
        )
        made.append([inst.bk_inst_id for inst in created])
    return made[0], made[1]


# ---------------------------------------------------------------------------------------------
# Requests in every interface, read back into one shape


def app_credentials(user: str | None = None, **extra: str) -> dict:
    found = {"bk_app_code": APP_CODE, "bk_app_secret": APP_SECRET, **extra}
    if user is not None:
        found["bk_username"] = user
    return found


def place(placement: str, credentials: dict) -> tuple[dict, dict]:
    """(body fields, headers) carrying ``credentials`` in the body, in X-Bkapi-Authorization,
    or as native identity headers (user and app code only, as a trusted proxy sends them)."""
    if placement == "body":
        return dict(credentials), {}
    if placement == "header":
        return {}, ({"X-Bkapi-Authorization": json.dumps(credentials)} if credentials else {})
    assert placement == "native"
    return {}, {
        "X-Bkcmdb-User": credentials.get("bk_username", ""),
        "X-Bkcmdb-App-Code": credentials.get("bk_app_code", ""),
    }


def language_headers(language: str) -> dict:
    return {"Blueking-Language": "en"} if language == EN else {}


@dataclass
class Outcome:
    status: int
    code: int
    message: str
    permission: dict | None
    data: object  # REST ``data``, or the GraphQL payload on success
    body: dict


def rest_outcome(response: httpx.Response, *, esb: bool) -> Outcome:
    body = response.json()
    if esb:
        assert list(body) == ESB_KEYS
        code, message = body["code"], body["message"]
        assert body["request_id"] == response.headers["X-Request-ID"]
    else:
        code, message = body["bk_error_code"], body["bk_error_msg"]
        # Upstream writes its native permission denial as the bare BaseResp: no data key.
        assert list(body) == (NATIVE_KEYS[:-1] if code == 9900403 else NATIVE_KEYS)
    assert body["result"] is (code == 0)
    if code != 0:
        assert body.get("data") is None
    return Outcome(response.status_code, code, message, body["permission"], body.get("data"), body)


def graphql_outcome(response: httpx.Response, field_name: str) -> Outcome:
    body = response.json()
    if response.status_code != 200:
        # Authentication failed: a GraphQL-shaped answer, nothing written. Found by a
        # resolver (a write naming no user), the error also carries where it was found.
        assert list(body) == ["data", "errors"] and body["data"] is None
        (error,) = body["errors"]
        assert [key for key in error if key not in ("locations", "path")] == [
            "message",
            "extensions",
        ]
        number = error["extensions"]["bkErrorCode"]
        # One extra key, and only on 1100004: the hint when an app code was given.
        extensions = dict(error["extensions"])
        if number == 1100004:
            hint = extensions.pop("hint", None)
            assert hint is None or "could not be authenticated" in hint
        assert extensions == {"code": CODE_NAMES[number], "bkErrorCode": number}
        return Outcome(response.status_code, number, error["message"], None, None, body)
    assert "errors" not in body, body
    result = body["data"][field_name]
    if result["__typename"] in ("PermissionDenied", "RequestError"):
        assert result["code"] == CODE_NAMES[result["bkErrorCode"]]
        assert (result["__typename"] == "PermissionDenied") is (result["bkErrorCode"] == 9900403)
        return Outcome(
            200, result["bkErrorCode"], result["message"], result.get("permission"), None, body
        )
    return Outcome(200, 0, "", None, result, body)


async def graphql_call(
    client: httpx.AsyncClient, query: str, variables: dict, field_name: str, headers: dict
) -> Outcome:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    return graphql_outcome(response, field_name)


async def send_batch(
    client: httpx.AsyncClient,
    interface: str,
    details: list[tuple[int, int]],
    credentials: dict,
    *,
    placement: str | None = None,
    language: str = ZH,
    model_association: tuple[str, str, str] = ("bk_switch", "host", SWITCH_HOST),
) -> Outcome:
    placement = placement or DEFAULT_PLACEMENT[interface]
    body_fields, headers = place(placement, credentials)
    headers.update(language_headers(language))
    bk_obj_id, bk_asst_obj_id, bk_obj_asst_id = model_association
    if interface == "graphql":
        assert not body_fields, "GraphQL takes credentials from headers only"
        variables = {
            "input": {
                "bkObjId": bk_obj_id,
                "bkAsstObjId": bk_asst_obj_id,
                "bkObjAsstId": bk_obj_asst_id,
                "details": [{"bkInstId": s, "bkAsstInstId": t} for s, t in details],
            }
        }
        return await graphql_call(
            client, BATCH_MUTATION, variables, "batchCreateInstAssociations", headers
        )
    body = {
        **body_fields,
        "bk_obj_id": bk_obj_id,
        "bk_asst_obj_id": bk_asst_obj_id,
        "bk_obj_asst_id": bk_obj_asst_id,
        "details": [{"bk_inst_id": s, "bk_asst_inst_id": t} for s, t in details],
    }
    response = await client.post(
        ESB_PATH if interface == "esb" else NATIVE_PATH, json=body, headers=headers
    )
    return rest_outcome(response, esb=interface == "esb")


def created(outcome: Outcome) -> dict[str, int]:
    """``success_created`` of a successful batch, after checking nothing failed."""
    assert outcome.code == 0, outcome.body
    assert outcome.status == 200
    data = outcome.data
    if "successCreated" in data:  # GraphQL
        assert data["errorMsg"] == {}
        return data["successCreated"]
    assert data["error_msg"] == {}
    return data["success_created"]


def assert_failed(outcome: Outcome, code: Upstream, language: str, status: int | None) -> None:
    assert (outcome.code, outcome.message) == (code.code, code.text(language)), outcome.body
    if status is not None:
        assert outcome.status == status, outcome.body


def permission(language: str, *actions: tuple) -> dict:
    """Upstream's permission object: one action per model, one path per instance (demo
    instances are named after DEMO_NAMES unless given by name). Each action is (model id,
    its numeric id, its Chinese name, [(instance id, name)], and optionally the verb): hosts
    have actions of their own, other models ``<verb>_comobj_<numeric id>``; creating names no
    instance."""
    english = language == EN
    system_name = "cmdb" if english else "配置平台"
    found = []
    for bk_obj_id, model_id, zh_name, inst_ids, *verb in actions:
        verb = verb[0] if verb else "edit"
        if bk_obj_id == "host":
            action_id = f"{verb}_resource_pool_host"
            names = {"edit": ("主机池主机编辑", "Edit Pool Hosts")}[verb]
            resource_type, type_name = "host", ("Host" if english else "主机")
        else:
            resource_type = f"comobj_{model_id}"
            action_id = f"{verb}_{resource_type}"
            words = {"edit": "编辑", "create": "新建"}[verb]
            names = (f"{zh_name}实例{words}", f"{verb} {bk_obj_id} instance")
            type_name = bk_obj_id if english else zh_name
        related = []
        if verb != "create":
            related.append(
                {
                    "system_id": "bk_cmdb",
                    "system_name": system_name,
                    "type": resource_type,
                    "type_name": type_name,
                    "instances": [
                        [
                            {
                                "type": resource_type,
                                "type_name": type_name,
                                "id": str(inst_id),
                                "name": name,
                            }
                        ]
                        for inst_id, name in inst_ids
                    ],
                }
            )
        found.append({"id": action_id, "name": names[english], "related_resource_types": related})
    return {"system_id": "bk_cmdb", "system_name": system_name, "actions": found}


def same_json(actual: object, expected: object) -> bool:
    """Equal, keys in the same order (callers diff upstream's replies byte for byte)."""
    return json.dumps(actual, ensure_ascii=False) == json.dumps(expected, ensure_ascii=False)


async def grant_instances(db: Database, user: str, bk_obj_id: str, inst_ids) -> None:
    for inst_id in inst_ids:
        await accounts.add_grant(db, user, bk_obj_id, inst_id)


async def grant_many(db: Database, user: str, bk_obj_id: str, inst_ids) -> None:
    """``add_grant`` for the first instance, and rows like it for the others in one statement
    (hundreds of grants stay fast)."""
    first, *others = inst_ids
    made = await accounts.add_grant(db, user, bk_obj_id, first)
    async with db.write() as conn:
        await conn.execute(
            grants.insert(),
            [
                {
                    "subject": made.subject,
                    "action": made.action,
                    "bk_obj_id": made.bk_obj_id,
                    "bk_inst_id": inst_id,
                    "create_time": datetime.now(UTC),
                }
                for inst_id in others
            ],
        )


# ---------------------------------------------------------------------------------------------
# Batch create: refused without a grant, allowed with one


@pytest.mark.parametrize("interface", INTERFACES)
async def test_batch_create_needs_a_grant_on_both_models(client, db, world, interface):
    details = [(11, 21), (13, 22)]
    before = await row_counts(db)
    denied = await send_batch(client, interface, details, app_credentials(NOBODY))
    assert_failed(denied, DENIED, ZH, 200)
    assert await row_counts(db) == before

    allowed = await send_batch(client, interface, details, app_credentials(MODELER))
    ids = created(allowed)
    assert list(ids) == ["0", "1"]
    assert await row_counts(db) == (before[0] + 2, before[1] + 2)
    async with db.read() as conn:
        rows = await conn.execute(
            select(
                audit_entries.c.resource_id, audit_entries.c.bk_username, audit_entries.c.app_code
            ).order_by(audit_entries.c.id)
        )
        assert rows.all()[-2:] == [(11, MODELER, APP_CODE), (13, MODELER, APP_CODE)]


@pytest.mark.parametrize("interface", INTERFACES)
async def test_a_grant_to_everyone_lets_any_known_user_write(client, db, world, interface):
    await accounts.add_grant(db, permissions.EVERYONE, "bk_switch")
    await accounts.add_grant(db, permissions.EVERYONE, "host")
    outcome = await send_batch(client, interface, [(14, 23)], app_credentials(NOBODY))
    assert list(created(outcome)) == ["0"]


@pytest.mark.parametrize("interface", INTERFACES)
async def test_grant_on_one_model_only_is_denied_for_the_other(client, db, world, interface):
    await accounts.add_grant(db, PICKER, "bk_switch")
    before = await row_counts(db)
    outcome = await send_batch(client, interface, [(11, 21)], app_credentials(PICKER), language=EN)
    assert_failed(outcome, DENIED, EN, 200)
    host = world.model_ids["host"]
    assert same_json(outcome.permission, permission(EN, ("host", host, "主机", [(21, "10.0.0.1")])))
    assert await row_counts(db) == before


@pytest.mark.parametrize("interface", INTERFACES)
async def test_batch_of_200_allowed_with_instance_grants_covering_exactly_the_request(
    client, db, world, fleet, interface
):
    switches, hosts = fleet
    await grant_many(db, PICKER, "bk_switch", switches)
    await grant_many(db, PICKER, "host", hosts)
    before = await row_counts(db)
    outcome = await send_batch(
        client, interface, list(zip(switches, hosts, strict=True)), app_credentials(PICKER)
    )
    assert len(created(outcome)) == 200
    assert await row_counts(db) == (before[0] + 200, before[1] + 200)


@pytest.mark.parametrize("interface", INTERFACES)
@pytest.mark.parametrize("side", ["source", "target"])
async def test_batch_of_200_refused_when_one_instance_is_not_covered(
    client, db, world, fleet, interface, side
):
    switches, hosts = fleet
    details = list(zip(switches, hosts, strict=True))
    obj, name, ids, prefix = (
        ("bk_switch", "交换机", switches, "auth-sw")
        if side == "source"
        else ("host", "主机", hosts, "auth-host")
    )
    uncovered = ids[137]
    other_obj, other_ids = ("host", hosts) if side == "source" else ("bk_switch", switches)
    await grant_many(db, PICKER, obj, [i for i in ids if i != uncovered])
    await grant_many(db, PICKER, other_obj, other_ids)
    before = await row_counts(db)

    outcome = await send_batch(client, interface, details, app_credentials(PICKER))
    assert_failed(outcome, DENIED, ZH, 200)
    expected = permission(ZH, (obj, world.model_ids[obj], name, [(uncovered, f"{prefix}-137")]))
    assert same_json(outcome.permission, expected)
    assert await row_counts(db) == before

    # That one instance was the only thing missing.
    await accounts.add_grant(db, PICKER, obj, uncovered)
    assert len(created(await send_batch(client, interface, details, app_credentials(PICKER)))) == (
        200
    )


# ---------------------------------------------------------------------------------------------
# The permission object, in every interface and both languages


@pytest.mark.parametrize("language", [ZH, EN])
@pytest.mark.parametrize("interface", INTERFACES)
async def test_permission_object_lists_only_what_is_missing(client, db, world, interface, language):
    await accounts.add_grant(db, PICKER, "bk_switch", 11)
    await accounts.add_grant(db, PICKER, "host", 21)
    before = await row_counts(db)
    outcome = await send_batch(
        client,
        interface,
        [(11, 21), (13, 22), (14, 23), (11, 22), (14, 21)],
        app_credentials(PICKER),
        language=language,
    )
    switch, host = world.model_ids["bk_switch"], world.model_ids["host"]
    expected = permission(
        language,
        ("bk_switch", switch, "交换机", [(13, "sw-02"), (14, "sw-03")]),
        ("host", host, "主机", [(22, "10.0.0.2"), (23, "10.0.0.3")]),
    )
    assert outcome.status == 200
    message = DENIED.text(language)
    if interface == "esb":
        assert same_json(
            outcome.body,
            {
                "result": False,
                "code": 9900403,
                "message": message,
                "permission": expected,
                "request_id": outcome.body["request_id"],
                "data": None,
            },
        )
    elif interface == "native":
        assert same_json(
            outcome.body,
            {
                "result": False,
                "bk_error_code": 9900403,
                "bk_error_msg": message,
                "permission": expected,
            },
        )
    else:
        assert outcome.body == {
            "data": {
                "batchCreateInstAssociations": {
                    "__typename": "PermissionDenied",
                    "code": "PERMISSION_DENIED",
                    "bkErrorCode": 9900403,
                    "message": message,
                    "permission": expected,
                }
            }
        }
        assert same_json(outcome.permission, expected)
    assert await row_counts(db) == before


def test_permission_object_literal_matches_upstreams_example():
    """The builder above against upstream's documented example (behaviour spec, section 6)."""
    assert same_json(
        permission(ZH, ("bk_switch", 7, "交换机", [(11, "sw-01")])),
        {
            "system_id": "bk_cmdb",
            "system_name": "配置平台",
            "actions": [
                {
                    "id": "edit_comobj_7",
                    "name": "交换机实例编辑",
                    "related_resource_types": [
                        {
                            "system_id": "bk_cmdb",
                            "system_name": "配置平台",
                            "type": "comobj_7",
                            "type_name": "交换机",
                            "instances": [
                                [
                                    {
                                        "type": "comobj_7",
                                        "type_name": "交换机",
                                        "id": "11",
                                        "name": "sw-01",
                                    }
                                ]
                            ],
                        }
                    ],
                }
            ],
        },
    )


# ---------------------------------------------------------------------------------------------
# Same-model batches: every instance is authorized, not only the last item's


@pytest.mark.parametrize(
    "missing",
    [0, 1, 2, 3, 5],
    ids=["first-source", "first-target", "second-source", "second-target", "last-target"],
)
async def test_same_model_batch_authorizes_every_instance(client, db, world, missing):
    """Upstream authorizes only the last item's two instances when both sides are one model.
    Here the one ungranted instance (at position ``missing`` of the flattened details) is
    named, in every interface, and nothing is written."""
    await catalog.create_model_association(
        db, SYSTEM, catalog.NewModelAssociation("bk_switch", "bk_switch", "connect")
    )
    same_model = ("bk_switch", "bk_switch", "bk_switch_connect_bk_switch")
    for interface in INTERFACES:
        names = [f"peer-{interface}-{i}" for i in range(6)]
        peers = await instance_service.create_instances(
            db, SYSTEM, "bk_switch", [instance_service.NewInstance(name) for name in names]
        )
        ids = [p.bk_inst_id for p in peers]
        details = [(ids[0], ids[1]), (ids[2], ids[3]), (ids[4], ids[5])]
        await grant_instances(db, PICKER, "bk_switch", [i for i in ids if i != ids[missing]])
        before = await row_counts(db)

        outcome = await send_batch(
            client, interface, details, app_credentials(PICKER), model_association=same_model
        )
        assert_failed(outcome, DENIED, ZH, 200)
        expected = permission(
            ZH,
            ("bk_switch", world.model_ids["bk_switch"], "交换机", [(ids[missing], names[missing])]),
        )
        assert same_json(outcome.permission, expected), interface
        assert await row_counts(db) == before

        await accounts.add_grant(db, PICKER, "bk_switch", ids[missing])
        allowed = await send_batch(
            client, interface, details, app_credentials(PICKER), model_association=same_model
        )
        assert list(created(allowed)) == ["0", "1", "2"]


# ---------------------------------------------------------------------------------------------
# Delete, create instances, create models and model associations (GraphQL)

DELETE_MUTATION = """
mutation Delete($input: DeleteInstAssociationsInput!) {
  deleteInstAssociations(input: $input) {
    __typename
    ... on DeleteInstAssociationsPayload { deletedCount deleted { id } }
    ... on RequestError { code bkErrorCode message }
    ... on PermissionDenied { code bkErrorCode message permission }
  }
}
"""

CREATE_INSTANCES_MUTATION = """
mutation CreateInstances($input: CreateInstancesInput!) {
  createInstances(input: $input) {
    __typename
    ... on CreateInstancesPayload { instances { bkInstId bkObjId bkInstName creator } }
    ... on RequestError { code bkErrorCode message }
    ... on PermissionDenied { code bkErrorCode message permission }
  }
}
"""

CREATE_MODEL_MUTATION = """
mutation CreateModel($input: CreateModelInput!) {
  createModel(input: $input) {
    __typename
    ... on Model { bkObjId bkObjName }
    ... on RequestError { code bkErrorCode message }
    ... on PermissionDenied { code bkErrorCode message permission }
  }
}
"""

CREATE_MODEL_ASSOCIATION_MUTATION = """
mutation CreateModelAssociation($input: CreateModelAssociationInput!) {
  createModelAssociation(input: $input) {
    __typename
    ... on ModelAssociation { bkObjAsstId bkObjId bkAsstObjId bkAsstId }
    ... on RequestError { code bkErrorCode message }
    ... on PermissionDenied { code bkErrorCode message permission }
  }
}
"""


def user_headers(user: str | None, language: str = ZH) -> dict:
    _, headers = place("header", app_credentials(user))
    return {**headers, **language_headers(language)}


@pytest.fixture
async def stored_pair(db) -> list[int]:
    """Two associations (11->21, 13->22) written by the system caller."""
    result = await associations.batch_create(
        db,
        SYSTEM,
        associations.BatchCreateRequest(
            "bk_switch",
            "host",
            SWITCH_HOST,
            [associations.Detail(11, 21), associations.Detail(13, 22)],
        ),
    )
    return [item.association.id for item in result.items]


async def delete(client, ids: list[int], user: str | None, language: str = ZH) -> Outcome:
    return await graphql_call(
        client,
        DELETE_MUTATION,
        {"input": {"ids": ids}},
        "deleteInstAssociations",
        user_headers(user, language),
    )


@pytest.mark.parametrize(
    ("user", "instance_grants", "missing"),
    [
        (NOBODY, [], [(11, 13), (21, 22)]),
        (PICKER, [("bk_switch", 11), ("host", 21)], [(13,), (22,)]),
        (PICKER, [("bk_switch", 11), ("bk_switch", 13), ("host", 21)], [(), (22,)]),
    ],
    ids=["no-grant", "grants-for-one-of-two", "one-target-missing"],
)
async def test_delete_refused_without_a_grant_on_every_instance(
    client, db, world, stored_pair, user, instance_grants, missing
):
    for obj, inst in instance_grants:
        await accounts.add_grant(db, PICKER, obj, inst)
    before = await row_counts(db)
    switch_ids, host_ids = missing
    for language in (ZH, EN):
        outcome = await delete(client, stored_pair, user, language)
        assert_failed(outcome, DENIED, language, 200)
        actions = []
        if switch_ids:
            switch = [(i, DEMO_NAMES[i]) for i in switch_ids]
            actions.append(("bk_switch", world.model_ids["bk_switch"], "交换机", switch))
        hosts = [(i, DEMO_NAMES[i]) for i in host_ids]
        actions.append(("host", world.model_ids["host"], "主机", hosts))
        assert same_json(outcome.permission, permission(language, *actions))
    assert await row_counts(db) == before


@pytest.mark.parametrize("who", ["model-grants", "exact-instance-grants"])
async def test_delete_allowed_with_a_grant(client, db, world, stored_pair, who):
    user = MODELER
    if who == "exact-instance-grants":
        user = PICKER
        await accounts.add_grant(db, PICKER, "bk_switch", 11)
        await accounts.add_grant(db, PICKER, "host", 21)
    before = await row_counts(db)
    outcome = await delete(client, stored_pair[:1], user)
    assert outcome.code == 0, outcome.body
    assert outcome.data == {
        "__typename": "DeleteInstAssociationsPayload",
        "deletedCount": 1,
        "deleted": [{"id": stored_pair[0]}],
    }
    assert await row_counts(db) == (before[0] - 1, before[1] + 1)
    async with db.read() as conn:
        entry = (
            await conn.execute(
                select(audit_entries.c.action, audit_entries.c.bk_username)
                .order_by(audit_entries.c.id.desc())
                .limit(1)
            )
        ).one()
    assert tuple(entry) == ("delete", user)


ESB_PREFIX = "/api/c/compapi/v2/cc"

# name -> (ESB request, native request, body, (association, audit) row deltas when allowed,
# success data, instances missing for NOBODY as (switches, hosts)); ``{first}`` and ``{both}``
# stand for the stored pair's ids.
REST_WRITES = {
    "add_instance_association": (
        ("POST", f"{ESB_PREFIX}/add_instance_association/"),
        ("POST", "/api/v3/create/instassociation"),
        {"bk_obj_asst_id": SWITCH_HOST, "bk_inst_id": 14, "bk_asst_inst_id": 23},
        (1, 1),
        "new-id",
        ([14], [23]),
    ),
    "delete_instance_association": (
        ("POST", f"{ESB_PREFIX}/delete_instance_association/"),
        ("DELETE", "/api/v3/delete/instassociation/bk_switch/{first}"),
        {"id": "{first}", "bk_obj_id": "bk_switch"},
        (-1, 1),
        None,
        ([11], [21]),
    ),
    "delete_related_inst_asso": (
        ("POST", f"{ESB_PREFIX}/delete_related_inst_asso/"),
        ("DELETE", "/api/v3/delete/instassociation/batch"),
        {"id": "{both}", "bk_obj_id": "bk_switch"},
        (-2, 2),
        2,
        ([11, 13], [21, 22]),
    ),
}


@pytest.mark.parametrize("call", list(REST_WRITES))
@pytest.mark.parametrize("interface", ["esb", "native"])
async def test_rest_sibling_writes_need_a_grant(client, db, world, stored_pair, call, interface):
    """Refused for a user without grants (nothing written), then allowed for one with them."""
    esb_request, native_request, body, deltas, data, missing = REST_WRITES[call]
    method, path = esb_request if interface == "esb" else native_request
    path = path.replace("{first}", str(stored_pair[0]))
    stand_ins = {"{first}": stored_pair[0], "{both}": stored_pair}
    body = {name: stand_ins.get(value, value) for name, value in body.items()}

    async def send(user: str) -> Outcome:
        body_fields, headers = place(DEFAULT_PLACEMENT[interface], app_credentials(user))
        response = await client.request(method, path, json={**body_fields, **body}, headers=headers)
        return rest_outcome(response, esb=interface == "esb")

    before = await row_counts(db)
    outcome = await send(NOBODY)
    assert_failed(outcome, DENIED, ZH, 200)
    switches, hosts = missing
    expected = permission(
        ZH,
        (
            "bk_switch",
            world.model_ids["bk_switch"],
            "交换机",
            [(i, DEMO_NAMES[i]) for i in switches],
        ),
        ("host", world.model_ids["host"], "主机", [(i, DEMO_NAMES[i]) for i in hosts]),
    )
    assert same_json(outcome.permission, expected)
    assert await row_counts(db) == before

    outcome = await send(MODELER)
    assert outcome.code == 0, outcome.body
    if data == "new-id":
        assert list(outcome.data) == ["id"] and outcome.data["id"] > max(stored_pair)
    else:
        assert outcome.data == data
    assert await row_counts(db) == (before[0] + deltas[0], before[1] + deltas[1])


@pytest.mark.parametrize(
    ("user", "setup", "bk_obj_id", "allowed"),
    [
        (NOBODY, None, "bk_switch", False),
        (PICKER, ("bk_switch", 11), "bk_switch", False),
        (MODELER, None, "bk_router", False),
        (MODELER, None, "bk_switch", True),
        (CATALOGER, None, "bk_switch", True),
        (PICKER, ("bk_switch", 0), "bk_switch", True),
    ],
    ids=[
        "no-grant",
        "instance-grant-only",
        "grant-on-another-model",
        "model-grant",
        "catalog-grant",
        "model-grant-by-service",
    ],
)
async def test_create_instances_needs_a_model_wide_grant(
    client, db, world, user, setup, bk_obj_id, allowed
):
    if setup is not None:
        await accounts.add_grant(db, PICKER, *setup)
    before = await row_counts(db, instances)
    for language in (ZH, EN):
        name = f"new-{language}"
        outcome = await graphql_call(
            client,
            CREATE_INSTANCES_MUTATION,
            {"input": {"bkObjId": bk_obj_id, "instances": [{"bkInstName": name}]}},
            "createInstances",
            user_headers(user, language),
        )
        if allowed:
            assert outcome.code == 0, outcome.body
            (made,) = outcome.data["instances"]
            assert (made["bkObjId"], made["bkInstName"], made["creator"]) == (
                bk_obj_id,
                name,
                user,
            )
            continue
        assert_failed(outcome, DENIED, language, 200)
        type_name = {"bk_switch": "交换机", "bk_router": "路由器"}[bk_obj_id]
        expected = permission(
            language, (bk_obj_id, world.model_ids[bk_obj_id], type_name, [], "create")
        )
        assert same_json(outcome.permission, expected)
    assert await row_counts(db, instances) == (before[0] + (2 if allowed else 0),)


CATALOG_WRITES = {
    "createModel": (
        CREATE_MODEL_MUTATION,
        {"bkObjId": "auth_rack", "bkObjName": "机柜"},
        models,
    ),
    "createModelAssociation": (
        CREATE_MODEL_ASSOCIATION_MUTATION,
        {"bkObjId": "bk_router", "bkAsstObjId": "bk_switch", "bkAsstId": "connect"},
        model_associations,
    ),
}


@pytest.mark.parametrize("mutation", list(CATALOG_WRITES))
@pytest.mark.parametrize(
    ("user", "allowed"),
    [(NOBODY, False), (MODELER, False), (PICKER, False), (CATALOGER, True)],
    ids=["no-grant", "model-grants", "instance-grants", "catalog-grant"],
)
async def test_catalog_writes_need_the_catalog_grant(client, db, world, mutation, user, allowed):
    await accounts.add_grant(db, PICKER, "bk_router", 31)
    query, payload, table = CATALOG_WRITES[mutation]
    before = await row_counts(db, table)
    outcome = await graphql_call(client, query, {"input": payload}, mutation, user_headers(user))
    if allowed:
        assert outcome.code == 0, outcome.body
        assert outcome.data["__typename"] in ("Model", "ModelAssociation")
        assert outcome.data["bkObjId"] == payload["bkObjId"]
        assert await row_counts(db, table) == (before[0] + 1,)
        return
    assert_failed(outcome, DENIED, ZH, 200)
    # Upstream's IAM actions: creating a model is create_sys_model in its group; a model
    # association is an edit of both models (edit_sys_model).
    if mutation == "createModel":
        action, names = "create_sys_model", "模型新建"
        kind, kind_name = "sys_model_group", "模型分组"
        paths = [[("bk_uncategorized", "未分类")]]
    else:
        action, names = "edit_sys_model", "模型编辑"
        kind, kind_name = "sys_model", "模型"
        paths = [
            [(str(world.model_ids["bk_router"]), "路由器")],
            [(str(world.model_ids["bk_switch"]), "交换机")],
        ]
    expected = {
        "system_id": "bk_cmdb",
        "system_name": "配置平台",
        "actions": [
            {
                "id": action,
                "name": names,
                "related_resource_types": [
                    {
                        "system_id": "bk_cmdb",
                        "system_name": "配置平台",
                        "type": kind,
                        "type_name": kind_name,
                        "instances": [
                            [{"type": kind, "type_name": kind_name, "id": i, "name": n}]
                            for ((i, n),) in paths
                        ],
                    }
                ],
            }
        ],
    }
    assert same_json(outcome.permission, expected)
    assert await row_counts(db, table) == before


# ---------------------------------------------------------------------------------------------
# Credentials


@dataclass(frozen=True)
class Credentials:
    """How a request identifies itself: ``make`` builds the credentials from the world."""

    make: object
    placement: str | None = None  # None: the interface's default
    untrusted: bool = False


FAILING_CREDENTIALS = {
    "no-credentials": (Credentials(lambda w: {}), APP_FAILED),
    "missing-secret": (
        Credentials(lambda w: {"bk_app_code": APP_CODE, "bk_username": MODELER}),
        APP_FAILED,
    ),
    "wrong-secret": (
        Credentials(lambda w: app_credentials(MODELER, bk_app_secret=WRONG_SECRET)),
        APP_FAILED,
    ),
    "another-apps-secret": (
        Credentials(lambda w: app_credentials(MODELER, bk_app_secret=GONE_APP_SECRET)),
        APP_FAILED,
    ),
    "unknown-app": (
        Credentials(lambda w: app_credentials(MODELER, bk_app_code="auth_no_such_app")),
        APP_FAILED,
    ),
    "revoked-app": (
        Credentials(
            lambda w: app_credentials(
                MODELER, bk_app_code=GONE_APP_CODE, bk_app_secret=GONE_APP_SECRET
            )
        ),
        APP_FAILED,
    ),
    "token-without-app": (Credentials(lambda w: {"bk_token": w.token}), APP_FAILED),
    "native-headers-from-untrusted-address": (
        Credentials(lambda w: app_credentials(MODELER), placement="native", untrusted=True),
        APP_FAILED,
    ),
    "unknown-user": (Credentials(lambda w: app_credentials("auth_ghost")), USER_FAILED),
    "unknown-user-in-native-headers": (
        Credentials(lambda w: app_credentials("auth_ghost"), placement="native"),
        USER_FAILED,
    ),
    "unknown-token": (
        Credentials(lambda w: app_credentials(bk_token="auth-no-such-token")),
        USER_FAILED,
    ),
    "expired-token": (
        Credentials(lambda w: app_credentials(bk_token=w.expired_token)),
        USER_FAILED,
    ),
    "revoked-token": (
        Credentials(lambda w: app_credentials(bk_token=w.revoked_token)),
        USER_FAILED,
    ),
    "expired-token-with-its-user": (
        Credentials(lambda w: app_credentials(MODELER, bk_token=w.expired_token)),
        USER_FAILED,
    ),
    "token-of-another-user": (
        Credentials(lambda w: app_credentials(CATALOGER, bk_token=w.token)),
        USER_FAILED,
    ),
}


@pytest.mark.parametrize("case", list(FAILING_CREDENTIALS))
async def test_bad_credentials_are_refused_with_upstreams_codes(
    client, untrusted_client, db, world, gone_app, case
):
    """In every interface and both languages: the code, the message, HTTP 401, nothing
    written. The user would be allowed to write (``MODELER``) had the credentials held."""
    how, code = FAILING_CREDENTIALS[case]
    http = untrusted_client if how.untrusted else client
    before = await row_counts(db)
    for interface in INTERFACES:
        for language in (ZH, EN):
            outcome = await send_batch(
                http,
                interface,
                [(11, 21)],
                how.make(world),
                placement=how.placement,
                language=language,
            )
            assert_failed(outcome, code, language, 401)
            assert outcome.permission is None
    assert await row_counts(db) == before


ACCEPTED_CREDENTIALS = [
    # interface, placement, credentials
    ("esb", "body", lambda w: app_credentials(MODELER)),
    ("esb", "body", lambda w: app_credentials(bk_token=w.token)),
    ("native", "body", lambda w: app_credentials(MODELER, bk_token=w.token)),
    ("esb", "header", lambda w: app_credentials(MODELER, bk_token=w.token)),
    ("native", "header", lambda w: app_credentials(MODELER)),
    ("native", "header", lambda w: app_credentials(bk_token=w.token)),
    ("graphql", "header", lambda w: app_credentials(MODELER)),
    ("graphql", "header", lambda w: app_credentials(bk_token=w.token)),
    ("esb", "native", lambda w: app_credentials(MODELER)),
    ("native", "native", lambda w: app_credentials(MODELER)),
    ("graphql", "native", lambda w: app_credentials(MODELER)),
]


@pytest.mark.parametrize(
    ("interface", "placement", "make"),
    ACCEPTED_CREDENTIALS,
    ids=[
        "esb-body-username",
        "esb-body-token",
        "native-body-token-and-its-user",
        "esb-header-token-and-its-user",
        "native-header-username",
        "native-header-token",
        "graphql-header-username",
        "graphql-header-token",
        "esb-native-headers-from-trusted-proxy",
        "native-native-headers-from-trusted-proxy",
        "graphql-native-headers-from-trusted-proxy",
    ],
)
async def test_good_credentials_are_accepted_and_recorded(
    client, db, world, interface, placement, make
):
    outcome = await send_batch(client, interface, [(14, 23)], make(world), placement=placement)
    (new_id,) = created(outcome).values()
    async with db.read() as conn:
        creator = (
            await conn.execute(
                select(inst_associations.c.creator).where(inst_associations.c.id == new_id)
            )
        ).scalar_one()
        entry = (
            await conn.execute(
                select(audit_entries.c.bk_username, audit_entries.c.app_code).where(
                    audit_entries.c.resource_id == 14
                )
            )
        ).one()
    assert creator == MODELER
    assert tuple(entry) == (MODELER, APP_CODE)


async def test_body_credentials_win_over_the_header(client, db, world):
    """The ESB body fields override X-Bkapi-Authorization: a wrong body secret is refused even
    when the header holds a good one."""
    before = await row_counts(db)
    body_fields = app_credentials(MODELER, bk_app_secret=WRONG_SECRET)
    response = await client.post(
        ESB_PATH,
        json={
            **body_fields,
            "bk_obj_id": "bk_switch",
            "bk_asst_obj_id": "host",
            "bk_obj_asst_id": SWITCH_HOST,
            "details": [{"bk_inst_id": 11, "bk_asst_inst_id": 21}],
        },
        headers={"X-Bkapi-Authorization": json.dumps(app_credentials(MODELER))},
    )
    assert_failed(rest_outcome(response, esb=True), APP_FAILED, ZH, 401)
    assert await row_counts(db) == before


@pytest.mark.parametrize("interface", INTERFACES)
async def test_a_write_without_a_user_is_refused(client, db, world, interface):
    """An authenticated app naming no user may read, not write: an authentication failure,
    HTTP 401 on every interface (GraphQL too: a top-level error, not a typed result)."""
    before = await row_counts(db)
    for language in (ZH, EN):
        outcome = await send_batch(
            client, interface, [(11, 21)], app_credentials(), language=language
        )
        assert_failed(outcome, USER_FAILED, language, None)
        assert outcome.permission is None
        assert outcome.status == 401
    assert await row_counts(db) == before


# ---------------------------------------------------------------------------------------------
# Reads

MODELS_QUERY = "{ models { bkObjId } }"


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, APP_FAILED),
        (
            {"X-Bkapi-Authorization": json.dumps({"bk_app_code": "esb_test"})},
            401,
            APP_FAILED,
        ),
        (
            {"X-Bkapi-Authorization": json.dumps(app_credentials(bk_app_secret=WRONG_SECRET))},
            401,
            APP_FAILED,
        ),
        ({"X-Bkcmdb-User": "admin"}, None, None),  # trusted proxy naming a known user
        (
            {"X-Bkapi-Authorization": json.dumps(app_credentials("auth_ghost"))},
            401,
            USER_FAILED,
        ),
        (
            {
                "X-Bkapi-Authorization": json.dumps(
                    {"bk_app_code": "esb_test", "bk_app_secret": "xxx"}
                )
            },
            None,
            None,
        ),
        (
            {
                "X-Bkapi-Authorization": json.dumps(
                    {"bk_app_code": "esb_test", "bk_app_secret": "xxx", "bk_token": "xxx"}
                )
            },
            None,
            None,
        ),
    ],
    ids=[
        "none",
        "app-without-secret",
        "wrong-secret",
        "trusted-native-user",
        "unknown-user",
        "demo-app",
        "demo-app-and-token",
    ],
)
async def test_graphql_reads_need_credentials(client, world, headers, status, code):
    for method in ("POST", "GET"):
        for language in (ZH, EN):
            sent = {**headers, **language_headers(language)}
            if method == "POST":
                response = await client.post("/graphql", json={"query": MODELS_QUERY}, headers=sent)
            else:
                response = await client.get(
                    "/graphql", params={"query": MODELS_QUERY}, headers=sent
                )
            if code is None:
                assert response.status_code == 200, response.text
                assert {"bkObjId": "bk_switch"} in response.json()["data"]["models"]
                continue
            assert_failed(graphql_outcome(response, "models"), code, language, status)
            assert response.headers["X-Request-ID"]


@pytest.mark.parametrize(
    ("credentials", "code"),
    [
        ({}, APP_FAILED),
        ({"bk_app_code": "esb_test", "bk_app_secret": WRONG_SECRET}, APP_FAILED),
        ({"bk_app_code": "esb_test", "bk_app_secret": "xxx"}, None),
    ],
    ids=["none", "wrong-secret", "demo-app"],
)
async def test_rest_reads_need_credentials(client, world, credentials, code):
    for interface in ("esb", "native"):
        path = f"{ESB_PREFIX}/search_objects/" if interface == "esb" else "/api/v3/find/object"
        body_fields, headers = place(DEFAULT_PLACEMENT[interface], credentials)
        response = await client.post(
            path, json={**body_fields, "bk_obj_id": "bk_switch"}, headers=headers
        )
        outcome = rest_outcome(response, esb=interface == "esb")
        if code is None:
            assert outcome.code == 0, outcome.body
            assert [m["bk_obj_id"] for m in outcome.data] == ["bk_switch"]
        else:
            assert_failed(outcome, code, ZH, 401)


async def _hints(client: httpx.AsyncClient, credentials: dict) -> dict[str, str | None]:
    """The hint each interface gives a read with ``credentials`` refused with 1100004: GraphQL's
    ``extensions.hint``, REST's X-Cmdbgraph-Hint header (None: no hint)."""
    header = {"X-Bkapi-Authorization": json.dumps(credentials)}
    graphql = await client.post("/graphql", json={"query": MODELS_QUERY}, headers=header)
    esb = await client.post(
        f"{ESB_PREFIX}/search_objects/", json={**credentials, "bk_obj_id": "bk_switch"}
    )
    native = await client.post(
        "/api/v3/find/object", json={"bk_obj_id": "bk_switch"}, headers=header
    )
    for response in (graphql, esb, native):
        assert response.status_code == 401, response.text
    assert_failed(graphql_outcome(graphql, "models"), APP_FAILED, ZH, 401)
    assert_failed(rest_outcome(esb, esb=True), APP_FAILED, ZH, 401)
    assert_failed(rest_outcome(native, esb=False), APP_FAILED, ZH, 401)
    (error,) = graphql.json()["errors"]
    return {
        "graphql": error["extensions"].get("hint"),
        "esb": esb.headers.get("X-Cmdbgraph-Hint"),
        "native": native.headers.get("X-Cmdbgraph-Hint"),
    }


async def test_a_refused_app_gets_a_hint_that_does_not_say_why(client, world, gone_app):
    """Upstream's 1100004 stays as it is; beside it, a hint names the app and how to create it.
    Its words are the same whether the app has a wrong secret, was revoked or never existed: a
    caller must not learn which apps exist."""
    cases = {
        "wrong-secret": app_credentials(bk_app_secret=WRONG_SECRET),
        "revoked": app_credentials(bk_app_code=GONE_APP_CODE, bk_app_secret=GONE_APP_SECRET),
        "unknown": app_credentials(bk_app_code="auth_no_such_app"),
    }
    for case, credentials in cases.items():
        app_code = credentials["bk_app_code"]
        expected = (
            f"app {app_code} could not be authenticated: check its code and secret; to create "
            f"it: `cmdbgraph apps create {app_code}`"
        )
        hints = await _hints(client, credentials)
        assert hints == dict.fromkeys(("graphql", "esb", "native"), expected), case

    # The demo app's hint also names the demo data; an app code that would not read safely in
    # a command or a header is not shown back.
    demo = await _hints(client, {"bk_app_code": "esb_test", "bk_app_secret": WRONG_SECRET})
    assert set(demo.values()) == {
        "app esb_test could not be authenticated: check its code and secret; to create it: "
        "`cmdbgraph apps create esb_test` (or `cmdbgraph seed --demo` for the demo data)"
    }
    odd = await _hints(client, {"bk_app_code": "应用 `x`", "bk_app_secret": "x"})
    assert set(odd.values()) == {
        "the app could not be authenticated: check its code and secret; to create an app: "
        "`cmdbgraph apps create <app code>`"
    }


@pytest.mark.parametrize(
    "credentials",
    [{}, {"bk_token": "auth-no-such-token"}, {"bk_username": "admin"}],
    ids=["none", "token-without-app", "user-without-app"],
)
async def test_no_hint_without_an_app_code(client, world, credentials):
    assert await _hints(client, credentials) == dict.fromkeys(("graphql", "esb", "native"))


async def test_graphql_reads_refused_from_an_untrusted_address(untrusted_client, world):
    response = await untrusted_client.post(
        "/graphql", json={"query": MODELS_QUERY}, headers={"X-Bkcmdb-User": "admin"}
    )
    assert_failed(graphql_outcome(response, "models"), APP_FAILED, ZH, 401)


@pytest.fixture
async def browser(app):
    """A client that sees server errors as responses, as a browser would."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def test_graphiql_page_itself_needs_no_credentials(browser):
    response = await browser.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]


@pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous", "demo-app"])
async def test_browser_get_with_a_query_is_authenticated_like_any_other(
    browser, world, authenticated
):
    """A GET from a browser (Accept: text/html) carrying a query runs the query, so it must go
    through authentication like any other request: 401 without credentials, data with them."""
    headers = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    if authenticated:
        headers["X-Bkapi-Authorization"] = json.dumps(
            {"bk_app_code": "esb_test", "bk_app_secret": "xxx"}
        )
    response = await browser.get("/graphql", params={"query": MODELS_QUERY}, headers=headers)
    if authenticated:
        assert response.status_code == 200, response.text
        assert {"bkObjId": "bk_switch"} in response.json()["data"]["models"]
    else:
        assert_failed(graphql_outcome(response, "models"), APP_FAILED, ZH, 401)


# ---------------------------------------------------------------------------------------------
# Secrets are never stored or logged in plain text


async def test_secrets_and_tokens_are_stored_hashed(db, world, gone_app):
    known_token = "Known-Token-Value-0c4f2d77"
    assert await accounts.create_token(db, MODELER, token=known_token) == known_token
    secrets_ = [APP_SECRET, GONE_APP_SECRET, known_token, world.token, world.revoked_token]
    async with db.read() as conn:
        for table in (apps, tokens, users, grants):
            rows = (await conn.execute(select(table))).all()
            assert rows
            for row in rows:
                dumped = " ".join(str(value) for value in row)
                for secret in secrets_:
                    assert secret not in dumped, (table.name, row)
        stored = (
            await conn.execute(select(apps.c.secret_hash).where(apps.c.app_code == APP_CODE))
        ).scalar_one()
    assert hashes.verify_secret(APP_SECRET, stored)
    assert not hashes.verify_secret(WRONG_SECRET, stored)
    # The stored token is usable: it authenticates as its user.
    caller = await auth.authenticate(
        db,
        auth.Claims(app_code=APP_CODE, app_secret=APP_SECRET, token=known_token),
        language=ZH,
        request_id="r1",
    )
    assert caller.username == MODELER


async def test_secrets_and_tokens_never_reach_the_logs(client, world, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")  # statements and parameters
    good = app_credentials(bk_token=world.token)
    tries = [
        # (interface, credentials, expected code)
        ("esb", good, 0),
        ("graphql", good, 0),
        ("native", app_credentials(bk_token=world.revoked_token), USER_FAILED.code),
        ("esb", app_credentials(bk_token=world.expired_token), USER_FAILED.code),
        ("graphql", app_credentials(CATALOGER, bk_token=world.token), USER_FAILED.code),
        ("esb", app_credentials(bk_token=world.token, bk_app_secret=WRONG_SECRET), 1100004),
        ("graphql", app_credentials(MODELER, bk_app_secret=WRONG_SECRET), 1100004),
    ]
    for index, (interface, credentials, code) in enumerate(tries):
        outcome = await send_batch(client, interface, [(11, 21 + index % 3)], credentials)
        assert outcome.code == code, (index, outcome.body)
    messages = [record.getMessage() for record in caplog.records]
    # The capture works: the failed app authentication and the SQL were logged.
    assert any("app authentication failed" in m for m in messages)
    assert any("inst_associations" in m for m in messages)
    everything = "\n".join([caplog.text, *messages, *(repr(r.args) for r in caplog.records)])
    for secret in (
        APP_SECRET,
        WRONG_SECRET,
        world.token,
        world.expired_token,
        world.revoked_token,
    ):
        assert secret not in everything


# ---------------------------------------------------------------------------------------------
# Auth off


@pytest.fixture
async def open_client(database_url):
    settings = Settings(database_url=database_url, auth=False)
    database = Database(settings)
    transport = httpx.ASGITransport(app=create_app(settings, db=database))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
    await database.dispose()


@pytest.mark.parametrize("interface", INTERFACES)
async def test_with_auth_off_no_credentials_are_needed(open_client, db, interface):
    before = await row_counts(db)
    outcome = await send_batch(open_client, interface, [(11, 21), (13, 22)], {})
    assert list(created(outcome)) == ["0", "1"]
    assert await row_counts(db) == (before[0] + 2, before[1] + 2)
    response = await open_client.post("/graphql", json={"query": MODELS_QUERY})
    assert response.status_code == 200
    assert {"bkObjId": "host"} in response.json()["data"]["models"]
