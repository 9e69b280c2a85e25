"""Where a batch's time goes on PostgreSQL: each statement of the service's batch, and the
200-row insert of ``inst_associations`` under variants of its constraints and plan settings.

    .venv/bin/python -m benchmarks.postgresql [--rounds 30] [--json]

On a throwaway PostgreSQL (``tests/support/pgserver``, fsync off), prepared as ``python -m
benchmarks`` prepares its databases:

1. **statements**: ``associations.batch_create`` in-process, ``--rounds`` batches of 200 fresh
   pairs (1:1), each statement timed by SQLAlchemy's cursor events (from the driver call to its
   return: binding, the round trip, the server's work, reading the rows); the median per
   statement, and the batch's median;
2. **insert variants**: one database per variant (a copy of the prepared one, then the
   variant's DDL), the same ``INSERT ... SELECT FROM unnest(...) RETURNING`` of 200 fresh pairs
   on plain asyncpg in a transaction of its own, interleaved round by round; the median and
   its ratio to the schema as it is with custom plans (what every insert cost before the
   service planned them generically). The variants that drop a constraint show what it costs,
   not something to ship: the constraints are the database's guarantees.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import defaultdict

from sqlalchemy import event

from benchmarks.methods import requests_of
from benchmarks.preparation import DEST_OBJ, OBJ_ASST_ID, SRC_OBJ, PostgresStore, Workload, prepare
from cmdbgraph.db.engine import Database
from cmdbgraph.services import associations
from cmdbgraph.settings import Settings

WARMUP = 5

INSERT = (
    "INSERT INTO inst_associations (bk_obj_asst_id, bk_asst_id, bk_obj_id, bk_inst_id, "
    "bk_asst_obj_id, bk_asst_inst_id, mapping, bk_supplier_account, bk_biz_id, creator, "
    "create_time) "
    "SELECT $1, 'default', $2, k.src, $3, k.dest, '1:1', '0', 0, 'admin', now() "
    "FROM unnest($4::bigint[], $5::bigint[]) AS k(src, dest) "
    "RETURNING id, bk_inst_id, bk_asst_inst_id"
)

DROP_MODEL_ASSOCIATION_FK = (
    "ALTER TABLE inst_associations DROP CONSTRAINT fk_inst_associations_model_association"
)
DROP_INSTANCE_FKS = (
    "ALTER TABLE inst_associations DROP CONSTRAINT fk_inst_associations_bk_inst_id_instances",
    "ALTER TABLE inst_associations DROP CONSTRAINT fk_inst_associations_bk_asst_inst_id_instances",
)
DEFER_FKS = tuple(
    f"ALTER TABLE inst_associations ALTER CONSTRAINT {name} DEFERRABLE INITIALLY DEFERRED"
    for name in (
        "fk_inst_associations_model_association",
        "fk_inst_associations_bk_inst_id_instances",
        "fk_inst_associations_bk_asst_inst_id_instances",
    )
)
SECONDARY_INDEXES = (
    "ix_inst_associations_target",
    "ix_inst_associations_src_inst",
    "ix_inst_associations_dest_inst",
    "uq_inst_associations_one_to_one_source",
    "uq_inst_associations_single_source_per_target",
)
# The three foreign keys replaced by one trigger per statement, reading the inserted rows as a
# transition table: the same refusals, each check one set-based query instead of one per row
# and key, with the referenced rows locked as the foreign keys lock them (FOR KEY SHARE). A
# complete replacement would also need triggers on the referenced tables' deletes and updates.
STATEMENT_TRIGGER = """
CREATE FUNCTION bench_check_references() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE wanted int; found int;
BEGIN
  SELECT count(*) INTO wanted FROM (
    SELECT bk_inst_id FROM new_rows UNION SELECT bk_asst_inst_id FROM new_rows) s;
  SELECT count(*) INTO found FROM (
    SELECT 1 FROM instances WHERE bk_inst_id IN (
      SELECT bk_inst_id FROM new_rows UNION SELECT bk_asst_inst_id FROM new_rows)
    ORDER BY bk_inst_id FOR KEY SHARE) s;
  IF found <> wanted THEN
    RAISE foreign_key_violation USING MESSAGE = 'an instance does not exist';
  END IF;
  SELECT count(*) INTO wanted FROM (SELECT DISTINCT bk_obj_asst_id, bk_obj_id, bk_asst_obj_id,
    bk_asst_id, mapping FROM new_rows) s;
  SELECT count(*) INTO found FROM (SELECT 1 FROM model_associations m
    JOIN (SELECT DISTINCT bk_obj_asst_id, bk_obj_id, bk_asst_obj_id, bk_asst_id, mapping
          FROM new_rows) n USING (bk_obj_asst_id, bk_obj_id, bk_asst_obj_id, bk_asst_id, mapping)
    FOR KEY SHARE OF m) s;
  IF found <> wanted THEN
    RAISE foreign_key_violation USING MESSAGE = 'not the model association''s copy';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER bench_references AFTER INSERT ON inst_associations
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bench_check_references();
"""

# name -> (plan_cache_mode of the connection, DDL run on its copy first)
VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "as is, custom plans (before)": ("force_custom_plan", ()),
    "as is, generic plans (the service now)": ("force_generic_plan", ()),
    "foreign keys deferred to commit": ("force_custom_plan", DEFER_FKS),
    "no model-association foreign key": ("force_custom_plan", (DROP_MODEL_ASSOCIATION_FK,)),
    "no instance foreign keys": ("force_custom_plan", DROP_INSTANCE_FKS),
    "no foreign key": ("force_custom_plan", (DROP_MODEL_ASSOCIATION_FK, *DROP_INSTANCE_FKS)),
    "one trigger per statement for the 3 keys": (
        "force_custom_plan",
        (DROP_MODEL_ASSOCIATION_FK, *DROP_INSTANCE_FKS, STATEMENT_TRIGGER),
    ),
    "no ix_inst_associations_target": (
        "force_generic_plan",
        ("DROP INDEX ix_inst_associations_target",),
    ),
    "no foreign key, no secondary index": (
        "force_custom_plan",
        (
            DROP_MODEL_ASSOCIATION_FK,
            *DROP_INSTANCE_FKS,
            *(f"DROP INDEX {name}" for name in SECONDARY_INDEXES),
        ),
    ),
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def statements(url: str, workload: Workload) -> tuple[float, dict[str, tuple[float, int]]]:
    """The batch's median ms, and per statement (its first 70 characters) its median ms and
    how many times a batch runs it."""
    db = Database(Settings(database_url=url))
    times: dict[str, list[float]] = defaultdict(list)
    engine = db._writer.sync_engine  # one engine on PostgreSQL

    @event.listens_for(engine, "before_cursor_execute")
    def before(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        conn.info["started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def after(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        key = " ".join(statement.split())[:70]
        times[key].append((time.perf_counter() - conn.info["started"]) * 1000)

    requests = requests_of(workload.batches)
    batches: list[float] = []
    try:
        for k in range(workload.per_series):
            if k == workload.warmup:
                times.clear()
            started = time.perf_counter()
            result = await associations.batch_create(
                db, workload.caller(f"bench-statements-{k}"), requests[k]
            )
            if result.created_count != workload.batch_size:
                raise SystemExit(f"batch {k} created {result.created_count}")
            if k >= workload.warmup:
                batches.append((time.perf_counter() - started) * 1000)
    finally:
        await db.dispose()
    per_statement = {
        key: (statistics.median(samples), len(samples) // workload.rounds)
        for key, samples in times.items()
    }
    return statistics.median(batches), per_statement


async def insert_variants(server, names: dict[str, str], workload: Workload) -> dict[str, float]:
    import asyncpg

    connections = {}
    try:
        for variant, database in names.items():
            mode, ddl = VARIANTS[variant]
            conn = await asyncpg.connect(
                server.dsn(database), server_settings={"plan_cache_mode": mode}
            )
            connections[variant] = conn
            for statement in ddl:
                await conn.execute(statement)
        samples: dict[str, list[float]] = {variant: [] for variant in names}
        order = list(names)
        for k in range(workload.per_series):
            shift = k % len(order)
            turn = order[shift:] + order[:shift]
            if k % 2:
                turn.reverse()
            sources = [s for s, _ in workload.batches[k]]
            targets = [t for _, t in workload.batches[k]]
            for variant in turn:
                conn = connections[variant]
                started = time.perf_counter()
                async with conn.transaction():
                    rows = await conn.fetch(
                        INSERT, OBJ_ASST_ID, SRC_OBJ, DEST_OBJ, sources, targets
                    )
                elapsed = (time.perf_counter() - started) * 1000
                if len(rows) != workload.batch_size:
                    raise SystemExit(f"{variant}: inserted {len(rows)}")
                if k >= workload.warmup:
                    samples[variant].append(elapsed)
    finally:
        for conn in connections.values():
            await conn.close()
    return {variant: statistics.median(values) for variant, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.postgresql", description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    from tests.support.pgserver import postgres_server

    started = time.perf_counter()
    with postgres_server() as server:
        store = PostgresStore(server)
        log("preparing ...")
        batches = asyncio.run(prepare(store.base_url, 200, WARMUP + args.rounds))
        workload = Workload(200, WARMUP, args.rounds, False, batches)
        statements_url = store.clone("statements")
        names = {variant: f"bench_variant_{n}" for n, variant in enumerate(VARIANTS)}
        for database in names.values():
            store._create(database, template=store.base_name)
        log("timing the service's statements ...")
        batch_ms, per_statement = asyncio.run(statements(statements_url, workload))
        log("timing the insert's variants, interleaved ...")
        variants = asyncio.run(insert_variants(server, names, workload))
    base = variants["as is, custom plans (before)"]
    if args.json:
        print(
            json.dumps(
                {
                    "batch_median_ms": round(batch_ms, 2),
                    "statements": [
                        {"statement": key, "median_ms": round(ms, 3), "per_batch": count}
                        for key, (ms, count) in per_statement.items()
                    ],
                    "insert_variants_ms": {k: round(v, 2) for k, v in variants.items()},
                    "wall_seconds": round(time.perf_counter() - started, 1),
                },
                indent=2,
            )
        )
        return 0
    print(f"service, one 200-item batch: median {batch_ms:.2f} ms; its statements (median ms):")
    for key, (ms, count) in sorted(per_statement.items(), key=lambda kv: -kv[1][0] * kv[1][1]):
        print(f"  {ms:7.2f}  x{count}  {key}")
    print(f"  {sum(ms * n for ms, n in per_statement.values()):7.2f}  all statements")
    print()
    print("the 200-row INSERT of inst_associations alone, plain asyncpg (median ms, ratio):")
    for variant, ms in variants.items():
        print(f"  {ms:7.2f}  {ms / base:5.2f}  {variant}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
