"""``python -m benchmarks.imports``: what ``cmdbgraph import associations`` costs, and where.

One run prepares a database (a model association between two new models, 500 x 200 instances)
and a CSV file of their 100,000 pairs in which every hundredth row is refused while reading
(a target that is not a number), then measures, each on its own copy of the database:

1. ``command``: ``cmdbgraph import associations rows.csv`` (a subprocess, as a user runs it:
   start-up, reading, progress off), then the same again (every row already present);
2. ``service, 5,000 a transaction``: what the command does without start-up and reading:
   ``batch_create`` in-process on the rows already read, 5,000 at a time;
3. ``service, 200 a transaction``: the same 200 at a time, one transaction each: what the
   import did before it wrote thousands of rows a transaction, and what a caller sending
   upstream-sized batches gets;
4. ``raw sqlite3`` (SQLite only): stdlib ``sqlite3`` inserting the same associations and
   their audit rows with ``executemany``, 5,000 a transaction, with no check at all: the floor.

The methods run interleaved, round by round, in an order that rotates, so a busy stretch of
a shared machine hits them alike; the table gives the median seconds, rows per second and the
ratios to the command and to the floor. Run from the repository root:

    .venv/bin/python -m benchmarks.imports [--rounds 3] [--racks 500] [--postgresql] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from cmdbgraph.db import migrate
from cmdbgraph.db.engine import Database
from cmdbgraph.services import associations, catalog, transfer
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.limits import IMPORT_CHUNK, IMPORT_TRANSACTION, Limits
from cmdbgraph.settings import Settings
from tests.support.databases import new_instances

ASSOCIATION = "imp_rack_belong_imp_server"
CALLER = Caller(username="bench", app_code="cmdbgraph", enforce_permissions=False)
SERVERS = 200


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def prepare(url: str, racks: int) -> list[str]:
    """The prepared database at ``url``; the lines of the CSV file."""
    db = Database(Settings(database_url=url))
    try:
        await migrate.upgrade(db)
        for obj_id, name in (("imp_rack", "Rack"), ("imp_server", "Server")):
            await catalog.create_model(db, CALLER, catalog.NewModel(obj_id, name))
        await catalog.create_model_association(
            db, CALLER, catalog.NewModelAssociation("imp_rack", "imp_server", "belong", "n:n")
        )
        rack_ids = await new_instances(db, "imp_rack", "rack", racks)
        server_ids = await new_instances(db, "imp_server", "srv", SERVERS)
    finally:
        await db.dispose()
    lines = ["bk_obj_asst_id,bk_inst_id,bk_asst_inst_id"]
    for number, (rack, server) in enumerate(
        ((r, s) for r in rack_ids for s in server_ids), start=1
    ):
        lines.append(f"{ASSOCIATION},{rack},{server}" + ("x" if number % 100 == 0 else ""))
    return lines


def write(csv_path: Path, lines: list[str]) -> None:
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_rows(csv_path: Path) -> list[transfer.Row]:
    reader = transfer.RowReader(
        io.StringIO(csv_path.read_text(encoding="utf-8")), "csv", by_name=False
    )
    rows: list[transfer.Row] = []
    while (chunk := reader.chunk()) is not None:
        rows.extend(chunk.rows)
    return rows


# ---------------------------------------------------------------------------------------------
# The methods: each returns its wall seconds (first run, and re-run where it has one).


def command(url: str, csv_path: Path) -> tuple[float, float]:
    def run() -> float:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "cmdbgraph.cli", "import", "associations", str(csv_path),
             "--progress", "off", "--database-url", url],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        if done.returncode not in (0, 1) or "created" not in done.stderr:
            raise RuntimeError(f"the import failed:\n{done.stderr}")
        return elapsed

    return run(), run()


def service(size: int) -> Callable[[str, list[transfer.Row]], float]:
    async def run(url: str, rows: list[transfer.Row]) -> float:
        db = Database(Settings(database_url=url))
        limits = Limits(max_batch_size=max(size, IMPORT_CHUNK))
        try:
            async with db.read() as conn:
                model_association = await associations.load_model_association(conn, ASSOCIATION)
            assert model_association is not None
            started = time.perf_counter()
            for start in range(0, len(rows), size):
                await associations.batch_create(
                    db,
                    CALLER,
                    associations.BatchCreateRequest(
                        model_association.bk_obj_id,
                        model_association.bk_asst_obj_id,
                        ASSOCIATION,
                        [
                            associations.Detail(int(r.source), int(r.target))
                            for r in rows[start : start + size]
                        ],
                    ),
                    limits=limits,
                )
            return time.perf_counter() - started
        finally:
            await db.dispose()

    return lambda url, rows: asyncio.run(run(url, rows))


def raw_sqlite(url: str, rows: list[transfer.Row]) -> float:
    path = url.split("///", 1)[1]
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON"):
            connection.execute(f"PRAGMA {pragma}")
        now = datetime.now(UTC).isoformat()
        started = time.perf_counter()
        for start in range(0, len(rows), IMPORT_TRANSACTION):
            chunk = rows[start : start + IMPORT_TRANSACTION]
            connection.execute("BEGIN IMMEDIATE")
            first = connection.execute("SELECT coalesce(max(id), 0) + 1 FROM inst_associations")
            next_id = first.fetchone()[0]
            connection.executemany(
                "INSERT INTO inst_associations (bk_obj_asst_id, bk_asst_id, bk_obj_id, "
                "bk_inst_id, bk_asst_obj_id, bk_asst_inst_id, mapping, bk_supplier_account, "
                "bk_biz_id, creator, create_time) "
                "VALUES (?, 'belong', 'imp_rack', ?, 'imp_server', ?, 'n:n', '0', 0, ?, ?)",
                [(ASSOCIATION, r.source, r.target, CALLER.username, now) for r in chunk],
            )
            connection.executemany(
                "INSERT INTO audit_entries (audit_type, resource_type, action, resource_id, "
                "resource_name, operation_detail, bk_username, bk_supplier_account, app_code, "
                "request_id, operation_time) VALUES ('model_instance', "
                "'instance_association', 'create', ?, '', ?, ?, '0', 'cmdbgraph', '', ?)",
                [
                    (
                        r.source,
                        orjson.dumps({"asst_id": ASSOCIATION, "inst_asst_id": next_id + i}),
                        CALLER.username,
                        now,
                    )
                    for i, r in enumerate(chunk)
                ],
            )
            connection.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        connection.close()


# ---------------------------------------------------------------------------------------------
# The run.


class Copies:
    """Fresh copies of the prepared database: files on SQLite, templates on PostgreSQL."""

    def __init__(self, directory: Path, base_url: str, server=None) -> None:
        self.directory, self.base_url, self.server = directory, base_url, server
        self.count = 0

    def new(self) -> str:
        self.count += 1
        if self.server is None:
            path = self.directory / f"copy-{self.count}.sqlite3"
            shutil.copyfile(self.base_url.split("///", 1)[1], path)
            return f"sqlite+aiosqlite:///{path}"
        import asyncpg

        name = f"copy_{self.count}"

        async def create() -> None:
            conn = await asyncpg.connect(self.server.dsn("postgres"))
            try:
                await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "bench_import"')
            finally:
                await conn.close()

        asyncio.run(create())
        return self.server.url(name)


def measure(copies: Copies, csv_path: Path, rounds: int, sqlite: bool) -> dict[str, list[float]]:
    rows = read_rows(csv_path)
    methods: dict[str, Callable[[str], float | tuple[float, float]]] = {
        "command": lambda url: command(url, csv_path),
        f"service, {IMPORT_TRANSACTION:,} a transaction": lambda url: service(IMPORT_TRANSACTION)(
            url, rows
        ),
        f"service, {IMPORT_CHUNK} a transaction": lambda url: service(IMPORT_CHUNK)(url, rows),
    }
    if sqlite:
        methods["raw sqlite3 (floor)"] = lambda url: raw_sqlite(url, rows)
    times: dict[str, list[float]] = {name: [] for name in methods}
    times["command, again"] = []
    names = list(methods)
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            log(f"round {round_number + 1}/{rounds}: {name}")
            result = methods[name](copies.new())
            if isinstance(result, tuple):
                times[name].append(result[0])
                times["command, again"].append(result[1])
            else:
                times[name].append(result)
    return times


def table(times: dict[str, list[float]], rows: int) -> str:
    medians = {name: statistics.median(values) for name, values in times.items() if values}
    floor = medians.get("raw sqlite3 (floor)")
    lines = [
        f"{rows:,} rows (1% refused while reading), median of {len(times['command'])} rounds",
        f"{'method':<30} {'seconds':>8} {'rows/s':>9} {'x command':>10} {'x floor':>8}",
    ]
    for name, seconds in medians.items():
        ratio = f"{seconds / floor:8.2f}" if floor else f"{'-':>8}"
        lines.append(
            f"{name:<30} {seconds:8.2f} {rows / seconds:9.0f} "
            f"{seconds / medians['command']:10.2f} {ratio}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.imports", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--racks", type=int, default=500, help="rows = racks x 200")
    parser.add_argument("--postgresql", action="store_true", help="on PostgreSQL instead")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cmdbgraph-import-bench-") as temporary:
        directory = Path(temporary)
        csv_path = directory / "rows.csv"
        if args.postgresql:
            from tests.support.pgserver import postgres_server

            with postgres_server() as server:
                subprocess.run(
                    [sys.executable, "-c", "import asyncio, asyncpg, sys\n"
                     "async def m():\n"
                     "    c = await asyncpg.connect(sys.argv[1])\n"
                     "    await c.execute('CREATE DATABASE bench_import')\n"
                     "asyncio.run(m())", server.dsn("postgres")],
                    check=True,
                )  # fmt: skip
                base = server.url("bench_import")
                log("preparing the PostgreSQL database")
                write(csv_path, asyncio.run(prepare(base, args.racks)))
                times = measure(Copies(directory, base, server), csv_path, args.rounds, False)
        else:
            base = f"sqlite+aiosqlite:///{directory / 'base.sqlite3'}"
            log("preparing the SQLite database")
            write(csv_path, asyncio.run(prepare(base, args.racks)))
            times = measure(Copies(directory, base), csv_path, args.rounds, True)
    rows = args.racks * SERVERS
    if args.json:
        print(orjson.dumps({"rows": rows, "seconds": times}).decode())
    else:
        print(table(times, rows))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
