"""GraphQL types of an instance's topology and impact (services/topology.py).

The nodes and edges reuse ``Instance`` and ``InstAssociation``, built from the rows of the one
statement that found them (no query per node). They are referred to lazily: ``types.py``
imports this module for ``Instance.topology``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import strawberry

from cmdbgraph.schema.context import Info
from cmdbgraph.services import topology
from cmdbgraph.services.errors import parameter_invalid

if TYPE_CHECKING:
    from cmdbgraph.schema.types import Instance, InstAssociation

TOPOLOGY_DESCRIPTION = (
    "The instances within `depth` associations of this one (default 1, at most "
    "`CMDBGRAPH_TOPOLOGY_MAX_DEPTH`), each with its distance, and the associations between "
    "them, in one query: following `direction`, only associations of the kinds `bkAsstIds` "
    "and only instances of the models `bkObjIds` (this instance is always there). At most "
    "`maxNodes` instances, the nearest first, and as many associations (default and maximum "
    "`CMDBGRAPH_TOPOLOGY_MAX_NODES`); `truncated` says whether anything was left out."
)
IMPACT_DESCRIPTION = (
    "What depends on an instance, at any distance: the blast radius of taking it down. In "
    "BlueKing's terms the source of an association depends on its target (`host belong "
    "rack`, `app connect db`), so the instances that depend on this one are those whose "
    "associations lead to it: found going `IN` (the default); `OUT` answers what it depends "
    "on. Each instance once, with its distance, the nearest first; at most `maxNodes` "
    "(default and maximum `CMDBGRAPH_TOPOLOGY_MAX_NODES`), `truncated` when there were more. "
    "The instance itself is not among them; one that does not exist answers 1199011."
)


@strawberry.enum(
    description="Which way associations are followed: `OUT` from the source to the target "
    "(`A belong B` leads from A to B: what A depends on), `IN` from the target to the source "
    "(what depends on B), `BOTH` either way."
)
class TopologyDirection(enum.Enum):
    OUT = "out"
    IN = "in"
    BOTH = "both"


@strawberry.type(description="An instance reached, and how far it is.")
class TopologyNode:
    instance: Annotated[Instance, strawberry.lazy("cmdbgraph.schema.types")]
    depth: int = strawberry.field(
        description="The fewest associations between the instance asked about and this one "
        "(0: that instance)."
    )


@strawberry.type(description="An association between two instances of a topology.")
class TopologyEdge:
    association: Annotated[InstAssociation, strawberry.lazy("cmdbgraph.schema.types")]


@strawberry.type(description="An instance's neighbourhood: instances and associations.")
class Topology:
    nodes: list[TopologyNode] = strawberry.field(
        description="The instance asked about first, then by depth and id."
    )
    edges: list[TopologyEdge] = strawberry.field(
        description="The associations between the nodes (of the kinds asked for), each once, by id."
    )
    truncated: bool = strawberry.field(
        description="Something was left out: instances beyond `depth` or `maxNodes`, or more "
        "than `maxNodes` associations between the nodes."
    )


@strawberry.type(description="What depends on an instance (or what it depends on).")
class Impact:
    nodes: list[TopologyNode] = strawberry.field(description="By depth and id.")
    truncated: bool = strawberry.field(description="There were more than `maxNodes`.")


def _bounds(info: Info, depth: int | None, max_nodes: int | None) -> tuple[int | None, int]:
    limits = info.context.limits
    return topology.topology_bounds(
        depth,
        max_nodes,
        max_depth=limits.topology_max_depth,
        nodes_limit=limits.topology_max_nodes,
        default_nodes=limits.topology_default_nodes,
        depth_name="depth",
        nodes_name="maxNodes",
    )


def _nodes(found: Sequence[topology.Node]) -> list[TopologyNode]:
    from cmdbgraph.schema.types import Instance

    return [TopologyNode(instance=Instance.from_record(n.instance), depth=n.depth) for n in found]


async def neighbourhood(
    info: Info,
    bk_inst_id: int,
    *,
    depth: int,
    direction: TopologyDirection,
    bk_asst_ids: list[str] | None,
    bk_obj_ids: list[str] | None,
    max_nodes: int | None,
) -> Topology:
    """``Instance.topology``."""
    from cmdbgraph.schema.types import InstAssociation

    checked_depth, checked_nodes = _bounds(info, depth, max_nodes)
    found = await topology.topology(
        info.context.db,
        bk_inst_id,
        depth=checked_depth,
        max_nodes=checked_nodes,
        direction=topology.Direction(direction.value),
        bk_asst_ids=bk_asst_ids,
        bk_obj_ids=bk_obj_ids,
    )
    if found is None:  # deleted since it was read
        raise parameter_invalid("bkInstId")
    return Topology(
        nodes=_nodes(found.nodes),
        edges=[TopologyEdge(association=InstAssociation.from_record(a)) for a in found.edges],
        truncated=found.truncated,
    )


async def impact(
    info: Info, bk_inst_id: int, *, direction: TopologyDirection, max_nodes: int | None
) -> Impact:
    """``Query.impact``."""
    _, checked_nodes = _bounds(info, None, max_nodes)
    found = await topology.impact(
        info.context.db,
        bk_inst_id,
        max_nodes=checked_nodes,
        direction=topology.Direction(direction.value),
    )
    if found is None:
        raise parameter_invalid("bkInstId")
    return Impact(nodes=_nodes(found.nodes), truncated=found.truncated)
