"""An instance's topology and impact: one recursive statement, checked against a plain
breadth-first search over the same associations, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import httpx
import pytest

from cmdbgraph.app import create_app
from cmdbgraph.db.engine import Database
from cmdbgraph.services import associations, catalog, kinds, topology
from cmdbgraph.services.caller import SYSTEM
from cmdbgraph.services.records import InstAssociation
from cmdbgraph.settings import Settings
from tests.support.calls import graphql
from tests.support.databases import count_statements, new_instances

OUT, IN, BOTH = topology.Direction.OUT, topology.Direction.IN, topology.Direction.BOTH
DEPENDS = "host_depend_host"  # host -> host, made by the ``hosts`` fixture
LINKS = "host_link_host"  # a second kind between hosts
BELONG = "bk_switch_belong_host"  # the demo's


@pytest.fixture
async def hosts(db) -> Database:
    """Two kinds between hosts (``depend``, ``link``), so that associations can go round."""
    for kind in ("depend", "link"):
        await kinds.create_kind(db, SYSTEM, kinds.NewKind(kind, kind))
        await catalog.create_model_association(
            db, SYSTEM, catalog.NewModelAssociation("host", "host", kind)
        )
    return db


async def link(db: Database, bk_obj_asst_id: str, pairs: Iterable[tuple[int, int]]) -> list[int]:
    """Create the associations ``pairs`` (all of them must pass); their ids, in order."""
    obj, _, asst_obj = {
        DEPENDS: ("host", "depend", "host"),
        LINKS: ("host", "link", "host"),
        BELONG: ("bk_switch", "belong", "host"),
    }[bk_obj_asst_id]
    pairs = list(pairs)
    ids: list[int] = []
    for start in range(0, len(pairs), 200):
        result = await associations.batch_create(
            db,
            SYSTEM,
            associations.BatchCreateRequest(
                obj,
                asst_obj,
                bk_obj_asst_id,
                [associations.Detail(s, t) for s, t in pairs[start : start + 200]],
            ),
        )
        assert result.failed_count == 0, result.error_msg("en")
        ids += [item.association.id for item in result.items if item.association]
    return ids


async def walk(db: Database, start: int, **options) -> tuple[dict[int, int], set, bool]:
    """A topology as ({instance: depth}, {(source, target, kind)}, truncated)."""
    options.setdefault("depth", 6)
    options.setdefault("max_nodes", 1000)
    found = await topology.topology(db, start, **options)
    assert found is not None
    depths = {n.instance.bk_inst_id: n.depth for n in found.nodes}
    assert len(depths) == len(found.nodes), "an instance twice"
    ids = [e.id for e in found.edges]
    assert len(set(ids)) == len(ids), "an association twice"
    edges = {(e.bk_inst_id, e.bk_asst_inst_id, e.bk_asst_id) for e in found.edges}
    return depths, edges, found.truncated


# --- a plain breadth-first search, the reference ------------------------------------------


def reference(
    stored: Sequence[InstAssociation],
    models: dict[int, str],
    start: int,
    *,
    direction: topology.Direction,
    depth: int | None,
    max_nodes: int,
    bk_asst_ids: Sequence[str] | None = None,
    bk_obj_ids: Sequence[str] | None = None,
) -> tuple[dict[int, int], list[InstAssociation], bool]:
    """Level by level; a level that does not fit keeps its lowest ids. Associations between
    the instances reached, by id, at most ``max_nodes``."""
    followed = [a for a in stored if bk_asst_ids is None or a.bk_asst_id in bk_asst_ids]

    def neighbours(node: int) -> set[int]:
        found = set()
        for a in followed:
            if direction != IN and a.bk_inst_id == node:
                found.add(a.bk_asst_inst_id)
            if direction != OUT and a.bk_asst_inst_id == node:
                found.add(a.bk_inst_id)
        return {n for n in found if bk_obj_ids is None or models[n] in bk_obj_ids}

    depths = {start: 0}
    level, distance, truncated = [start], 0, False
    while level:
        beyond = sorted({n for node in level for n in neighbours(node)} - depths.keys())
        if (depth is not None and distance == depth) or len(depths) == max_nodes:
            truncated = bool(beyond)
            break
        room = max_nodes - len(depths)
        if len(beyond) > room:
            beyond, truncated = beyond[:room], True
        distance += 1
        depths.update((n, distance) for n in beyond)
        level = [] if truncated else beyond
    between = sorted(
        (a for a in followed if a.bk_inst_id in depths and a.bk_asst_inst_id in depths),
        key=lambda a: a.id,
    )
    if len(between) > max_nodes:
        between, truncated = between[:max_nodes], True
    return depths, between, truncated


def as_edges(found: Iterable[InstAssociation]) -> set:
    return {(a.bk_inst_id, a.bk_asst_inst_id, a.bk_asst_id) for a in found}


# --- shapes ---------------------------------------------------------------------------------


async def test_a_cycle_is_walked_once_each_way(hosts):
    db = hosts
    a, b, c = await new_instances(db, "host", "cycle", 3)
    await link(db, DEPENDS, [(a, b), (b, c), (c, a)])
    cycle = {(a, b, "depend"), (b, c, "depend"), (c, a, "depend")}
    assert await walk(db, a, direction=OUT) == ({a: 0, b: 1, c: 2}, cycle, False)
    assert await walk(db, a, direction=IN) == ({a: 0, c: 1, b: 2}, cycle, False)
    assert await walk(db, a, direction=BOTH) == ({a: 0, b: 1, c: 1}, cycle, False)
    # Any depth: the cycle ends the walk, every instance entered once.
    assert await walk(db, a, direction=OUT, depth=None) == ({a: 0, b: 1, c: 2}, cycle, False)
    # The depth cuts it: c is one association further.
    assert await walk(db, a, direction=OUT, depth=1) == ({a: 0, b: 1}, {(a, b, "depend")}, True)
    # What depends on b: a (a depends on b), then c (c depends on a); b itself is not listed.
    found = await topology.impact(db, b, max_nodes=10)
    assert found is not None and not found.truncated
    assert [(n.instance.bk_inst_id, n.depth) for n in found.nodes] == [(a, 1), (c, 2)]


@pytest.mark.parametrize("direction", [OUT, IN, BOTH])
async def test_each_depth_adds_one_ring(hosts, direction):
    db = hosts
    chain = await new_instances(db, "host", "chain", 6)
    await link(db, DEPENDS, zip(chain, chain[1:], strict=False))
    start = chain[0] if direction == OUT else chain[-1]
    order = chain if direction == OUT else chain[::-1]
    for depth in range(0, 7):
        if direction == BOTH:
            middle = chain[2]
            depths, edges, truncated = await walk(db, middle, depth=depth, direction=BOTH)
            expected = {n: abs(i - 2) for i, n in enumerate(chain) if abs(i - 2) <= depth}
            assert depths == expected
            assert truncated == (depth < 3)
            continue
        depths, edges, truncated = await walk(db, start, depth=depth, direction=direction)
        assert depths == {n: i for i, n in enumerate(order[: depth + 1])}
        assert len(edges) == min(depth, 5)
        assert truncated == (depth < 5)


async def test_depth_zero_is_the_instance_alone(hosts):
    db = hosts
    lonely, busy, other = await new_instances(db, "host", "zero", 3)
    await link(db, DEPENDS, [(busy, other)])
    assert await walk(db, lonely, depth=0) == ({lonely: 0}, set(), False)
    assert await walk(db, busy, depth=0) == ({busy: 0}, set(), True)
    assert await walk(db, busy, depth=0, direction=IN) == ({busy: 0}, set(), False)


async def test_a_diamond_reaches_its_far_corner_once(hosts):
    """a -> b -> d and a -> c -> d, and a second kind alongside a -> b: d once, at depth 2;
    every association once."""
    db = hosts
    a, b, c, d = await new_instances(db, "host", "diamond", 4)
    await link(db, DEPENDS, [(a, b), (a, c), (b, d), (c, d)])
    await link(db, LINKS, [(a, b), (d, a)])
    depths, edges, truncated = await walk(db, a, direction=OUT)
    assert depths == {a: 0, b: 1, c: 1, d: 2}
    assert edges == {
        (a, b, "depend"),
        (a, c, "depend"),
        (b, d, "depend"),
        (c, d, "depend"),
        (a, b, "link"),
        (d, a, "link"),
    }
    assert not truncated
    depths, edges, _ = await walk(db, d, direction=IN, bk_asst_ids=["depend"])
    assert depths == {d: 0, b: 1, c: 1, a: 2}
    assert {kind for *_, kind in edges} == {"depend"}


async def test_kinds_and_models_filter_what_is_followed(hosts):
    """Switch 11 belongs to hosts 21 and 22; 13 to 22; host 21 depends on 23, which links to
    a new host. Models not asked for are not entered, so nothing is reached through them."""
    db = hosts
    (extra,) = await new_instances(db, "host", "filter", 1)
    await link(db, BELONG, [(11, 21), (11, 22), (13, 22)])
    await link(db, DEPENDS, [(21, 23)])
    await link(db, LINKS, [(23, extra)])

    depths, _, _ = await walk(db, 21, direction=BOTH)
    assert depths == {21: 0, 11: 1, 23: 1, 22: 2, extra: 2, 13: 3}
    # Hosts only: 22 is reached only through switch 11, which is not entered.
    depths, edges, truncated = await walk(db, 21, direction=BOTH, bk_obj_ids=["host"])
    assert depths == {21: 0, 23: 1, extra: 2}
    assert edges == {(21, 23, "depend"), (23, extra, "link")}
    assert not truncated
    # The instance asked about is there whatever its model.
    assert (await walk(db, 11, bk_obj_ids=["bk_router"]))[0] == {11: 0}
    # Kinds: only belong, then only depend and link.
    depths, edges, _ = await walk(db, 21, bk_asst_ids=["belong"])
    assert depths == {21: 0, 11: 1, 22: 2, 13: 3}
    assert {kind for *_, kind in edges} == {"belong"}
    depths, _, _ = await walk(db, 21, bk_asst_ids=["depend", "link"])
    assert depths == {21: 0, 23: 1, extra: 2}
    assert (await walk(db, 21, bk_asst_ids=[]))[0] == {21: 0}


async def test_the_node_cap_keeps_the_nearest_lowest_ids_first(hosts):
    db = hosts
    hub, *leaves = await new_instances(db, "host", "star", 11)
    (far,) = await new_instances(db, "host", "far", 1)
    await link(db, DEPENDS, [(hub, leaf) for leaf in leaves] + [(leaves[0], far)])
    depths, edges, truncated = await walk(db, hub, max_nodes=4)
    assert depths == {hub: 0, **{leaf: 1 for leaf in leaves[:3]}}
    assert edges == {(hub, leaf, "depend") for leaf in leaves[:3]}
    assert truncated
    # Exactly as many as there are: nothing left out.
    depths, edges, truncated = await walk(db, hub, max_nodes=12)
    assert len(depths) == 12 and depths[far] == 2 and len(edges) == 11 and not truncated
    # One short: the far one is left out.
    depths, _, truncated = await walk(db, hub, max_nodes=11)
    assert far not in depths and truncated
    # Ten leaves fill the cap exactly; the far one is beyond it.
    depths, _, truncated = await walk(db, hub, depth=1, max_nodes=11)
    assert len(depths) == 11 and truncated
    # Impact: the hub depends on its leaves, leaves[0] on far.
    found = await topology.impact(db, leaves[0], max_nodes=1)
    assert found is not None
    assert [(n.instance.bk_inst_id, n.depth) for n in found.nodes] == [(hub, 1)]
    assert not found.truncated
    found = await topology.impact(db, far, max_nodes=1)
    assert found is not None and found.truncated
    assert [(n.instance.bk_inst_id, n.depth) for n in found.nodes] == [(leaves[0], 1)]


async def test_associations_beyond_the_cap_are_left_out(hosts):
    """Five hosts, each linked to every other one: 20 associations between 5 instances."""
    db = hosts
    five = await new_instances(db, "host", "clique", 5)
    ids = await link(db, LINKS, [(s, t) for s in five for t in five if s != t])
    found = await topology.topology(db, five[0], depth=1, max_nodes=5)
    assert found is not None
    assert len(found.nodes) == 5
    assert [e.id for e in found.edges] == sorted(ids)[:5]
    assert found.truncated
    found = await topology.topology(db, five[0], depth=1, max_nodes=20)
    assert found is not None and len(found.edges) == 20 and not found.truncated


async def test_an_instance_that_does_not_exist(db):
    assert await topology.topology(db, 12, depth=2, max_nodes=10) is None
    assert await topology.impact(db, 12, max_nodes=10) is None


# --- against the reference ------------------------------------------------------------------


async def test_a_dense_random_graph_matches_a_breadth_first_search(hosts):
    """40 hosts and 4 switches, about 330 associations of three kinds, cycles and parallel
    paths everywhere: every start, direction, depth and cap answers what the reference does."""
    db = hosts
    rng = random.Random(7)
    host_ids = await new_instances(db, "host", "dense", 40)
    switches = [11, 13, 14]

    def pairs(sources: list[int], count: int) -> list[tuple[int, int]]:
        drawn = {(rng.choice(sources), rng.choice(host_ids)) for _ in range(count)}
        return sorted((s, t) for s, t in drawn if s != t)

    await link(db, DEPENDS, pairs(host_ids, 160))
    await link(db, LINKS, pairs(host_ids, 130))
    await link(db, BELONG, pairs(switches, 40))
    stored = await associations.find_associations(db, associations.AssociationFilter())
    models = {i: "host" for i in (*host_ids, 21, 22, 23)} | {i: "bk_switch" for i in switches}

    cases = [
        (start, direction, depth, max_nodes, kinds_, models_)
        for start in (host_ids[0], host_ids[17], 11)
        for direction in (OUT, IN, BOTH)
        for depth, max_nodes in ((0, 1000), (1, 1000), (2, 1000), (6, 1000), (3, 7), (6, 25))
        for kinds_, models_ in ((None, None), (["depend"], None), (None, ["host"]))
    ]
    truncated_by_cap = complete = 0
    for start, direction, depth, max_nodes, kinds_, models_ in cases:
        expected = reference(
            stored,
            models,
            start,
            direction=direction,
            depth=depth,
            max_nodes=max_nodes,
            bk_asst_ids=kinds_,
            bk_obj_ids=models_,
        )
        found = await topology.topology(
            db,
            start,
            depth=depth,
            max_nodes=max_nodes,
            direction=direction,
            bk_asst_ids=kinds_,
            bk_obj_ids=models_,
        )
        assert found is not None
        case = (start, direction, depth, max_nodes, kinds_, models_)
        assert {n.instance.bk_inst_id: n.depth for n in found.nodes} == expected[0], case
        assert [e.id for e in found.edges] == [a.id for a in expected[1]], case
        assert found.truncated == expected[2], case
        assert len(found.nodes) == len(expected[0])  # each once
        if found.truncated and len(found.nodes) == max_nodes:
            truncated_by_cap += 1
        if not found.truncated:
            complete += 1
    # The cases cover both: walks cut by the cap and walks that reached everything.
    assert truncated_by_cap > 10 and complete > 10

    # Impact: the reference going backwards at any depth, without the instance itself.
    for start in (host_ids[0], host_ids[5], host_ids[30]):
        for direction in (IN, OUT):
            for cap in (3, 1000):
                found_impact = await topology.impact(db, start, max_nodes=cap, direction=direction)
                assert found_impact is not None
                depths, _, truncated = reference(
                    stored, models, start, direction=direction, depth=None, max_nodes=cap + 1
                )
                del depths[start]
                assert {n.instance.bk_inst_id: n.depth for n in found_impact.nodes} == depths
                assert found_impact.truncated == truncated


async def test_one_statement_per_call(hosts):
    db = hosts
    ring = await new_instances(db, "host", "ring", 30)
    await link(db, DEPENDS, zip(ring, ring[1:] + ring[:1], strict=True))
    await link(db, LINKS, [(ring[0], r) for r in ring[2:]])
    for call in (
        topology.topology(db, ring[0], depth=6, max_nodes=1000, direction=BOTH),
        topology.topology(db, ring[0], depth=None, max_nodes=5, bk_asst_ids=["depend"]),
        topology.impact(db, ring[3], max_nodes=1000),
    ):
        with count_statements(db) as statements:
            assert await call is not None
        assert len(statements) == 1, statements
        assert "RECURSIVE" in statements[0].upper()


# --- GraphQL --------------------------------------------------------------------------------

TOPOLOGY = """
query Topology($id: BigInt!, $depth: Int!, $direction: TopologyDirection!, $kinds: [String!],
               $models: [String!], $maxNodes: Int) {
  instance(bkInstId: $id) {
    topology(depth: $depth, direction: $direction, bkAsstIds: $kinds, bkObjIds: $models,
             maxNodes: $maxNodes) {
      nodes { depth instance { bkInstId bkObjId bkInstName attributes } }
      edges { association { id bkInstId bkAsstInstId bkAsstId source { bkInstName } } }
      truncated
    }
  }
}
"""
SMALL = """
query Small($id: BigInt!, $depth: Int!, $maxNodes: Int) {
  instance(bkInstId: $id) { topology(depth: $depth, maxNodes: $maxNodes) { nodes { depth } } }
}
"""
IMPACT = """
query Impact($id: BigInt!, $direction: TopologyDirection, $maxNodes: Int) {
  impact(bkInstId: $id, direction: $direction, maxNodes: $maxNodes) {
    nodes { depth instance { bkInstId bkInstName } }
    truncated
  }
}
"""


def variables(bk_inst_id: int, **extra) -> dict:
    # At the default maxNodes (1,000) this selection costs more than the default limit.
    return {"id": bk_inst_id, "depth": 1, "direction": "BOTH", "maxNodes": 100, **extra}


async def test_graphql_topology_and_impact(client, hosts):
    db = hosts
    await link(db, BELONG, [(11, 21), (11, 22), (13, 22)])
    await link(db, DEPENDS, [(21, 23)])
    reply = await graphql(client, TOPOLOGY, variables(11, depth=2))
    assert "errors" not in reply, reply
    found = reply["data"]["instance"]["topology"]
    assert [(n["instance"]["bkInstId"], n["depth"]) for n in found["nodes"]] == [
        (11, 0),
        (21, 1),
        (22, 1),
        (13, 2),
        (23, 2),
    ]
    assert found["nodes"][0]["instance"] == {
        "bkInstId": 11,
        "bkObjId": "bk_switch",
        "bkInstName": "sw-01",
        "attributes": {"bk_inst_name": "sw-01"},
    }
    assert [
        (e["association"]["bkInstId"], e["association"]["bkAsstInstId"]) for e in found["edges"]
    ] == [
        (11, 21),
        (11, 22),
        (13, 22),
        (21, 23),
    ]
    assert found["edges"][0]["association"]["source"] == {"bkInstName": "sw-01"}
    assert found["truncated"] is False

    reply = await graphql(client, TOPOLOGY, variables(21, direction="OUT", depth=3))
    assert [n["instance"]["bkInstId"] for n in reply["data"]["instance"]["topology"]["nodes"]] == [
        21,
        23,
    ]
    reply = await graphql(
        client, TOPOLOGY, variables(21, depth=3, models=["host"], kinds=["belong", "depend"])
    )
    assert [n["instance"]["bkInstId"] for n in reply["data"]["instance"]["topology"]["nodes"]] == [
        21,
        23,
    ]
    reply = await graphql(client, TOPOLOGY, variables(11, depth=2, maxNodes=2))
    found = reply["data"]["instance"]["topology"]
    assert [n["instance"]["bkInstId"] for n in found["nodes"]] == [11, 21]
    assert found["truncated"] is True

    # What depends on host 22: the switches whose associations point at it.
    reply = await graphql(client, IMPACT, {"id": 22})
    assert reply["data"]["impact"] == {
        "nodes": [
            {"depth": 1, "instance": {"bkInstId": 11, "bkInstName": "sw-01"}},
            {"depth": 1, "instance": {"bkInstId": 13, "bkInstName": "sw-02"}},
        ],
        "truncated": False,
    }
    reply = await graphql(client, IMPACT, {"id": 23})
    assert [(n["instance"]["bkInstId"], n["depth"]) for n in reply["data"]["impact"]["nodes"]] == [
        (21, 1),
        (11, 2),
    ]
    reply = await graphql(client, IMPACT, {"id": 11, "direction": "OUT", "maxNodes": 1})
    assert reply["data"]["impact"] == {
        "nodes": [{"depth": 1, "instance": {"bkInstId": 21, "bkInstName": "10.0.0.1"}}],
        "truncated": True,
    }


@pytest.mark.parametrize(
    ("query", "values", "code", "message"),
    [
        (SMALL, variables(11, depth=-1), "PARAMETER_INVALID", "'depth' 参数无效或不存在"),
        (SMALL, variables(11, depth=7), "EXCEEDS_LIMIT", "depth 超过限制 6"),
        (SMALL, variables(11, maxNodes=0), "PARAMETER_INVALID", "'maxNodes' 参数无效或不存在"),
        (SMALL, variables(11, maxNodes=1001), "EXCEEDS_LIMIT", "maxNodes 超过限制 1000"),
        (IMPACT, {"id": 12}, "PARAMETER_INVALID", "'bkInstId' 参数无效或不存在"),
        (IMPACT, {"id": 11, "maxNodes": -5}, "PARAMETER_INVALID", "'maxNodes' 参数无效或不存在"),
        (IMPACT, {"id": 11, "maxNodes": 1001}, "EXCEEDS_LIMIT", "maxNodes 超过限制 1000"),
    ],
)
async def test_graphql_refuses_bad_arguments(client, query, values, code, message):
    reply = await graphql(client, query, values)
    (error,) = reply["errors"]
    assert error["extensions"]["code"] == code
    assert error["extensions"]["bkErrorCode"] == {"PARAMETER_INVALID": 1199011}.get(code, 1199035)
    assert error["message"] == message


async def test_graphql_reads_the_neighbourhood_in_one_statement(client, db, hosts):
    """A neighbourhood of 31 instances costs the statements of one of 2: no query per node."""
    ring = await new_instances(db, "host", "ring", 31)
    await link(db, DEPENDS, [(ring[0], r) for r in ring[1:]])
    (pair,) = await new_instances(db, "host", "pair", 1)
    await link(db, LINKS, [(pair, ring[1])])
    await graphql(client, TOPOLOGY, variables(pair))  # whatever a first request does once
    counts = []
    for start in (ring[0], pair):
        with count_statements(db) as statements:
            reply = await graphql(client, TOPOLOGY, variables(start))
        assert "errors" not in reply, reply
        recursive = [s for s in statements if "RECURSIVE" in s.upper()]
        assert len(recursive) == 1
        counts.append(len(statements))
    assert len(reply["data"]["instance"]["topology"]["nodes"]) == 2
    assert counts[0] == counts[1]


async def test_the_cost_counts_topologies_by_max_nodes(client, db, database_url):
    """A topology is counted by its maxNodes (the default setting when not given), and refused
    before anything runs when that costs more than the limit."""
    wide = """
    query Wide($maxNodes: Int) {
      instance(bkInstId: 11) {
        topology(depth: 2, maxNodes: $maxNodes) {
          nodes { depth instance { bkInstId bkObjId bkInstName creator createTime lastTime } }
          edges { association { id bkInstId bkAsstInstId bkAsstId bkObjAsstId } }
          truncated
        }
      }
    }
    """
    for given in ({}, {"maxNodes": None}):  # the default, 200
        reply = await graphql(client, wide, given)
        assert "errors" not in reply, reply
        assert len(reply["data"]["instance"]["topology"]["nodes"]) <= 200
    for given in ({"maxNodes": 1000},):
        with count_statements(db) as statements:
            reply = await graphql(client, wide, given)
        (error,) = reply["errors"]
        assert reply.get("data") is None
        # instance + topology + truncated, nodes 1 + 1000 x (depth + instance + 6 fields),
        # edges 1 + 1000 x (association + 5 fields)
        assert error["extensions"] == {
            "code": "QUERY_TOO_COSTLY",
            "cost": 3 + (1 + 1000 * 8) + (1 + 1000 * 6),
            "limit": 10_000,
        }
        assert not [s for s in statements if "RECURSIVE" in s.upper() or "instances" in s]
    reply = await graphql(client, wide, {"maxNodes": 500})
    assert "errors" not in reply, reply
    # The same for impact; and a lower setting lowers the default.
    impact = (
        "{ impact(bkInstId: 21, maxNodes: 1000) { nodes { depth instance { bkInstId "
        "bkInstName %s } } } }"
    )
    reply = await graphql(client, impact % " ".join(["creator"] * 9))
    assert reply["errors"][0]["extensions"]["cost"] == 1 + 1 + 1000 * (1 + 1 + 11)
    app = create_app(Settings(database_url=database_url, topology_max_nodes=100))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as small:
        reply = await graphql(small, wide)
        assert "errors" not in reply, reply
        reply = await graphql(small, wide, {"maxNodes": 101})
        assert reply["errors"][0]["extensions"]["code"] == "EXCEEDS_LIMIT"
