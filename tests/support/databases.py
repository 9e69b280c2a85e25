"""Fresh databases for the tests, and what the tests read from or add to them.

``DatabaseFactory`` is the one way a test gets a database: a copy of a template that is
migrated and holds the demo data, a file copy on SQLite and ``CREATE DATABASE ... TEMPLATE`` on
PostgreSQL. It drops the PostgreSQL databases it made when it is closed, and checks that they
are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import event, func, select

from cmdbgraph.db import migrate
from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import audit_entries, inst_associations
from cmdbgraph.services import demo, instances
from cmdbgraph.services.caller import SYSTEM, Caller
from cmdbgraph.settings import Settings
from tests.support.pgserver import PostgresServer

T = TypeVar("T")

BACKENDS = ["sqlite", "postgresql"]
# The template every PostgreSQL test database is copied from.
PG_TEMPLATE = "cmdbgraph_template"
# What a cluster holds before any test made a database.
PG_BUILTIN = frozenset({"postgres", "template0", "template1"})

_names = itertools.count()


def run_in_thread(make_coroutine: Callable[[], Coroutine[Any, Any, T]], timeout: float = 120) -> T:
    """Run a coroutine to completion on its own loop in its own thread, even when called from
    a running loop; return its result or raise its error."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(make_coroutine())
        except BaseException as error:  # re-raised in the caller
            outcome["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=timeout)
    if thread.is_alive():
        raise TimeoutError(f"the coroutine did not finish within {timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


# --- Templates and copies ---------------------------------------------------------------------


async def migrate_with_demo(url: str) -> None:
    """Apply every migration to the database at ``url`` and seed the demo data."""
    db = Database(Settings(database_url=url))
    try:
        await migrate.upgrade(db)
        await demo.seed_demo(db)
    finally:
        await db.dispose()


def make_sqlite_template(path: Path) -> str:
    """A migrated SQLite file holding the demo data, at ``path``."""
    run_in_thread(lambda: migrate_with_demo(f"sqlite+aiosqlite:///{path}"))
    return str(path)


async def _admin_execute(server: PostgresServer, *statements: str) -> None:
    conn = await asyncpg.connect(server.dsn())
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def make_pg_template(server: PostgresServer, name: str = PG_TEMPLATE) -> str:
    """A migrated PostgreSQL database holding the demo data, named ``name``."""

    async def create() -> None:
        await _admin_execute(server, f'CREATE DATABASE "{name}"')
        await migrate_with_demo(server.url(name))

    run_in_thread(create)
    return name


async def pg_database_names(server: PostgresServer) -> set[str]:
    """The names of every database in the cluster."""
    conn = await asyncpg.connect(server.dsn())
    try:
        return {row["datname"] for row in await conn.fetch("SELECT datname FROM pg_database")}
    finally:
        await conn.close()


async def drop_pg_databases(server: PostgresServer, names: list[str]) -> None:
    """Drop ``names``, ending any connection still open to them (a test's engine that was not
    disposed, a server process killed mid-request)."""
    if not names:
        return
    conn = await asyncpg.connect(server.dsn())
    try:
        force = int(await conn.fetchval("SHOW server_version_num")) >= 130000
        for name in names:
            if force:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                continue
            # Before PostgreSQL 13: end the connections, then drop.
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()


class DatabaseFactory:
    """Fresh migrated databases holding the demo data, on either backend.

    ``sqlite_template`` and ``postgres`` are called the first time a database of their backend
    is wanted (so that a SQLite test never starts PostgreSQL): the path of the SQLite template,
    and the PostgreSQL server with the name of its template. ``close`` drops every PostgreSQL
    database made here and checks that none is left.
    """

    def __init__(
        self,
        directory: Path,
        *,
        sqlite_template: Callable[[], str],
        postgres: Callable[[], tuple[PostgresServer, str]],
    ) -> None:
        self.directory = Path(directory)
        self._sqlite_template = sqlite_template
        self._postgres = postgres
        self._server: PostgresServer | None = None
        self.made: list[str] = []  # the PostgreSQL databases, by name

    def new(self, backend: str, name: str = "test") -> str:
        """The URL of a new database on ``backend``; ``name`` tells the copies apart."""
        if backend == "sqlite":
            path = self.directory / f"{name}.sqlite3"
            for number in itertools.count(2):
                if not path.exists():
                    break
                path = self.directory / f"{name}-{number}.sqlite3"
            shutil.copyfile(self._sqlite_template(), path)
            return f"sqlite+aiosqlite:///{path}"
        if backend != "postgresql":
            raise ValueError(f"unknown backend {backend!r}")
        server, template = self._postgres()
        self._server = server
        database = f"{name}_{os.getpid()}_{next(_names)}"
        run_in_thread(
            lambda: _admin_execute(server, f'CREATE DATABASE "{database}" TEMPLATE "{template}"')
        )
        self.made.append(database)
        return server.url(database)

    def close(self) -> None:
        """Drop the PostgreSQL databases made here; fail if one of them is still there."""
        if self._server is None or not self.made:
            return
        server, made = self._server, list(self.made)
        self.made.clear()
        run_in_thread(lambda: drop_pg_databases(server, made))
        left = set(made) & run_in_thread(lambda: pg_database_names(server))
        assert not left, f"databases left behind after their test: {sorted(left)}"


@contextlib.contextmanager
def database_factory(
    directory: Path,
    *,
    sqlite_template: Callable[[], str],
    postgres: Callable[[], tuple[PostgresServer, str]],
) -> Iterator[DatabaseFactory]:
    """A ``DatabaseFactory`` closed at the end of the block."""
    factory = DatabaseFactory(directory, sqlite_template=sqlite_template, postgres=postgres)
    try:
        yield factory
    finally:
        factory.close()


@contextlib.asynccontextmanager
async def open_database(url: str):
    """A ``Database`` on ``url``, disposed at the end of the block."""
    db = Database(Settings(database_url=url))
    try:
        yield db
    finally:
        await db.dispose()


# --- Reading and adding rows ------------------------------------------------------------------


async def row_counts(db: Database, *tables) -> tuple[int, ...]:
    """How many rows ``tables`` hold; by default the instance associations and the audit
    entries, in that order."""
    tables = tables or (inst_associations, audit_entries)
    async with db.read() as conn:
        return tuple(
            [
                (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                for table in tables
            ]
        )


@contextlib.asynccontextmanager
async def writes_nothing(db: Database):
    """Asserts the block leaves the associations and audit entries as they were."""
    before = await row_counts(db)
    yield
    assert await row_counts(db) == before


async def new_instances(
    db: Database,
    bk_obj_id: str,
    prefix: str,
    count: int,
    *,
    caller: Caller = SYSTEM,
    **attributes: object,
) -> list[int]:
    """Create ``count`` instances of ``bk_obj_id`` named ``<prefix>-000``, ``<prefix>-001``, ...
    (200 at a time, as ``caller``), each with ``attributes``; their ids, in order."""
    ids: list[int] = []
    for start in range(0, count, 200):
        created = await instances.create_instances(
            db,
            caller,
            bk_obj_id,
            [
                instances.NewInstance(f"{prefix}-{i:03}", dict(attributes))
                for i in range(start, min(count, start + 200))
            ],
        )
        ids.extend(i.bk_inst_id for i in created)
    return ids


@contextlib.contextmanager
def count_statements(db: Database) -> Iterator[list[str]]:
    """Collects the SQL statements ``db`` sends (both engines), transaction control excluded."""
    statements: list[str] = []
    engines = {id(e): e for e in (db._writer, db._reader)}.values()

    def record(conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA")):
            statements.append(statement)

    for engine in engines:
        event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        for engine in engines:
            event.remove(engine.sync_engine, "before_cursor_execute", record)
