"""Cursor connections (Relay's shape) on every list: walking forward and backward visits each item
exactly once, also while items are inserted and deleted between pages; cursors are opaque and
a forged one is refused; totalCount is counted only when asked for; nested connections page an
instance's associations; the query cost counts connections by their page size. Both
databases."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from cmdbgraph.services import associations, instances, paging
from cmdbgraph.services.caller import SYSTEM
from tests.support.calls import graphql
from tests.support.databases import count_statements
from tests.support.siblings import BELONG

EDGES = (
    "edges { cursor node { id bkInstId bkAsstInstId } } "
    "pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"
)


_BATCHES = itertools.count()


@dataclass
class Made:
    ids: list[int]  # the associations, in id order
    switches: list[int]
    hosts: list[int]


async def many_associations(db, sources: int, targets: int) -> Made:
    """``sources`` new switches each associated with ``targets`` new hosts (n:n)."""
    prefix = f"c{next(_BATCHES)}"
    switches = await instances.create_instances(
        db, SYSTEM, "bk_switch", [instances.NewInstance(f"{prefix}-sw-{n}") for n in range(sources)]
    )
    hosts = await instances.create_instances(
        db, SYSTEM, "host", [instances.NewInstance(f"{prefix}-host-{n}") for n in range(targets)]
    )
    pairs = [(s.bk_inst_id, h.bk_inst_id) for s in switches for h in hosts]
    ids: list[int] = []
    for start in range(0, len(pairs), 200):
        result = await associations.batch_create(
            db,
            SYSTEM,
            associations.BatchCreateRequest(
                "bk_switch",
                "host",
                BELONG,
                [associations.Detail(*pair) for pair in pairs[start : start + 200]],
            ),
        )
        assert result.failed_count == 0
        ids += [item.association.id for item in result.items]
    return Made(ids, [s.bk_inst_id for s in switches], [h.bk_inst_id for h in hosts])


async def page(client, arguments: str, fields: str = EDGES) -> dict:
    reply = await graphql(client, f"{{ instAssociationsConnection({arguments}) {{ {fields} }} }}")
    assert "errors" not in reply, reply
    return reply["data"]["instAssociationsConnection"]


def ids_of(connection: dict) -> list[int]:
    return [edge["node"]["id"] for edge in connection["edges"]]


async def test_walking_forward_and_backward_visits_each_once(client, db):
    ids = (await many_associations(db, 50, 200)).ids  # 10,000 associations
    seen: list[int] = []
    after = None
    pages = 0
    while True:
        argument = f'first: 500, after: "{after}"' if after else "first: 500"
        connection = await page(client, argument)
        seen += ids_of(connection)
        pages += 1
        info = connection["pageInfo"]
        assert info["hasPreviousPage"] is (after is not None)
        assert info["startCursor"] == connection["edges"][0]["cursor"]
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]
    assert seen == ids and pages == 20
    backward: list[int] = []
    before = None
    while True:
        argument = f'last: 500, before: "{before}"' if before else "last: 500"
        connection = await page(client, argument)
        backward = ids_of(connection) + backward
        info = connection["pageInfo"]
        assert info["hasNextPage"] is (before is not None)
        if not info["hasPreviousPage"]:
            break
        before = info["startCursor"]
    assert backward == ids


async def test_rows_inserted_and_deleted_between_pages(client, db):
    """Every item present from start to end is visited exactly once, nothing twice; items
    written after the walk passed their place are not seen, those written ahead are."""
    ids = (await many_associations(db, 10, 100)).ids  # 1,000
    seen: list[int] = []
    deleted: set[int] = set()
    added: list[int] = []
    after = None
    round_number = 0
    while True:
        argument = f'first: 97, after: "{after}"' if after else "first: 97"
        connection = await page(client, argument)
        seen += ids_of(connection)
        # Between pages: delete some rows ahead and behind, add some (at the end: new ids).
        round_number += 1
        for victim in (ids[(round_number * 37) % len(ids)], ids[(round_number * 53) % len(ids)]):
            if victim not in deleted:
                await associations.delete_associations(db, SYSTEM, [victim])
                deleted.add(victim)
        if round_number <= 3:
            added += (await many_associations(db, 1, 3)).ids
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)), "an item was visited twice"
    assert set(ids) - deleted <= set(seen), "an item present throughout was skipped"
    assert set(added) <= set(seen)  # new rows have higher ids: ahead of the walk
    assert seen == sorted(seen)


async def test_filters_and_total_count(client, db, monkeypatch):
    await many_associations(db, 3, 4)
    counted = []
    original = associations.count_associations

    async def counting(*args, **kwargs):
        counted.append(1)
        return await original(*args, **kwargs)

    monkeypatch.setattr(associations, "count_associations", counting)
    without = await page(client, 'first: 2, filter: {bkObjAsstId: "bk_switch_belong_host"}')
    assert len(without["edges"]) == 2 and counted == []  # not asked: not counted
    with_count = await page(
        client, 'first: 2, filter: {bkObjAsstId: "bk_switch_belong_host"}', EDGES + " totalCount"
    )
    assert with_count["totalCount"] == 12 and counted == [1]
    empty = await page(client, 'filter: {bkObjAsstId: "bk_router_default_bk_firewall"}')
    assert empty == {
        "edges": [],
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        },
    }


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "",
        paging.encode("inst_asst", 5)[:-2] + "AA",  # altered
        paging.encode("instance", 5),  # another list's
    ],
)
async def test_a_forged_cursor_is_refused(client, cursor):
    reply = await graphql(
        client,
        "query ($c: String) { instAssociationsConnection(after: $c) { edges { cursor } } }",
        {"c": cursor},
    )
    (error,) = reply["errors"]
    assert error["message"] == "after is not a cursor of this list"
    assert error["extensions"] == {"code": "PARAMETER_CHECK_FAILED", "bkErrorCode": 1199006}


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        ("first: 1, last: 1", 1199006, "first and last cannot be used together"),
        ("first: 501", 1199035, None),
        ("last: 501", 1199035, None),
        ("first: -1", 1199011, None),
    ],
)
async def test_page_sizes_are_checked(client, arguments, code, message):
    reply = await graphql(
        client, f"{{ instAssociationsConnection({arguments}) {{ edges {{ cursor }} }} }}"
    )
    (error,) = reply["errors"]
    assert error["extensions"]["bkErrorCode"] == code, error
    if message:
        assert error["message"] == message


async def test_first_zero_reads_nothing_but_tells_what_follows(client, db):
    await many_associations(db, 1, 2)
    connection = await page(client, "first: 0", EDGES + " totalCount")
    assert connection["edges"] == [] and connection["pageInfo"]["hasNextPage"] is True
    assert connection["totalCount"] == 2


async def test_an_instances_associations_page_by_cursor(client, db):
    made = await many_associations(db, 2, 150)  # two switches, 150 hosts each
    ids, first_switch = made.ids, made.switches[0]
    query = """
      query ($id: BigInt!, $after: String) { instance(bkInstId: $id) {
        associationsAsSourceConnection(first: 64, after: $after) {
          totalCount edges { cursor node { id bkInstId } } pageInfo { hasNextPage endCursor }
        } } }"""
    seen: list[int] = []
    after = None
    while True:
        reply = await graphql(client, query, {"id": first_switch, "after": after})
        connection = reply["data"]["instance"]["associationsAsSourceConnection"]
        assert connection["totalCount"] == 150
        assert {edge["node"]["bkInstId"] for edge in connection["edges"]} == {first_switch}
        seen += [edge["node"]["id"] for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert seen == ids[:150]


async def test_instances_and_audit_entries_page_by_cursor(client, db):
    prefix = f"c{next(_BATCHES) + 1}-host-"  # the hosts' names: the next batch's
    await many_associations(db, 3, 3)
    reply = await graphql(
        client,
        """query ($name: String) {
             instancesConnection(bkObjId: "host", nameContains: $name, first: 2) {
               totalCount edges { node { bkInstName } } pageInfo { hasNextPage endCursor } }
             auditEntriesConnection(first: 3) { edges { node { id } } } }""",
        {"name": prefix},
    )
    hosts = reply["data"]["instancesConnection"]
    assert hosts["totalCount"] == 3
    assert [e["node"]["bkInstName"] for e in hosts["edges"]] == [f"{prefix}0", f"{prefix}1"]
    entries = [e["node"]["id"] for e in reply["data"]["auditEntriesConnection"]["edges"]]
    assert entries == sorted(entries, reverse=True) and len(entries) == 3  # newest first
    rest = await graphql(
        client,
        'query ($after: String, $name: String) { instancesConnection(bkObjId: "host", '
        "nameContains: $name, after: $after) { edges { node { bkInstName } } "
        "pageInfo { hasNextPage hasPreviousPage } } }",
        {"after": hosts["pageInfo"]["endCursor"], "name": prefix},
    )
    assert rest["data"]["instancesConnection"] == {
        "edges": [{"node": {"bkInstName": f"{prefix}2"}}],
        "pageInfo": {"hasNextPage": False, "hasPreviousPage": True},
    }


async def test_the_cost_counts_connections_by_their_page_size(client):
    nested = """{ instancesConnection(first: 500) { edges { node {
        associationsAsSourceConnection(first: 200) { edges { node { id bkInstId } } } } } } }"""
    reply = await graphql(client, nested)
    assert reply["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    small = """{ instancesConnection(first: 10) { edges { node {
        associationsAsSourceConnection(first: 10) { edges { node { id } } } } } } }"""
    assert "errors" not in await graphql(client, small)


async def test_every_node_is_fetched_again_by_its_node_id(client, db):
    made = await many_associations(db, 1, 2)
    reply = await graphql(
        client,
        """query ($id: BigInt!) { instance(bkInstId: $id) { nodeId bkInstName
             model { nodeId bkObjId }
             associationsAsSourceConnection { edges { node { nodeId id } } } } }""",
        {"id": made.switches[0]},
    )
    instance = reply["data"]["instance"]
    ids = [
        instance["nodeId"],
        instance["model"]["nodeId"],
        *(edge["node"]["nodeId"] for edge in instance["associationsAsSourceConnection"]["edges"]),
    ]
    assert len(set(ids)) == 4
    fetched = await graphql(
        client,
        """query ($ids: [ID!]!) { nodes(nodeIds: $ids) { __typename nodeId
             ... on Instance { bkInstName } ... on Model { bkObjId }
             ... on InstAssociation { id } } }""",
        {"ids": ids},
    )
    nodes = fetched["data"]["nodes"]
    assert [node["nodeId"] for node in nodes] == ids
    assert [node["__typename"] for node in nodes] == [
        "Instance",
        "Model",
        "InstAssociation",
        "InstAssociation",
    ]
    assert nodes[0]["bkInstName"] == instance["bkInstName"]
    assert nodes[1]["bkObjId"] == "bk_switch"
    assert [node["id"] for node in nodes[2:]] == made.ids
    # Gone: null. Not an id of this API: a clear error.
    await associations.delete_associations(db, SYSTEM, [made.ids[0]])
    one = await graphql(client, "query ($id: ID!) { node(nodeId: $id) { nodeId } }", {"id": ids[2]})
    assert one == {"data": {"node": None}}
    for forged in ("garbage", "SW5zdGFuY2U=", "Tm9wZToxMw=="):  # "Instance", "Nope:13"
        bad = await graphql(
            client, "query ($id: ID!) { node(nodeId: $id) { nodeId } }", {"id": forged}
        )
        assert bad["errors"][0]["extensions"]["code"] == "PARAMETER_CHECK_FAILED", bad


async def test_a_variable_left_out_counts_at_its_declared_default(client):
    query = """query ($n: Int = 10) { instancesConnection(first: $n) { edges { node {
        associationsAsSourceConnection(first: $n) { edges { node { id } } } } } } }"""
    assert "errors" not in await graphql(client, query)
    refused = await graphql(client, query, {"n": 200})
    assert refused["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"


async def test_the_associations_of_a_page_of_instances_are_read_in_one_statement(client, db):
    """Thirty switches, each with its own associations: one statement reads every switch's
    page (not one per switch), and each page is that switch's own, in id order."""
    made = await many_associations(db, 30, 3)
    query = """query ($name: String) { instancesConnection(bkObjId: "bk_switch",
        nameContains: $name, first: 30) { edges { node { bkInstId
        associationsAsSourceConnection(first: 2) { edges { node { id bkInstId } }
          pageInfo { hasNextPage } } } } } }"""
    prefix = f"c{next(_BATCHES) - 1}-sw-"
    with count_statements(db) as statements:
        reply = await graphql(client, query, {"name": prefix})
    nodes = [edge["node"] for edge in reply["data"]["instancesConnection"]["edges"]]
    assert [n["bkInstId"] for n in nodes] == made.switches
    for number, node in enumerate(nodes):
        page = node["associationsAsSourceConnection"]
        assert [e["node"]["id"] for e in page["edges"]] == made.ids[number * 3 : number * 3 + 2]
        assert page["pageInfo"]["hasNextPage"] is True
    reads = [s for s in statements if "inst_associations" in s]
    assert len(reads) == 1, reads
