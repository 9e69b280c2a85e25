"""The OpenAPI document of the REST shim stays true.

(a) it describes exactly the routes of the app under /api/; (b) it is valid OpenAPI 3.1;
(c) what the app really answers, to valid and to invalid requests, on every route and on both
databases, validates against the documented response (by status); what the document calls a
valid request is accepted, and what it calls invalid is refused.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from sqlalchemy import select

from cmdbgraph.app import create_app
from cmdbgraph.db.tables import association_kinds, model_associations
from cmdbgraph.http.api_docs import DOCS_PATH
from cmdbgraph.rest import catalog as rest_catalog
from cmdbgraph.rest.declarations import CALLS
from cmdbgraph.rest.openapi import document
from cmdbgraph.rest.routes import ESB_PREFIX, ESB_PREFIXES, OPENAPI_PATH
from cmdbgraph.services import accounts, associations, catalog
from cmdbgraph.services.caller import Caller
from cmdbgraph.settings import Settings
from tests.helpers import DEMO_CREDENTIALS, NATIVE_PATH, demo_headers, rest_body
from tests.support.contract import CONTRACT, JSON

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Older ESB names: alias -> the call answering it.
ESB_ALIASES = {alias: call.name for call in CALLS for alias in call.aliases}


# ---------------------------------------------------------------------------------------------
# (a) and (b)


def _app_routes() -> set[tuple[str, str]]:
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    found = set()
    for route in app.routes:
        path = getattr(route, "path", "")
        if not path.startswith("/api/") or path in (OPENAPI_PATH, DOCS_PATH):
            continue  # the document itself and the page that shows it
        for method in route.methods or ():
            if method != "HEAD":
                found.add((path, method.lower()))
    return found


def test_the_document_describes_exactly_the_routes_of_the_app():
    documented = {
        (path, method)
        for path, item in document()["paths"].items()
        for method in item
        if method in METHODS
    }
    app_routes = _app_routes()
    assert app_routes, "the app has no REST routes?"
    assert documented - app_routes == set(), "documented but not served"
    assert app_routes - documented == set(), "served but not documented"
    # Every call, on its ESB paths (with and without the API version) and its native route,
    # and every alias on its ESB paths.
    more = sum(len(call.more_paths) for call in CALLS)
    assert len(documented) == (len(ESB_PREFIXES) + 1) * len(CALLS) + more + len(ESB_PREFIXES) * len(
        ESB_ALIASES
    )


def test_the_document_is_valid_openapi_3_1():
    doc = document()
    assert doc["openapi"].startswith("3.1")
    validate_openapi(doc)
    # Every operation: an id of its own, both language headers, the 200 reply.
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    for item in doc["paths"].values():
        for operation in item.values():
            names = {p["name"] for p in CONTRACT.parameters(operation)}
            assert {"Blueking-Language", "Accept-Language"} <= names
            assert "200" in operation["responses"]
    assert doc["components"]["securitySchemes"]["BkapiAuthorization"]["name"] == (
        "X-Bkapi-Authorization"
    )


def test_the_batch_call_documents_its_options():
    for path in (
        f"{ESB_PREFIX}/batch_create_instance_association/",
        "/api/v3/createmany/instassociation",
    ):
        operation, _ = CONTRACT.operation("POST", path)
        schema = operation["requestBody"]["content"][JSON]["schema"]
        assert schema["properties"]["error_policy"]["enum"] == ["partial", "all_or_nothing"]
        assert schema["properties"]["dry_run"]["type"] == "boolean"
        assert "idempotency_key" in schema["properties"]
        assert "Idempotency-Key" in {p["name"] for p in CONTRACT.parameters(operation)}
        credentials = document()["components"]["schemas"]["Credentials"]["properties"]
        assert {"bk_app_code", "bk_app_secret", "bk_username", "bk_token"} <= set(credentials)


async def test_the_document_is_served(client):
    response = await client.get(OPENAPI_PATH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(JSON)
    assert response.json() == json.loads(json.dumps(document()))


# ---------------------------------------------------------------------------------------------
# (c) real responses against the document

SERVICE_CALLER = Caller(username="admin", app_code="esb_test", request_id="setup")
NO_GRANT_USER = "openapi_nobody"
BELONG = ("bk_switch", "host", "bk_switch_belong_host")  # n:n
DEFAULT = ("bk_router", "bk_firewall", "bk_router_default_bk_firewall")  # 1:1
EN = {"Blueking-Language": "en"}


@dataclass
class World:
    """What a test has stored before its requests: associations to find and delete."""

    belong: list[int]  # bk_switch 11 -> host 21, 13 -> 22, 14 -> 23
    spare: list[int]  # bk_router 31 -> bk_firewall 41, 32 -> 42
    # The catalog's ids: model associations by bk_obj_asst_id, kinds by bk_asst_id.
    model_associations: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)


@dataclass
class Case:
    """One request of a call and what must come back.

    ``body`` holds every field; on a native route the path parameters are taken out of it.
    ``expect`` is the code (0: success); a dict tells it per envelope ("esb" / "native").
    ``conforms``: whether the document calls the request valid (None: not checked).
    """

    name: str
    body: Any
    expect: int | dict[str, int] = 0
    status: int = 200
    conforms: bool | None = True
    headers: dict[str, str] = field(default_factory=dict)
    credentials: str = "demo"  # demo | none | wrong_secret | unknown_user | no_grant | header
    only: str | None = None  # "esb" or "native"
    raw: bytes | None = None  # sent as is instead of ``body``
    repeat: int = 1  # send it this many times (the last reply is checked)


def _credentials(kind: str) -> dict[str, str]:
    return {
        "demo": DEMO_CREDENTIALS,
        "header": {"bk_app_code": "esb_test", "bk_app_secret": "xxx", "bk_username": "admin"},
        "none": {},
        "wrong_secret": {**DEMO_CREDENTIALS, "bk_app_secret": "wrong"},
        "unknown_user": {"bk_app_code": "esb_test", "bk_app_secret": "xxx", "bk_username": "ghost"},
        "no_grant": {
            "bk_app_code": "esb_test",
            "bk_app_secret": "xxx",
            "bk_username": NO_GRANT_USER,
        },
    }[kind]


def common_cases(valid: dict, other: dict | None = None, *, bad_body: int = 1199000) -> list[Case]:
    """Failures every call shares (bad JSON, not an object, bad credentials, a big body), and
    ``other`` (by default ``valid``) with the credentials in the X-Bkapi-Authorization header.
    ``bad_body`` is what the call answers a body that is not its JSON object."""
    return [
        Case("not JSON", None, bad_body, raw=b'{"bk_obj_id": ', conforms=None),
        Case("not JSON, en", None, bad_body, raw=b"\xff\xfe", headers=EN, conforms=None),
        Case("an array", [valid], bad_body, conforms=False),
        Case("a number", 7, bad_body, conforms=False),
        Case("no credentials", valid, 1100004, status=401, credentials="none"),
        Case("wrong secret", valid, 1100004, status=401, credentials="wrong_secret"),
        Case("unknown user, en", valid, 1199027, 401, headers=EN, credentials="unknown_user"),
        Case("credentials in the header", other or valid, credentials="header"),
        Case(
            "body over the size limit",
            None,
            1199035,
            status=413,
            raw=b'{"pad": "' + b"x" * 1_100_000 + b'"}',
            conforms=None,
        ),
    ]


def batch_cases(w: World) -> list[Case]:
    obj, asst_obj, obj_asst = BELONG

    def body(pairs, **extra):
        return {
            "bk_obj_id": obj,
            "bk_asst_obj_id": asst_obj,
            "bk_obj_asst_id": obj_asst,
            "details": [{"bk_inst_id": s, "bk_asst_inst_id": t} for s, t in pairs],
            **extra,
        }

    valid = body([(11, 22), (13, 23)])
    return [
        *common_cases(valid, body([(14, 21)])),
        Case("created", valid),
        Case("items fail (missing, duplicate)", body([(11, 21), (12, 21), (11, 99), (14, 21)])),
        Case("every item fails, en", body([(12, 21), (11, 99)]), headers=EN),
        Case("dry run", body([(14, 22)], dry_run=True)),
        Case("all or nothing", body([(14, 22), (12, 22)], error_policy="all_or_nothing")),
        Case("partial", body([(14, 21)], error_policy="partial")),
        Case(
            "1:1 violation",
            {
                "bk_obj_id": DEFAULT[0],
                "bk_asst_obj_id": DEFAULT[1],
                "bk_obj_asst_id": DEFAULT[2],
                "details": [{"bk_inst_id": 31, "bk_asst_inst_id": 42}],
            },
        ),
        Case("idempotent retry", body([(13, 21)], idempotency_key="k-1"), repeat=2),
        Case(
            "idempotency header",
            body([(14, 23)]),
            headers={"Idempotency-Key": "h-1"},
            repeat=2,
        ),
        # The header key of the case above, reused with another body.
        Case(
            "idempotency key reused with another body",
            body([(11, 23)]),
            1199006,
            headers={"Idempotency-Key": "h-1"},
        ),
        Case("unknown fields are ignored", body([(13, 23)], colour="blue")),
        Case("details not a list", body([], details="x"), 1199000, conforms=False),
        Case(
            "id as a string",
            body([], details=[{"bk_inst_id": "11", "bk_asst_inst_id": 21}]),
            1199000,
            conforms=False,
        ),
        Case("id a float", body([(11.5, 21)]), 1199000, conforms=False),
        Case("id over int64", body([(2**63, 21)]), 1199000, conforms=False),
        Case("detail not an object", body([], details=[11]), 1199000, conforms=False),
        Case("dry_run not a bool", body([(11, 21)], dry_run="yes"), 1199000, conforms=False),
        Case("bk_obj_id a number", body([(11, 21)], bk_obj_id=5), 1199000, conforms=False),
        Case("no bk_obj_asst_id", body([(11, 21)], bk_obj_asst_id=""), 1199011, conforms=False),
        Case(
            "no bk_obj_id",
            {k: v for k, v in valid.items() if k != "bk_obj_id"},
            1199011,
            conforms=False,
        ),
        Case(
            "no bk_asst_obj_id, en",
            body([(11, 21)], bk_asst_obj_id=None),
            1199011,
            headers=EN,
            conforms=False,
        ),
        Case(
            "no details",
            {k: v for k, v in valid.items() if k != "details"},
            1199038,
            conforms=False,
        ),
        Case("empty details", body([]), 1199038, conforms=False),
        Case("201 details", body([(11, 21)] * 201), 1199035, conforms=False),
        Case("bad policy", body([(11, 21)], error_policy="most"), 1199011, conforms=False),
        Case("key too long", body([(11, 21)], idempotency_key="k" * 201), 1199011, conforms=False),
        Case("prefix mismatch", body([(11, 21)], bk_obj_id="bk_router"), 1199006),
        Case("short bk_obj_asst_id", body([(11, 21)], bk_obj_asst_id="bk"), 1199006),
        Case(
            "unknown model association",
            body([(11, 21)], bk_obj_asst_id="bk_switch_x_host"),
            1101046,
        ),
        Case(
            "mainline refused",
            {
                "bk_obj_id": "host",
                "bk_asst_obj_id": "module",
                "bk_obj_asst_id": "host_bk_mainline_module",
                "details": [{"bk_inst_id": 21, "bk_asst_inst_id": 1}],
            },
            1101082,
        ),
        Case("no grant", valid, 9900403, credentials="no_grant"),
        Case("no grant, en", valid, 9900403, credentials="no_grant", headers=EN),
    ]


def add_cases(w: World) -> list[Case]:
    valid = {"bk_obj_asst_id": BELONG[2], "bk_inst_id": 14, "bk_asst_inst_id": 22}
    return [
        *common_cases(valid, {**valid, "bk_inst_id": 13, "bk_asst_inst_id": 21}, bad_body=1199006),
        Case("created", valid),
        Case("duplicate", {**valid, "bk_asst_inst_id": 21, "bk_inst_id": 11}, 1199014),
        Case("source missing", {**valid, "bk_inst_id": 12}, 1101073),
        Case("target missing, en", {**valid, "bk_asst_inst_id": 99}, 1101074, headers=EN),
        Case(
            "1:1 violation",
            {"bk_obj_asst_id": DEFAULT[2], "bk_inst_id": 31, "bk_asst_inst_id": 42},
            1101052,
        ),
        Case("unknown model association", {**valid, "bk_obj_asst_id": "nope"}, 1101046),
        Case("no bk_obj_asst_id", {**valid, "bk_obj_asst_id": ""}, 1101046, conforms=False),
        Case("id as a string", {**valid, "bk_inst_id": "14"}, 1199006, conforms=False),
        Case("id null", {**valid, "bk_inst_id": None}, 1101073, conforms=False),
        Case("no grant", valid, 9900403, credentials="no_grant"),
    ]


def delete_one_cases(w: World) -> list[Case]:
    return [
        *common_cases({"bk_obj_id": "bk_switch", "id": w.belong[2]}),
        Case("deleted", {"bk_obj_id": "bk_switch", "id": w.belong[0]}),
        Case("deleted by its target model", {"bk_obj_id": "host", "id": w.belong[1]}),
        Case("not there", {"bk_obj_id": "bk_switch", "id": 987654}),
        Case(
            "no grant",
            {"bk_obj_id": "bk_router", "id": w.spare[0]},
            9900403,
            credentials="no_grant",
        ),
        Case("id 0", {"bk_obj_id": "bk_switch", "id": 0}, 1199011, conforms=False),
        Case("id negative", {"bk_obj_id": "bk_switch", "id": -4}, 1199011, conforms=False),
        Case(
            "id not a number",
            {"bk_obj_id": "bk_switch", "id": "abc"},
            {"esb": 1199000, "native": 1199009},
            conforms=False,
        ),
        Case("no id", {"bk_obj_id": "bk_switch"}, 1199011, conforms=False, only="esb"),
        Case("no bk_obj_id", {"id": w.spare[1]}, 1199011, conforms=False, only="esb"),
        Case(
            "bk_obj_id a number",
            {"bk_obj_id": 5, "id": w.spare[1]},
            1199000,
            conforms=False,
            only="esb",
        ),
    ]


def delete_many_cases(w: World) -> list[Case]:
    return [
        *common_cases({"bk_obj_id": "bk_switch", "id": [w.belong[2]]}, bad_body=1199006),
        Case("deleted", {"bk_obj_id": "bk_switch", "id": w.belong[:2] + [987654]}),
        Case("none of them there", {"bk_obj_id": "bk_switch", "id": [987654]}),
        Case(
            "no grant", {"bk_obj_id": "bk_router", "id": w.spare}, 9900403, credentials="no_grant"
        ),
        Case("no ids", {"bk_obj_id": "bk_switch", "id": []}, 1199003, conforms=False),
        Case("ids missing", {"bk_obj_id": "bk_switch"}, 1199003, conforms=False),
        Case(
            "501 ids",
            {"bk_obj_id": "bk_switch", "id": list(range(1, 502))},
            1199059,
            conforms=False,
        ),
        Case("an id a string", {"bk_obj_id": "bk_switch", "id": ["1"]}, 1199006, conforms=False),
        Case("ids not a list", {"bk_obj_id": "bk_switch", "id": 1}, 1199006, conforms=False),
        Case("no bk_obj_id", {"id": [1]}, 1199010, conforms=False),
    ]


def find_cases(w: World) -> list[Case]:
    valid = {"condition": {"bk_obj_asst_id": BELONG[2]}, "bk_obj_id": "bk_switch"}
    return [
        *common_cases(valid, bad_body=1199006),
        Case("found", valid),
        Case(
            "filtered",
            {
                **valid,
                "condition": {
                    **valid["condition"],
                    "bk_asst_id": "belong",
                    "bk_asst_obj_id": "host",
                },
            },
        ),
        Case("nothing", {**valid, "bk_obj_id": "bk_router"}),
        Case("every association of the model", {**valid, "condition": {}}),
        Case("no condition", {"bk_obj_id": "bk_switch"}),
        Case("operators", {**valid, "condition": {"bk_inst_id": {"$in": [11, 13]}}}),
        Case(
            "no bk_obj_id, en",
            {"condition": valid["condition"]},
            1199010,
            headers=EN,
            conforms=False,
        ),
        Case("condition not an object", {**valid, "condition": "x"}, 1199006, conforms=False),
        Case("bk_asst_id a number", {**valid, "condition": {"bk_asst_id": 1}}),
        Case("unknown operator", {**valid, "condition": {"id": {"$foo": 1}}}, 1199998),
    ]


def related_cases(w: World) -> list[Case]:
    valid = {
        "condition": {"bk_inst_id": 11, "bk_obj_id": "bk_switch"},
        "fields": ["id", "bk_inst_id", "bk_asst_inst_id", "no_such_field"],
        "page": {"start": 0, "limit": 10},
    }
    return [
        *common_cases(valid, bad_body=1199006),
        Case("found", valid),
        Case(
            "every field, no page",
            {"condition": {"bk_inst_id": 21, "bk_obj_id": "host"}, "fields": ["id", "bk_obj_id"]},
        ),
        Case("largest page", {**valid, "page": {"start": 1, "limit": 500}}),
        Case("page of 0: every one", {**valid, "page": {"limit": 0}}),
        Case("page over 500", {**valid, "page": {"limit": 501}}, 1199059, conforms=False),
        Case("negative start", {**valid, "page": {"start": -1}}, 1199011, conforms=False),
        Case(
            "no bk_inst_id",
            {**valid, "condition": {"bk_obj_id": "bk_switch"}},
            1199010,
            conforms=False,
        ),
        Case("no bk_obj_id", {**valid, "condition": {"bk_inst_id": 11}}, 1199010, conforms=False),
        Case("no condition", {}, 1199010, conforms=False),
        Case("no fields", {**valid, "fields": []}, 1199010, conforms=False),
        Case("a field not a string", {**valid, "fields": [1]}, 1199006, conforms=False),
        Case("limit a string", {**valid, "page": {"limit": "10"}}, 1199006, conforms=False),
    ]


def object_association_cases(w: World) -> list[Case]:
    return [
        *common_cases({"condition": {"bk_obj_id": "bk_switch"}}),
        Case("no condition", {}, 1199011, conforms=False),
        Case("by source", {"condition": {"bk_obj_id": "bk_switch"}}),
        Case(
            "by everything",
            {
                "condition": {
                    "bk_obj_id": "bk_switch",
                    "bk_asst_obj_id": "host",
                    "bk_asst_id": "belong",
                    "bk_obj_asst_id": BELONG[2],
                }
            },
        ),
        Case("operators", {"condition": {"$or": [{"mapping": "1:1"}, {"ispre": False}]}}),
        Case("nothing", {"condition": {"bk_asst_id": "nope"}}),
        Case("condition not an object", {"condition": []}, 1199011, conforms=False),
        Case("filter a number", {"condition": {"bk_obj_id": 5}}),
        Case("unknown operator", {"condition": {"id": {"$foo": 1}}}, 1199998),
    ]


def search_objects_cases(w: World) -> list[Case]:
    return [
        *common_cases({}),
        Case("all", {}),
        Case("one", {"bk_obj_id": "host"}),
        Case("preset", {"ispre": True, "bk_ispaused": False, "bk_classification_id": "bk_network"}),
        Case("by name", {"bk_obj_name": "nope"}),
        Case("operators", {"bk_obj_id": {"$in": ["host", "bk_switch"]}}),
        Case("ispre not a bool", {"ispre": "yes"}),
        Case("bk_obj_id a list", {"bk_obj_id": ["host"]}),
        Case("unknown operator", {"bk_obj_id": {"$foo": 1}}, 1102020),
    ]


def search_inst_by_object_cases(w: World) -> list[Case]:
    valid = {
        "bk_obj_id": "bk_switch",
        "condition": {"bk_inst_name": "sw-01"},
        "fields": ["bk_inst_id", "bk_inst_name"],
        "page": {"start": 0, "limit": 10, "sort": "bk_inst_id"},
    }
    return [
        *common_cases(valid),
        Case("found", valid),
        Case(
            "every field, sorted down", {"bk_obj_id": "bk_switch", "page": {"sort": "-bk_inst_id"}}
        ),
        Case(
            "$in and $eq",
            {
                "bk_obj_id": "bk_switch",
                "condition": {
                    "bk_inst_name": {"$in": ["sw-01", "sw-02"]},
                    "bk_obj_id": {"$eq": "bk_switch"},
                },
            },
        ),
        Case(
            "operators",
            {
                **valid,
                "condition": {
                    "bk_inst_id": {"$gt": 1},
                    "$or": [{"a": 1}, {"b": {"$exists": False}}],
                },
            },
        ),
        Case(
            "time condition",
            {
                **valid,
                "time_condition": {
                    "oper": "and",
                    "rules": [{"field": "bk_created_at", "start": "2020-01-01 00:00:00"}],
                },
            },
        ),
        Case(
            "a list matches nothing",
            {"bk_obj_id": "bk_switch", "condition": {"bk_inst_id": [11, 13]}},
        ),
        Case("unknown model", {"bk_obj_id": "no_such_model"}, 1199011),
        Case("built-in model", {"bk_obj_id": "host"}, 1199084),
        Case("largest page", {"bk_obj_id": "bk_switch", "page": {"limit": 200}}),
        Case(
            "sort by an unknown field",
            {**valid, "page": {"sort": "colour"}},
            1199011,
            conforms=False,
        ),
        Case("page over 200", {**valid, "page": {"limit": 201}}, 1199059, conforms=False),
        Case("page of 0, en", {**valid, "page": {"limit": 0}}, 1199059, headers=EN, conforms=False),
        Case("negative start", {**valid, "page": {"start": -1}}, 1199011, conforms=False),
        Case("unknown operator", {**valid, "condition": {"bk_inst_id": {"$foo": 1}}}, 1199998),
        Case("empty $in", {**valid, "condition": {"bk_inst_id": {"$in": []}}}),
        Case("null value", {**valid, "condition": {"bk_inst_id": None}}),
        Case("condition a list", {**valid, "condition": [1]}, 1199000, conforms=False),
        Case("page a string", {**valid, "page": "x"}, 1199000, conforms=False),
        Case("no bk_obj_id", {"page": {"limit": 1}}, 1199011, conforms=False, only="esb"),
    ]


def search_inst_cases(w: World) -> list[Case]:
    own = [{"field": "bk_inst_name", "operator": "$regex", "value": "sw"}]
    valid = {
        "bk_obj_id": "bk_switch",
        "condition": {"bk_switch": own},
        "fields": {"bk_switch": ["bk_inst_id", "bk_inst_name"]},
        "page": {"start": 0, "limit": 10, "sort": "bk_inst_id"},
    }
    via_hosts = [{"field": "bk_inst_name", "operator": "$eq", "value": "10.0.0.1"}]
    return [
        *common_cases(valid),
        Case("found", valid),
        Case("every field", {"bk_obj_id": "bk_switch"}),
        Case("through hosts", {**valid, "condition": {"bk_switch": own, "host": via_hosts}}),
        Case("only other models", {**valid, "condition": {"host": via_hosts}}),
        Case("built-in model", {"bk_obj_id": "host"}, 1199084),
        Case("unknown model", {"bk_obj_id": "no_such_model"}, 1199011),
        Case("page over 200", {**valid, "page": {"limit": 201}}, 1199059, conforms=False),
        Case(
            "unknown operator",
            {
                **valid,
                "condition": {
                    "bk_switch": [{"field": "a", "operator": "$multilike", "value": "x"}]
                },
            },
            1199998,
        ),
        Case("condition a list", {**valid, "condition": [1]}, 1199000, conforms=False),
        Case("no bk_obj_id", {"page": {"limit": 1}}, 1199011, conforms=False, only="esb"),
    ]


def search_associations_cases(w: World) -> list[Case]:
    belong = {"field": "bk_obj_asst_id", "operator": "equal", "value": BELONG[2]}
    valid = {
        "bk_obj_id": "bk_switch",
        "conditions": {"condition": "AND", "rules": [belong]},
        "fields": ["id", "bk_inst_id"],
        "page": {"start": 0, "limit": 10},
    }
    return [
        *common_cases(valid),
        Case("found", valid),
        Case("every field", {**valid, "fields": []}),
        Case("no filter", {"bk_obj_id": "host", "page": {"limit": 500}}),
        Case("page of 0", {**valid, "page": {"limit": 0}}, 1199006, conforms=False),
        Case("page over 500", {**valid, "page": {"limit": 501}}, 1199006, conforms=False),
        Case(
            "unknown operator",
            {**valid, "conditions": {"condition": "AND", "rules": [{**belong, "operator": "x"}]}},
            1199006,
        ),
        Case("not a filter", {**valid, "conditions": {"field": "id"}}, 1199000),
    ]


def count_associations_cases(w: World) -> list[Case]:
    valid = {
        "bk_obj_id": "bk_switch",
        "conditions": {
            "condition": "OR",
            "rules": [{"field": "bk_inst_id", "operator": "in", "value": [11, 13]}],
        },
    }
    return [
        *common_cases(valid),
        Case("counted", valid),
        Case("no filter", {"bk_obj_id": "bk_switch"}),
        Case(
            "too deep",
            {
                "bk_obj_id": "bk_switch",
                "conditions": {
                    "condition": "AND",
                    "rules": [{"condition": "OR", "rules": [valid["conditions"]]}],
                },
            },
            1199006,
        ),
    ]


_BELONG_RULES = {
    "condition": "AND",
    "rules": [{"field": "bk_obj_asst_id", "operator": "equal", "value": "bk_switch_belong_host"}],
}


def with_inst_cases(w: World) -> list[Case]:
    valid = {
        "bk_obj_id": "bk_switch",
        "condition": {
            "asst_filter": _BELONG_RULES,
            "src_detail": True,
            "dst_detail": True,
            "dst_fields": ["bk_host_innerip"],
        },
        "page": {"limit": 10, "sort": "-bk_asst_inst_id"},
    }
    return [
        *common_cases(valid),
        Case("found", valid),
        Case("no details", {**valid, "condition": {"asst_filter": _BELONG_RULES}}),
        Case("nothing found", {**valid, "bk_obj_id": "bk_router"}),
        Case("negative limit", {**valid, "page": {"limit": -200}}),
        Case("no filter", {**valid, "condition": {}}, 1199011, conforms=False),
        Case(
            "a rule refused, en",
            {**valid, "condition": {"asst_filter": {"condition": "XOR", "rules": [{}]}}},
            1199000,
            headers=EN,
        ),
        Case(
            "filter not an object",
            {**valid, "condition": {"asst_filter": "x"}},
            1199000,
            conforms=False,
        ),
        Case("page over 200", {**valid, "page": {"limit": 201}}, 1199059, conforms=False),
        Case("page of 0", {**valid, "page": {"limit": 0}}, 1199010, conforms=False),
        Case("unknown model", {**valid, "bk_obj_id": "no_such_model"}, 1199998),
        Case(
            "negative start", {**valid, "page": {"limit": 1, "start": -1}}, 1199998, conforms=False
        ),
        Case(
            "too many rules",
            {
                **valid,
                "condition": {
                    "asst_filter": {"condition": "OR", "rules": _BELONG_RULES["rules"] * 501}
                },
            },
            1199035,
        ),
    ]


def topology_cases(w: World) -> list[Case]:
    valid = {"bk_obj_id": "bk_switch", "bk_inst_id": 11}
    not_an_id = {"esb": 1199000, "native": 1199998}
    return [
        *common_cases(valid),
        Case("found", valid),
        Case("no children", {"bk_obj_id": "host", "bk_inst_id": 21}),
        Case("unknown model", {"bk_obj_id": "no_such_model", "bk_inst_id": 11}, 1199011),
        Case("instance of another model", {"bk_obj_id": "host", "bk_inst_id": 11}, 1199011),
        Case("id 0", {"bk_obj_id": "bk_switch", "bk_inst_id": 0}, 1199011, conforms=False),
        Case("id beyond int64", {**valid, "bk_inst_id": 2**63}, not_an_id, conforms=False),
        Case("id not a number", {**valid, "bk_inst_id": "abc"}, not_an_id, conforms=False),
    ]


def base_info_cases(w: World) -> list[Case]:
    condition = {"bk_obj_id": "bk_switch", "bk_inst_id": 11, "association_obj_id": "host"}
    valid = {"condition": condition, "page": {"start": 0, "limit": 10}}
    return [
        *common_cases(valid),
        Case("found", valid),
        Case(
            "as target",
            {
                "condition": {
                    "bk_obj_id": "host",
                    "bk_inst_id": 21,
                    "association_obj_id": "bk_switch",
                    "is_target_object": True,
                }
            },
        ),
        Case("nothing", {"condition": {**condition, "association_obj_id": "bk_router"}}),
        Case("every one", {**valid, "page": {"limit": 999_999_999}}),
        Case(
            "no bk_obj_id", {"condition": {**condition, "bk_obj_id": ""}}, 1199010, conforms=False
        ),
        Case(
            "no bk_inst_id", {"condition": {**condition, "bk_inst_id": 0}}, 1199010, conforms=False
        ),
        Case(
            "no association_obj_id, en",
            {"condition": {**condition, "association_obj_id": ""}},
            1199010,
            headers=EN,
            conforms=False,
        ),
        Case("page over 1000", {**valid, "page": {"limit": 1001}}, 1199059, conforms=False),
        Case("negative start", {**valid, "page": {"start": -1}}, 1199002, conforms=False),
        Case(
            "bk_inst_id a string",
            {"condition": {**condition, "bk_inst_id": "11"}},
            1199000,
            conforms=False,
        ),
    ]


def association_type_cases(w: World) -> list[Case]:
    valid = {"condition": {"bk_asst_id": {"$in": ["belong", "connect"]}}, "page": {"limit": 10}}
    return [
        *common_cases(valid, bad_body=1199006),
        Case("found", valid),
        Case("every one", {}),
        Case("in English", {"condition": {"ispre": True}}, headers=EN),
        Case("condition a list", {"condition": [1]}, 1199006, conforms=False),
        Case("unknown operator", {"condition": {"id": {"$foo": 1}}}, 1199998),
    ]


NEW_MODEL_ASSOCIATION = {
    "bk_obj_id": "bk_router",
    "bk_asst_obj_id": "host",
    "bk_asst_id": "connect",
    "bk_obj_asst_id": "bk_router_connect_host",
    "mapping": "1:n",
}


def create_object_association_cases(w: World) -> list[Case]:
    other = {
        **NEW_MODEL_ASSOCIATION,
        "bk_obj_asst_id": "bk_router_belong_host",
        "bk_asst_id": "belong",
    }
    return [
        *common_cases(NEW_MODEL_ASSOCIATION, other, bad_body=1199011),
        Case("created", NEW_MODEL_ASSOCIATION),
        Case("created again", NEW_MODEL_ASSOCIATION, 1101038),
        Case(
            "no grant",
            {**NEW_MODEL_ASSOCIATION, "bk_asst_id": "run"},
            9900403,
            credentials="no_grant",
        ),
        Case("mainline", {**NEW_MODEL_ASSOCIATION, "bk_asst_id": "bk_mainline"}, 1101082),
        Case("no target", {**NEW_MODEL_ASSOCIATION, "bk_asst_obj_id": ""}, 1101045, conforms=False),
        Case(
            "unknown model",
            {**NEW_MODEL_ASSOCIATION, "bk_obj_id": "nope", "bk_asst_id": "run"},
            1199011,
        ),
        Case(
            "no id",
            {**NEW_MODEL_ASSOCIATION, "bk_asst_id": "run", "bk_obj_asst_id": ""},
            1199010,
            conforms=False,
        ),
        Case("mapping a number", {**NEW_MODEL_ASSOCIATION, "mapping": 1}, 1199011, conforms=False),
    ]


def update_object_association_cases(w: World) -> list[Case]:
    belong = w.model_associations["bk_switch_belong_host"]
    preset = w.model_associations["bk_switch_connect_host"]
    valid = {"id": belong, "bk_obj_asst_name": "rack"}
    return [
        *common_cases(valid),
        Case("renamed", valid),
        Case("nothing to change", {"id": belong}),
        Case("a field it cannot change", {**valid, "mapping": "1:1"}, 1101047),
        Case("not there", {"id": 987654, "bk_obj_asst_name": "x"}, 1101046),
        Case("a preset", {"id": preset, "bk_obj_asst_name": "x"}, 1101054),
        Case("no grant", valid, 9900403, credentials="no_grant"),
        Case("name a number", {"id": belong, "bk_obj_asst_name": 5}, 1199006, conforms=False),
        Case("id not a number", {"id": "abc"}, {"esb": 1199000, "native": 1199011}, conforms=False),
        Case("id beyond int64", {"id": 2**63}, {"esb": 1199000, "native": 1199011}, conforms=False),
    ]


def delete_object_association_cases(w: World) -> list[Case]:
    spare = w.model_associations["bk_router_default_bk_firewall"]
    return [
        *common_cases({"id": 987654}),
        Case("not there", {"id": 987654}),
        Case("in use", {"id": spare}, 1101043),
        Case("no grant", {"id": spare}, 9900403, credentials="no_grant"),
        Case("mainline", {"id": w.model_associations["host_bk_mainline_module"]}, 1101082),
        Case("a preset", {"id": w.model_associations["bk_switch_connect_host"]}, 1101055),
        Case("id 0", {"id": 0}, 1101041, conforms=False),
        Case("id not a number", {"id": "abc"}, {"esb": 1199000, "native": 1101041}, conforms=False),
    ]


NEW_KIND = {
    "bk_asst_id": "backup",
    "bk_asst_name": "备份",
    "src_des": "备份到",
    "dest_des": "备份自",
}


def create_association_type_cases(w: World) -> list[Case]:
    return [
        *common_cases(NEW_KIND, {**NEW_KIND, "bk_asst_id": "mirror"}, bad_body=1199006),
        Case("created", NEW_KIND),
        Case("taken", NEW_KIND, 1199014),
        Case("no grant", {**NEW_KIND, "bk_asst_id": "other"}, 9900403, credentials="no_grant"),
        Case("not an id", {**NEW_KIND, "bk_asst_id": "1x"}, 1199011, conforms=False),
        Case("too long", {**NEW_KIND, "bk_asst_id": "k" * 129}, 1199073, conforms=False),
        Case(
            "unknown direction",
            {**NEW_KIND, "bk_asst_id": "y", "direction": "up"},
            1199011,
            conforms=False,
        ),
    ]


def update_association_type_cases(w: World) -> list[Case]:
    valid = {"id": w.kinds["run"], "bk_asst_name": "运行", "direction": "src_to_dest"}
    return [
        *common_cases(valid, bad_body=1199006),
        Case("updated", valid),
        Case("not there", {**valid, "id": 987654}),
        Case("no grant", valid, 9900403, credentials="no_grant"),
        Case("unknown direction", {**valid, "direction": "up"}, 1199011, conforms=False),
        Case("name too long", {**valid, "bk_asst_name": "n" * 129}, 1199073, conforms=False),
        Case(
            "id not a number",
            {**valid, "id": "abc"},
            {"esb": 1199006, "native": 1199006},
            conforms=False,
        ),
    ]


def delete_association_type_cases(w: World) -> list[Case]:
    return [
        *common_cases({"id": 987654}),
        Case("not there", {"id": 987654}),
        Case("a preset", {"id": w.kinds["belong"]}, 1101051),
        Case("no grant", {"id": w.kinds["belong"]}, 9900403, credentials="no_grant"),
        Case("id not a number", {"id": "abc"}, {"esb": 1199000, "native": 1199006}, conforms=False),
    ]


def resource_watch_cases(w: World) -> list[Case]:
    valid = {"bk_resource": "inst_asst", "bk_event_types": ["create"]}
    return [
        *common_cases(valid),
        Case("the newest event", valid),
        Case("since an hour ago", {**valid, "bk_start_from": int(time.time()) - 3600}),
        Case(
            "fields and a model",
            {**valid, "bk_fields": ["id"], "bk_filter": {"bk_sub_resource": "host"}},
        ),
        Case("another resource", {**valid, "bk_resource": "host"}, 1199998, conforms=False),
        Case(
            "an unknown event type", {**valid, "bk_event_types": ["modify"]}, 1199998, conforms=None
        ),
        Case("a cursor of another service", {**valid, "bk_cursor": "abc"}, 1103007),
        Case("cursor and start", {**valid, "bk_cursor": "abc", "bk_start_from": 5}, 1199998),
        Case("start in the future", {**valid, "bk_start_from": int(time.time()) + 3600}, 1199006),
        Case("cursor a number", {**valid, "bk_cursor": 5}, 1199000, conforms=False),
    ]


CASES: dict[str, Callable[[World], list[Case]]] = {
    "batch_create_instance_association": batch_cases,
    "add_instance_association": add_cases,
    "delete_instance_association": delete_one_cases,
    "delete_related_inst_asso": delete_many_cases,
    "find_instance_association": find_cases,
    "search_related_inst_asso": related_cases,
    "find_object_association": object_association_cases,
    "search_objects": search_objects_cases,
    "search_inst_by_object": search_inst_by_object_cases,
    "search_inst": search_inst_cases,
    "search_instance_associations": search_associations_cases,
    "count_instance_associations": count_associations_cases,
    "find_instassociation_with_inst": with_inst_cases,
    "search_inst_association_topo": topology_cases,
    "search_inst_asst_object_inst_base_info": base_info_cases,
    "search_association_type": association_type_cases,
    "create_object_association": create_object_association_cases,
    "update_object_association": update_object_association_cases,
    "delete_object_association": delete_object_association_cases,
    "create_association_type": create_association_type_cases,
    "update_association_type": update_association_type_cases,
    "delete_association_type": delete_association_type_cases,
    "resource_watch": resource_watch_cases,
}

# Every route: (ESB name, call, envelope, method, path template).
ROUTES = [
    *[(call.name, call.name, "esb", "POST", f"{ESB_PREFIX}/{call.name}/") for call in CALLS],
    *[(call.name, call.name, "native", call.method, call.path) for call in CALLS],
    *[
        (f"{call.name}@{suffix}", call.name, "native", call.method, path)
        for call in CALLS
        for path, suffix in call.more_paths
    ],
    *[
        (alias, call, "esb", "POST", f"{ESB_PREFIX}/{alias}/")
        for alias, call in ESB_ALIASES.items()
    ],
]


def test_every_call_has_cases():
    assert set(CASES) == {call.name for call in CALLS}


@pytest.fixture
async def world(db) -> World:
    await accounts.create_user(db, NO_GRANT_USER)
    belong = await associations.batch_create(
        db,
        SERVICE_CALLER,
        associations.BatchCreateRequest(
            *BELONG,
            details=[
                associations.Detail(11, 21),
                associations.Detail(13, 22),
                associations.Detail(14, 23),
            ],
        ),
    )
    spare = await associations.batch_create(
        db,
        SERVICE_CALLER,
        associations.BatchCreateRequest(
            *DEFAULT, details=[associations.Detail(31, 41), associations.Detail(32, 42)]
        ),
    )
    async with db.read() as conn:
        model_ids = dict(
            (
                await conn.execute(
                    select(model_associations.c.bk_obj_asst_id, model_associations.c.id)
                )
            ).all()
        )
        kind_ids = dict(
            (
                await conn.execute(select(association_kinds.c.bk_asst_id, association_kinds.c.id))
            ).all()
        )
    return World(
        belong=[i.association.id for i in belong.items],
        spare=[i.association.id for i in spare.items],
        model_associations=model_ids,
        kinds=kind_ids,
    )


# Path parameters of the requests whose body is not an object.
PATH_DEFAULTS = {
    "bk_resource": "inst_asst",
    "bk_obj_id": "bk_switch",
    "id": 1,
    "bk_supplier_account": "0",
    "bk_inst_id": 11,
}


def _request(case: Case, envelope: str, template: str) -> tuple[str, Any, dict]:
    """The concrete path, the body (``_NO_BODY`` for a raw one) and the headers of ``case``."""
    body = case.body
    credentials = _credentials(case.credentials)
    headers = dict(case.headers)
    path = template
    params = re.findall(r"{(\w+)}", template)
    values = dict(PATH_DEFAULTS)
    if params and isinstance(body, dict):
        body = dict(body)
        values.update({name: body.pop(name) for name in params if name in body})
    for name in params:
        path = path.replace("{" + name + "}", str(values[name]))
    in_body = envelope == "esb" and case.credentials != "header"
    if isinstance(body, dict):
        if in_body:
            body = {**credentials, **body}
        elif credentials:
            headers["X-Bkapi-Authorization"] = json.dumps(credentials)
    elif credentials:
        headers.update(demo_headers())
    return path, body, headers


async def _send(client: httpx.AsyncClient, method: str, path: str, case: Case, body, headers):
    content = case.raw if case.raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": JSON, **headers}
    return await client.request(method, path, content=content, headers=headers)


def _code(body: dict, envelope: str) -> int:
    return body["code"] if envelope == "esb" else body["bk_error_code"]


@pytest.mark.parametrize(
    ("name", "call", "envelope", "method", "template"),
    ROUTES,
    ids=[f"{envelope}-{name}" for name, _, envelope, *_ in ROUTES],
)
async def test_real_responses_match_the_document(
    client, world, name, call, envelope, method, template
):
    checked = 0
    for case in CASES[call](world):
        if case.only not in (None, envelope):
            continue
        path, body, headers = _request(case, envelope, template)
        if case.conforms is not None:
            errors = CONTRACT.request_errors(method, path, body)
            assert (not errors) is case.conforms, (
                f"{case.name}: the document calls this request "
                f"{'invalid' if errors else 'valid'}: {errors}"
            )
        for _ in range(case.repeat):
            response = await _send(client, method, path, case, body, headers)
        reply = CONTRACT.check_response(response)
        expected = case.expect if isinstance(case.expect, int) else case.expect[envelope]
        assert (response.status_code, _code(reply, envelope)) == (case.status, expected), (
            f"{case.name}: {json.dumps(reply, ensure_ascii=False)}"
        )
        assert response.headers["X-Request-ID"]
        if envelope == "esb":
            assert reply["request_id"] == response.headers["X-Request-ID"]
        if expected == 9900403:
            assert reply["permission"]["actions"], case.name
        checked += 1
    assert checked >= 10


# ---------------------------------------------------------------------------------------------
# The statuses that take a broken server to produce: 500 and 504


def _search_objects_routes() -> list[tuple[str, str]]:
    return [
        ("esb", f"{ESB_PREFIX}/search_objects/"),
        ("native", "/api/v3/find/object"),
    ]


@pytest.mark.parametrize(("envelope", "path"), _search_objects_routes())
async def test_an_unexpected_error_matches_the_document(client, monkeypatch, envelope, path):
    async def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(catalog, "list_models", broken)
    assert rest_catalog.catalog is catalog
    response = await client.post(path, json=DEMO_CREDENTIALS, headers=demo_headers())
    reply = CONTRACT.check_response(response)
    assert (response.status_code, _code(reply, envelope)) == (500, 1199999)


@pytest.mark.parametrize(("envelope", "path"), _search_objects_routes())
async def test_a_timeout_matches_the_document(settings, db, monkeypatch, envelope, path):
    async def slow(*args, **kwargs):
        await asyncio.sleep(5)

    monkeypatch.setattr(catalog, "list_models", slow)
    app = create_app(settings.model_copy(update={"request_timeout_seconds": 0.05}), db=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        response = await http.post(path, json=DEMO_CREDENTIALS, headers=demo_headers())
    reply = CONTRACT.check_response(response)
    assert (response.status_code, _code(reply, envelope)) == (504, 1650401)


# ---------------------------------------------------------------------------------------------
# Reported bugs: what the server should answer, marked as expected failures where it does not
# yet (strict: a fix makes them pass, and the marks must go).

BELONG_BATCH = {
    "bk_obj_id": "bk_switch",
    "bk_asst_obj_id": "host",
    "bk_obj_asst_id": "bk_switch_belong_host",
    "details": [{"bk_inst_id": 11, "bk_asst_inst_id": 21}],
}
SEARCH_HOSTS = "/api/v3/find/instance/object/bk_switch"
BOTH = frozenset(("sqlite", "postgresql"))
PG = frozenset(("postgresql",))


@dataclass(frozen=True)
class EdgeCase:
    """An input that once made the shim answer 500; now it gets a documented answer."""

    name: str
    method: str
    path: str
    body: dict
    expect: tuple[int, int]  # HTTP status, code
    seen_on: frozenset[str]  # the databases where it used to fail
    was: str  # how it used to fail


EDGE_CASES = [
    EdgeCase(
        "path id beyond int64",
        "DELETE",
        "/api/v3/delete/instassociation/bk_switch/9223372036854775808",
        {},
        (200, 1199009),
        BOTH,
        "rest/associations._path_or_body_int takes any int(): the database refuses it, 500",
    ),
    EdgeCase(
        "ids beyond int64",
        "DELETE",
        "/api/v3/delete/instassociation/batch",
        {"bk_obj_id": "bk_switch", "id": [2**63]},
        (200, 1199006),
        BOTH,
        "delete_related_inst_asso checks only type(i) is int, not the int64 range: 500",
    ),
    EdgeCase(
        "$in of mixed types on an attribute",
        "POST",
        SEARCH_HOSTS,
        {"condition": {"colour": {"$in": [1.5, "x"]}}},
        (200, 0),
        BOTH,
        "services/instances._field_condition casts by the first value's type: 500",
    ),
    EdgeCase(
        "list of mixed types on an attribute",
        "POST",
        SEARCH_HOSTS,
        {"condition": {"colour": [1, "x"]}},
        (200, 1199998),
        PG,
        "the same cast; PostgreSQL refuses the string for the integer cast: 500",
    ),
    EdgeCase(
        "string for bk_inst_id",
        "POST",
        SEARCH_HOSTS,
        {"condition": {"bk_inst_id": "abc"}},
        (200, 0),
        PG,
        "column conditions are not type-checked: 500 on PostgreSQL (SQLite finds nothing)",
    ),
    EdgeCase(
        "number for bk_inst_name",
        "POST",
        SEARCH_HOSTS,
        {"condition": {"bk_inst_name": 5}},
        (200, 0),
        PG,
        "column conditions are not type-checked: 500 on PostgreSQL (SQLite finds nothing)",
    ),
    EdgeCase(
        "NUL in a filter",
        "POST",
        "/api/v3/find/object",
        {"bk_obj_id": "a\x00b"},
        (200, 1199000),
        PG,
        "PostgreSQL text cannot hold U+0000: 500 wherever a string reaches a query",
    ),
    EdgeCase(
        "NUL in bk_obj_asst_id",
        "POST",
        f"{ESB_PREFIX}/batch_create_instance_association/",
        {**BELONG_BATCH, "bk_obj_asst_id": "bk_switch\x00_host"},
        (200, 1199000),
        PG,
        "PostgreSQL text cannot hold U+0000: 500",
    ),
    EdgeCase(
        "NUL in bk_app_code",
        "POST",
        "/api/v3/find/object",
        {"bk_app_code": "esb\x00"},
        (200, 1199000),
        PG,
        "the database error escapes creds.identify (outside the endpoint's except Exception): "
        "an unhandled exception, a plain-text 500 outside the envelope",
    ),
]


@pytest.mark.parametrize("bug", EDGE_CASES, ids=[bug.name for bug in EDGE_CASES])
async def test_edge_cases_get_documented_answers(client, bug):
    response = await client.request(
        bug.method,
        bug.path,
        content=json.dumps({**DEMO_CREDENTIALS, **bug.body}).encode(),
        headers={"Content-Type": JSON},
    )
    reply = CONTRACT.check_response(response)
    envelope = "esb" if bug.path.startswith(ESB_PREFIX) else "native"
    assert (response.status_code, _code(reply, envelope)) == bug.expect


async def test_times_are_rfc3339_date_times(client):
    """create_time and last_time are what the document says on both databases: upstream's
    metadata.Time for models, MongoDB's RFC 3339 dates in instance rows."""
    for path, body in (
        ("/api/v3/find/object", {"bk_obj_id": "host"}),
        (SEARCH_HOSTS, {"page": {"limit": 1}}),
    ):
        response = await client.post(path, json=DEMO_CREDENTIALS | body)
        operation, _ = CONTRACT.operation("POST", path)
        schema = operation["responses"]["200"]["content"][JSON]["schema"]
        validator = CONTRACT.validator(schema)
        strict = Draft202012Validator(
            validator.schema, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        errors = [
            f"{list(e.absolute_path)}: {e.message}" for e in strict.iter_errors(response.json())
        ]
        assert not errors, errors


# ---------------------------------------------------------------------------------------------
# (d) schemathesis: generated requests, valid and invalid, on SQLite


FUZZ_EXAMPLES_PER_OPERATION = 16
_CREDENTIAL_FIELDS = ("bk_app_code", "bk_app_secret", "bk_username", "bk_token")


def test_generated_requests_get_documented_answers(sqlite_template, tmp_path):
    """Schemathesis draws requests from the document, valid and invalid (derandomized, so every
    run sends the same ones): no answer is a server error, and every answer (status, headers,
    content type, body) is one the document allows."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis.checks import not_a_server_error
    from schemathesis.python import asgi as schemathesis_asgi
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        status_code_conformance,
    )

    path = tmp_path / "fuzz.sqlite3"
    shutil.copyfile(sqlite_template, path)
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{path}"))
    # Loaded from the app itself: the served document is the one under test.
    schema = schemathesis.openapi.from_asgi(OPENAPI_PATH, app)
    headers = demo_headers()
    # Body checks use the contract above (schemathesis's own asserts formats, and SQLite's
    # times break date-time: see test_times_are_rfc3339_date_times).
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
    ]
    seen: dict[tuple[str, int], int] = {}

    def check(case, keep_body_credentials: bool) -> None:
        if not keep_body_credentials and isinstance(case.body, dict):
            # Random body credentials win over the header: let half the requests through.
            for name in _CREDENTIAL_FIELDS:
                case.body.pop(name, None)
        response = case.call()
        case.validate_response(response, checks=checks)
        CONTRACT.check(
            case.method,
            case.path,
            response.status_code,
            {name: values[0] for name, values in response.headers.items()},
            response.content,
        )
        key = (f"{case.method.upper()} {case.path}", response.status_code)
        seen[key] = seen.get(key, 0) + 1

    operations = [result.ok() for result in schema.get_all_operations()]
    try:
        for operation in operations:
            cases = st.one_of(
                operation.as_strategy(schemathesis.GenerationMode.POSITIVE, headers=headers),
                operation.as_strategy(schemathesis.GenerationMode.NEGATIVE, headers=headers),
            )
            settings(
                max_examples=FUZZ_EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )(given(case=cases, keep_body_credentials=st.booleans())(check))()
    finally:
        schemathesis_asgi.shutdown_lifespans()
    # The run reached every operation, and got past authentication on most.
    documented = {f"{m.upper()} {p}" for p, item in document()["paths"].items() for m in item}
    assert {label for label, _ in seen} == documented
    assert len({label for label, status in seen if status == 200}) > len(documented) // 2


# ---------------------------------------------------------------------------------------------
# (e) the committed document, the limits in force, the docs page


def test_the_committed_document_is_the_generated_one():
    from cmdbgraph.rest.openapi import DOCUMENT_PATH, export

    assert DOCUMENT_PATH.read_text(encoding="utf-8") == export(), (
        "openapi.json drifted from the declarations: run `cmdbgraph openapi export`"
    )


async def test_the_served_document_states_the_limits_in_force(database_url):
    app = create_app(Settings(database_url=database_url, max_batch_size=50))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        served = (await client.get(OPENAPI_PATH)).json()
        # ... and the call keeps to them.
        too_many = rest_body("bk_switch", "host", "bk_switch_belong_host", [(11, 21)] * 51)
        refused = (
            await client.post(f"{ESB_PREFIX}/batch_create_instance_association/", json=too_many)
        ).json()
    await app.state.db.dispose()
    for path in (f"{ESB_PREFIX}/batch_create_instance_association/", NATIVE_PATH):
        details = served["paths"][path]["post"]["requestBody"]["content"][JSON]["schema"][
            "properties"
        ]["details"]
        assert details["maxItems"] == 50
    assert (
        document()["paths"][NATIVE_PATH]["post"]["requestBody"]["content"][JSON]["schema"][
            "properties"
        ]["details"]["maxItems"]
        == 200
    )
    assert (refused["code"], refused["message"]) == (1199035, " details 超过限制 50")


async def test_the_docs_page_is_served_from_this_server_only(client):
    page = await client.get("/api/docs")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert not re.search(r"https?:|\*", policy)
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)
    for stem, suffix in (("swagger-ui-bundle", "js"), ("swagger-ui", "css")):
        # Named by its content (hashed, cached for good: see tests/test_graphiql_page.py).
        (name,) = re.findall(
            rf'"\.\./static/swagger-ui/({stem}\.[0-9a-f]{{8}}\.{suffix})"', page.text
        )
        served = await client.get(f"/static/swagger-ui/{name}")
        assert served.status_code == 200 and len(served.content) > 10_000
