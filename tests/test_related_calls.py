"""The calls that read across associations (behaviour spec sections 2, 3 and 4):
find_instassociation_with_inst, search_inst_association_topo and
search_inst_asst_object_inst_base_info.

Every call is sent on its ESB path (credentials in the body) and on its native route (the
SDK's header); failures are checked in Chinese and in English, in upstream's order; every test
runs on SQLite and on PostgreSQL. Upstream's documented examples are sent as documented (their
ids mapped onto the demo's where the documented ones do not exist here) and the replies compared
with the documented ones key by key, in order.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from cmdbgraph.db.tables import model_associations
from cmdbgraph.services import associations
from cmdbgraph.services.caller import SYSTEM
from tests.support.databases import new_instances
from tests.support.siblings import ESB_PREFIX, LANGUAGES, ROUTES, Reply, call
from tests.support.upstream import (
    BAD_JSON,
    PAGE_LIMIT,
    SUCCESS,
    Upstream,
    invalid,
    mongodb,
    unassigned,
)

WITH_INST = "find_instassociation_with_inst"
TOPOLOGY = "search_inst_association_topo"
BASE_INFO = "search_inst_asst_object_inst_base_info"

BELONG = "bk_switch_belong_host"  # demo, n:n
CONNECT = "bk_switch_connect_host"  # preset, 1:n
TO_FIREWALL = "bk_switch_default_bk_firewall"  # made by the tests that need it
HOST_TO_SWITCH = "host_default_bk_switch"  # made by the tests that need it
MODELS = {
    BELONG: ("bk_switch", "host"),
    CONNECT: ("bk_switch", "host"),
    TO_FIREWALL: ("bk_switch", "bk_firewall"),
    HOST_TO_SWITCH: ("host", "bk_switch"),
}
NAMES = {11: "sw-01", 13: "sw-02", 14: "sw-03", 21: "10.0.0.1", 22: "10.0.0.2", 23: "10.0.0.3"}
NAMES |= {41: "fw-01"}

# Upstream's words for what it hands on from Go and from MongoDB (1199998, 1199002).
NEGATIVE_SKIP = "(BadValue) Skip value must be non-negative, but received: {start}"


def unknown_model(bk_obj_id: str) -> Upstream:
    return mongodb(f"get model by objID failed, val: [{bk_obj_id}]")


def parse_int(text: str, reason: str = "invalid syntax") -> Upstream:
    return mongodb(f"strconv.ParseInt: parsing {text}: {reason}")


def skip_refused(start: int) -> Upstream:
    """search_inst_asst_object_inst_base_info wraps its storage layer's error in 1199002."""
    text = NEGATIVE_SKIP.format(start=start)
    return Upstream(1199002, text, text)


def own_limit(name: str, limit: int) -> Upstream:
    """1199035 for a limit of this service's own, upstream's text without its leading space."""
    return Upstream(1199035, f"{name} 超过限制 {limit}", f"{name} exceed the limit {limit}")


# ---------------------------------------------------------------------------------------------
# Calling, and what the caller sees.


def check(reply: Reply, expected: Upstream, language: str, case: str = "") -> None:
    assert (reply.status, reply.code, reply.message) == (
        200,
        expected.code,
        expected.text(language),
    ), case


def same_json(actual: object, expected: object) -> None:
    """Equal, with every object's keys in the same order."""
    assert json.dumps(actual, ensure_ascii=False) == json.dumps(expected, ensure_ascii=False)


def key_orders(value: object) -> object:
    """The keys of every object in ``value`` in order, and the types of its scalars: the
    structure of a reply without its values."""
    if isinstance(value, dict):
        return [(key, key_orders(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [key_orders(item) for item in value]
    return type(value).__name__


# ---------------------------------------------------------------------------------------------
# The database.


async def new_model_association(db, bk_obj_asst_id: str) -> None:
    src, dest = MODELS[bk_obj_asst_id]
    async with db.write() as conn:
        await conn.execute(
            insert(model_associations).values(
                bk_obj_asst_id=bk_obj_asst_id,
                bk_obj_asst_name="",
                bk_obj_id=src,
                bk_asst_obj_id=dest,
                bk_asst_id="default",
                mapping="n:n",
                on_delete="none",
                ispre=False,
                bk_supplier_account="0",
                create_time=datetime.now(UTC),
            )
        )


async def store(db, bk_obj_asst_id: str, *pairs: tuple[int, int]) -> list[int]:
    """Create associations as the system; they must all succeed. Their ids, in order."""
    src, dest = MODELS[bk_obj_asst_id]
    result = await associations.batch_create(
        db,
        SYSTEM,
        associations.BatchCreateRequest(
            src, dest, bk_obj_asst_id, [associations.Detail(*pair) for pair in pairs]
        ),
    )
    assert result.failed_count == 0, result.error_msg("en")
    return [item.association.id for item in result.items]


def association_json(association_id: int, bk_obj_asst_id: str, src: int, dest: int) -> dict:
    """An association as upstream answers it: InstAsst's keys in Go's order."""
    src_obj, dest_obj = MODELS[bk_obj_asst_id]
    return {
        "id": association_id,
        "bk_inst_id": src,
        "bk_obj_id": src_obj,
        "bk_asst_inst_id": dest,
        "bk_asst_obj_id": dest_obj,
        "bk_supplier_account": "0",
        "bk_obj_asst_id": bk_obj_asst_id,
        "bk_asst_id": {BELONG: "belong", CONNECT: "connect"}.get(bk_obj_asst_id, "default"),
    }


@pytest.fixture
async def stored(db) -> dict[str, list[int]]:
    """11->21, 11->22, 13->21 (belong), 11->23 (connect)."""
    return {
        BELONG: await store(db, BELONG, (11, 21), (11, 22), (13, 21)),
        CONNECT: await store(db, CONNECT, (11, 23)),
    }


def rules(*atoms: dict, condition: str = "AND") -> dict:
    return {"condition": condition, "rules": list(atoms)}


def atom(field: str, operator: str, value: object = None) -> dict:
    return {"field": field, "operator": operator, "value": value}


# =============================================================================================
# find_instassociation_with_inst

# Upstream's documented example (docs/apidoc/cc/*/find_instassociation_with_inst.md), verbatim:
# the request's credentials are the demo's.
DOCUMENTED_WITH_INST_REQUEST = {
    "bk_app_code": "esb_test",
    "bk_app_secret": "xxx",
    "bk_username": "xxx",
    "bk_token": "xxx",
    "bk_obj_id": "bk_switch",
    "condition": {
        "asst_filter": {
            "condition": "AND",
            "rules": [
                {"field": "bk_obj_id", "operator": "equal", "value": "bk_switch"},
                {"field": "bk_inst_id", "operator": "equal", "value": 1},
                {"field": "bk_asst_obj_id", "operator": "equal", "value": "host"},
            ],
        },
        "src_fields": ["bk_inst_id", "bk_inst_name"],
        "dst_fields": ["bk_host_innerip"],
        "src_detail": True,
        "dst_detail": True,
    },
    "page": {"start": 0, "limit": 20, "sort": "-bk_asst_inst_id"},
}
DOCUMENTED_WITH_INST_REPLY = {
    "result": True,
    "code": 0,
    "message": "success",
    "permission": None,
    "request_id": "e43da4ef221746868dc4c837d36f3807",
    "data": {
        "association": [
            {
                "id": 3,
                "bk_inst_id": 1,
                "bk_obj_id": "bk_switch",
                "bk_asst_inst_id": 3,
                "bk_asst_obj_id": "host",
                "bk_obj_asst_id": "bk_switch_connect_host",
                "bk_asst_id": "connect",
            },
            {
                "id": 2,
                "bk_inst_id": 1,
                "bk_obj_id": "bk_switch",
                "bk_asst_inst_id": 2,
                "bk_asst_obj_id": "host",
                "bk_obj_asst_id": "bk_switch_connect_host",
                "bk_asst_id": "connect",
            },
            {
                "id": 1,
                "bk_inst_id": 1,
                "bk_obj_id": "bk_switch",
                "bk_asst_inst_id": 1,
                "bk_asst_obj_id": "host",
                "bk_obj_asst_id": "bk_switch_connect_host",
                "bk_asst_id": "connect",
            },
        ],
        "src": [{"bk_inst_id": 1, "bk_inst_name": "s1"}],
        "dst": [
            {"bk_host_innerip": "10.11.11.1"},
            {"bk_host_innerip": "10.11.11.2"},
            {"bk_host_innerip": "10.11.11.3"},
        ],
    },
}


def _on_demo(documented: dict, association_ids: list[int]) -> dict:
    """The documented reply with its ids and names mapped onto the demo's: switch 1 is 11,
    hosts 1..3 are 21..23 (10.0.0.1..3), association n is the n-th stored. Upstream's code
    also answers ``bk_supplier_account`` (its docs leave it out), after ``bk_asst_obj_id``."""
    data = documented["data"]
    association = []
    for item in data["association"]:
        mapped = {}
        for key, value in item.items():
            if key == "id":
                value = association_ids[value - 1]
            elif key == "bk_inst_id":
                value += 10
            elif key == "bk_asst_inst_id":
                value += 20
            mapped[key] = value
            if key == "bk_asst_obj_id":
                mapped["bk_supplier_account"] = "0"
        association.append(mapped)
    src = [{"bk_inst_id": 11, "bk_inst_name": "sw-01"} for _ in data["src"]]
    dst = [
        {"bk_host_innerip": item["bk_host_innerip"].replace("10.11.11.", "10.0.0.")}
        for item in data["dst"]
    ]
    return {**documented, "data": {"association": association, "src": src, "dst": dst}}


async def test_find_instassociation_with_inst_documented_example(client, db):
    """The documented request, its switch 1 being the demo's 11, connected to hosts 21..23:
    the documented reply, key for key and in order."""
    ids = await store(db, CONNECT, (11, 21), (11, 22), (11, 23))
    request = json.loads(json.dumps(DOCUMENTED_WITH_INST_REQUEST))
    request["condition"]["asst_filter"]["rules"][1]["value"] = 11
    response = await client.post(f"{ESB_PREFIX}/{WITH_INST}/", json=request)
    reply = response.json()
    expected = _on_demo(DOCUMENTED_WITH_INST_REPLY, ids)
    same_json({**reply, "request_id": expected["request_id"]}, expected)
    assert reply["request_id"] == response.headers["X-Request-ID"]

    # Verbatim, switch 1 does not exist here: nothing found, nothing to detail.
    verbatim = await client.post(f"{ESB_PREFIX}/{WITH_INST}/", json=DOCUMENTED_WITH_INST_REQUEST)
    same_json(verbatim.json()["data"], {"association": [], "src": None, "dst": None})


@pytest.mark.parametrize("route", ROUTES)
async def test_find_instassociation_with_inst_details_both_ends(client, db, stored, route):
    body = {
        "bk_obj_id": "host",
        "condition": {
            "asst_filter": rules(atom("bk_asst_inst_id", "in", [21, 23])),
            "src_detail": True,
            "dst_detail": True,
        },
        "page": {"limit": 10},
    }
    reply = await call(client, WITH_INST, route, body)
    check(reply, SUCCESS, "zh")
    belong, connect = stored[BELONG], stored[CONNECT]
    # The associations of host as target (upstream keeps each under both models), id order.
    assert reply.data["association"] == [
        association_json(belong[0], BELONG, 11, 21),
        association_json(belong[2], BELONG, 13, 21),
        association_json(connect[0], CONNECT, 11, 23),
    ]
    assert list(reply.data) == ["association", "src", "dst"]
    # Each instance once, in id order; whole rows with sorted keys; a host's row also under
    # upstream's host fields.
    assert [row["bk_inst_id"] for row in reply.data["src"]] == [11, 13]
    assert [row["bk_inst_id"] for row in reply.data["dst"]] == [21, 23]
    host = reply.data["dst"][0]
    assert list(host) == sorted(host)
    assert (host["bk_host_id"], host["bk_host_innerip"], host["bk_obj_id"]) == (
        21,
        "10.0.0.1",
        "host",
    )
    switch = reply.data["src"][0]
    assert list(switch) == sorted(switch) and "bk_host_id" not in switch
    assert (switch["bk_inst_name"], switch["creator"]) == ("sw-01", "admin")


async def test_find_instassociation_with_inst_fields_and_detail_flags(client, db, stored):
    base = {"bk_obj_id": "bk_switch", "page": {"limit": 10}}
    every = rules(atom("bk_inst_id", "greater", 0))

    async def data(**condition):
        reply = await call(client, WITH_INST, "native", {**base, "condition": condition})
        check(reply, SUCCESS, "zh")
        return reply.data

    # Fields in InstAsst's order whatever the order asked; unknown ones left out.
    projected = await data(asst_filter=every, asst_fields=["bk_asst_inst_id", "id", "nope"])
    same_json(projected["association"][0], {"id": stored[BELONG][0], "bk_asst_inst_id": 21})
    assert (projected["src"], projected["dst"]) == (None, None)
    # Only the side asked for; the details read whole associations whatever asst_fields keeps.
    only_targets = await data(
        asst_filter=every, asst_fields=["id"], dst_detail=True, dst_fields=["bk_inst_name"]
    )
    assert only_targets["src"] is None
    assert only_targets["dst"] == [{"bk_inst_name": NAMES[i]} for i in (21, 22, 23)]
    only_sources = await data(asst_filter=every, src_detail=True, src_fields=["bk_inst_id", "x"])
    assert (only_sources["src"], only_sources["dst"]) == (
        [{"bk_inst_id": 11}, {"bk_inst_id": 13}],
        None,
    )
    # Nothing found: no details either (upstream's nil slices).
    none = await data(
        asst_filter=rules(atom("bk_inst_id", "equal", 2**70)), src_detail=True, dst_detail=True
    )
    same_json(none, {"association": [], "src": None, "dst": None})


async def test_find_instassociation_with_inst_pages_and_sorts(client, db, stored):
    everything = {"asst_filter": rules(atom("id", "greater", 0)), "asst_fields": ["id"]}
    belong, connect = stored[BELONG], stored[CONNECT]

    async def ids(page):
        body = {"bk_obj_id": "bk_switch", "condition": everything, "page": page}
        reply = await call(client, WITH_INST, "esb", body)
        check(reply, SUCCESS, "zh", str(page))
        return [item["id"] for item in reply.data["association"]]

    in_order = [*belong, *connect]
    assert await ids({"limit": 200}) == in_order
    assert await ids({"start": 1, "limit": 2}) == in_order[1:3]
    # MongoDB reads a negative limit without its sign.
    assert await ids({"limit": -2}) == in_order[:2]
    assert await ids({"limit": -200, "start": 3}) == in_order[3:]
    assert await ids({"start": 2**63 - 1, "limit": 5}) == []
    # Upstream's sort: "-a", "a:-1", "+a"; names of no field sort nothing.
    by_target_down = [connect[0], belong[1], belong[0], belong[2]]
    assert await ids({"limit": 10, "sort": "-bk_asst_inst_id"}) == by_target_down
    assert await ids({"limit": 10, "sort": " bk_asst_inst_id:-1 "}) == by_target_down
    assert await ids({"limit": 10, "sort": "bk_inst_id:-1,-id"}) == [
        belong[2],
        connect[0],
        belong[1],
        belong[0],
    ]
    assert await ids({"limit": 10, "sort": "+bk_asst_inst_id,id"}) == [
        belong[0],
        belong[2],
        belong[1],
        connect[0],
    ]
    assert await ids({"limit": 10, "sort": "nope,-,,x" * 100}) == in_order


async def test_find_instassociation_with_inst_has_no_upstream_size_limits(client, db, stored):
    """Upstream checks only the element types here: an OR of 21 rules, an ``in`` of 501
    values, 4 levels all run (search_instance_associations refuses each)."""
    hosts = atom("bk_asst_inst_id", "in", [21, 22, *range(1000, 1499)])
    assert len(hosts["value"]) == 501
    deep = rules(rules(rules(hosts)))
    wide = rules(*[atom("bk_asst_inst_id", "equal", 21)] * 21, condition="OR")
    for name, asst_filter, expected in [
        ("501 values", rules(hosts), [21, 22, 21]),
        ("4 levels", deep, [21, 22, 21]),
        ("21 OR rules", wide, [21, 21]),
    ]:
        body = {
            "bk_obj_id": "host",
            "condition": {"asst_filter": asst_filter, "asst_fields": ["bk_asst_inst_id"]},
            "page": {"limit": 10},
        }
        reply = await call(client, WITH_INST, "native", body)
        check(reply, SUCCESS, "zh", name)
        assert [a["bk_asst_inst_id"] for a in reply.data["association"]] == expected, name


def _nested(levels: int) -> dict:
    """A filter ``levels`` combined rules deep."""
    found = rules(atom("id", "greater", 0))
    for _ in range(levels - 1):
        found = rules(found, condition="OR")
    return found


async def test_find_instassociation_with_inst_own_limits_hold_on_both_databases(client, db, stored):
    """Where upstream sets no limit this service does (1199035): what is within them runs on
    both databases (SQLite reads 1,000 levels of expression at most), what is beyond them is
    refused before any SQL, however deep the JSON."""
    atoms = [atom("bk_inst_id", "not_equal", n) for n in range(100, 600)]
    within = [
        rules(*atoms),
        rules(*atoms, condition="OR"),
        rules(rules(*atoms[:499], condition="OR")),
        _nested(15),
        rules(atom("bk_inst_id", "not_in", list(range(100, 5100)))),
    ]
    for asst_filter in within:
        body = {"bk_obj_id": "bk_switch", "condition": {"asst_filter": asst_filter}}
        reply = await call(client, WITH_INST, "native", {**body, "page": {"limit": 1}})
        check(reply, SUCCESS, "zh")
        assert len(reply.data["association"]) == 1
    beyond = [
        (rules(*atoms, atom("id", "equal", 1)), own_limit("condition.asst_filter rules", 500)),
        (rules(rules(*atoms)), own_limit("condition.asst_filter rules", 500)),
        (_nested(16), own_limit("condition.asst_filter depth", 16)),
        (_nested(400), own_limit("condition.asst_filter depth", 16)),
        (
            rules(atom("id", "in", list(range(3000))), atom("id", "not_in", list(range(2001)))),
            own_limit("condition.asst_filter values", 5000),
        ),
    ]
    for language in LANGUAGES:
        for asst_filter, expected in beyond:
            body = {"bk_obj_id": "bk_switch", "condition": {"asst_filter": asst_filter}}
            reply = await call(
                client, WITH_INST, "esb", {**body, "page": {"limit": 1}}, language=language
            )
            check(reply, expected, language)


# Upstream's order: the body (1199000), the filter (1199011), the page (1199059, 1199010), the
# model (1199998), then what MongoDB refuses when it reads (1199998).
FILTER = rules(atom("bk_obj_asst_id", "equal", BELONG))
VALID = {"bk_obj_id": "bk_switch", "condition": {"asst_filter": FILTER}, "page": {"limit": 10}}


def _with(**changes) -> dict:
    body = json.loads(json.dumps(VALID))
    for dotted, value in changes.items():
        target = body
        *parents, last = dotted.split("__")
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    return body


BAD_FILTER = rules(atom("bk_obj_id", "nope", 1))
WITH_INST_FAILURES = [
    # The body: what upstream's decoder refuses, wherever it is in the filter.
    ("condition not an object", _with(condition="x"), BAD_JSON),
    ("page not an object", _with(page=[]), BAD_JSON),
    ("limit a string", _with(page__limit="10"), BAD_JSON),
    ("limit beyond int64", _with(page__limit=2**63), BAD_JSON),
    ("start a float", _with(page__start=1.5), BAD_JSON),
    ("src_detail a string", _with(condition__src_detail="true"), BAD_JSON),
    ("asst_fields a string", _with(condition__asst_fields="id"), BAD_JSON),
    ("bk_obj_id a number", _with(bk_obj_id=5), BAD_JSON),
    ("filter empty", _with(condition__asst_filter={}), BAD_JSON),
    ("filter a list", _with(condition__asst_filter=[FILTER]), BAD_JSON),
    ("filter a string", _with(condition__asst_filter="AND"), BAD_JSON),
    ("neither combined nor atom", _with(condition__asst_filter=rules({"field": "id"})), BAD_JSON),
    ("a rule a number", _with(condition__asst_filter=rules(1)), BAD_JSON),
    ("condition a number", _with(condition__asst_filter={"condition": 1, "rules": []}), BAD_JSON),
    ("rules an object", _with(condition__asst_filter={"condition": "AND", "rules": {}}), BAD_JSON),
    ("operator a number", _with(condition__asst_filter=rules(atom("id", 5))), BAD_JSON),
    ("field a number", _with(condition__asst_filter=rules(atom(5, "equal", 1))), BAD_JSON),
    (
        "decoding before checking",
        _with(condition__asst_filter=rules(atom("id", "nope"), atom(5, "equal", 1))),
        BAD_JSON,
    ),
    ("decoding before the page", _with(condition__asst_filter={}, page={}), BAD_JSON),
    # The filter, named as upstream names its faults.
    ("no filter", _with(condition={}), invalid("condition.asst_filter")),
    ("no condition", {"bk_obj_id": "bk_switch"}, invalid("condition.asst_filter")),
    ("filter null", _with(condition__asst_filter=None), invalid("condition.asst_filter")),
    ("filter before page", {"bk_obj_id": "nope"}, invalid("condition.asst_filter")),
    (
        "an atom at the top",
        _with(condition__asst_filter=atom("id", "equal", 1)),
        invalid("condition.asst_filter."),
    ),
    (
        "condition XOR",
        _with(condition__asst_filter=rules(atom("id", "equal", 1), condition="XOR")),
        invalid("condition.asst_filter.condition"),
    ),
    (
        "condition null",
        _with(condition__asst_filter={"condition": None, "rules": [FILTER]}),
        invalid("condition.asst_filter.condition"),
    ),
    ("no rules", _with(condition__asst_filter=rules()), invalid("condition.asst_filter.rules")),
    (
        "rules null",
        _with(condition__asst_filter={"condition": "OR", "rules": None}),
        invalid("condition.asst_filter.rules"),
    ),
    # Upstream's decoder drops rules given as null.
    (
        "only null rules",
        _with(condition__asst_filter=rules(None, None)),
        invalid("condition.asst_filter.rules"),
    ),
    (
        "null rules dropped",
        _with(condition__asst_filter=rules(None, atom("id", "nope"))),
        invalid("condition.asst_filter.rules[0].operator"),
    ),
    (
        "operator",
        _with(condition__asst_filter=BAD_FILTER),
        invalid("condition.asst_filter.rules[0].operator"),
    ),
    (
        "operator null",
        _with(condition__asst_filter=rules(atom("id", None))),
        invalid("condition.asst_filter.rules[0].operator"),
    ),
    (
        "field",
        _with(condition__asst_filter=rules(atom("-id", "equal", 1))),
        invalid("condition.asst_filter.rules[0].field"),
    ),
    (
        "value",
        _with(condition__asst_filter=rules(FILTER, atom("id", "in", [1, "2"]))),
        invalid("condition.asst_filter.rules[1].value"),
    ),
    (
        "nested value",
        _with(condition__asst_filter=rules(rules(atom("id", "equal", [1])))),
        invalid("condition.asst_filter.rules[0].rules[0].value"),
    ),
    (
        "number operator on a string",
        _with(condition__asst_filter=rules(atom("id", "less", "9"))),
        invalid("condition.asst_filter.rules[0].value"),
    ),
    (
        "empty begins_with",
        _with(condition__asst_filter=rules(atom("id", "begins_with", ""))),
        invalid("condition.asst_filter.rules[0].value"),
    ),
    (
        "not a datetime",
        _with(condition__asst_filter=rules(atom("create_time", "datetime_less", "x"))),
        invalid("condition.asst_filter.rules[0].value"),
    ),
    (
        "filter before the page",
        _with(condition__asst_filter=BAD_FILTER, page={}),
        invalid("condition.asst_filter.rules[0].operator"),
    ),
    # The page: over 200 before 0.
    ("limit 201", _with(page__limit=201), PAGE_LIMIT),
    ("limit -201", _with(page__limit=-201), PAGE_LIMIT),
    ("limit int64 min", _with(page__limit=-(2**63)), PAGE_LIMIT),
    ("limit 0", _with(page__limit=0), unassigned("page.limit")),
    ("no page", _with(page=None), unassigned("page.limit")),
    ("page before the model", {**_with(page={}), "bk_obj_id": "nope"}, unassigned("page.limit")),
    # The model, then MongoDB's refusals: a negative skip before a bad regular expression.
    ("unknown model", _with(bk_obj_id="no_such_model"), unknown_model("no_such_model")),
    ("no model", _with(bk_obj_id=""), unknown_model("")),
    ("model before skip", {**_with(page__start=-1), "bk_obj_id": "nope"}, unknown_model("nope")),
    ("negative start", _with(page__start=-1), mongodb(NEGATIVE_SKIP.format(start=-1))),
    ("int64 min start", _with(page__start=-(2**63)), mongodb(NEGATIVE_SKIP.format(start=-(2**63)))),
    (
        "skip before the regular expression",
        _with(page__start=-5, condition__asst_filter=rules(atom("bk_obj_id", "contains", "("))),
        mongodb(NEGATIVE_SKIP.format(start=-5)),
    ),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("route", ROUTES)
async def test_find_instassociation_with_inst_refusals_in_upstreams_order(
    client, stored, route, language
):
    for case, body, expected in WITH_INST_FAILURES:
        if route == "native" and body["bk_obj_id"] in ("", 5):
            continue  # no such path
        reply = await call(client, WITH_INST, route, body, language=language)
        check(reply, expected, language, case)


@pytest.mark.parametrize("route", ROUTES)
async def test_find_instassociation_with_inst_regular_expressions_mongodb_refuses(
    client, stored, route
):
    """Checked when upstream reads (after the model), in MongoDB's words (1199998)."""
    for value in ("(", "[a", "a{2,1}"):
        body = _with(condition__asst_filter=rules(atom("bk_obj_id", "ends_with", value)))
        reply = await call(client, WITH_INST, route, body)
        assert reply.code == 1199998, value
        assert reply.message.startswith("(BadValue) Regular expression is invalid"), value
    unknown = {**body, "bk_obj_id": "nope"}
    check(await call(client, WITH_INST, route, unknown), unknown_model("nope"), "zh")


async def test_find_instassociation_with_inst_refuses_a_body_that_is_not_json(client):
    for route in ROUTES:
        for raw in (b'{"bk_obj_id": ', b"[]", b"\xff"):
            reply = await call(client, WITH_INST, route, path={"bk_obj_id": "bk_switch"}, raw=raw)
            check(reply, BAD_JSON, "zh", repr(raw))


async def test_find_instassociation_with_inst_filters_values_of_any_size(client, stored):
    """Integers beyond int64 and odd strings are values like any other: they match nothing."""
    for value in (2**63, -(2**63) - 1, 2**70, "'; DROP TABLE x; --", "x" * 100_000, 1.5):
        body = _with(condition__asst_filter=rules(atom("bk_inst_id", "equal", value)))
        reply = await call(client, WITH_INST, "native", body)
        check(reply, SUCCESS, "zh", repr(value)[:40])
        assert reply.data["association"] == []


# =============================================================================================
# search_inst_association_topo

# Upstream's documented example (docs/apidoc/cc/zh_hans/search_inst_association_topo.md).
DOCUMENTED_TOPOLOGY_REQUEST = {
    "bk_app_code": "esb_test",
    "bk_app_secret": "xxx",
    "bk_username": "xxx",
    "bk_token": "xxx",
    "bk_obj_id": "test",
    "bk_inst_id": 1,
}
DOCUMENTED_TOPOLOGY_REPLY = {
    "result": True,
    "code": 0,
    "data": [
        {
            "id": "",
            "bk_obj_id": "biz",
            "bk_obj_icon": "icon-cc-business",
            "bk_inst_id": 0,
            "bk_obj_name": "business",
            "bk_inst_name": "",
            "asso_id": 0,
            "count": 1,
            "children": [
                {
                    "id": "6",
                    "bk_obj_id": "biz",
                    "bk_obj_icon": "icon-cc-business",
                    "bk_inst_id": 6,
                    "bk_obj_name": "business",
                    "bk_inst_name": "",
                    "asso_id": 558,
                }
            ],
        }
    ],
    "message": "success",
    "permission": None,
    "request_id": "94c85fdf6a9341e18750a44d6e18c127",
}


def group(bk_obj_id: str, name: str, icon: str, *children: tuple[int, int]) -> dict:
    """A model of a topology, ``children`` as (instance, association) pairs."""
    return {
        "id": "",
        "bk_obj_id": bk_obj_id,
        "bk_obj_icon": icon,
        "bk_inst_id": 0,
        "bk_obj_name": name,
        "bk_inst_name": "",
        "asso_id": 0,
        "count": len(children),
        "children": [
            {
                "id": str(inst_id),
                "bk_obj_id": bk_obj_id,
                "bk_obj_icon": icon,
                "bk_inst_id": inst_id,
                "bk_obj_name": name,
                "bk_inst_name": NAMES[inst_id],
                "asso_id": association_id,
            }
            for inst_id, association_id in children
        ],
    }


@pytest.fixture
async def topology(db) -> dict[str, list[int]]:
    """Switch 11's children: firewall 41 (made first), hosts 22 (belong) and 21 (connect);
    switch 13 -> host 21 (belong)."""
    await new_model_association(db, TO_FIREWALL)
    return {
        TO_FIREWALL: await store(db, TO_FIREWALL, (11, 41)),
        BELONG: await store(db, BELONG, (11, 22), (13, 21)),
        CONNECT: await store(db, CONNECT, (11, 21)),
    }


async def test_search_inst_association_topo_documented_example(client, topology):
    """The documented request names a model the demo does not have; with the demo's switch 13
    the reply has the documented structure, key for key, in order, with the same types."""
    verbatim = await call(client, TOPOLOGY, "esb", DOCUMENTED_TOPOLOGY_REQUEST, credentials={})
    check(verbatim, invalid("bk_obj_id"), "zh")
    response = await client.post(
        f"{ESB_PREFIX}/{TOPOLOGY}/",
        json={**DOCUMENTED_TOPOLOGY_REQUEST, "bk_obj_id": "bk_switch", "bk_inst_id": 13},
    )
    reply = response.json()
    documented = DOCUMENTED_TOPOLOGY_REPLY
    # The documented reply lists data before message; the envelope's order is upstream's.
    assert list(reply) == ["result", "code", "message", "permission", "request_id", "data"]
    assert {k: v for k, v in reply.items() if k not in ("data", "request_id")} == {
        k: v for k, v in documented.items() if k not in ("data", "request_id")
    }
    assert key_orders(reply["data"]) == key_orders(documented["data"])
    assert reply["data"] == [group("host", "主机", "icon-cc-host", (21, topology[BELONG][1]))]


@pytest.mark.parametrize("route", ROUTES)
async def test_search_inst_association_topo_groups_children_by_model(client, topology, route):
    reply = await call(client, TOPOLOGY, route, {"bk_obj_id": "bk_switch", "bk_inst_id": 11})
    check(reply, SUCCESS, "zh")
    # Models in model id order (host before bk_firewall, though its association is older),
    # each model's children in association id order (host 22 before 21).
    same_json(
        reply.data,
        [
            group(
                "host",
                "主机",
                "icon-cc-host",
                (22, topology[BELONG][0]),
                (21, topology[CONNECT][0]),
            ),
            group("bk_firewall", "防火墙", "icon-cc-firewall", (41, topology[TO_FIREWALL][0])),
        ],
    )
    # In English, built-in models carry upstream's English names.
    english = await call(
        client, TOPOLOGY, route, {"bk_obj_id": "bk_switch", "bk_inst_id": 11}, language="en"
    )
    assert [g["bk_obj_name"] for g in english.data] == ["Host", "Firewall"]
    # Only the children: the instances that are targets have none.
    for bk_obj_id, bk_inst_id in (("host", 21), ("bk_firewall", 41), ("bk_switch", 14)):
        empty = await call(
            client, TOPOLOGY, route, {"bk_obj_id": bk_obj_id, "bk_inst_id": bk_inst_id}
        )
        check(empty, SUCCESS, "zh")
        assert empty.data == []


async def test_search_inst_association_topo_native_path_wins_over_the_body(client, topology):
    reply = await call(
        client,
        TOPOLOGY,
        "native",
        {"bk_obj_id": "host", "bk_inst_id": 21},
        path={"bk_obj_id": "bk_switch", "bk_inst_id": "+013"},
    )
    check(reply, SUCCESS, "zh")
    assert [child["bk_inst_id"] for g in reply.data for child in g["children"]] == [21]


# Upstream's order: the path's id (Go's words), the model, then the instance named by upstream's
# id field of the model.
NATIVE_TOPOLOGY_FAILURES = [
    ("abc", "bk_switch", parse_int('"abc"')),
    ("1.5", "bk_switch", parse_int('"1.5"')),
    ("1e3", "bk_switch", parse_int('"1e3"')),
    ("0x10", "bk_switch", parse_int('"0x10"')),
    ("1_000", "bk_switch", parse_int('"1_000"')),
    (" 11", "bk_switch", parse_int('" 11"')),
    ("-", "bk_switch", parse_int('"-"')),
    ('a"b\\', "bk_switch", parse_int('"a\\"b\\\\"')),
    ("\t1", "bk_switch", parse_int('"\\t1"')),
    ("主", "bk_switch", parse_int('"主"')),
    ("9223372036854775808", "bk_switch", parse_int('"9223372036854775808"', "value out of range")),
    (
        "-9223372036854775809",
        "bk_switch",
        parse_int('"-9223372036854775809"', "value out of range"),
    ),
    (
        "99999999999999999999x",
        "bk_switch",
        parse_int('"99999999999999999999x"', "value out of range"),
    ),
    ("abc", "no_such_model", parse_int('"abc"')),  # before the model
    ("11", "no_such_model", invalid("bk_obj_id")),
    ("0", "no_such_model", invalid("bk_obj_id")),  # the model before the instance
    ("0", "bk_switch", invalid("bk_inst_id")),
    ("-0", "bk_switch", invalid("bk_inst_id")),
    ("21", "bk_switch", invalid("bk_inst_id")),  # an instance of another model
    ("-11", "bk_switch", invalid("bk_inst_id")),
    ("9223372036854775807", "bk_switch", invalid("bk_inst_id")),
    ("-9223372036854775808", "bk_switch", invalid("bk_inst_id")),
    ("11", "host", invalid("bk_host_id")),
    ("0", "biz", invalid("bk_biz_id")),
    ("1", "set", invalid("bk_set_id")),
    ("1", "module", invalid("bk_module_id")),
    ("1", "plat", invalid("bk_cloud_id")),
    ("1", "process", invalid("bk_process_id")),
    ("1", "bk_project", invalid("id")),
    ("1", "bk_router", invalid("bk_inst_id")),
]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_search_inst_association_topo_native_refusals(client, topology, language):
    for bk_inst_id, bk_obj_id, expected in NATIVE_TOPOLOGY_FAILURES:
        reply = await call(
            client,
            TOPOLOGY,
            "native",
            path={"bk_obj_id": bk_obj_id, "bk_inst_id": bk_inst_id},
            language=language,
        )
        check(reply, expected, language, f"{bk_obj_id}/{bk_inst_id}")


ESB_TOPOLOGY_FAILURES = [
    ({"bk_obj_id": "bk_switch", "bk_inst_id": "11"}, BAD_JSON),
    ({"bk_obj_id": "bk_switch", "bk_inst_id": 11.0}, BAD_JSON),
    ({"bk_obj_id": "bk_switch", "bk_inst_id": 2**63}, BAD_JSON),
    ({"bk_obj_id": "bk_switch", "bk_inst_id": True}, BAD_JSON),
    ({"bk_obj_id": ["bk_switch"], "bk_inst_id": 11}, BAD_JSON),
    ({"bk_inst_id": 11}, invalid("bk_obj_id")),
    ({"bk_obj_id": "no_such_model"}, invalid("bk_obj_id")),
    ({"bk_obj_id": "bk_switch"}, invalid("bk_inst_id")),
    ({"bk_obj_id": "bk_switch", "bk_inst_id": None}, invalid("bk_inst_id")),
    ({"bk_obj_id": "host", "bk_inst_id": -(2**63)}, invalid("bk_host_id")),
    ({"bk_obj_id": "x" * 100_000, "bk_inst_id": 11}, invalid("bk_obj_id")),
]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_search_inst_association_topo_esb_refusals(client, topology, language):
    for body, expected in ESB_TOPOLOGY_FAILURES:
        reply = await call(client, TOPOLOGY, "esb", body, language=language)
        check(reply, expected, language, json.dumps(body)[:80])


# =============================================================================================
# search_inst_asst_object_inst_base_info

# Upstream's documented example (docs/apidoc/cc/zh_hans/search_inst_asst_object_inst_base_info.md).
DOCUMENTED_BASE_INFO_REQUEST = {
    "bk_app_code": "esb_test",
    "bk_app_secret": "xxx",
    "bk_username": "xxx",
    "bk_token": "xxx",
    "condition": {
        "bk_obj_id": "bk_switch",
        "bk_inst_id": 12,
        "association_obj_id": "host",
        "is_target_object": True,
    },
    "page": {"start": 0, "limit": 10},
}
DOCUMENTED_BASE_INFO_REPLY = {
    "result": True,
    "code": 0,
    "message": "success",
    "permission": None,
    "request_id": "e43da4ef221746868dc4c837d36f3807",
    "data": {"count": 4, "info": [{"bk_inst_id": 1, "bk_inst_name": "127.0.0.3"}]},
}


@pytest.fixture
async def host_sources(db) -> list[int]:
    """Hosts 21, 22, 23 -> switch 13, and 21 -> 14, by a model association host -> bk_switch."""
    await new_model_association(db, HOST_TO_SWITCH)
    return await store(db, HOST_TO_SWITCH, (23, 13), (21, 13), (22, 13), (21, 14))


async def test_search_inst_asst_object_inst_base_info_documented_example(client, host_sources):
    verbatim = await client.post(f"{ESB_PREFIX}/{BASE_INFO}/", json=DOCUMENTED_BASE_INFO_REQUEST)
    reply = verbatim.json()
    # The demo has no switch 12 (deliberately): no association, upstream's empty answer.
    same_json(reply["data"], {"count": 0, "info": None})
    request = json.loads(json.dumps(DOCUMENTED_BASE_INFO_REQUEST))
    request["condition"]["bk_inst_id"] = 13
    request["page"]["limit"] = 2
    reply = (await client.post(f"{ESB_PREFIX}/{BASE_INFO}/", json=request)).json()
    documented = DOCUMENTED_BASE_INFO_REPLY
    assert list(reply) == list(documented)
    assert key_orders({**reply, "data": None}) == key_orders({**documented, "data": None})
    assert key_orders(reply["data"]["info"][0]) == key_orders(documented["data"]["info"][0])
    # Counted: every association; detailed: the page's (the first two stored: 23 and 21), in
    # id order.
    same_json(
        reply["data"],
        {
            "count": 3,
            "info": [
                {"bk_inst_id": 21, "bk_inst_name": "10.0.0.1"},
                {"bk_inst_id": 23, "bk_inst_name": "10.0.0.3"},
            ],
        },
    )


@pytest.mark.parametrize("route", ROUTES)
async def test_search_inst_asst_object_inst_base_info_both_directions(
    client, stored, host_sources, route
):
    async def found(**condition):
        body = {"condition": condition, "page": {"limit": 10}}
        reply = await call(client, BASE_INFO, route, body)
        check(reply, SUCCESS, "zh", str(condition))
        return reply.data

    # Switch 11 as source: hosts 21, 22 (belong) and 23 (connect).
    same_json(
        await found(bk_obj_id="bk_switch", bk_inst_id=11, association_obj_id="host"),
        {
            "count": 3,
            "info": [
                {"bk_inst_id": 21, "bk_inst_name": "10.0.0.1"},
                {"bk_inst_id": 22, "bk_inst_name": "10.0.0.2"},
                {"bk_inst_id": 23, "bk_inst_name": "10.0.0.3"},
            ],
        },
    )
    # Host 21 as target of switches: 11 and 13 (belong).
    as_target = await found(
        bk_obj_id="host", bk_inst_id=21, association_obj_id="bk_switch", is_target_object=True
    )
    same_json(
        as_target,
        {
            "count": 2,
            "info": [
                {"bk_inst_id": 11, "bk_inst_name": "sw-01"},
                {"bk_inst_id": 13, "bk_inst_name": "sw-02"},
            ],
        },
    )
    # Host 21 as source of switches (host -> bk_switch): 13 and 14.
    as_source = await found(bk_obj_id="host", bk_inst_id=21, association_obj_id="bk_switch")
    assert as_source["count"] == 2
    assert [i["bk_inst_id"] for i in as_source["info"]] == [13, 14]
    # Switch 13 as target of hosts: three associations, three hosts.
    as_target = await found(
        bk_obj_id="bk_switch", bk_inst_id=13, association_obj_id="host", is_target_object=True
    )
    assert (as_target["count"], [i["bk_inst_id"] for i in as_target["info"]]) == (3, [21, 22, 23])
    # Nothing, and models that do not exist: upstream's empty answer.
    for condition in (
        {"bk_obj_id": "bk_switch", "bk_inst_id": 14, "association_obj_id": "bk_router"},
        {"bk_obj_id": "no_such", "bk_inst_id": 11, "association_obj_id": "host"},
        {"bk_obj_id": "bk_switch", "bk_inst_id": 11, "association_obj_id": "no_such"},
        {"bk_obj_id": "bk_switch", "bk_inst_id": -(2**63), "association_obj_id": "host"},
    ):
        same_json(await found(**condition), {"count": 0, "info": None})


async def test_search_inst_asst_object_inst_base_info_counts_associations_not_instances(client, db):
    ids = await store(db, BELONG, (11, 21))
    ids += await store(db, CONNECT, (11, 21))
    body = {"condition": {"bk_obj_id": "bk_switch", "bk_inst_id": 11, "association_obj_id": "host"}}
    reply = await call(client, BASE_INFO, "esb", body)
    same_json(reply.data, {"count": 2, "info": [{"bk_inst_id": 21, "bk_inst_name": "10.0.0.1"}]})


async def test_search_inst_asst_object_inst_base_info_pages(client, db):
    hosts = await new_instances(db, "host", "page-host", 25)
    await store(db, BELONG, *[(14, host) for host in hosts])
    condition = {"bk_obj_id": "bk_switch", "bk_inst_id": 14, "association_obj_id": "host"}

    async def page(**page):
        body = {"condition": condition, "page": page}
        reply = await call(client, BASE_INFO, "native", body)
        check(reply, SUCCESS, "zh", str(page))
        info = reply.data["info"]
        return reply.data["count"], None if info is None else [i["bk_inst_id"] for i in info]

    assert await page() == (25, hosts[:20])  # upstream's default of 20
    assert await page(limit=0, start=3) == (25, hosts[3:23])
    assert await page(limit=999_999_999) == (25, hosts)  # upstream's "no limit"
    assert await page(limit=1000) == (25, hosts)
    assert await page(limit=-3) == (25, hosts[:3])  # MongoDB reads it without the sign
    assert await page(limit=2, start=24) == (25, hosts[24:])
    # A page past the end: upstream answers no count either.
    assert await page(limit=2, start=25) == (0, None)
    assert await page(limit=2, start=2**63 - 1) == (0, None)
    assert await page(limit=1, sort="-bk_asst_inst_id") == (25, hosts[-1:])
    assert await page(limit=1, sort="bk_asst_inst_id:-1") == (25, hosts[-1:])
    assert await page(limit=2, sort="nope") == (25, hosts[:2])


BASE = {"bk_obj_id": "bk_switch", "bk_inst_id": 11, "association_obj_id": "host"}
BASE_INFO_FAILURES = [
    # The body.
    ("condition a list", {"condition": [BASE]}, BAD_JSON),
    ("bk_inst_id a string", {"condition": {**BASE, "bk_inst_id": "11"}}, BAD_JSON),
    ("bk_inst_id beyond int64", {"condition": {**BASE, "bk_inst_id": 2**63}}, BAD_JSON),
    ("bk_inst_id a float", {"condition": {**BASE, "bk_inst_id": 11.5}}, BAD_JSON),
    ("is_target_object a string", {"condition": {**BASE, "is_target_object": "true"}}, BAD_JSON),
    (
        "association_obj_id a list",
        {"condition": {**BASE, "association_obj_id": ["host"]}},
        BAD_JSON,
    ),
    ("limit a float", {"condition": BASE, "page": {"limit": 1.5}}, BAD_JSON),
    ("start beyond int64", {"condition": BASE, "page": {"start": -(2**63) - 1}}, BAD_JSON),
    ("decoding first", {"condition": {"bk_inst_id": "x"}}, BAD_JSON),
    # The condition, in upstream's order.
    ("nothing", {}, unassigned("bk_obj_id")),
    ("condition null", {"condition": None}, unassigned("bk_obj_id")),
    ("no bk_obj_id", {"condition": {**BASE, "bk_obj_id": ""}}, unassigned("bk_obj_id")),
    ("no bk_inst_id", {"condition": {**BASE, "bk_inst_id": 0}}, unassigned("bk_inst_id")),
    ("bk_inst_id null", {"condition": {**BASE, "bk_inst_id": None}}, unassigned("bk_inst_id")),
    (
        "no association_obj_id",
        {"condition": {**BASE, "association_obj_id": ""}},
        unassigned("association_obj_id"),
    ),
    (
        "bk_inst_id before association_obj_id",
        {"condition": {"bk_obj_id": "host", "association_obj_id": ""}},
        unassigned("bk_inst_id"),
    ),
    (
        "the condition before the page",
        {"condition": {**BASE, "association_obj_id": ""}, "page": {"limit": 5000, "start": -1}},
        unassigned("association_obj_id"),
    ),
    # The page, then what MongoDB refuses.
    ("limit 1001", {"condition": BASE, "page": {"limit": 1001}}, PAGE_LIMIT),
    ("limit -1001", {"condition": BASE, "page": {"limit": -1001}}, PAGE_LIMIT),
    ("limit 1e9", {"condition": BASE, "page": {"limit": 1_000_000_000}}, PAGE_LIMIT),
    ("limit before start", {"condition": BASE, "page": {"limit": 1001, "start": -1}}, PAGE_LIMIT),
    ("negative start", {"condition": BASE, "page": {"start": -1}}, skip_refused(-1)),
    ("int64 min start", {"condition": BASE, "page": {"start": -(2**63)}}, skip_refused(-(2**63))),
    (
        "unknown model, negative start",
        {"condition": {**BASE, "bk_obj_id": "nope"}, "page": {"start": -7}},
        skip_refused(-7),
    ),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("route", ROUTES)
async def test_search_inst_asst_object_inst_base_info_refusals_in_upstreams_order(
    client, stored, route, language
):
    for case, body, expected in BASE_INFO_FAILURES:
        reply = await call(client, BASE_INFO, route, body, language=language)
        check(reply, expected, language, case)
    for raw in (b"{", b"[]", b"null", b'"x"'):
        reply = await call(client, BASE_INFO, route, raw=raw, language=language)
        check(reply, BAD_JSON, language, repr(raw))
