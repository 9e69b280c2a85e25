"""``python -m benchmarks.paging``: what a page of an association list costs deep in the list, by
cursor (keyset) and by offset, against the first page, in the same run.

One SQLite database (and, with ``--postgresql``, a throwaway PostgreSQL) gets the demo data,
1,000 switches and 1,000 hosts, and ``--size`` associations between them (1,000,000 by
default), written with plain multi-row INSERTs (the service's checks are what
``python -m benchmarks`` measures; here only the reads matter). Then, interleaved round by
round so that a busy moment of the machine hits every method alike, the service reads:

- the first page of ``--page`` associations (``association_slice`` with no cursor);
- the page at position ``--size - --page`` by cursor (``after`` the item before it);
- the same page by offset (``list``-style ``OFFSET``), what the deprecated fields do.

It prints each method's median and its ratio to the first page.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, insert, select

from cmdbgraph.db import migrate
from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import inst_associations
from cmdbgraph.services import associations, demo, instances, paging
from cmdbgraph.services.caller import SYSTEM
from cmdbgraph.settings import Settings

OBJ_ASST = "bk_switch_belong_host"  # the demo's n:n model association
SIDE = 1000  # switches and hosts


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def prepare(url: str, size: int) -> None:
    db = Database(Settings(database_url=url))
    try:
        await migrate.upgrade(db)
        await demo.seed_demo(db)
        switches, hosts = [], []
        for start in range(0, SIDE, 200):
            names = range(start, min(start + 200, SIDE))
            switches += await instances.create_instances(
                db, SYSTEM, "bk_switch", [instances.NewInstance(f"p-sw-{n}") for n in names]
            )
            hosts += await instances.create_instances(
                db, SYSTEM, "host", [instances.NewInstance(f"p-host-{n}") for n in names]
            )
        now = datetime.now(UTC)
        rows = (
            {
                "bk_obj_asst_id": OBJ_ASST,
                "bk_asst_id": "belong",
                "bk_obj_id": "bk_switch",
                "bk_inst_id": switches[n // SIDE].bk_inst_id,
                "bk_asst_obj_id": "host",
                "bk_asst_inst_id": hosts[n % SIDE].bk_inst_id,
                "mapping": "n:n",
                "bk_supplier_account": "0",
                "bk_biz_id": 0,
                "creator": "admin",
                "create_time": now,
            }
            for n in range(size)
        )
        chunk: list[dict] = []
        written = 0
        for row in rows:
            chunk.append(row)
            if len(chunk) == 5000:
                async with db.write(bulk=True) as conn:
                    await conn.execute(insert(inst_associations), chunk)
                written += len(chunk)
                chunk = []
                if written % 100_000 == 0:
                    log(f"  {written:,} associations")
        if chunk:
            async with db.write(bulk=True) as conn:
                await conn.execute(insert(inst_associations), chunk)
    finally:
        await db.dispose()


async def measure(url: str, size: int, page: int, rounds: int) -> dict[str, float]:
    db = Database(Settings(database_url=url))
    try:
        async with db.read() as conn:
            ids = (
                await conn.execute(
                    select(inst_associations.c.id)
                    .order_by(inst_associations.c.id)
                    .offset(size - page - 1)
                    .limit(1)
                )
            ).scalar_one()
            total = (
                await conn.execute(select(func.count()).select_from(inst_associations))
            ).scalar_one()
        assert total >= size, (total, size)
        deep_after = ids  # the item before the deep page
        flt = associations.AssociationFilter()

        async def first_page() -> int:
            found = await associations.association_slice(db, flt, paging.Window(size=page))
            return len(found.items)

        async def by_cursor() -> int:
            win = paging.Window(size=page, after=deep_after)
            found = await associations.association_slice(db, flt, win)
            return len(found.items)

        async def by_offset() -> int:
            found = await associations.find_associations(db, flt, offset=size - page, limit=page)
            return len(found)

        methods = {
            "first page": first_page,
            "deep page by cursor": by_cursor,
            "deep page by offset": by_offset,
        }
        times: dict[str, list[float]] = {name: [] for name in methods}
        names = list(methods)
        for k in range(rounds + 2):
            order = names[k % len(names) :] + names[: k % len(names)]
            for name in order:
                began = time.perf_counter()
                got = await methods[name]()
                elapsed = (time.perf_counter() - began) * 1000
                assert got == page, (name, got)
                if k >= 2:  # two warm-up rounds
                    times[name].append(elapsed)
        return {name: statistics.median(values) for name, values in times.items()}
    finally:
        await db.dispose()


def report(backend: str, medians: dict[str, float], size: int, page: int) -> None:
    base = medians["first page"]
    print(
        f"\n{backend}: a page of {page} associations, at the start and at position {size - page:,}"
    )
    print(f"{'method':<24} {'median ms':>10} {'x first page':>13}")
    for name, value in medians.items():
        print(f"{name:<24} {value:>10.2f} {value / base:>13.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.paging", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--size", type=int, default=1_000_000, help="associations (default 1,000,000)"
    )
    parser.add_argument("--page", type=int, default=100, help="page size (default 100)")
    parser.add_argument("--rounds", type=int, default=30, help="measured rounds (default 30)")
    parser.add_argument("--postgresql", action="store_true", help="also on a throwaway PostgreSQL")
    args = parser.parse_args(argv)
    if args.size > SIDE * SIDE:
        parser.error(f"--size is at most {SIDE * SIDE:,}")
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        urls = [("sqlite", f"sqlite+aiosqlite:///{Path(folder) / 'paging.sqlite3'}")]
        if args.postgresql:
            from tests.support.pgserver import postgres_server

            log("postgresql: starting a throwaway server")
            urls.append(("postgresql", stack.enter_context(postgres_server()).url()))
        for backend, url in urls:
            log(f"{backend}: preparing {args.size:,} associations")
            began = time.perf_counter()
            asyncio.run(prepare(url, args.size))
            log(f"{backend}: prepared in {time.perf_counter() - began:.0f} s")
            medians = asyncio.run(measure(url, args.size, args.page, args.rounds))
            report(backend, medians, args.size, args.page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
