"""search_instance_associations and count_instance_associations: upstream's querybuilder
filters (``{condition, rules}``), on the ESB path, the native route and the official SDK."""

from __future__ import annotations

import pytest

from tests.support.calls import DEMO_CREDENTIALS, demo_headers
from tests.support.siblings import BELONG, CONNECT, DEFAULT, association_json, store

ESB = "/api/c/compapi/v2/cc"
SEARCH = "/api/v3/search/instance_associations/object/{}"
COUNT = "/api/v3/count/instance_associations/object/{}"


@pytest.fixture
async def stored(db) -> dict[str, list[int]]:
    """11->21, 11->22, 13->21 (belong), 14->23 (connect), 31->41 (default)."""
    return {
        BELONG: await store(db, BELONG, (11, 21), (11, 22), (13, 21)),
        CONNECT: await store(db, CONNECT, (14, 23)),
        DEFAULT: await store(db, DEFAULT, (31, 41)),
    }


async def call(client, name: str, route: str, bk_obj_id: str, body: dict, language="zh"):
    headers = {"Blueking-Language": "en"} if language == "en" else {}
    if route == "esb":
        url = f"{ESB}/{name}/"
        payload = {**DEMO_CREDENTIALS, "bk_obj_id": bk_obj_id, **body}
    else:
        url = (SEARCH if name.startswith("search") else COUNT).format(bk_obj_id)
        payload, headers = body, {**demo_headers(), **headers}
    response = await client.post(url, json=payload, headers=headers)
    reply = response.json()
    code = reply.get("code", reply.get("bk_error_code"))
    message = reply.get("message", reply.get("bk_error_msg"))
    return code, message, reply.get("data")


def rules(*atoms, condition="AND") -> dict:
    return {"condition": condition, "rules": list(atoms)}


def atom(field, operator, value=None) -> dict:
    return {"field": field, "operator": operator, "value": value}


ROUTES = ["esb", "native"]
PAGE = {"start": 0, "limit": 500}


@pytest.mark.parametrize("route", ROUTES)
async def test_search_instance_associations_documented_request(client, stored, route):
    """Upstream's documented request (its fields list is broken JSON in the docs; here as a
    list and a page)."""
    body = {
        "conditions": {
            "condition": "AND",
            "rules": [
                {"field": "bk_obj_asst_id", "operator": "equal", "value": "bk_switch_connect_host"},
                {
                    "condition": "OR",
                    "rules": [
                        {"field": "bk_inst_id", "operator": "in", "value": [2, 4, 6, 14]},
                        {"field": "bk_asst_id", "operator": "equal", "value": 3},
                    ],
                },
            ],
        },
        "fields": [
            "bk_inst_id",
            "bk_asst_inst_id",
            "bk_asst_obj_id",
            "bk_asst_id",
            "bk_obj_asst_id",
        ],
        "page": PAGE,
    }
    code, _, data = await call(client, "search_instance_associations", route, "bk_switch", body)
    assert code == 0
    assert data == {
        "info": [
            {
                "bk_inst_id": 14,
                "bk_asst_inst_id": 23,
                "bk_asst_obj_id": "host",
                "bk_obj_asst_id": CONNECT,
                "bk_asst_id": "connect",
            }
        ]
    }


SEARCHES = [
    pytest.param(
        "bk_switch", None, [(BELONG, 0), (BELONG, 1), (BELONG, 2), (CONNECT, 0)], id="all"
    ),
    # Upstream reads the model's collection: the associations where it is the target too.
    pytest.param(
        "host", rules(atom("bk_asst_inst_id", "equal", 21)), [(BELONG, 0), (BELONG, 2)], id="target"
    ),
    pytest.param(
        "bk_switch",
        rules(atom("bk_inst_id", "not_in", [11])),
        [(BELONG, 2), (CONNECT, 0)],
        id="not-in",
    ),
    pytest.param(
        "bk_switch",
        rules(atom("bk_inst_id", "greater", 12)),
        [(BELONG, 2), (CONNECT, 0)],
        id="greater",
    ),
    pytest.param(
        "bk_switch",
        rules(atom("bk_obj_asst_id", "begins_with", "bk_switch_c")),
        [(CONNECT, 0)],
        id="begins",
    ),
    pytest.param(
        "bk_switch",
        rules(atom("bk_obj_asst_id", "contains", "BELONG")),
        [(BELONG, 0), (BELONG, 1), (BELONG, 2)],
        id="contains-i",
    ),
    pytest.param(
        "bk_switch", rules(atom("bk_obj_asst_id", "not_ends_with", "host")), [], id="not-ends"
    ),
    pytest.param("bk_switch", rules(atom("bk_biz_id", "not_exist")), [], id="not-exist"),
    pytest.param(
        "bk_switch",
        rules(
            atom("bk_asst_inst_id", "equal", 22),
            atom("bk_obj_asst_id", "equal", CONNECT),
            condition="OR",
        ),
        [(BELONG, 1), (CONNECT, 0)],
        id="or",
    ),
    pytest.param("bk_router", rules(atom("bk_asst_id", "equal", "x")), [], id="none"),
]

PAIRS = {BELONG: [(11, 21), (11, 22), (13, 21)], CONNECT: [(14, 23)], DEFAULT: [(31, 41)]}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("bk_obj_id", "conditions", "expected"), SEARCHES)
async def test_search_instance_associations(client, stored, route, bk_obj_id, conditions, expected):
    body = {"conditions": conditions, "page": PAGE}
    code, message, data = await call(client, "search_instance_associations", route, bk_obj_id, body)
    assert code == 0, message
    wanted = [association_json(stored[n][i], n, *PAIRS[n][i]) for n, i in expected]
    assert data == {"info": sorted(wanted, key=lambda a: a["id"])}


async def test_search_instance_associations_pages_and_fields(client, stored):
    belong = stored[BELONG]
    body = {
        "conditions": rules(atom("bk_obj_asst_id", "equal", BELONG)),
        "fields": ["bk_asst_inst_id", "id", "no_such_field"],
        "page": {"start": 1, "limit": 1, "sort": "-id"},
    }
    code, _, data = await call(client, "search_instance_associations", "native", "bk_switch", body)
    assert code == 0
    assert data == {"info": [{"id": belong[1], "bk_asst_inst_id": 22}]}
    assert list(data["info"][0]) == ["id", "bk_asst_inst_id"]


@pytest.mark.parametrize("route", ROUTES)
async def test_count_instance_associations_counts_the_source_side(client, stored, route):
    async def count(bk_obj_id, conditions=None):
        code, message, data = await call(
            client, "count_instance_associations", route, bk_obj_id, {"conditions": conditions}
        )
        assert code == 0, message
        return data["count"]

    assert await count("bk_switch") == 4
    assert await count("host") == 0  # upstream counts where the model is the source
    assert await count("bk_switch", rules(atom("bk_inst_id", "equal", 11))) == 2
    assert await count("bk_router", rules(atom("bk_asst_inst_id", "in", [41, 42]))) == 1


def check(key: str) -> tuple[int, str, str]:
    return (
        1199006,
        f"'{key}' 数据参数校验不通过",
        f"'{key}' data parameter verification does not pass",
    )


FAILURES = [
    pytest.param({"page": {"limit": 0}}, check("page.limit"), id="limit-0"),
    pytest.param({"page": {"limit": 501}}, check("page.limit"), id="limit-501"),
    pytest.param({}, check("page.limit"), id="no-page"),
    pytest.param(
        {"page": PAGE, "conditions": rules(atom("bk_inst_id", "like", 1))},
        check("conditions.rules[0].operator"),
        id="unknown-operator",
    ),
    pytest.param(
        {"page": PAGE, "conditions": rules(atom("$where", "equal", 1))},
        check("conditions.rules[0].field"),
        id="bad-field",
    ),
    pytest.param(
        {"page": PAGE, "conditions": rules(atom("bk_inst_id", "in", [1, "2"]))},
        check("conditions.rules[0].value"),
        id="mixed-in",
    ),
    pytest.param(
        {"page": PAGE, "conditions": rules(atom("bk_inst_id", "in", list(range(501))))},
        check("conditions.rules[0].value"),
        id="in-501",
    ),
    pytest.param(
        {"page": PAGE, "conditions": rules(atom("bk_inst_id", "greater", "1"))},
        check("conditions.rules[0].value"),
        id="greater-a-string",
    ),
    pytest.param(
        {"page": PAGE, "conditions": rules(rules(rules(atom("id", "equal", 1))))},
        check("conditions.rules"),
        id="too-deep",
    ),
    pytest.param(
        {"page": PAGE, "conditions": {"condition": "XOR", "rules": [atom("id", "equal", 1)]}},
        check("conditions.condition"),
        id="xor",
    ),
    pytest.param(
        {"page": PAGE, "conditions": {"condition": "AND", "rules": []}},
        check("conditions.rules"),
        id="no-rules",
    ),
    pytest.param(
        {
            "page": PAGE,
            "conditions": rules(*[atom("id", "equal", i) for i in range(21)], condition="OR"),
        },
        check("conditions.rules"),
        id="or-21",
    ),
    pytest.param(
        {"page": PAGE, "conditions": {"field": "id"}},
        (1199000, "反序列化JSON数据失败", "Deserializing JSON data failed"),
        id="not-a-filter",
    ),
]


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("body", "expected"), FAILURES)
async def test_search_instance_associations_refusals(
    client, stored, route, language, body, expected
):
    code, message, data = await call(
        client, "search_instance_associations", route, "bk_switch", body, language
    )
    assert (code, message) == (expected[0], expected[2] if language == "en" else expected[1])
    assert data is None


@pytest.mark.parametrize("operator", [["equal"], {"x": 1}, 5, None])
async def test_an_operator_of_another_type_is_named(client, stored, operator):
    body = {"page": PAGE, "conditions": rules({"field": "id", "operator": operator, "value": 1})}
    code, message, _ = await call(
        client, "search_instance_associations", "native", "bk_switch", body
    )
    assert (code, message) == check("conditions.rules[0].operator")[:2]


# --- search_association_type -----------------------------------------------------------------

KIND_KEYS = [
    "id",
    "bk_asst_id",
    "bk_asst_name",
    "bk_supplier_account",
    "src_des",
    "dest_des",
    "direction",
    "ispre",
]
PRESETS = ["belong", "group", "bk_mainline", "run", "connect", "default"]


async def kinds(client, route, body, language="zh"):
    headers = {"Blueking-Language": "en"} if language == "en" else {}
    if route == "esb":
        response = await client.post(
            f"{ESB}/search_association_type/", json={**DEMO_CREDENTIALS, **body}, headers=headers
        )
    else:
        response = await client.post(
            "/api/v3/find/associationtype", json=body, headers={**demo_headers(), **headers}
        )
    reply = response.json()
    return (
        reply.get("code", reply.get("bk_error_code")),
        reply.get("message", reply.get("bk_error_msg")),
        reply.get("data"),
    )


@pytest.mark.parametrize("route", ROUTES)
async def test_search_association_type(client, route):
    code, _, data = await kinds(client, route, {})
    assert code == 0
    assert data["count"] == len(PRESETS)
    assert [k["bk_asst_id"] for k in data["info"]] == PRESETS
    assert all(list(k) == KIND_KEYS for k in data["info"])
    default = next(k for k in data["info"] if k["bk_asst_id"] == "default")
    # Upstream's words for its presets, in the caller's language.
    assert (default["bk_asst_name"], default["src_des"], default["dest_des"]) == (
        "默认关联",
        "关联",
        "关联",
    )
    _, _, english = await kinds(client, route, {"condition": {"bk_asst_id": "belong"}}, "en")
    (belong,) = english["info"]
    assert (belong["bk_asst_name"], belong["src_des"], belong["dest_des"]) == (
        "belong",
        "belong",
        "contain",
    )

    body = {
        "condition": {"ispre": True, "bk_asst_id": {"$ne": "bk_mainline"}},
        "page": {"start": 1, "limit": 2},
    }
    code, _, data = await kinds(client, route, body)
    assert (data["count"], [k["bk_asst_id"] for k in data["info"]]) == (5, ["group", "run"])

    # Upstream's sort, as its storage layer reads it: the archived document's "bk_asst_id",
    # descending with "-" or ":-1", several keys, a name that is no field sorts nothing.
    for sort, expected in [
        ("bk_asst_id", sorted(PRESETS)),
        ("-bk_asst_id", sorted(PRESETS, reverse=True)),
        ("ispre:-1,bk_asst_id:-1", sorted(PRESETS, reverse=True)),
        ("nothing", PRESETS),
    ]:
        _, _, data = await kinds(client, route, {"page": {"sort": sort}})
        assert [k["bk_asst_id"] for k in data["info"]] == expected, sort


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"condition": [1]}, (1199006, "反序列化JSON数据失败", "Deserializing JSON data failed")),
        (
            {"condition": {"bk_asst_id": {"$foo": 1}}},
            (1199998, "(BadValue) unknown operator: $foo", "(BadValue) unknown operator: $foo"),
        ),
    ],
    ids=["condition-a-list", "unknown-operator"],
)
async def test_search_association_type_refusals(client, route, language, body, expected):
    code, message, data = await kinds(client, route, body, language)
    assert (code, message, data) == (
        expected[0],
        expected[2] if language == "en" else expected[1],
        None,
    )
