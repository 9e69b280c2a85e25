"""The batch create contract (behaviour spec sections 2, 3 and 9, PRODUCT section 2).

Every test runs on SQLite and on PostgreSQL. Most run through GraphQL and through both REST
paths (ESB and native), and check upstream's messages in Chinese (the default) and in English.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from cmdbgraph.db import bulk
from cmdbgraph.db.tables import audit_entries, inst_associations
from cmdbgraph.services import associations
from cmdbgraph.services.caller import Caller
from tests.support import upstream
from tests.support.calls import (
    BATCH_MUTATION,
    ESB_PATH,
    NATIVE_PATH,
    batch_input,
    demo_headers,
    graphql,
    rest_body,
)
from tests.support.databases import count_statements, new_instances, row_counts, writes_nothing
from tests.support.upstream import (
    BAD_JSON,
    CODE_NAMES,
    MAINLINE_REFUSED,
    UNKNOWN_ASSOCIATION,
    check_failed,
    empty,
    invalid,
    item_error,
    too_many,
)

INTERFACES = ["graphql", "esb", "native"]
REST_INTERFACES = ["esb", "native"]
REST_PATHS = {"esb": ESB_PATH, "native": NATIVE_PATH}
LANGUAGES = ["zh", "en"]
LANGUAGE_HEADERS = {"zh": {}, "en": {"Blueking-Language": "en"}}

# Ids generated after the demo data are above this.
ID_FLOOR = 1000
# The demo user holds every grant; service calls made directly still check permissions.
SERVICE_CALLER = Caller(username="admin", app_code="esb_test", request_id="setup")


@dataclass(frozen=True)
class ModelAsst:
    bk_obj_id: str
    bk_asst_obj_id: str
    bk_obj_asst_id: str
    bk_asst_id: str


BELONG = ModelAsst("bk_switch", "host", "bk_switch_belong_host", "belong")  # n:n
DEFAULT = ModelAsst("bk_router", "bk_firewall", "bk_router_default_bk_firewall", "default")  # 1:1
CONNECT = ModelAsst("bk_switch", "host", "bk_switch_connect_host", "connect")  # 1:n, preset
MAINLINE = ModelAsst("host", "module", "host_bk_mainline_module", "bk_mainline")  # preset

# ---------------------------------------------------------------------------------------------
# Upstream's codes and messages (tests/support/upstream.py).

OK = "ok"
# Per-item outcomes of the scenarios: OK or upstream's code.
DUPLICATE = upstream.DUPLICATE.code
SOURCE_MISSING = upstream.SOURCE_MISSING.code
TARGET_MISSING = upstream.TARGET_MISSING.code
ONE_TO_ONE = upstream.ONE_TO_ONE.code
ONE_TO_MANY = upstream.ONE_TO_MANY.code

EMPTY_DETAILS = empty("details")
TOO_MANY_DETAILS = too_many("details", 200)


def item_message(code: int, asst: ModelAsst, language: str) -> str:
    return item_error(code, asst.bk_obj_id, asst.bk_asst_obj_id).text(language)


def go_order(indexes) -> list[str]:
    """The order in which Go's encoding/json writes the keys of a map[int64]...: as strings."""
    return sorted(str(index) for index in indexes)


# ---------------------------------------------------------------------------------------------
# Requests on every interface, and what the caller sees.


def make_request(asst: ModelAsst = BELONG, details=((11, 21),), **fields) -> dict:
    """A batch request in BlueKing's field names; ``fields`` override or add fields."""
    return {
        "bk_obj_id": asst.bk_obj_id,
        "bk_asst_obj_id": asst.bk_asst_obj_id,
        "bk_obj_asst_id": asst.bk_obj_asst_id,
        "details": list(details),
        **fields,
    }


def graphql_input(batch: dict) -> dict:
    variables = batch_input(
        batch["bk_obj_id"], batch["bk_asst_obj_id"], batch["bk_obj_asst_id"], batch["details"]
    )
    if "dry_run" in batch:
        variables["dryRun"] = batch["dry_run"]
    if "error_policy" in batch:
        variables["errorPolicy"] = batch["error_policy"].upper()
    return variables


def rest_json(batch: dict, **overrides) -> str:
    body = rest_body(
        batch["bk_obj_id"], batch["bk_asst_obj_id"], batch["bk_obj_asst_id"], batch["details"]
    )
    body.update({k: v for k, v in batch.items() if k in ("dry_run", "error_policy")})
    body.update(overrides)
    return json.dumps(body)


@dataclass(frozen=True)
class Reply:
    """What a caller sees, whatever the interface."""

    code: int
    message: str
    data: dict | None  # {"success_created": ..., "error_msg": ...}
    payload: dict  # the GraphQL payload or the REST body
    status: int = 200


async def send(client, interface: str, batch: dict, headers: dict | None = None) -> Reply:
    headers = headers or {}
    if interface == "graphql":
        return await send_graphql(client, batch, headers)
    return await post_rest(client, interface, rest_json(batch), headers)


async def send_graphql(client, batch: dict, headers: dict) -> Reply:
    result = await graphql(client, BATCH_MUTATION, {"input": graphql_input(batch)}, **headers)
    assert "errors" not in result, result
    payload = result["data"]["batchCreateInstAssociations"]
    if payload["__typename"] == "RequestError":
        assert payload["code"] == CODE_NAMES[payload["bkErrorCode"]]
        return Reply(payload["bkErrorCode"], payload["message"], None, payload)
    assert payload["__typename"] == "BatchCreateInstAssociationsPayload", payload
    assert_results_agree_with_maps(payload)
    data = {"success_created": payload["successCreated"], "error_msg": payload["errorMsg"]}
    return Reply(0, "success", data, payload)


def assert_results_agree_with_maps(payload: dict) -> None:
    """The per-index results and upstream's maps of one GraphQL payload say the same."""
    results = payload["results"]
    assert [r["index"] for r in results] == list(range(len(results)))
    created = {str(r["index"]): r["association"]["id"] for r in results if r["association"]}
    failed = {str(r["index"]): r["error"]["message"] for r in results if r["error"]}
    assert payload["successCreated"] == created
    assert payload["errorMsg"] == failed
    assert all(r["ok"] is (r["error"] is None) for r in results)
    assert payload["createdCount"] == len(created)
    assert payload["failedCount"] == len(failed)


async def post_rest(client, interface: str, content: str | bytes, headers: dict) -> Reply:
    response = await client.post(
        REST_PATHS[interface],
        content=content,
        headers={"Content-Type": "application/json", **headers},
    )
    body = response.json()
    if interface == "esb":
        assert list(body) == ["result", "code", "message", "permission", "request_id", "data"]
        code, message = body["code"], body["message"]
        assert body["request_id"] == response.headers["X-Request-ID"]
    else:
        assert list(body) == ["result", "bk_error_code", "bk_error_msg", "permission", "data"]
        code, message = body["bk_error_code"], body["bk_error_msg"]
    assert body["result"] is (code == 0)
    assert body["permission"] is None
    if code != 0:
        assert body["data"] is None
    return Reply(code, message, body["data"], body, response.status_code)


def assert_refused(reply: Reply, expected: tuple[int, str, str], language: str) -> None:
    code, zh, en = expected
    assert (reply.code, reply.message) == (code, en if language == "en" else zh)
    assert reply.data is None


# ---------------------------------------------------------------------------------------------
# The database.


async def store(db, asst: ModelAsst, details) -> list[int]:
    """Create associations directly through the service; they must all succeed."""
    details = [associations.Detail(*d) for d in details]
    if not details:
        return []
    result = await associations.batch_create(
        db,
        SERVICE_CALLER,
        associations.BatchCreateRequest(
            asst.bk_obj_id, asst.bk_asst_obj_id, asst.bk_obj_asst_id, details
        ),
    )
    assert result.failed_count == 0
    return [item.association.id for item in result.items]


async def stored_associations(db, ids) -> dict[int, dict]:
    ia = inst_associations.c
    async with db.read() as conn:
        rows = await conn.execute(
            select(
                ia.id,
                ia.bk_obj_asst_id,
                ia.bk_asst_id,
                ia.bk_obj_id,
                ia.bk_inst_id,
                ia.bk_asst_obj_id,
                ia.bk_asst_inst_id,
            ).where(ia.id.in_(list(ids)))
        )
        return {row.id: dict(row._mapping) for row in rows}


# ---------------------------------------------------------------------------------------------
# 1. Request-level checks, in upstream's order; the first failure wins and nothing is written.

REQUEST_FAILURES = [
    pytest.param(make_request(bk_obj_asst_id=""), invalid("bk_obj_asst_id"), id="empty-asst-id"),
    pytest.param(make_request(bk_obj_id=""), invalid("bk_obj_id"), id="empty-obj-id"),
    pytest.param(make_request(bk_asst_obj_id=""), invalid("bk_asst_obj_id"), id="empty-asst-obj"),
    pytest.param(make_request(details=[]), EMPTY_DETAILS, id="empty-details"),
    pytest.param(make_request(details=[(11, 21)] * 201), TOO_MANY_DETAILS, id="201-details"),
    pytest.param(make_request(bk_obj_id="host"), check_failed("bk_obj_id"), id="not-a-prefix"),
    pytest.param(
        make_request(bk_asst_obj_id="bk_switch"), check_failed("bk_asst_obj_id"), id="not-a-suffix"
    ),
    pytest.param(
        make_request(bk_obj_asst_id="bk"), check_failed("bk_obj_id"), id="shorter-than-obj-id"
    ),
    pytest.param(
        make_request(bk_obj_id="host", bk_asst_obj_id="bk_firewall", bk_obj_asst_id="host_x"),
        check_failed("bk_asst_obj_id"),
        id="shorter-than-asst-obj-id",
    ),
    pytest.param(
        make_request(bk_obj_asst_id="bk_switch_run_host"),
        UNKNOWN_ASSOCIATION,
        id="unknown-model-association",
    ),
    pytest.param(
        make_request(bk_obj_id="host", bk_asst_obj_id="host", bk_obj_asst_id="host"),
        UNKNOWN_ASSOCIATION,
        id="prefix-and-suffix-overlap",
    ),
    pytest.param(
        make_request(bk_obj_id="bk_sw"), check_failed("bk_obj_id"), id="stored-source-model-differs"
    ),
    pytest.param(
        make_request(bk_asst_obj_id="st"),
        check_failed("bk_asst_obj_id"),
        id="stored-target-model-differs",
    ),
    pytest.param(
        make_request(bk_obj_id="bk_switch_belong_host"),
        check_failed("bk_obj_id"),
        id="whole-asst-id-as-obj-id",
    ),
    pytest.param(make_request(MAINLINE, [(21, 21)]), MAINLINE_REFUSED, id="bk-mainline"),
]

SEVERAL_FAULTS = [
    pytest.param(
        make_request(bk_obj_asst_id="", bk_obj_id="", bk_asst_obj_id="", details=[]),
        invalid("bk_obj_asst_id"),
        id="asst-id-before-obj-id",
    ),
    pytest.param(
        make_request(bk_obj_id="", bk_asst_obj_id="", details=[]),
        invalid("bk_obj_id"),
        id="obj-id-before-asst-obj-id",
    ),
    pytest.param(
        make_request(bk_asst_obj_id="", details=[]),
        invalid("bk_asst_obj_id"),
        id="asst-obj-id-before-details",
    ),
    pytest.param(
        make_request(bk_obj_id="host", bk_asst_obj_id="module", details=[]),
        EMPTY_DETAILS,
        id="empty-details-before-prefix",
    ),
    pytest.param(
        make_request(bk_obj_id="host", details=[(12, 12)] * 201),
        TOO_MANY_DETAILS,
        id="size-before-prefix",
    ),
    pytest.param(
        make_request(bk_obj_asst_id="bk_switch_run_host", details=[(11, 21)] * 201),
        TOO_MANY_DETAILS,
        id="size-before-model-association",
    ),
    pytest.param(
        make_request(bk_obj_id="host", bk_asst_obj_id="bk_switch"),
        check_failed("bk_obj_id"),
        id="prefix-before-suffix",
    ),
    pytest.param(
        make_request(bk_obj_asst_id="bk_switch_run_host", bk_asst_obj_id="bk_firewall"),
        check_failed("bk_asst_obj_id"),
        id="suffix-before-model-association",
    ),
    pytest.param(
        make_request(bk_obj_asst_id="bk_switch_run_host", details=[(12, 12), (11, 21)]),
        UNKNOWN_ASSOCIATION,
        id="model-association-before-items",
    ),
    pytest.param(
        make_request(bk_obj_id="bk_sw", bk_asst_obj_id="st"),
        check_failed("bk_obj_id"),
        id="stored-source-before-stored-target",
    ),
    pytest.param(
        make_request(MAINLINE, [(12, 12), (21, 21), (21, 21)]),
        MAINLINE_REFUSED,
        id="mainline-before-items",
    ),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("interface", INTERFACES)
@pytest.mark.parametrize(("batch", "expected"), REQUEST_FAILURES)
async def test_request_level_failure(client, db, interface, language, batch, expected):
    async with writes_nothing(db):
        reply = await send(client, interface, batch, LANGUAGE_HEADERS[language])
    assert_refused(reply, expected, language)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("interface", INTERFACES)
@pytest.mark.parametrize(("batch", "expected"), SEVERAL_FAULTS)
async def test_several_faults_report_the_first_in_upstream_order(
    client, db, interface, language, batch, expected
):
    async with writes_nothing(db):
        reply = await send(client, interface, batch, LANGUAGE_HEADERS[language])
    assert_refused(reply, expected, language)


def detail_json(**detail) -> str:
    """The seeds' request with one detail whose fields are ``detail`` (any JSON values)."""
    return rest_json(make_request(), details=[{"bk_inst_id": 11, "bk_asst_inst_id": 21, **detail}])


UNDECODABLE_BODIES = [
    pytest.param(b"{not json", id="not-json"),
    pytest.param(b'{"bk_obj_asst_id": "bk_switch_belong_host",', id="truncated"),
    pytest.param(json.dumps([json.loads(rest_json(make_request()))]), id="array-body"),
    pytest.param(json.dumps("bk_switch_belong_host"), id="string-body"),
    pytest.param(detail_json(bk_inst_id="11"), id="string-for-int"),
    pytest.param(detail_json(bk_asst_inst_id=21.5), id="float-for-int"),
    pytest.param(detail_json(bk_inst_id=11.0), id="whole-float-for-int"),
    pytest.param(detail_json(bk_inst_id=True), id="bool-for-int"),
    pytest.param(detail_json(bk_asst_inst_id=2**63), id="above-int64"),
    pytest.param(detail_json(bk_inst_id=-(2**63) - 1), id="below-int64"),
    pytest.param(detail_json(bk_inst_id=2**64), id="above-uint64"),
    pytest.param(rest_json(make_request(), details={"bk_inst_id": 11}), id="details-an-object"),
    pytest.param(rest_json(make_request(), details="11,21"), id="details-a-string"),
    pytest.param(rest_json(make_request(), details=[[11, 21]]), id="detail-a-list"),
    pytest.param(rest_json(make_request(), details=[11]), id="detail-a-number"),
    pytest.param(rest_json(make_request(), bk_obj_id=11), id="number-for-string"),
    pytest.param(rest_json(make_request(), bk_obj_asst_id=["x"]), id="list-for-string"),
    # Decoding comes before every other check.
    pytest.param(
        rest_json(
            make_request(bk_obj_asst_id=""),
            details=[{"bk_inst_id": "11", "bk_asst_inst_id": 21}],
        ),
        id="before-empty-asst-id",
    ),
    pytest.param(
        rest_json(make_request(), details=[{"bk_inst_id": 11, "bk_asst_inst_id": 21}] * 200 + [5]),
        id="before-size",
    ),
    pytest.param(
        rest_json(make_request(bk_obj_asst_id="bk_switch_run_host"), details=[1.5]),
        id="before-model-association",
    ),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("interface", REST_INTERFACES)
@pytest.mark.parametrize("content", UNDECODABLE_BODIES)
async def test_rest_refuses_a_body_upstream_cannot_decode(client, db, interface, language, content):
    async with writes_nothing(db):
        reply = await post_rest(client, interface, content, LANGUAGE_HEADERS[language])
    assert_refused(reply, BAD_JSON, language)


def without(name: str) -> str:
    body = json.loads(rest_json(make_request()))
    del body[name]
    return json.dumps(body)


MISSING_OR_NULL_FIELDS = [
    pytest.param(without("bk_obj_asst_id"), invalid("bk_obj_asst_id"), id="missing-asst-id"),
    pytest.param(
        rest_json(make_request(), bk_obj_asst_id=None), invalid("bk_obj_asst_id"), id="null-asst-id"
    ),
    pytest.param(without("bk_obj_id"), invalid("bk_obj_id"), id="missing-obj-id"),
    pytest.param(without("bk_asst_obj_id"), invalid("bk_asst_obj_id"), id="missing-asst-obj-id"),
    pytest.param(without("details"), EMPTY_DETAILS, id="missing-details"),
    pytest.param(rest_json(make_request(), details=None), EMPTY_DETAILS, id="null-details"),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("interface", REST_INTERFACES)
@pytest.mark.parametrize(("content", "expected"), MISSING_OR_NULL_FIELDS)
async def test_rest_missing_or_null_fields_count_as_empty(
    client, db, interface, language, content, expected
):
    async with writes_nothing(db):
        reply = await post_rest(client, interface, content, LANGUAGE_HEADERS[language])
    assert_refused(reply, expected, language)


@pytest.mark.parametrize("interface", REST_INTERFACES)
async def test_rest_ignores_unknown_fields(client, db, interface):
    content = rest_json(
        make_request(),
        bk_biz_id=3,
        something_new={"nested": [1, 2]},
        details=[{"bk_inst_id": 11, "bk_asst_inst_id": 21, "comment": "rack 4"}],
    )
    reply = await post_rest(client, interface, content, {})
    assert (reply.code, reply.data["error_msg"]) == (0, {})
    assert list(reply.data["success_created"]) == ["0"]


def with_input(**changes) -> dict:
    """Valid mutation input with ``changes``; a value of ``...`` removes the field."""
    data = graphql_input(make_request())
    for name, value in changes.items():
        if value is ...:
            del data[name]
        else:
            data[name] = value
    return data


GRAPHQL_BAD_INPUTS = [
    pytest.param(with_input(details=[{"bkInstId": "11", "bkAsstInstId": 21}]), id="string-for-int"),
    pytest.param(with_input(details=[{"bkInstId": 11, "bkAsstInstId": 21.5}]), id="float-for-int"),
    pytest.param(with_input(details=[{"bkInstId": True, "bkAsstInstId": 21}]), id="bool-for-int"),
    pytest.param(with_input(details=[{"bkInstId": 2**63, "bkAsstInstId": 21}]), id="above-int64"),
    pytest.param(with_input(details="11,21"), id="details-a-string"),
    pytest.param(with_input(details=[11]), id="detail-a-number"),
    pytest.param(with_input(details=[{"bkInstId": 11}]), id="detail-missing-target"),
    pytest.param(with_input(details=None), id="null-details"),
    pytest.param(with_input(bkObjAsstId=...), id="missing-asst-id"),
    pytest.param(with_input(bkObjId=11), id="number-for-string"),
    pytest.param(with_input(errorPolicy="SOMETIMES"), id="unknown-error-policy"),
]


@pytest.mark.parametrize("mutation_input", GRAPHQL_BAD_INPUTS)
async def test_graphql_rejects_ill_typed_input_in_its_type_system(client, db, mutation_input):
    async with writes_nothing(db):
        response = await client.post(
            "/graphql",
            json={"query": BATCH_MUTATION, "variables": {"input": mutation_input}},
            headers=demo_headers(),
        )
    assert response.status_code < 500
    body = response.json()
    assert body.get("data") is None
    assert body["errors"]
    for error in body["errors"]:
        assert error["message"].startswith("Variable '$input' "), error
        assert "invalid value" in error["message"], error
    assert "Traceback" not in response.text
    assert 'File "' not in response.text


# ---------------------------------------------------------------------------------------------
# 2. Per-item rules and messages.


@dataclass(frozen=True)
class Scenario:
    asst: ModelAsst
    details: list[tuple[int, int]]
    expected: list  # per index: OK or upstream's error code
    stored: list[tuple[int, int]] = field(default_factory=list)


SCENARIOS = [
    pytest.param(
        Scenario(BELONG, [(11, 21), (11, 22)], [DUPLICATE, OK], stored=[(11, 21)]),
        id="duplicate-of-stored",
    ),
    pytest.param(
        Scenario(BELONG, [(11, 21), (13, 21), (11, 21)], [OK, OK, DUPLICATE]),
        id="duplicate-earlier-in-batch",
    ),
    pytest.param(
        Scenario(DEFAULT, [(31, 41)], [DUPLICATE], stored=[(31, 41)]),
        id="duplicate-reported-before-one-to-one",
    ),
    pytest.param(
        Scenario(DEFAULT, [(31, 41), (31, 41)], [OK, DUPLICATE]),
        id="duplicate-in-batch-reported-before-one-to-one",
    ),
    pytest.param(
        Scenario(
            BELONG,
            [(12, 21), (0, 21), (-11, 21), (21, 22), (31, 21), (99999, 21), (11, 21)],
            [SOURCE_MISSING] * 6 + [OK],
        ),
        id="source-missing",
    ),
    pytest.param(
        Scenario(
            BELONG,
            [(11, 12), (11, 0), (11, -21), (11, 13), (11, 41), (11, 99999), (11, 21)],
            [TARGET_MISSING] * 6 + [OK],
        ),
        id="target-missing",
    ),
    pytest.param(
        Scenario(BELONG, [(12, 12), (-1, 0), (21, 11)], [SOURCE_MISSING] * 3),
        id="source-checked-before-target",
    ),
    pytest.param(
        Scenario(DEFAULT, [(31, 42)], [ONE_TO_ONE], stored=[(31, 41)]),
        id="one-to-one-source-already-linked",
    ),
    pytest.param(
        Scenario(DEFAULT, [(32, 41)], [ONE_TO_ONE], stored=[(31, 41)]),
        id="one-to-one-target-already-linked",
    ),
    pytest.param(
        Scenario(
            DEFAULT, [(31, 41), (31, 42), (32, 41), (32, 42)], [OK, ONE_TO_ONE, ONE_TO_ONE, OK]
        ),
        id="one-to-one-inside-batch",
    ),
    pytest.param(
        Scenario(
            DEFAULT,
            [(31, 12), (31, 41), (12, 42), (32, 42)],
            [TARGET_MISSING, OK, SOURCE_MISSING, OK],
        ),
        id="one-to-one-failed-item-takes-no-slot",
    ),
    pytest.param(
        Scenario(
            CONNECT,
            [(13, 21), (11, 22), (14, 21)],
            [ONE_TO_MANY, OK, ONE_TO_MANY],
            stored=[(11, 21)],
        ),
        id="one-to-many-target-already-has-source",
    ),
    pytest.param(
        Scenario(
            CONNECT,
            [(11, 21), (13, 21), (11, 22), (14, 23), (13, 23), (11, 21)],
            [OK, ONE_TO_MANY, OK, OK, ONE_TO_MANY, DUPLICATE],
        ),
        id="one-to-many-inside-batch",
    ),
    pytest.param(
        Scenario(
            BELONG,
            [(11, 21), (11, 22), (13, 21), (13, 22), (14, 22), (14, 21)],
            [OK, OK, OK, OK, OK, DUPLICATE],
            stored=[(14, 21)],
        ),
        id="many-to-many-allows-all-but-duplicates",
    ),
    pytest.param(
        Scenario(
            BELONG,
            [(12, 21), (11, 12), (31, 41), (11, 21)],
            [SOURCE_MISSING, TARGET_MISSING, SOURCE_MISSING, DUPLICATE],
            stored=[(11, 21)],
        ),
        id="every-item-fails",
    ),
    pytest.param(
        Scenario(
            BELONG,
            [(11, 21), (12, 21), (11, 12), (11, 22), (11, 23), (13, 21)]
            + [(13, 22), (13, 23), (14, 21), (14, 22), (11, 21), (14, 23)],
            [OK, SOURCE_MISSING, TARGET_MISSING, OK, OK, OK, OK, OK, OK, OK, DUPLICATE, OK],
        ),
        id="more-than-ten-items",
    ),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("interface", INTERFACES)
@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_per_item_rules(client, db, interface, language, scenario):
    await store(db, scenario.asst, scenario.stored)
    before = await row_counts(db)
    batch = make_request(scenario.asst, scenario.details)
    reply = await send(client, interface, batch, LANGUAGE_HEADERS[language])

    # Partial success is still success, even when every item fails; both maps always present.
    assert (reply.code, reply.message) == (0, "success")
    assert list(reply.data) == ["success_created", "error_msg"]
    created, errors = reply.data["success_created"], reply.data["error_msg"]
    ok_indexes = [i for i, outcome in enumerate(scenario.expected) if outcome == OK]
    failed = {i: code for i, code in enumerate(scenario.expected) if code != OK}
    assert list(created) == go_order(ok_indexes)
    assert list(errors) == go_order(failed)
    assert errors == {
        str(i): item_message(code, scenario.asst, language) for i, code in failed.items()
    }
    ids = list(created.values())
    assert all(type(i) is int and i > ID_FLOOR for i in ids) and len(set(ids)) == len(ids)

    if interface == "graphql":
        for index, result in enumerate(reply.payload["results"]):
            outcome = scenario.expected[index]
            if outcome == OK:
                assert result["ok"] is True and result["error"] is None
            else:
                assert result["association"] is None and result["ok"] is False
                assert result["error"] == {
                    "code": CODE_NAMES[outcome],
                    "bkErrorCode": outcome,
                    "message": item_message(outcome, scenario.asst, language),
                }

    # What was stored is exactly what the reply says was created.
    rows = await stored_associations(db, ids)
    assert rows == {
        created[str(i)]: {
            "id": created[str(i)],
            "bk_obj_asst_id": scenario.asst.bk_obj_asst_id,
            "bk_asst_id": scenario.asst.bk_asst_id,
            "bk_obj_id": scenario.asst.bk_obj_id,
            "bk_inst_id": scenario.details[i][0],
            "bk_asst_obj_id": scenario.asst.bk_asst_obj_id,
            "bk_asst_inst_id": scenario.details[i][1],
        }
        for i in ok_indexes
    }
    assert await row_counts(db) == (before[0] + len(ok_indexes), before[1] + len(ok_indexes))


@pytest.mark.parametrize("interface", INTERFACES)
async def test_map_keys_come_in_go_string_order(client, db, interface):
    details = [(11, 21), (12, 21), (11, 12), (11, 22), (11, 23), (13, 21)]
    details += [(13, 22), (13, 23), (14, 21), (14, 22), (11, 21), (14, 23)]
    reply = await send(client, interface, make_request(BELONG, details))
    assert list(reply.data["success_created"]) == ["0", "11", "3", "4", "5", "6", "7", "8", "9"]
    assert list(reply.data["error_msg"]) == ["1", "10", "2"]

    every_one_fails = await send(client, interface, make_request(BELONG, [(12, 21)] * 12))
    assert every_one_fails.data["success_created"] == {}
    assert list(every_one_fails.data["error_msg"]) == [
        "0",
        "1",
        "10",
        "11",
        "2",
        "3",
        "4",
        "5",
        "6",
        "7",
        "8",
        "9",
    ]


@pytest.mark.parametrize("interface", INTERFACES)
async def test_accept_language_selects_english(client, db, interface):
    headers = {"Accept-Language": "en-US,en;q=0.9"}
    refused = await send(client, interface, make_request(details=[]), headers)
    assert_refused(refused, EMPTY_DETAILS, "en")
    reply = await send(client, interface, make_request(details=[(11, 12), (11, 21)]), headers)
    assert reply.data["error_msg"] == {"0": "the  inst to asst  is not exist"}
    assert list(reply.data["success_created"]) == ["1"]


# ---------------------------------------------------------------------------------------------
# 3. Nothing half-written; one audit entry per created association.


@pytest.mark.parametrize("interface", INTERFACES)
async def test_each_created_association_has_exactly_one_audit_entry(client, db, interface):
    request_id = f"audit-{interface}"
    before = await row_counts(db)
    reply = await send(
        client,
        interface,
        make_request(BELONG, [(11, 21), (12, 22), (13, 22), (11, 21)]),
        {"X-Request-ID": request_id},
    )
    created = reply.data["success_created"]
    assert list(created) == ["0", "2"]
    assert await row_counts(db) == (before[0] + 2, before[1] + 2)

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
                ).where(a.request_id == request_id)
            )
        ).all()
    entries = sorted(
        (
            {
                "audit_type": row.audit_type,
                "resource_type": row.resource_type,
                "action": row.action,
                "resource_id": row.resource_id,
                "resource_name": row.resource_name,
                **{
                    key: row.operation_detail[key]
                    for key in ("asst_id", "src_obj_id", "dest_obj_id", "dest_inst_id")
                },
                "dest_inst_name": row.operation_detail["dest_inst_name"],
            }
            for row in rows
        ),
        key=lambda entry: entry["resource_id"],
    )
    common = {
        "audit_type": "model_instance",
        "resource_type": "instance_association",
        "action": "create",
        "asst_id": "bk_switch_belong_host",
        "src_obj_id": "bk_switch",
        "dest_obj_id": "host",
    }
    assert entries == [
        {
            **common,
            "resource_id": 11,
            "resource_name": "sw-01",
            "dest_inst_id": 21,
            "dest_inst_name": "10.0.0.1",
        },
        {
            **common,
            "resource_id": 13,
            "resource_name": "sw-02",
            "dest_inst_id": 22,
            "dest_inst_name": "10.0.0.2",
        },
    ]


@pytest.mark.parametrize("interface", INTERFACES)
async def test_a_failure_after_rows_are_inserted_leaves_nothing_behind(
    client, db, interface, monkeypatch
):
    real_insert = bulk.insert_audit_entries

    async def audit_the_database_refuses(conn, **kwargs):
        # The associations are inserted already; the audit rows violate NOT NULL.
        await real_insert(conn, **{**kwargs, "resource_type": None})

    monkeypatch.setattr(bulk, "insert_audit_entries", audit_the_database_refuses)
    batch = make_request(BELONG, [(11, 21), (13, 22)])
    async with writes_nothing(db):
        if interface == "graphql":
            response = await client.post(
                "/graphql",
                json={"query": BATCH_MUTATION, "variables": {"input": graphql_input(batch)}},
                headers=demo_headers(),
            )
            body = response.json()
            assert body["data"] is None
            assert [error["message"] for error in body["errors"]] == ["Unexpected error."]
            text = response.text.lower()
            for internal in ("audit_entries", "constraint", "integrity", "traceback"):
                assert internal not in text
        else:
            reply = await send(client, interface, batch)
            assert reply.status == 500
            assert_refused(
                reply,
                (
                    1199999,
                    "'batch_create_instance_association' 服务器内部错误",
                    "'batch_create_instance_association' Internal Server Error",
                ),
                "zh",
            )


# ---------------------------------------------------------------------------------------------
# 4 and 5. Statement counts do not grow with the batch or with the page.


@pytest.mark.parametrize("asst", [BELONG, CONNECT, DEFAULT], ids=lambda a: a.bk_obj_asst_id)
async def test_statement_count_does_not_grow_with_the_batch(db, asst):
    sources = await new_instances(db, asst.bk_obj_id, "stmt-src", 201, caller=SERVICE_CALLER)
    targets = await new_instances(db, asst.bk_asst_obj_id, "stmt-dest", 201, caller=SERVICE_CALLER)
    pairs = list(zip(sources, targets, strict=True))

    async def counted(details, expected_outcome: str | int) -> int:
        with count_statements(db) as statements:
            result = await associations.batch_create(
                db,
                SERVICE_CALLER,
                associations.BatchCreateRequest(
                    asst.bk_obj_id,
                    asst.bk_asst_obj_id,
                    asst.bk_obj_asst_id,
                    [associations.Detail(*d) for d in details],
                ),
            )
        outcomes = [OK if item.ok else item.error.value for item in result.items]
        assert outcomes == [expected_outcome] * len(details)
        return len(statements)

    one = await counted(pairs[:1], OK)
    two_hundred = await counted(pairs[1:], OK)
    # The events of the change stream cost two statements on PostgreSQL (the lock that keeps
    # them in commit order, with its notification; their insert), one on SQLite; PostgreSQL
    # also lets the inserts' foreign-key checks reuse their plans (bulk.generic_plans).
    assert one == two_hundred <= 10
    # A batch that fails throughout writes nothing and costs no more.
    assert await counted(pairs[1:], DUPLICATE) <= two_hundred


INSTANCES_WITH_ASSOCIATIONS = """
query Listing($limit: Int!) {
  instances(nameContains: "dl-", limit: $limit) {
    items {
      bkInstId bkInstName
      associationsAsSource { target { bkInstName model { bkObjName } } }
      associationsAsTarget { id }
    }
  }
}
"""


async def test_listing_instances_with_associations_costs_constant_statements(client, db):
    switches = await new_instances(db, "bk_switch", "dl-sw", 50, caller=SERVICE_CALLER)
    hosts = await new_instances(db, "host", "dl-host", 50, caller=SERVICE_CALLER)
    association_ids = await store(db, BELONG, zip(switches, hosts, strict=True))

    async def listing(limit: int) -> tuple[list[dict], int]:
        with count_statements(db) as statements:
            result = await graphql(client, INSTANCES_WITH_ASSOCIATIONS, {"limit": limit})
        assert "errors" not in result, result
        return result["data"]["instances"]["items"], len(statements)

    ten, ten_statements = await listing(10)
    hundred, hundred_statements = await listing(100)
    assert len(ten) == 10 and len(hundred) == 100
    assert ten_statements == hundred_statements <= 10

    assert [item["bkInstId"] for item in hundred] == switches + hosts
    for i, item in enumerate(hundred[:50]):
        assert item["associationsAsSource"] == [
            {"target": {"bkInstName": f"dl-host-{i:03}", "model": {"bkObjName": "主机"}}}
        ]
        assert item["associationsAsTarget"] == []
    for i, item in enumerate(hundred[50:]):
        assert item["associationsAsSource"] == []
        assert item["associationsAsTarget"] == [{"id": association_ids[i]}]


# ---------------------------------------------------------------------------------------------
# 6. Beyond upstream: dry run and all-or-nothing, in GraphQL and in REST.

MIXED = [(11, 21), (12, 21), (11, 21), (13, 22)]
MIXED_ERRORS = {"1": "关联实例不存在", "2": "关联关系 bk_switch->host 重复"}


def item_outcomes(reply: Reply) -> list[tuple]:
    return [(r["index"], r["ok"], r["error"]) for r in reply.payload["results"]]


@pytest.mark.parametrize("interface", INTERFACES)
async def test_dry_run_reports_what_a_real_run_does_and_writes_nothing(client, db, interface):
    async with writes_nothing(db):
        dry = await send(client, interface, make_request(BELONG, MIXED, dry_run=True))
    real = await send(client, interface, make_request(BELONG, MIXED))

    assert (dry.code, real.code) == (0, 0)
    assert dry.data == {"success_created": {}, "error_msg": MIXED_ERRORS}
    assert real.data["error_msg"] == MIXED_ERRORS
    assert list(real.data["success_created"]) == ["0", "3"]
    if interface == "graphql":
        assert item_outcomes(dry) == item_outcomes(real)
        assert [r["ok"] for r in dry.payload["results"]] == [True, False, False, True]
        assert all(r["association"] is None for r in dry.payload["results"])
        assert (dry.payload["written"], real.payload["written"]) == (False, True)


@pytest.mark.parametrize("interface", INTERFACES)
async def test_all_or_nothing_writes_nothing_when_one_item_fails(client, db, interface):
    async with writes_nothing(db):
        refused = await send(
            client, interface, make_request(BELONG, MIXED, error_policy="all_or_nothing")
        )
    assert refused.code == 0
    assert refused.data == {"success_created": {}, "error_msg": MIXED_ERRORS}
    if interface == "graphql":
        assert refused.payload["written"] is False
        assert [(r["ok"], r["association"]) for r in refused.payload["results"]] == [
            (True, None),
            (False, None),
            (False, None),
            (True, None),
        ]
        assert [r["error"] and r["error"]["code"] for r in refused.payload["results"]] == [
            None,
            "SOURCE_INSTANCE_NOT_FOUND",
            "ASSOCIATION_ALREADY_EXISTS",
            None,
        ]

    before = await row_counts(db)
    accepted = await send(
        client,
        interface,
        make_request(BELONG, [(11, 21), (13, 22)], error_policy="all_or_nothing"),
    )
    assert accepted.data["error_msg"] == {}
    assert list(accepted.data["success_created"]) == ["0", "1"]
    assert await row_counts(db) == (before[0] + 2, before[1] + 2)
