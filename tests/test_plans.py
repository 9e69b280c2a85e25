"""A batch's lookups search by instance whatever the tables' statistics say.

PostgreSQL:
A model association created or filled since ``inst_associations`` was last analyzed has no rows
in the statistics: planned with the values in view, it looks rare, and the planner may look each
source up through an index that starts with the model association only, reading every row of
the model association for each source. The cost of a batch then grows with the model
association (an import into a new one costs the square of its size). ``bulk.generic_plans``
plans the lookups from the statistics alone, by instance.

SQLite, which the service never analyzes, preferred the unique index on (model association,
source, target), covering, with its model association alone to the index on (model
association, target) for the targets of a 1:1 or 1:n batch: every row of the model association
read by every batch.
"""

from __future__ import annotations

import pytest
from sqlalchemy import event, text

from cmdbgraph.db import bulk
from cmdbgraph.services import associations
from cmdbgraph.services.caller import SYSTEM
from tests.support.databases import new_instances
from tests.support.siblings import BELONG, CONNECT, DEFAULT

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


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("asst", [BELONG, DEFAULT, CONNECT])
async def test_sqlite_searches_inst_associations_by_instance(db, asst):
    """Every search of inst_associations in a batch's plans uses an instance id, never the
    model association alone (EXPLAIN QUERY PLAN of the statements the batch ran, with their
    parameters, on tables never analyzed)."""
    model = {BELONG: ("bk_switch", "host"), DEFAULT: ("bk_router", "bk_firewall")}.get(
        asst, ("bk_switch", "host")
    )
    sources = await new_instances(db, model[0], "plan-src", 3)
    targets = await new_instances(db, model[1], "plan-dest", 3)
    ran: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if statement.lstrip().upper().startswith("SELECT") and "inst_associations" in statement:
            ran.append((statement, parameters))

    engine = db._writer.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        result = await associations.batch_create(
            db,
            SYSTEM,
            associations.BatchCreateRequest(
                model[0],
                model[1],
                asst,
                [associations.Detail(*p) for p in zip(sources, targets, strict=True)],
            ),
        )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert result.created_count == 3
    assert ran, "the batch looked nothing up in inst_associations"
    async with db.read() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        for statement, parameters in ran:
            cursor = await raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plan = [row[3] for row in await cursor.fetchall()]
            searches = [step for step in plan if "inst_associations" in step or "SEARCH a " in step]
            assert searches, plan
            for step in searches:
                assert "bk_inst_id=?" in step or "bk_asst_inst_id=?" in step, plan
