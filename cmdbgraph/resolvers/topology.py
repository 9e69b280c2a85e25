"""The root query of what depends on an instance (``impact``); an instance's neighbourhood is
its ``topology`` field (schema/types.py)."""

from __future__ import annotations

import strawberry

from cmdbgraph.schema.context import Info
from cmdbgraph.schema.scalars import BigInt
from cmdbgraph.schema.topology import IMPACT_DESCRIPTION, Impact, TopologyDirection, impact


@strawberry.type
class TopologyQueries:
    @strawberry.field(description=IMPACT_DESCRIPTION)
    async def impact(
        self,
        info: Info,
        bk_inst_id: BigInt,
        direction: TopologyDirection = TopologyDirection.IN,
        max_nodes: int | None = None,
    ) -> Impact:
        return await impact(info, int(bk_inst_id), direction=direction, max_nodes=max_nodes)
