"""PostgreSQL plans a batch's lookups the same way whatever its statistics say.

A model association created or filled since ``inst_associations`` was last analyzed has no rows
in the statistics: planned with the values in view, it looks rare, and the planner may look each
source up through an index that starts with the model association only, reading every row of
the model association for each source. The cost of a batch then grows with the model
association (an import into a new one costs the square of its size). ``bulk.generic_plans``
plans the lookups from the statistics alone, by instance.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from cmdbgraph.db import bulk
from cmdbgraph.services import associations
from cmdbgraph.services.caller import SYSTEM
from tests.support.databases import new_instances
from tests.support.siblings import BELONG, DEFAULT

# The rows this connection's sequential scans of inst_associations read so far, and the entries
# its scans of the table's indexes returned.
ROWS_READ = text(
    "SELECT pg_stat_get_xact_tuples_returned('inst_associations'::regclass) + "
    "(SELECT sum(pg_stat_get_xact_tuples_returned(indexrelid)) FROM pg_index "
    "WHERE indrelid = 'inst_associations'::regclass)"
)


async def fill(db, bk_obj_asst_id: str, pairs: list[tuple[int, int]]) -> None:
    """Store ``pairs`` in ``bk_obj_asst_id`` with one plain INSERT (no checks, no audit)."""
    async with db.write() as conn:
        await conn.execute(
            text(
                "INSERT INTO inst_associations (bk_obj_asst_id, bk_asst_id, bk_obj_id, "
                "bk_inst_id, bk_asst_obj_id, bk_asst_inst_id, mapping, create_time) "
                "SELECT m.bk_obj_asst_id, m.bk_asst_id, m.bk_obj_id, k.src, m.bk_asst_obj_id, "
                "k.dest, m.mapping, now() FROM model_associations m, "
                "unnest(CAST(:sources AS bigint[]), CAST(:targets AS bigint[])) AS k(src, dest) "
                "WHERE m.bk_obj_asst_id = :asst"
            ),
            {
                "asst": bk_obj_asst_id,
                "sources": [s for s, _ in pairs],
                "targets": [t for _, t in pairs],
            },
        )


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_lookups_read_per_instance_in_a_model_association_the_statistics_miss(
    db, monkeypatch
):
    switches = await new_instances(db, "bk_switch", "plan-sw", 20)
    hosts = await new_instances(db, "host", "plan-host", 50)
    await fill(db, BELONG, [(s, h) for s in switches for h in hosts])  # 1,000 rows
    async with db.write() as conn:
        await conn.execute(text("ANALYZE inst_associations"))
    # Then the 1:1 model association gets 400 rows the statistics do not know of.
    routers = await new_instances(db, "bk_router", "plan-router", 500)
    firewalls = await new_instances(db, "bk_firewall", "plan-fw", 500)
    await fill(db, DEFAULT, list(zip(routers[:400], firewalls[:400], strict=True)))

    read: list[int] = []
    lookup = bulk.stored_associations

    async def counted(conn, *args, **kwargs):
        before = (await conn.execute(ROWS_READ)).scalar_one() or 0
        rows = (await lookup(conn, *args, **kwargs)).all()
        read.append(int((await conn.execute(ROWS_READ)).scalar_one() or 0) - before)
        return rows

    monkeypatch.setattr(bulk, "stored_associations", counted)
    result = await associations.batch_create(
        db,
        SYSTEM,
        associations.BatchCreateRequest(
            "bk_router",
            "bk_firewall",
            DEFAULT,
            [associations.Detail(*p) for p in zip(routers[400:], firewalls[400:], strict=True)],
        ),
    )
    assert result.created_count == 100
    # Per instance: nothing stored for these 200 instances, so (almost) nothing read. Through
    # an index on the model association alone: 100 sources x 400 rows; scanning the table,
    # which its statistics show small: 200 x 1,400.
    assert read == [pytest.approx(0, abs=50)], read
