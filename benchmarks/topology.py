"""``python -m benchmarks.topology``: what a topology costs on a large association graph.

One run builds a database of ``--associations`` instance associations (default 1,000,000)
between ``--associations / --degree`` instances of one model, each instance the source of
``--degree`` associations to others drawn at random (fixed seed), so each has about
``2 × degree`` neighbours either way. Migrations, the model and the model association go
through the service; the instances and associations are bulk-inserted (stdlib ``sqlite3``
``executemany`` with the secondary indexes built afterwards; ``COPY`` on PostgreSQL), then
the tables are analyzed. It then picks the instance whose ``--depth``-hop neighbourhood (both
directions) is closest to ``--nodes`` instances (computed in Python from the same data) and
times, ``--rounds`` times after ``--warmup`` unmeasured calls, interleaved:

- ``service``: ``cmdbgraph.services.topology.topology(db, start, depth=3, direction=BOTH,
  max_nodes=1000)`` (``--depth``, ``--max-nodes``): the one recursive statement and the
  records built from its rows;
- ``graphql``: the same as ``instance(bkInstId) { topology(depth: 3, maxNodes: 1000) {...} }``
  on ``/graphql`` in-process (ASGI, no network), each node's id, model and name and depth, each
  association's id and ends: what a front end drawing the graph asks for;
- ``impact``: ``cmdbgraph.services.topology.impact(db, start, max_nodes=1000)`` (going IN, any
  depth, capped at 1,000).

It prints the median and p90 ms of each, with the nodes and associations answered. Run from
the repository root:

    .venv/bin/python -m benchmarks.topology [--associations 1000000] [--degree 5] [--depth 3]
        [--nodes 1000] [--max-nodes 1000] [--rounds 30] [--warmup 3] [--postgresql] [--json]
        [--keep]

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

from benchmarks.preparation import copy_connection
from cmdbgraph.app import create_app
from cmdbgraph.db import migrate
from cmdbgraph.db.engine import Database
from cmdbgraph.services import catalog, topology
from cmdbgraph.services.caller import SYSTEM
from cmdbgraph.settings import Settings

MODEL = "bench_node"
KIND = "connect"
OBJ_ASST_ID = f"{MODEL}_{KIND}_{MODEL}"
SEED = 20240611

GRAPHQL = """
query Topology($id: BigInt!, $depth: Int!, $maxNodes: Int!) {
  instance(bkInstId: $id) {
    topology(depth: $depth, maxNodes: $maxNodes) {
      nodes { depth instance { bkInstId bkObjId bkInstName } }
      edges { association { id bkInstId bkAsstInstId } }
      truncated
    }
  }
}
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The graph


def make_graph(instances: int, degree: int) -> list[tuple[int, int]]:
    """(source, target) pairs: every instance 1..instances the source of ``degree`` distinct
    others, drawn at random."""
    rng = random.Random(SEED)
    pairs: list[tuple[int, int]] = []
    for source in range(1, instances + 1):
        targets: set[int] = set()
        while len(targets) < degree:
            target = rng.randint(1, instances)
            if target != source:
                targets.add(target)
        pairs.extend((source, target) for target in sorted(targets))
    return pairs


def neighbourhood_size(adjacency: list[list[int]], start: int, depth: int) -> int:
    seen = {start}
    queue = deque([(start, 0)])
    while queue:
        node, distance = queue.popleft()
        if distance == depth:
            continue
        for neighbour in adjacency[node]:
            if neighbour not in seen:
                seen.add(neighbour)
                queue.append((neighbour, distance + 1))
    return len(seen)


def pick_start(pairs: list[tuple[int, int]], instances: int, depth: int, wanted: int) -> int:
    """Of 200 instances drawn at random, the one whose neighbourhood is closest to ``wanted``."""
    adjacency: list[list[int]] = [[] for _ in range(instances + 1)]
    for source, target in pairs:
        adjacency[source].append(target)
        adjacency[target].append(source)
    rng = random.Random(SEED + 1)
    candidates = [rng.randint(1, instances) for _ in range(200)]
    sizes = {c: neighbourhood_size(adjacency, c, depth) for c in candidates}
    return min(candidates, key=lambda c: (abs(sizes[c] - wanted), c))


# ---------------------------------------------------------------------------------------------
# Loading


async def prepare_catalog(url: str) -> None:
    db = Database(Settings(database_url=url))
    try:
        await migrate.upgrade(db)
        await catalog.create_model(db, SYSTEM, catalog.NewModel(MODEL, "bench node"))
        await catalog.create_model_association(
            db, SYSTEM, catalog.NewModelAssociation(MODEL, MODEL, KIND, mapping="n:n")
        )
    finally:
        await db.dispose()


def load_sqlite(path: Path, instances: int, pairs: list[tuple[int, int]]) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -262144")
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name IN ('instances', 'inst_associations')"
        ).fetchall()
        conn.execute("BEGIN")
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.executemany(
            "INSERT INTO instances (bk_inst_id, bk_obj_id, bk_inst_name, attributes, "
            "bk_supplier_account, creator, create_time, last_time) "
            "VALUES (?, ?, ?, ?, '0', 'bench', ?, ?)",
            (
                (i, MODEL, f"n-{i:07d}", json.dumps({"bk_inst_name": f"n-{i:07d}"}), now, now)
                for i in range(1, instances + 1)
            ),
        )
        conn.executemany(
            "INSERT INTO inst_associations (bk_obj_asst_id, bk_asst_id, bk_obj_id, bk_inst_id, "
            "bk_asst_obj_id, bk_asst_inst_id, mapping, bk_supplier_account, bk_biz_id, creator, "
            "create_time) VALUES (?, ?, ?, ?, ?, ?, 'n:n', '0', 0, 'bench', ?)",
            ((OBJ_ASST_ID, KIND, MODEL, s, MODEL, t, now) for s, t in pairs),
        )
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("COMMIT")
        conn.execute("ANALYZE")


async def load_postgresql(dsn: str, instances: int, pairs: list[tuple[int, int]]) -> None:
    now = datetime.now(UTC)
    conn = await copy_connection(dsn)
    try:
        await conn.copy_records_to_table(
            "instances",
            records=(
                (i, MODEL, f"n-{i:07d}", {"bk_inst_name": f"n-{i:07d}"}, "0", "bench", now, now)
                for i in range(1, instances + 1)
            ),
            columns=[
                "bk_inst_id",
                "bk_obj_id",
                "bk_inst_name",
                "attributes",
                "bk_supplier_account",
                "creator",
                "create_time",
                "last_time",
            ],
        )
        await conn.copy_records_to_table(
            "inst_associations",
            records=(
                (OBJ_ASST_ID, KIND, MODEL, s, MODEL, t, "n:n", "0", 0, "bench", now)
                for s, t in pairs
            ),
            columns=[
                "bk_obj_asst_id",
                "bk_asst_id",
                "bk_obj_id",
                "bk_inst_id",
                "bk_asst_obj_id",
                "bk_asst_inst_id",
                "mapping",
                "bk_supplier_account",
                "bk_biz_id",
                "creator",
                "create_time",
            ],
        )
        # Ids generated later start above the ones given here.
        for table, column in (("instances", "bk_inst_id"), ("inst_associations", "id")):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                f"(SELECT max({column}) FROM {table}))"
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


# ---------------------------------------------------------------------------------------------
# Measuring


async def measure(url: str, start: int, args: argparse.Namespace) -> dict[str, dict]:
    settings = Settings(database_url=url, auth=False)
    db = Database(settings)
    app = create_app(settings, db=db)
    shapes: dict[str, tuple[int, int, bool]] = {}
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench"
        ) as client:

            async def service() -> None:
                found = await topology.topology(
                    db,
                    start,
                    depth=args.depth,
                    max_nodes=args.max_nodes,
                    direction=topology.Direction.BOTH,
                )
                assert found is not None
                shapes["service"] = (len(found.nodes), len(found.edges), found.truncated)

            async def graphql() -> None:
                response = await client.post(
                    "/graphql",
                    json={
                        "query": GRAPHQL,
                        "variables": {"id": start, "depth": args.depth, "maxNodes": args.max_nodes},
                    },
                )
                reply = response.json()
                if response.status_code != 200 or reply.get("errors"):
                    raise SystemExit(f"graphql: {response.status_code} {str(reply)[:500]}")
                found = reply["data"]["instance"]["topology"]
                shapes["graphql"] = (len(found["nodes"]), len(found["edges"]), found["truncated"])

            async def impact() -> None:
                found = await topology.impact(db, start, max_nodes=args.max_nodes)
                assert found is not None
                shapes["impact"] = (len(found.nodes), 0, found.truncated)

            calls: dict[str, Callable[[], Awaitable[None]]] = {
                "service": service,
                "graphql": graphql,
                "impact": impact,
            }
            samples: dict[str, list[float]] = {name: [] for name in calls}
            for round_ in range(args.warmup + args.rounds):
                names = list(calls)
                shift = round_ % len(names)
                for name in names[shift:] + names[:shift]:
                    began = time.perf_counter()
                    await calls[name]()
                    elapsed = (time.perf_counter() - began) * 1000
                    if round_ >= args.warmup:
                        samples[name].append(elapsed)
    finally:
        await db.dispose()
    results = {}
    for name, values in samples.items():
        ordered = sorted(values)
        nodes, edges, truncated = shapes[name]
        results[name] = {
            "median_ms": round(statistics.median(ordered), 2),
            "p90_ms": round(ordered[max(0, int(0.9 * len(ordered)) - 1)], 2),
            "nodes": nodes,
            "edges": edges,
            "truncated": truncated,
            "samples_ms": [round(v, 2) for v in values],
        }
    return results


def print_table(results: dict[str, dict[str, dict]]) -> None:
    header = f"{'backend':<11}{'call':<9}{'median ms':>10}{'p90 ms':>9}{'nodes':>7}{'edges':>7}"
    print(f"{header}  truncated")
    for backend, found in results.items():
        for name, r in found.items():
            print(
                f"{backend:<11}{name:<9}{r['median_ms']:>10.1f}{r['p90_ms']:>9.1f}"
                f"{r['nodes']:>7}{r['edges']:>7}  {r['truncated']}"
            )


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.topology", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--associations", type=int, default=1_000_000)
    parser.add_argument("--degree", type=int, default=5, help="associations per source")
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=1000, help="the neighbourhood wanted")
    parser.add_argument("--max-nodes", type=int, default=1000, help="the topology's maxNodes")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--postgresql", action="store_true", help="also on a throwaway PostgreSQL")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.degree < 1 or args.associations < args.degree * (args.degree + 1):
        parser.error("--associations must be at least degree x (degree + 1)")
    if args.rounds < 1 or args.warmup < 0 or not 0 <= args.depth <= 6:
        parser.error("--rounds >= 1, --warmup >= 0, --depth from 0 to 6 (the default maximum)")
    if not 1 <= args.max_nodes <= 1000:
        parser.error("--max-nodes from 1 to 1000 (the default maximum)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    directory = Path(tempfile.mkdtemp(prefix="cmdbgraph-topology-"))
    instances = args.associations // args.degree
    report: dict[str, object] = {"config": {k: v for k, v in vars(args).items() if k != "json"}}
    try:
        t0 = time.perf_counter()
        pairs = make_graph(instances, args.degree)
        start = pick_start(pairs, instances, args.depth, args.nodes)
        log(
            f"graph: {instances:,} instances, {len(pairs):,} associations, start {start} "
            f"({time.perf_counter() - t0:.1f} s)"
        )
        report["start"] = start
        results: dict[str, dict] = {}

        path = directory / "topology.sqlite3"
        url = f"sqlite+aiosqlite:///{path}"
        t0 = time.perf_counter()
        asyncio.run(prepare_catalog(url))
        load_sqlite(path, instances, pairs)
        log(f"[sqlite] loaded in {time.perf_counter() - t0:.1f} s; measuring ...")
        results["sqlite"] = asyncio.run(measure(url, start, args))

        if args.postgresql:
            from tests.support.pgserver import postgres_server

            log("[postgresql] starting a throwaway server ...")
            with postgres_server() as server:
                asyncio.run(_create_database(server.dsn(), "bench_topology"))
                pg_url = server.url("bench_topology")
                t0 = time.perf_counter()
                asyncio.run(prepare_catalog(pg_url))
                asyncio.run(load_postgresql(server.dsn("bench_topology"), instances, pairs))
                log(f"[postgresql] loaded in {time.perf_counter() - t0:.1f} s; measuring ...")
                results["postgresql"] = asyncio.run(measure(pg_url, start, args))
        report["results"] = results
        report["wall_seconds"] = round(time.perf_counter() - began, 1)
    finally:
        if args.keep:
            log(f"kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(results)
        print(f"load average {os.getloadavg()[0]:.2f}; wall time {report['wall_seconds']} s")
    return 0


async def _create_database(dsn: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(main())
