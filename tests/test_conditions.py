"""Upstream's condition language (MongoDB's operators) compiled to SQL: on both databases the
rows a condition selects are the documents MongoDB would match, as a plain-Python reading of the
same condition says (``tests/support/mongo.py``); and what cannot run is refused clearly."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from cmdbgraph.db.tables import instances
from cmdbgraph.services import conditions
from cmdbgraph.services.caller import SYSTEM
from cmdbgraph.services.conditions import ConditionError, compile_condition, parse
from cmdbgraph.services.errors import CmdbError
from cmdbgraph.services.instances import CONDITION_FIELDS, NewInstance, create_instances
from tests.support import mongo
from tests.support.calls import demo_headers, graphql
from tests.support.siblings import store

MODEL = "bk_switch"
STRINGS = ["", "x", "X", "xy", "yx", "a\nb", "é", "x.y", "10", "abc", "ABC", "x y"]
NUMBERS = [0, 1, -1, 2, 3, 1.5, -0.5, 2.0, 10, 2**53, 2**63 - 1, -(2**63)]
SCALARS = [*STRINGS, *NUMBERS, True, False, None]


def _documents() -> list[dict]:
    """Attributes of every shape: each type, arrays (mixed, nested, empty), objects, missing."""
    rng = random.Random(20261129)

    def value(depth: int = 0):
        roll = rng.random()
        if depth < 2 and roll < 0.15:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        if depth < 2 and roll < 0.25:
            return {key: value(depth + 1) for key in rng.sample(["a", "b", "x"], rng.randint(0, 2))}
        return rng.choice(SCALARS)

    documents = []
    for _ in range(60):
        keys = rng.sample(["a", "b", "c", "o", "tags"], rng.randint(0, 5))
        documents.append({key: value() for key in keys})
    return documents


@pytest.fixture
async def stored(db) -> list[dict]:
    """The documents, stored as instances, read back as upstream's documents (columns and
    attributes in one object)."""
    created = await create_instances(
        db,
        SYSTEM,
        MODEL,
        [NewInstance(f"doc-{i}", attrs) for i, attrs in enumerate(_documents())],
        limits=conditions_limits(),
    )
    ids = [i.bk_inst_id for i in created]
    async with db.read() as conn:
        rows = await conn.execute(select(instances).where(instances.c.bk_inst_id.in_(ids)))
        return [
            {
                **row.attributes,
                "bk_inst_id": row.bk_inst_id,
                "bk_obj_id": row.bk_obj_id,
                "bk_inst_name": row.bk_inst_name,
                "bk_supplier_account": row.bk_supplier_account,
                "creator": row.creator,
                "create_time": row.create_time,
                "last_time": row.last_time,
            }
            for row in rows
        ]


def conditions_limits():
    from cmdbgraph.services.limits import Limits

    return Limits(max_create=1000)


async def selected(db, condition: dict, among: list[dict]) -> set[int]:
    where = compile_condition(parse(condition, CONDITION_FIELDS), CONDITION_FIELDS, db.dialect)
    ids = [d["bk_inst_id"] for d in among]
    async with db.read() as conn:
        rows = await conn.execute(
            select(instances.c.bk_inst_id).where(instances.c.bk_inst_id.in_(ids), where)
        )
        return set(rows.scalars())


def expected(documents: list[dict], condition: dict) -> set[int]:
    tree = parse(condition, CONDITION_FIELDS)
    return {d["bk_inst_id"] for d in documents if mongo.matches(d, tree)}


# --- Generated conditions -----------------------------------------------------------------

FIELDS = [
    "a",
    "b",
    "c",
    "o",
    "o.a",
    "o.b",
    "o.x",
    "tags",
    "zz",
    "a.a",
    "bk_inst_id",
    "bk_inst_name",
    "creator",
    "create_time",
]
PATTERNS = ["x", "^x", "y$", "X", ".", "x.*y", "^$", "[a-z]+", r"\d", "a.b", "^b", "a$", r"\bx"]
values = st.sampled_from([*SCALARS, 1.25, 4, "doc-1", "cc_system", "z", 2**64, -(2**64)])


def leaf(field: str) -> st.SearchStrategy[dict]:
    operator = st.one_of(
        values.map(lambda v: v),
        st.builds(
            lambda op, v: {op: v},
            st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]),
            values,
        ),
        st.builds(
            lambda op, vs: {op: vs}, st.sampled_from(["$in", "$nin"]), st.lists(values, max_size=4)
        ),
        st.builds(lambda v: {"$exists": v}, st.sampled_from([True, False, 1, 0, None])),
        st.builds(
            lambda p, o: {"$regex": p, "$options": o} if o else {"$regex": p},
            st.sampled_from(PATTERNS),
            st.sampled_from(["", "i", "m", "s", "ms"]),
        ),
        st.builds(lambda op, v: {"$not": {op: v}}, st.sampled_from(["$eq", "$gt", "$lte"]), values),
        st.builds(lambda a, b: {"$gte": a, "$lt": b}, values, values),
    )
    return operator.map(lambda op: {field: op})


documents_strategy = st.recursive(
    st.sampled_from(FIELDS).flatmap(leaf),
    lambda inner: st.one_of(
        st.builds(
            lambda op, parts: {op: parts},
            st.sampled_from(["$and", "$or", "$nor"]),
            st.lists(inner, min_size=1, max_size=3),
        ),
        st.lists(inner, min_size=2, max_size=3).map(
            lambda parts: {k: v for p in parts for k, v in p.items()}
        ),
    ),
    max_leaves=6,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(condition=documents_strategy)
async def test_sql_selects_what_mongodb_matches(db, stored, condition):
    assert await selected(db, condition, stored) == expected(stored, condition), condition


# --- Chosen cases --------------------------------------------------------------------------

CASES = [
    {"a": 1},
    {"a": None},
    {"a": {"$ne": None}},
    {"a": {"$exists": False}},
    {"tags": "x"},
    {"tags": {"$in": [1, "x"]}},
    {"tags": {"$nin": [None]}},
    {"a": {"$gt": "x"}},
    {"a": {"$gte": 1, "$lt": 3}},
    {"a": True},
    {"a": {"$lt": True}},
    {"o.a": {"$exists": True}},
    {"bk_inst_id": {"$gt": 1.5}},
    {"bk_inst_id": {"$lte": 2**64}},
    {"bk_inst_name": {"$regex": "^DOC-1", "$options": "i"}},
    {"a": {"$regex": "^b", "$options": "m"}},
    {"a": {"$regex": "a.b", "$options": "s"}},
    {"$or": [{"a": 1}, {"b": "x"}], "c": {"$exists": True}},
    {"$nor": [{"a": {"$type": "string"}}]} if False else {"$nor": [{"a": 1}]},
    {"create_time": {"$exists": True}},
    {"create_time": {"$gt": "2000-01-01"}},
    {"$comment": "ignored", "a": {"$not": {"$in": [1, 2]}}},
]


@pytest.mark.parametrize("condition", CASES, ids=[str(c) for c in CASES])
async def test_chosen_conditions(db, stored, condition):
    assert await selected(db, condition, stored) == expected(stored, condition)


async def test_an_empty_condition_selects_everything(db, stored):
    assert await selected(db, {}, stored) == {d["bk_inst_id"] for d in stored}


# --- What cannot run -----------------------------------------------------------------------

REFUSED = [
    ({"$where": "sleep(1000)"}, 'operator "$where" is forbidden'),
    ({"a": {"$expr": 1}}, 'operator "$expr" is forbidden'),
    ({"$foo": 1}, "(BadValue) unknown top level operator: $foo"),
    ({"a": {"$foo": 1}}, "(BadValue) unknown operator: $foo"),
    ({"a": {"$in": 1}}, "(BadValue) $in needs an array"),
    ({"a": {"$nin": "x"}}, "(BadValue) $nin needs an array"),
    ({"$or": []}, "(BadValue) $and/$or/$nor must be a nonempty array"),
    ({"$and": {"a": 1}}, "(BadValue) $and/$or/$nor must be a nonempty array"),
    ({"$or": [1]}, "(BadValue) $or/$and/$nor entries need to be full objects"),
    ({"a": {"$regex": 1}}, "(BadValue) $regex has to be a string"),
    ({"a": {"$options": "i"}}, "(BadValue) $options needs a $regex"),
    ({"a": {"$regex": "x", "$options": "q"}}, "(BadValue) invalid flag in regex options: q"),
    ({"a": {"$regex": "(a"}}, "(BadValue) Regular expression is invalid: missing ): (a"),
    ({"a": {"$regex": r"(a)\1"}}, r"regular expression escape \1 is not supported"),
    (
        {"a": {"$regex": "(?=a)"}},
        "regular expression groups (?...) other than (?:...) are not supported",
    ),
    ({"a": {"$not": 1}}, "(BadValue) $not needs a regex or a document"),
    ({"a": {"$size": 1}}, 'operator "$size" is not supported'),
    ({"a": {"$elemMatch": {"b": 1}}}, 'operator "$elemMatch" is not supported'),
    (
        {"a": [1, 2]},
        "equality with a whole array or object is not supported: use $in or a field of the object",
    ),
    (
        {"a": {"b": 1}},
        "equality with a whole array or object is not supported: use $in or a field of the object",
    ),
    ({"a": {"$eq": [1]}}, "comparing with an array or an object is not supported"),
]


@pytest.mark.parametrize(("condition", "text"), REFUSED, ids=[t for _, t in REFUSED])
def test_refused_conditions_say_why(condition, text):
    with pytest.raises(ConditionError) as raised:
        parse(condition)
    assert raised.value.text == text


@pytest.mark.parametrize(
    "condition",
    [
        {"bk_inst_name": ["doc-1"]},
        {"bk_inst_name": {"a": 1}},
        {"bk_inst_id": {"$in": [[1], {"a": 1}]}},
        {"bk_inst_id": {"$gt": [1]}},
        {"bk_inst_name.x": [1]},
    ],
    ids=str,
)
async def test_whole_arrays_and_objects_never_equal_a_column(db, stored, condition):
    """Where only scalars live (columns), MongoDB's answer is known: no match."""
    assert await selected(db, condition, stored) == set()
    ((name, value),) = condition.items()
    negated = {name: {"$not": value}} if isinstance(value, dict) and "$in" in value else None
    if negated:
        assert await selected(db, negated, stored) == {d["bk_inst_id"] for d in stored}


def nested(depth: int) -> dict:
    condition: dict = {"a": 1}
    for _ in range(depth):
        condition = {"$and": [condition]}
    return condition


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (nested(conditions.MAX_DEPTH), "condition depth exceed the limit 16"),
        (
            {"a": {"$in": list(range(conditions.MAX_VALUES + 1))}},
            "$in values exceed the limit 5000",
        ),
        ({f"f{i}": i for i in range(conditions.MAX_NODES + 1)}, "condition exceed the limit 1000"),
        ({"a": {"$regex": "x" * (conditions.MAX_PATTERN + 1)}}, "$regex exceed the limit 1000"),
    ],
    ids=["depth", "values", "nodes", "pattern"],
)
def test_conditions_beyond_the_limits_are_refused(condition, message):
    with pytest.raises(CmdbError) as raised:
        parse(condition)
    assert raised.value.code.value == 1199035
    assert raised.value.message("en") == message


def test_a_condition_just_within_the_limits_parses():
    parse(nested(conditions.MAX_DEPTH - 1))
    parse({"a": {"$in": list(range(conditions.MAX_VALUES))}})


async def test_a_catastrophic_regex_runs_in_linear_time(db, stored):
    long = await create_instances(db, SYSTEM, MODEL, [NewInstance("long", {"a": "a" * 100_000})])
    started = time.monotonic()
    among = [{"bk_inst_id": long[0].bk_inst_id}]
    assert await selected(db, {"a": {"$regex": "(a*)*b"}}, among) == set()
    assert await selected(db, {"a": {"$regex": "(a*)*$"}}, among) == {long[0].bk_inst_id}
    assert time.monotonic() - started < 5


# --- The same language in GraphQL ----------------------------------------------------------

INSTANCES_WHERE = """
query Where($where: JSON) {
  instances(bkObjId: "bk_switch", where: $where, limit: 500) { totalCount items { bkInstId } }
}
"""
ASSOCIATIONS_WHERE = """
query Where($where: JSON) {
  instAssociations(filter: {where: $where}, limit: 500) { totalCount items { id bkInstId } }
}
"""


async def test_graphql_where_takes_the_same_language(client, db, stored):
    """``instances(where:)`` selects what the REST calls' conditions select."""
    condition = {"$or": [{"tags": "x"}, {"a": {"$gte": 1, "$lt": 3}}], "o.x": {"$exists": False}}
    reply = await graphql(client, INSTANCES_WHERE, {"where": condition})
    found = {item["bkInstId"] for item in reply["data"]["instances"]["items"]}
    assert found == expected(stored, condition)
    assert reply["data"]["instances"]["totalCount"] == len(found)


async def test_graphql_where_on_associations(client, db):
    ids = await store(db, "bk_switch_belong_host", (11, 21), (13, 22))
    reply = await graphql(client, ASSOCIATIONS_WHERE, {"where": {"bk_asst_inst_id": {"$in": [22]}}})
    assert [i["id"] for i in reply["data"]["instAssociations"]["items"]] == [ids[1]]


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"a": {"$foo": 1}}, "(BadValue) unknown operator: $foo"),
        ({"$where": "1"}, 'operator "$where" is forbidden'),
        ([1], "where must be a JSON object"),
    ],
    ids=["unknown-operator", "where", "not-an-object"],
)
async def test_graphql_where_refusals_say_why(client, where, message):
    reply = await graphql(client, INSTANCES_WHERE, {"where": where})
    (error,) = reply["errors"]
    assert error["message"] == message
    assert error["extensions"]["bkErrorCode"] == 1199006


# --- As deep as the JSON decoder allows ------------------------------------------------------


def deep(depth: int, key: str, leaf: str = "1") -> str:
    """JSON text nesting ``depth`` objects under ``key`` (lists for $and)."""
    if key == "$and":
        return '{"$and": [' * depth + '{"a": ' + leaf + "}" + "]}" * depth
    return ('{"' + key + '": ') * depth + leaf + "}" * depth


@pytest.mark.parametrize("depth", [900, 1000, 1020])
async def test_a_condition_nested_to_the_decoders_limit_answers_clearly(client, depth):
    """No recursion error (a 500): a literal object matches nothing on the associations'
    columns; nested operators stop at the depth limit."""
    url = "/api/v3/find/instassociation"
    headers = {**demo_headers(), "Content-Type": "application/json"}
    literal = '{"bk_obj_id": "bk_switch", "condition": {"id": ' + deep(depth, "x") + "}}"
    reply = (await client.post(url, content=literal, headers=headers)).json()
    assert (reply["bk_error_code"], reply["data"]) == (0, [])
    nested = '{"bk_obj_id": "bk_switch", "condition": ' + deep(depth // 2, "$and") + "}"
    reply = (await client.post(url, content=nested, headers=headers)).json()
    assert reply["bk_error_code"] == 1199035, reply


async def test_a_querybuilder_filter_nested_to_the_decoders_limit_is_refused(client):
    rule = '{"field": "id", "operator": "equal", "value": 1}'
    for _ in range(300):
        rule = '{"condition": "AND", "rules": [' + rule + "]}"
    body = '{"conditions": ' + rule + ', "page": {"limit": 10}}'
    response = await client.post(
        "/api/v3/search/instance_associations/object/bk_switch",
        content=body,
        headers={**demo_headers(), "Content-Type": "application/json"},
    )
    reply = response.json()
    assert (reply["bk_error_code"], reply["bk_error_msg"]) == (
        1199006,
        "'conditions.rules' 数据参数校验不通过",
    )


@pytest.mark.parametrize("many", [65, 999])
async def test_long_ands_and_ors_select_what_mongodb_matches(db, stored, many):
    """Hundreds of operands in one $and or $or (SQLite refuses an expression tree deeper than
    1,000, and parses a flat AND list that deep): the same rows as MongoDB's."""
    names = sorted(doc["bk_inst_name"] for doc in stored)
    wanted = {"$or": [{"bk_inst_name": names[i % len(names)]} for i in range(many)]}
    assert await selected(db, wanted, stored) == expected(stored, wanted)
    # $nin of one value each: Not(Test) is two nodes, so half as many fit the node limit.
    kept = {"$and": [{"bk_inst_name": {"$ne": f"absent-{i}"}} for i in range(many // 2)]}
    assert await selected(db, kept, stored) == expected(stored, kept)


async def test_a_querybuilder_filter_of_thousands_of_rules_answers(client, db):
    """upstream sets no limit on AND rules: 3,000 of them answer like 3 (they once answered
    1199999, SQLite's expression tree too deep)."""
    await store(db, "bk_switch_belong_host", (11, 21), (13, 22))
    rules = [
        {"field": "bk_asst_inst_id", "operator": "not_equal", "value": 10_000 + i}
        for i in range(3000)
    ]
    conditions_ = {
        "condition": "AND",
        "rules": [*rules, {"field": "bk_inst_id", "operator": "equal", "value": 13}],
    }
    for path, body, field, value in [
        (
            "/api/v3/search/instance_associations/object/bk_switch",
            {"conditions": conditions_, "fields": ["bk_inst_id"], "page": {"limit": 10}},
            "info",
            [{"bk_inst_id": 13}],
        ),
        (
            "/api/v3/count/instance_associations/object/bk_switch",
            {"conditions": conditions_},
            "count",
            1,
        ),
    ]:
        reply = (await client.post(path, json=body, headers=demo_headers())).json()
        assert (reply["bk_error_code"], reply["data"][field]) == (0, value), reply
