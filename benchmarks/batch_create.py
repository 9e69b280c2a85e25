#!/usr/bin/env python
"""Cost of one ``batch_create_instance_association`` batch, from the raw SQLite limit to GraphQL.

One run prepares one SQLite database (migrated, a 1:1 model association, enough instances),
then measures 200-item batches of fresh pairs (every item succeeds) for:

1. ``raw``: plain stdlib ``sqlite3``, the same checks with ``IN`` queries and one executemany
   INSERT for the associations and one for their audit rows, in one ``BEGIN IMMEDIATE``
   transaction: the limit the service is compared with;
2. ``service``: ``cmdbgraph.services.associations.batch_create`` in-process;
3. ``rest``: the BlueKing REST shim over HTTP, a real uvicorn server process;
4. ``graphql``: the ``batchCreateInstAssociations`` mutation over HTTP, same server, with the
   full per-item selection of ``tests/helpers.BATCH_MUTATION`` (``graphql-min``: only the
   counts and upstream's two maps, to show what the 200 result objects cost);
5. ``per-item``: upstream's algorithm, one item at a time (duplicate, source, target, two 1:1
   checks, INSERT, audit INSERT: 7 statements per item) on the same async SQLAlchemy stack
   (``Database.write()``), in one transaction per batch.

Each method runs on its own copy of the prepared database; the methods run interleaved,
batch by batch, so that a busy stretch of the machine hits them alike. The table gives the
median and p90 wall time per batch, associations/s, the CPU time per batch, and the ratios to
the raw limit. Run from the repository root:

    .venv/bin/python benchmarks/batch_create.py [--rounds 30] [--warmup 5] [--batch-size 200]
        [--json] [--postgresql] [--auth] [--keep]

See benchmarks/README.md for how to read the table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import platform
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    # tests/ is not an installed package: its request shapes and PostgreSQL helper are reused.
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402
from sqlalchemy import bindparam, insert, select, text  # noqa: E402

from cmdbgraph.db import migrate  # noqa: E402
from cmdbgraph.db.engine import Database  # noqa: E402
from cmdbgraph.db.tables import audit_entries, inst_associations, instances  # noqa: E402
from cmdbgraph.services import associations, audit, auth, catalog  # noqa: E402
from cmdbgraph.services.caller import Caller  # noqa: E402
from cmdbgraph.services.instances import NewInstance, create_instances  # noqa: E402
from cmdbgraph.services.records import InstAssociation  # noqa: E402
from cmdbgraph.settings import Settings  # noqa: E402
from tests.helpers import BATCH_MUTATION, ESB_PATH, batch_input, demo_headers, rest_body  # noqa: E402

SRC_OBJ = "bench_src"
DEST_OBJ = "bench_dst"
ASST_KIND = "default"
OBJ_ASST_ID = f"{SRC_OBJ}_{ASST_KIND}_{DEST_OBJ}"
# Who writes: the user the GraphQL requests name (tests/helpers.demo_headers). Permissions are
# enforced only under --auth, as the server enforces them only with CMDBGRAPH_AUTH=true.
CALLER = Caller(
    username="admin", app_code="esb_test", supplier_account="0", enforce_permissions=False
)
INSTANCE_CHUNK = 200
T = TypeVar("T")

# The same mutation with only the counts and upstream's two maps: about what REST returns.
MINIMAL_MUTATION = """
mutation Batch($input: BatchCreateInstAssociationsInput!) {
  batchCreateInstAssociations(input: $input) {
    __typename
    ... on BatchCreateInstAssociationsPayload {
      createdCount failedCount written successCreated errorMsg
    }
    ... on RequestError { code bkErrorCode message }
    ... on PermissionDenied { code bkErrorCode message permission }
  }
}
"""

# Methods served by the uvicorn process, interleaved batch by batch so that they see tables of
# the same size; each uses its own slice of the pairs.
HTTP_SERIES = ("rest", "graphql", "graphql-min")

LABELS = {
    "raw": "raw sqlite3, IN-queries + executemany (limit)",
    "service": "service in-process (associations.batch_create)",
    "rest": "REST shim over HTTP",
    "graphql": "GraphQL mutation over HTTP (full selection)",
    "graphql-min": "GraphQL mutation over HTTP (counts + maps)",
    "per-item": "per-item, upstream's algorithm (7 stmts/item)",
    "http-floor": "HTTP round trip floor (GET /healthz)",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class Series:
    method: str
    backend: str
    batch_size: int
    samples_ms: list[float] = field(default_factory=list)
    # CPU time per batch (this process, plus the server process for the HTTP rows).
    cpu_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p90_ms(self) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]

    @property
    def per_second(self) -> float:
        return self.batch_size / (self.median_ms / 1000) if self.batch_size else 0.0

    @property
    def cpu_mean_ms(self) -> float | None:
        # A mean, not a median: the server's CPU time is read in clock ticks (10 ms), and only
        # the mean of many such readings is accurate.
        return statistics.fmean(self.cpu_ms) if self.cpu_ms else None


def timed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of another process, all its threads (Linux /proc), else None."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # Fields 14 and 15 of proc(5), counted after the ")" that ends field 2.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# Workload


@dataclass
class Workload:
    batch_size: int
    warmup: int
    rounds: int
    auth: bool
    # batches[k]: the k-th batch of (source id, target id); no id appears twice in all of them.
    batches: list[list[tuple[int, int]]]

    def caller(self, request_id: str) -> Caller:
        return Caller(
            username=CALLER.username,
            app_code=CALLER.app_code,
            supplier_account=CALLER.supplier_account,
            request_id=request_id,
            enforce_permissions=self.auth,
        )

    @property
    def per_series(self) -> int:
        return self.warmup + self.rounds

    def series_batches(self, slot: int) -> list[list[tuple[int, int]]]:
        """The batches of series ``slot`` (0, 1, ...): disjoint slices of the fresh pairs."""
        return self.batches[slot * self.per_series : (slot + 1) * self.per_series]


async def prepare(url: str, batch_size: int, total_batches: int) -> list[list[tuple[int, int]]]:
    """Migrate, create the two models and a 1:1 model association, and the instances."""
    db = Database(Settings(database_url=url))
    try:
        await migrate.upgrade(db)
        for obj_id, name in ((SRC_OBJ, "bench source"), (DEST_OBJ, "bench target")):
            await catalog.create_model(db, CALLER, catalog.NewModel(obj_id, name))
        await catalog.create_model_association(
            db,
            CALLER,
            catalog.NewModelAssociation(
                bk_obj_id=SRC_OBJ, bk_asst_obj_id=DEST_OBJ, bk_asst_id=ASST_KIND, mapping="1:1"
            ),
        )
        needed = batch_size * total_batches
        ids: dict[str, list[int]] = {}
        for obj_id, prefix in ((SRC_OBJ, "s"), (DEST_OBJ, "d")):
            created: list[int] = []
            for start in range(0, needed, INSTANCE_CHUNK):
                chunk = [
                    NewInstance(f"{prefix}-{i:07d}", {"bk_asset_id": f"{prefix}{i}"})
                    for i in range(start, min(needed, start + INSTANCE_CHUNK))
                ]
                created += [i.bk_inst_id for i in await create_instances(db, CALLER, obj_id, chunk)]
            ids[obj_id] = created
        # The credentials tests/helpers sends (as services/demo.py installs them), used under
        # --auth: app esb_test/xxx, users admin and xxx with every permission, token xxx.
        await auth.create_app(db, "esb_test", "xxx")
        for user in ("admin", "xxx"):
            await auth.create_user(db, user)
            await auth.add_grant(db, user, auth.ALL_MODELS)
        await auth.create_token(db, "xxx", ttl=None, token="xxx")
    finally:
        await db.dispose()
    # Pair sources and targets at random (fixed seed): callers link arbitrary ids, not
    # neighbours in the primary key.
    rng = random.Random(20240611)
    sources, targets = ids[SRC_OBJ], ids[DEST_OBJ]
    rng.shuffle(sources)
    rng.shuffle(targets)
    pairs = list(zip(sources, targets, strict=True))
    return [pairs[k * batch_size : (k + 1) * batch_size] for k in range(total_batches)]


# ---------------------------------------------------------------------------------------------
# Databases: a prepared original and one copy per method


class SqliteStore:
    backend = "sqlite"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.base_path = directory / "base.sqlite3"

    @staticmethod
    def url_of(path: Path) -> str:
        return f"sqlite+aiosqlite:///{path}"

    @property
    def base_url(self) -> str:
        return self.url_of(self.base_path)

    def path_of(self, name: str) -> Path:
        return self.directory / f"{name}.sqlite3"

    def clone(self, name: str) -> str:
        path = self.path_of(name)
        with (
            contextlib.closing(sqlite3.connect(self.base_path)) as source,
            contextlib.closing(sqlite3.connect(path)) as target,
        ):
            source.backup(target)
        return self.url_of(path)


class PostgresStore:
    backend = "postgresql"

    def __init__(self, server) -> None:
        self.server = server
        self.base_name = "bench_base"
        self._create(self.base_name)

    @property
    def base_url(self) -> str:
        return self.server.url(self.base_name)

    def _create(self, name: str, template: str | None = None) -> None:
        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(self.server.dsn("postgres"))
            try:
                suffix = f' TEMPLATE "{template}"' if template else ""
                await conn.execute(f'CREATE DATABASE "{name}"{suffix}')
            finally:
                await conn.close()

        asyncio.run(run())

    def clone(self, name: str) -> str:
        database = f"bench_{name.replace('-', '_')}"
        self._create(database, template=self.base_name)
        return self.server.url(database)


async def verify(url: str, expected: int) -> None:
    """Every batch was fully written: rows, and one matching audit entry per row."""
    db = Database(Settings(database_url=url))
    if db.is_sqlite:
        asst_id = "json_extract(a.operation_detail, '$.inst_asst_id')"
    else:
        asst_id = "(a.operation_detail ->> 'inst_asst_id')::bigint"
    try:
        async with db.read() as conn:
            stored = (
                await conn.execute(
                    text("SELECT count(*) FROM inst_associations WHERE bk_obj_asst_id = :id"),
                    {"id": OBJ_ASST_ID},
                )
            ).scalar_one()
            audited = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM audit_entries a JOIN inst_associations i "
                        f"ON i.id = {asst_id} AND i.bk_inst_id = a.resource_id "
                        "WHERE a.resource_type = 'instance_association' AND a.action = 'create'"
                    )
                )
            ).scalar_one()
    finally:
        await db.dispose()
    if stored != expected or audited != expected:
        raise SystemExit(
            f"verification failed on {url}: {stored} associations and {audited} matching audit "
            f"entries, expected {expected}"
        )


# ---------------------------------------------------------------------------------------------
# 1. The raw limit: stdlib sqlite3, set-based, one transaction


class RawSqlite:
    INSERT_ASSOCIATIONS = (
        "INSERT INTO inst_associations (bk_obj_asst_id, bk_asst_id, bk_obj_id, bk_inst_id, "
        "bk_asst_obj_id, bk_asst_inst_id, mapping, bk_supplier_account, bk_biz_id, creator, "
        "create_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    INSERT_AUDIT = (
        "INSERT INTO audit_entries (audit_type, resource_type, action, resource_id, "
        "resource_name, operation_detail, bk_username, bk_supplier_account, app_code, "
        "request_id, operation_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )

    def __init__(self, path: Path) -> None:
        # The same connection settings as cmdbgraph.db.engine's writer.
        self.conn = sqlite3.connect(path, isolation_level=None)
        for pragma in (
            "busy_timeout = 30000",
            "journal_mode = WAL",
            "foreign_keys = ON",
            "synchronous = NORMAL",
        ):
            self.conn.execute(f"PRAGMA {pragma}")
        self._marks: dict[int, str] = {}

    def _marks_for(self, count: int) -> str:
        marks = self._marks.get(count)
        if marks is None:
            marks = self._marks[count] = ",".join("?" * count)
        return marks

    def batch(self, details: list[tuple[int, int]], request_id: str) -> dict[int, int]:
        """Decide and write one batch; returns index -> new id (every decision as the service)."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            bk_obj_asst_id, src_obj, dest_obj, kind, mapping = conn.execute(
                "SELECT bk_obj_asst_id, bk_obj_id, bk_asst_obj_id, bk_asst_id, mapping "
                "FROM model_associations WHERE bk_obj_asst_id = ?",
                (OBJ_ASST_ID,),
            ).fetchone()
            sources = {s for s, _ in details}
            targets = {t for _, t in details}
            referenced = list(sources | targets)
            names: dict[int, str] = {}
            existing_sources: set[int] = set()
            existing_targets: set[int] = set()
            for inst_id, obj_id, name in conn.execute(
                "SELECT bk_inst_id, bk_obj_id, bk_inst_name FROM instances "
                f"WHERE bk_inst_id IN ({self._marks_for(len(referenced))})",
                referenced,
            ):
                if obj_id == src_obj:
                    existing_sources.add(inst_id)
                if obj_id == dest_obj:
                    existing_targets.add(inst_id)
                names[inst_id] = name
            pairs: set[tuple[int, int]] = set()
            linked_sources: set[int] = set()
            linked_targets: set[int] = set()
            for src, dest in conn.execute(
                "SELECT bk_inst_id, bk_asst_inst_id FROM inst_associations "
                f"WHERE bk_obj_asst_id = ? AND (bk_inst_id IN ({self._marks_for(len(sources))}) "
                f"OR bk_asst_inst_id IN ({self._marks_for(len(targets))}))",
                [bk_obj_asst_id, *sources, *targets],
            ):
                pairs.add((src, dest))
                linked_sources.add(src)
                linked_targets.add(dest)
            accepted: list[int] = []
            for index, (src, dest) in enumerate(details):
                if (
                    (src, dest) in pairs
                    or src not in existing_sources
                    or dest not in existing_targets
                    or (mapping == "1:1" and (src in linked_sources or dest in linked_targets))
                    or (mapping == "1:n" and dest in linked_targets)
                ):
                    continue
                pairs.add((src, dest))
                linked_sources.add(src)
                linked_targets.add(dest)
                accepted.append(index)
            created: dict[int, int] = {}
            if accepted:
                now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
                conn.executemany(
                    self.INSERT_ASSOCIATIONS,
                    [
                        (
                            bk_obj_asst_id, kind, src_obj, details[i][0], dest_obj,
                            details[i][1], mapping, CALLER.supplier_account, 0,
                            CALLER.username, now,
                        )
                        for i in accepted
                    ],
                )  # fmt: skip
                # AUTOINCREMENT under the write lock: the rows got consecutive ids ending here.
                last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
                first = last - len(accepted) + 1
                created = {index: first + n for n, index in enumerate(accepted)}
                conn.executemany(
                    self.INSERT_AUDIT,
                    [
                        (
                            "model_instance",
                            "instance_association",
                            "create",
                            details[index][0],
                            names.get(details[index][0], ""),
                            json.dumps(
                                {
                                    "asst_id": bk_obj_asst_id,
                                    "asst_kind": kind,
                                    "src_obj_id": src_obj,
                                    "dest_obj_id": dest_obj,
                                    "dest_inst_id": details[index][1],
                                    "dest_inst_name": names.get(details[index][1], ""),
                                    "inst_asst_id": new_id,
                                }
                            ),
                            CALLER.username,
                            CALLER.supplier_account,
                            CALLER.app_code,
                            request_id,
                            now,
                        )
                        for index, new_id in created.items()
                    ],
                )
            conn.execute("COMMIT")
            return created
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------------------------------------
# 2. The service in-process


def requests_of(batches: list[list[tuple[int, int]]]) -> list[associations.BatchCreateRequest]:
    return [
        associations.BatchCreateRequest(
            bk_obj_id=SRC_OBJ,
            bk_asst_obj_id=DEST_OBJ,
            bk_obj_asst_id=OBJ_ASST_ID,
            details=[associations.Detail(s, t) for s, t in details],
        )
        for details in batches
    ]


# ---------------------------------------------------------------------------------------------
# 5. Upstream's algorithm, item by item, on the same async SQLAlchemy stack

_ia = inst_associations.c
_DUPLICATE = (
    select(_ia.id)
    .where(
        _ia.bk_obj_asst_id == bindparam("asst"),
        _ia.bk_inst_id == bindparam("src"),
        _ia.bk_asst_inst_id == bindparam("dest"),
    )
    .limit(1)
)
_INSTANCE = select(instances.c.bk_inst_name).where(
    instances.c.bk_inst_id == bindparam("inst"), instances.c.bk_obj_id == bindparam("obj")
)
_SOURCE_LINKED = (
    select(_ia.id)
    .where(_ia.bk_obj_asst_id == bindparam("asst"), _ia.bk_inst_id == bindparam("src"))
    .limit(1)
)
_TARGET_LINKED = (
    select(_ia.id)
    .where(_ia.bk_obj_asst_id == bindparam("asst"), _ia.bk_asst_inst_id == bindparam("dest"))
    .limit(1)
)
_INSERT_ONE = insert(inst_associations).returning(_ia.id)
_INSERT_AUDIT = insert(audit_entries)


async def per_item_batch(
    db: Database, caller: Caller, request: associations.BatchCreateRequest
) -> tuple[dict[str, int], dict[str, str]]:
    """Upstream's loop: every item checked and written before the next (7 statements each)."""
    associations.validate_batch_request(request, associations.MAX_BATCH_SIZE)
    success: dict[str, int] = {}
    errors: dict[str, str] = {}
    async with db.write() as conn:
        await db.lock_model_association(conn, request.bk_obj_asst_id)
        ma = associations.check_model_association(
            await associations.load_model_association(conn, request.bk_obj_asst_id),
            request.bk_obj_id,
            request.bk_asst_obj_id,
        )
        await auth.authorize_instances(
            conn,
            caller,
            auth.instances_of_request(ma.bk_obj_id, ma.bk_asst_obj_id, request.details),
        )
        asst = ma.bk_obj_asst_id
        now = datetime.now(UTC)
        for index, (src, dest) in enumerate(request.details):
            key = str(index)
            params = {"asst": asst, "src": src, "dest": dest}
            if (await conn.execute(_DUPLICATE, params)).first() is not None:
                errors[key] = "duplicate"
                continue
            src_name = (await conn.execute(_INSTANCE, {"inst": src, "obj": ma.bk_obj_id})).first()
            if src_name is None:
                errors[key] = "source missing"
                continue
            dest_name = (
                await conn.execute(_INSTANCE, {"inst": dest, "obj": ma.bk_asst_obj_id})
            ).first()
            if dest_name is None:
                errors[key] = "target missing"
                continue
            if ma.mapping == "1:1" and (
                (await conn.execute(_SOURCE_LINKED, params)).first() is not None
                or (await conn.execute(_TARGET_LINKED, params)).first() is not None
            ):
                errors[key] = "1:1"
                continue
            if ma.mapping == "1:n" and (
                (await conn.execute(_TARGET_LINKED, params)).first() is not None
            ):
                errors[key] = "1:n"
                continue
            row = {
                "bk_obj_asst_id": asst,
                "bk_asst_id": ma.bk_asst_id,
                "bk_obj_id": ma.bk_obj_id,
                "bk_inst_id": src,
                "bk_asst_obj_id": ma.bk_asst_obj_id,
                "bk_asst_inst_id": dest,
                "mapping": ma.mapping,
                "bk_supplier_account": caller.supplier_account,
                "bk_biz_id": 0,
                "creator": caller.username,
                "create_time": now,
            }
            row["id"] = (await conn.execute(_INSERT_ONE, row)).scalar_one()
            association = InstAssociation(**{name: row[name] for name in InstAssociation.__slots__})
            names = {src: src_name[0], dest: dest_name[0]}
            await conn.execute(
                _INSERT_AUDIT,
                {
                    "audit_type": "model_instance",
                    "resource_type": "instance_association",
                    "action": "create",
                    "resource_id": src,
                    "resource_name": names[src],
                    "operation_detail": audit.association_detail(association, names),
                    "bk_username": caller.username,
                    "bk_supplier_account": caller.supplier_account,
                    "app_code": caller.app_code,
                    "request_id": caller.request_id,
                    "operation_time": now,
                },
            )
            success[key] = row["id"]
    return success, errors


# ---------------------------------------------------------------------------------------------
# 3, 4. REST and GraphQL over HTTP, on one uvicorn process


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def uvicorn_server(
    database_url: str, log_path: Path, *, auth_on: bool
) -> Iterator[tuple[str, int]]:
    """A uvicorn process serving cmdbgraph on a free port: (base URL, pid). Always terminated
    on exit."""
    port = _free_port()
    env = {
        **os.environ,
        "CMDBGRAPH_DATABASE_URL": database_url,
        "CMDBGRAPH_AUTH": "true" if auth_on else "false",
        "CMDBGRAPH_LOG_LEVEL": "warning",
        # The server imports the same cmdbgraph as this process: the one next to benchmarks/.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable, "-m", "uvicorn", "cmdbgraph.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    with open(log_path, "wb") as server_log:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=server_log, stderr=subprocess.STDOUT
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    raise SystemExit(
                        f"uvicorn exited with {process.returncode}:\n{log_path.read_text()}"
                    )
                try:
                    if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"uvicorn did not start in 30 s:\n{log_path.read_text()}")
                time.sleep(0.05)
            yield base_url, process.pid
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _rest_call(details: list[tuple[int, int]]) -> tuple[str, bytes, dict[str, str]]:
    body = rest_body(SRC_OBJ, DEST_OBJ, OBJ_ASST_ID, details)
    return ESB_PATH, orjson.dumps(body), {"Content-Type": "application/json"}


def _graphql_call(query: str):
    def build(details: list[tuple[int, int]]) -> tuple[str, bytes, dict[str, str]]:
        body = {
            "query": query,
            "variables": {"input": batch_input(SRC_OBJ, DEST_OBJ, OBJ_ASST_ID, details)},
        }
        return "/graphql", orjson.dumps(body), demo_headers(**{"Content-Type": "application/json"})

    return build


def _created_by_reply(method: str, reply: dict) -> int:
    if method == "rest":
        if not reply.get("result"):
            raise SystemExit(f"rest: failed reply {str(reply)[:500]}")
        return len(reply["data"]["success_created"])
    if reply.get("errors"):
        raise SystemExit(f"{method}: GraphQL errors {str(reply['errors'])[:500]}")
    payload = reply["data"]["batchCreateInstAssociations"]
    if payload["__typename"] != "BatchCreateInstAssociationsPayload":
        raise SystemExit(f"{method}: {str(payload)[:500]}")
    return payload["createdCount"]


# ---------------------------------------------------------------------------------------------
# Measuring: every method on its own database copy, interleaved batch by batch

# One batch of one method: the batch number -> how many associations it created.
BatchRunner = Callable[[int], Awaitable[int]]


def clone_databases(store, *, with_raw: bool) -> dict[str, str]:
    """A fresh copy of the prepared database per method (the HTTP methods share one)."""
    names = ["raw"] if with_raw else []
    return {name: store.clone(name) for name in [*names, "service", "http", "per-item"]}


async def measure_backend(
    store, urls: dict[str, str], workload: Workload, directory: Path
) -> list[Series]:
    """Run every method's batches round-robin (the order rotates each round), so that a
    slower or busier stretch of the run hits every method alike and the ratios stay fair."""
    backend = store.backend
    size = workload.batch_size
    runners: dict[str, BatchRunner] = {}
    floor = Series("http-floor", backend, 0)
    async with contextlib.AsyncExitStack() as stack:
        if "raw" in urls:
            raw = RawSqlite(store.path_of("raw"))
            stack.callback(raw.close)
            raw_batches = workload.series_batches(0)

            async def run_raw(k: int) -> int:
                return len(raw.batch(raw_batches[k], f"bench-raw-{k}"))

            runners["raw"] = run_raw

        requests = requests_of(workload.series_batches(0))
        service_db = Database(Settings(database_url=urls["service"]))
        stack.push_async_callback(service_db.dispose)

        async def run_service(k: int) -> int:
            caller = workload.caller(f"bench-service-{k}")
            return (await associations.batch_create(service_db, caller, requests[k])).created_count

        runners["service"] = run_service

        base_url, server_pid = stack.enter_context(
            uvicorn_server(
                urls["http"], directory / f"uvicorn-{backend}.log", auth_on=workload.auth
            )
        )
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=60))
        builders = {
            "rest": _rest_call,
            "graphql": _graphql_call(BATCH_MUTATION),
            "graphql-min": _graphql_call(MINIMAL_MUTATION),
        }
        for slot, method in enumerate(HTTP_SERIES):
            # Bodies are encoded before the clock starts; it stops once the reply is decoded.
            calls = [builders[method](details) for details in workload.series_batches(slot)]

            async def run_http(k: int, method: str = method, calls=calls) -> int:
                path, body, headers = calls[k]
                response = await client.post(path, content=body, headers=headers)
                if response.status_code != 200:
                    raise SystemExit(f"{method}: HTTP {response.status_code} {response.text[:500]}")
                return _created_by_reply(method, orjson.loads(response.content))

            runners[method] = run_http

        per_item_db = Database(Settings(database_url=urls["per-item"]))
        stack.push_async_callback(per_item_db.dispose)

        async def run_per_item(k: int) -> int:
            caller = workload.caller(f"bench-per-item-{k}")
            success, errors = await per_item_batch(per_item_db, caller, requests[k])
            if errors:
                raise SystemExit(f"per-item: batch {k} failed items {errors}")
            return len(success)

        runners["per-item"] = run_per_item

        for n in range(workload.warmup + 100):
            server_cpu = process_cpu_seconds(server_pid)
            cpu = time.process_time()
            start = time.perf_counter()
            (await client.get("/healthz")).raise_for_status()
            elapsed = timed_ms(start)
            cpu = time.process_time() - cpu
            after = process_cpu_seconds(server_pid)
            if n >= workload.warmup:
                floor.samples_ms.append(elapsed)
                if server_cpu is not None and after is not None:
                    floor.cpu_ms.append((cpu + after - server_cpu) * 1000)

        series = {name: Series(name, backend, size) for name in runners}
        names = list(runners)
        gc.collect()
        for k in range(workload.per_series):
            shift = k % len(names)
            for name in names[shift:] + names[:shift]:
                remote = name in HTTP_SERIES
                server_cpu = process_cpu_seconds(server_pid) if remote else 0.0
                cpu = time.process_time()
                start = time.perf_counter()
                created = await runners[name](k)
                elapsed = timed_ms(start)
                cpu = time.process_time() - cpu
                if remote and server_cpu is not None:
                    after = process_cpu_seconds(server_pid)
                    server_cpu = None if after is None else after - server_cpu
                if created != size:
                    raise SystemExit(f"{name}: batch {k} created {created} of {size}")
                if k >= workload.warmup:
                    series[name].samples_ms.append(elapsed)
                    if server_cpu is not None:
                        series[name].cpu_ms.append((cpu + server_cpu) * 1000)
            if k == workload.warmup - 1:
                log(f"[{backend}] warmed up, measuring {workload.rounds} rounds ...")
    # Everything written, and only that: rows and one matching audit entry each.
    per_series = workload.per_series * size
    for name, url in urls.items():
        await verify(url, len(HTTP_SERIES) * per_series if name == "http" else per_series)
    order = ["raw", "service", *HTTP_SERIES, "per-item"]
    return [series[name] for name in order if name in series] + [floor]


# ---------------------------------------------------------------------------------------------
# Driver


def _loop_factory() -> tuple[Callable | None, str]:
    # uvicorn runs on uvloop when it is installed: the in-process methods do the same.
    try:
        import uvloop
    except ImportError:
        return None, "asyncio"
    return uvloop.new_event_loop, "uvloop"


def run_async(coroutine: Coroutine[object, object, T]) -> T:
    factory, _ = _loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coroutine)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="measured batches per method")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured batches first")
    parser.add_argument("--batch-size", type=int, default=200, help="items per batch (max 200)")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument(
        "--postgresql",
        action="store_true",
        help="also measure service, HTTP and per-item on a throwaway PostgreSQL (tests/pgserver)",
    )
    parser.add_argument(
        "--auth",
        action="store_true",
        help="authenticate and check permissions (server CMDBGRAPH_AUTH=true, callers with "
        "enforce_permissions); default off, as with CMDBGRAPH_AUTH=false",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be >= 1 and --warmup >= 0")
    if not 1 <= args.batch_size <= associations.MAX_BATCH_SIZE:
        parser.error(f"--batch-size must be between 1 and {associations.MAX_BATCH_SIZE}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    directory = Path(tempfile.mkdtemp(prefix="cmdbgraph-bench-"))
    # Every method's database receives at most len(HTTP_SERIES) series of fresh pairs.
    total_batches = len(HTTP_SERIES) * (args.warmup + args.rounds)
    results: list[Series] = []
    try:
        store = SqliteStore(directory)
        log(
            f"preparing {store.base_path}: {2 * total_batches * args.batch_size} instances, "
            f"1:1 model association {OBJ_ASST_ID} ..."
        )
        t0 = time.perf_counter()
        batches = run_async(prepare(store.base_url, args.batch_size, total_batches))
        log(f"prepared in {time.perf_counter() - t0:.1f} s")
        workload = Workload(args.batch_size, args.warmup, args.rounds, args.auth, batches)
        # As the server does after start-up: what exists now never needs scanning again.
        gc.collect()
        gc.freeze()
        loads = [os.getloadavg()[0]]
        log("[sqlite] measuring raw, service, REST, GraphQL and per-item, interleaved ...")
        urls = clone_databases(store, with_raw=True)
        results += run_async(measure_backend(store, urls, workload, directory))
        loads.append(os.getloadavg()[0])
        if args.postgresql:
            from tests.pgserver import postgres_server

            log("[postgresql] starting a throwaway server ...")
            with postgres_server() as server:
                pg = PostgresStore(server)
                t0 = time.perf_counter()
                pg_batches = run_async(prepare(pg.base_url, args.batch_size, total_batches))
                log(f"[postgresql] prepared in {time.perf_counter() - t0:.1f} s")
                pg_workload = Workload(
                    args.batch_size, args.warmup, args.rounds, args.auth, pg_batches
                )
                log("[postgresql] measuring service, REST, GraphQL and per-item ...")
                pg_urls = clone_databases(pg, with_raw=False)
                results += run_async(measure_backend(pg, pg_urls, pg_workload, directory))
                loads.append(os.getloadavg()[0])
    finally:
        if args.keep:
            log(f"kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    report(args, results, loads, time.perf_counter() - started)
    return 0


# Goals from PERFORMANCE-NOTES.md, as multiples of the raw limit.
GOALS = {"rest": 2.0, "graphql": 3.0}


def report(
    args: argparse.Namespace, results: list[Series], loads: list[float], wall_s: float
) -> None:
    raw = next(r for r in results if r.method == "raw")

    def find(method: str, backend: str) -> Series | None:
        return next((r for r in results if r.method == method and r.backend == backend), None)

    ratios = {}
    for backend in dict.fromkeys(r.backend for r in results):
        rest, graphql = find("rest", backend), find("graphql", backend)
        if rest and graphql:
            ratios[backend] = {
                "graphql_to_rest": graphql.median_ms / rest.median_ms,
                "graphql_min_to_rest": find("graphql-min", backend).median_ms / rest.median_ms,
                "rest_to_service": rest.median_ms / find("service", backend).median_ms,
            }
    environment = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "event_loop": _loop_factory()[1],
        "per_item_stack": "SQLAlchemy async (Database.write), one transaction per batch",
        # 1-minute load average before and after each backend's measurements: other work on
        # the machine inflates every number, and the HTTP rows (two processes) most.
        "load_average": [round(load, 2) for load in loads],
    }
    if args.json:
        print(
            json.dumps(
                {
                    "config": {
                        "rounds": args.rounds,
                        "warmup": args.warmup,
                        "batch_size": args.batch_size,
                        "mapping": "1:1",
                        "postgresql": args.postgresql,
                        "auth": args.auth,
                    },
                    "environment": environment,
                    "results": [
                        {
                            "method": r.method,
                            "backend": r.backend,
                            "median_ms": round(r.median_ms, 3),
                            "p90_ms": round(r.p90_ms, 3),
                            "cpu_mean_ms": None
                            if r.cpu_mean_ms is None
                            else round(r.cpu_mean_ms, 3),
                            "associations_per_s": round(r.per_second) if r.batch_size else None,
                            "ratio_to_raw": round(r.median_ms / raw.median_ms, 2)
                            if r.batch_size
                            else None,
                            "samples_ms": [round(s, 3) for s in r.samples_ms],
                        }
                        for r in results
                    ],
                    "goals_ratio_to_raw": GOALS,
                    "ratios": {
                        b: {k: round(v, 2) for k, v in d.items()} for b, d in ratios.items()
                    },
                    "wall_seconds": round(wall_s, 1),
                },
                indent=2,
            )
        )
        return
    print(
        f"batch_create_instance_association: {args.rounds} measured batches of {args.batch_size} "
        f"fresh pairs per method (after {args.warmup} warm-up), 1:1 model association, "
        f"auth {'on' if args.auth else 'off'}"
    )
    print(
        f"Python {environment['python']}, SQLite {environment['sqlite']} (WAL, synchronous=NORMAL)"
        f", {environment['cpus']} CPUs, {environment['event_loop']}; HTTP: uvicorn + httpx on "
        "127.0.0.1"
    )
    print()
    header = (
        f"{'backend':<10} {'method':<48} {'median ms':>9} {'p90 ms':>8} {'assoc/s':>9} "
        f"{'x raw':>6} {'CPU ms':>7} {'x raw':>6}"
    )
    print(header)
    print("-" * len(header))
    raw_cpu = raw.cpu_mean_ms
    for r in results:
        per_s = f"{r.per_second:,.0f}" if r.batch_size else "-"
        ratio = f"{r.median_ms / raw.median_ms:.2f}" if r.batch_size else "-"
        goal = GOALS.get(r.method) if r.backend == "sqlite" else None
        verdict = (
            ""
            if goal is None
            else f"  goal <= {goal:g}x: "
            + ("met" if r.median_ms / raw.median_ms <= goal else "NOT met")
        )
        cpu = r.cpu_mean_ms
        cpu_text = "-" if cpu is None else f"{cpu:.1f}"
        cpu_ratio = (
            "-" if cpu is None or not raw_cpu or not r.batch_size else f"{cpu / raw_cpu:.2f}"
        )
        print(
            f"{r.backend:<10} {LABELS[r.method]:<48} {r.median_ms:>9.2f} {r.p90_ms:>8.2f} "
            f"{per_s:>9} {ratio:>6} {cpu_text:>7} {cpu_ratio:>6}{verdict}"
        )
    print()
    for backend, values in ratios.items():
        print(
            f"{backend}: GraphQL/REST {values['graphql_to_rest']:.2f}x "
            f"(counts+maps selection {values['graphql_min_to_rest']:.2f}x), "
            f"REST/service in-process {values['rest_to_service']:.2f}x"
        )
    if args.postgresql:
        print("x raw is always relative to the SQLite raw limit.")
    # The run itself adds about 1 to 1.5 to the load average: only the first reading tells
    # whether other work was competing for the cores.
    busy = loads[0] > 0.5 * (os.cpu_count() or 1)
    print(
        f"load average {' -> '.join(f'{load:.2f}' for load in loads)}"
        + (" (other work was running: absolute numbers are inflated)" if busy else "")
        + f"; wall time {wall_s:.0f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
