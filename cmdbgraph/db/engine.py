"""Engines and transactions for SQLite and PostgreSQL.

SQLite allows one writer at a time. Every write goes through a single writer connection that
opens its transactions with ``BEGIN IMMEDIATE`` (so a read-then-write transaction can never be
refused half-way by another process holding the lock), and writers of this process queue on an
``asyncio.Lock`` instead of fighting over the file lock. Readers use their own pool and run in
parallel thanks to WAL.

PostgreSQL uses one pool for both. Writers that decide on rows of the same model association
serialize on a transaction-scoped advisory lock (see ``lock_model_association``), and the
unique indexes of the tables remain the last word.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from cmdbgraph.settings import Settings


class Database:
    """Owns the engines of one database and hands out read and write transactions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = make_url(settings.database_url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            self._writer = _sqlite_engine(settings, writer=True)
            self._reader = _sqlite_engine(settings, writer=False)
            self._write_lock: asyncio.Lock | None = asyncio.Lock()
        else:
            self._writer = create_async_engine(
                self.url,
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_pool_size,
                pool_pre_ping=True,
                connect_args={
                    "server_settings": {
                        # Prepared statements are planned with their actual parameters every
                        # time: a generic plan made while a table was small (a sequential
                        # scan) would otherwise be reused as the table grows, and a batch
                        # would slow from milliseconds to seconds.
                        "plan_cache_mode": "force_custom_plan",
                        "application_name": "cmdbgraph",
                    }
                },
            )
            self._reader = self._writer
            self._write_lock = None

    @property
    def engine(self) -> AsyncEngine:
        return self._writer

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads, in a transaction that is rolled back at the end."""
        async with self._reader.connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a write transaction: committed on success, rolled back on error."""
        if self._write_lock is not None:
            async with self._write_lock, self._writer.begin() as conn:
                yield conn
        else:
            async with self._writer.begin() as conn:
                yield conn

    async def lock_model_association(self, conn: AsyncConnection, bk_obj_asst_id: str) -> None:
        """Serialize writers deciding on rows of one model association (PostgreSQL only).

        SQLite writers are already serialized by ``BEGIN IMMEDIATE``.
        """
        if self.is_sqlite:
            return
        key = zlib.crc32(bk_obj_asst_id.encode()) - 2**31
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    async def dispose(self) -> None:
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()


def _sqlite_engine(settings: Settings, *, writer: bool) -> AsyncEngine:
    options: dict = {}
    if writer:
        options["poolclass"] = AsyncAdaptedQueuePool
        options["pool_size"] = 1
        options["max_overflow"] = 0
        options["pool_timeout"] = settings.request_timeout_seconds
    else:
        options["poolclass"] = AsyncAdaptedQueuePool
        options["pool_size"] = max(2, settings.db_pool_size)
        options["max_overflow"] = 0
    engine = create_async_engine(settings.database_url, **options)
    busy_timeout = settings.sqlite_busy_timeout_ms

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # pragma: no cover - driver hook
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn) -> None:  # pragma: no cover - driver hook
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine
