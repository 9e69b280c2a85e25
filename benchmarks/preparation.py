"""The preparation: the database every method starts from, its copies, the batches to send, and
the check that every batch was written."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from cmdbgraph.db import migrate
from cmdbgraph.db.engine import Database
from cmdbgraph.services import accounts, catalog, permissions
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.instances import NewInstance, create_instances
from cmdbgraph.settings import Settings

SRC_OBJ = "bench_src"
DEST_OBJ = "bench_dst"
ASST_KIND = "default"
# The kind of the n:n model association whose rows --stored adds.
FILL_KIND = "connect"
OBJ_ASST_ID = f"{SRC_OBJ}_{ASST_KIND}_{DEST_OBJ}"
# Who writes: the user the GraphQL requests name (tests/support/calls.demo_headers). Permissions are
# enforced only under --auth, as the server enforces them only with CMDBGRAPH_AUTH=true.
CALLER = Caller(
    username="admin", app_code="esb_test", supplier_account="0", enforce_permissions=False
)
INSTANCE_CHUNK = 200


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


async def new_instances(db: Database, obj_id: str, prefix: str, count: int) -> list[int]:
    """``count`` instances of ``obj_id`` named ``<prefix>-0000000``, ... (through the service,
    ``INSTANCE_CHUNK`` at a time); their ids in order."""
    created: list[int] = []
    for start in range(0, count, INSTANCE_CHUNK):
        chunk = [
            NewInstance(f"{prefix}-{i:07d}", {"bk_asset_id": f"{prefix}{i}"})
            for i in range(start, min(count, start + INSTANCE_CHUNK))
        ]
        created += [i.bk_inst_id for i in await create_instances(db, CALLER, obj_id, chunk)]
    return created


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
        ids = {
            obj_id: await new_instances(db, obj_id, prefix, needed)
            for obj_id, prefix in ((SRC_OBJ, "s"), (DEST_OBJ, "d"))
        }
        # The credentials tests/support/calls sends (as services/demo.py installs them), used under
        # --auth: app esb_test/xxx, users admin and xxx with every permission, token xxx.
        await accounts.create_app(db, "esb_test", "xxx")
        for user in ("admin", "xxx"):
            await accounts.create_user(db, user)
            await accounts.add_grant(db, user, permissions.ALL_MODELS)
        await accounts.create_token(db, "xxx", ttl=None, token="xxx")
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


async def fill(url: str, count: int) -> None:
    """Store ``count`` more associations in the prepared database at ``url``, so that a batch
    runs against tables and indexes of that size: an ``n:n`` model association between the
    same two models, over a grid of instances of their own (1,000 x 1,000 for a million). The
    rows go in by the driver (``executemany`` on SQLite, ``COPY`` on PostgreSQL), without
    audit entries or events; then the tables are analyzed."""
    side = max(1, math.isqrt(count - 1) + 1)
    db = Database(Settings(database_url=url))
    try:
        model_association = await catalog.create_model_association(
            db,
            CALLER,
            catalog.NewModelAssociation(
                bk_obj_id=SRC_OBJ, bk_asst_obj_id=DEST_OBJ, bk_asst_id=FILL_KIND, mapping="n:n"
            ),
        )
        ids = {
            obj_id: await new_instances(db, obj_id, prefix, side)
            for obj_id, prefix in ((SRC_OBJ, "fs"), (DEST_OBJ, "fd"))
        }
    finally:
        await db.dispose()
    ma = model_association
    now = datetime.now(UTC)
    rows = [
        (
            ma.bk_obj_asst_id, ma.bk_asst_id, SRC_OBJ, ids[SRC_OBJ][n // side], DEST_OBJ,
            ids[DEST_OBJ][n % side], "n:n", "0", 0, CALLER.username,
        )
        for n in range(count)
    ]  # fmt: skip
    columns = (
        "bk_obj_asst_id", "bk_asst_id", "bk_obj_id", "bk_inst_id", "bk_asst_obj_id",
        "bk_asst_inst_id", "mapping", "bk_supplier_account", "bk_biz_id", "creator",
        "create_time",
    )  # fmt: skip
    if url.startswith("sqlite"):
        stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")
        path = url.split("///", 1)[1]
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
            conn.execute("BEGIN")
            conn.executemany(
                f"INSERT INTO inst_associations ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})",
                (row + (stamp,) for row in rows),
            )
            conn.execute("COMMIT")
            conn.execute("ANALYZE")
        return
    import asyncpg
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "inst_associations", records=[row + (now,) for row in rows], columns=columns
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def copy_connection(dsn: str):
    """An asyncpg connection that can COPY rows with jsonb columns given as Python values."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    # COPY sends rows in the binary format: jsonb's is a version byte and the text.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda value: b"\x01" + json.dumps(value).encode(),
        decoder=lambda data: json.loads(data[1:]),
        schema="pg_catalog",
        format="binary",
    )
    return conn


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


async def verify(url: str, expected: int, *, expected_events: int) -> None:
    """Every batch was fully written: rows, one matching audit entry per row, and one create
    event per row where events were recorded (``expected_events``: 0 where they were not)."""
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
            recorded = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM events e JOIN inst_associations i "
                        "ON i.id = e.resource_id "
                        "WHERE e.resource = 'inst_asst' AND e.event_type = 'create' "
                        "AND i.bk_obj_asst_id = :id"
                    ),
                    {"id": OBJ_ASST_ID},
                )
            ).scalar_one()
    finally:
        await db.dispose()
    if stored != expected or audited != expected or recorded != expected_events:
        raise SystemExit(
            f"verification failed on {url}: {stored} associations, {audited} matching audit "
            f"entries and {recorded} events, expected {expected}, {expected} and "
            f"{expected_events}"
        )
