"""Engines and transactions for SQLite and PostgreSQL.

SQLite allows one writer at a time. Every write goes through a single writer connection that
opens its transactions with ``BEGIN IMMEDIATE`` (so a read-then-write transaction can never be
refused half-way by another process holding the lock), and writers of this process queue on an
``asyncio.Lock`` instead of fighting over the file lock. Readers use their own pool and run in
parallel thanks to WAL.

PostgreSQL uses one pool for both. Writers that decide on rows of the same model association
serialize on a transaction-scoped advisory lock (see ``lock_model_association``), and the
unique indexes of the tables remain the last word. Apart from a connection's startup
parameters, nothing a statement does outlives its transaction (no plain SET, session lock,
temporary table or held cursor), so the URL may lead to a pooler in transaction mode:
``database_pooler`` then sends only the startup parameters a pooler accepts and keeps prepared
statements within their transaction too, and LISTEN, which needs a session of its own, goes
to ``database_listen_url``.

When the database cannot be reached or cannot store anything (PostgreSQL down, a SQLite file
that is read-only, a full disk), ``read()`` and ``write()`` raise ``DatabaseUnavailable``
instead of the driver's error, and the outage is logged once, with a count when it ends. A
connection such an error may have poisoned is discarded, so the next request starts afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from cmdbgraph.db.regex import sqlite_regexp
from cmdbgraph.settings import Settings

log = logging.getLogger("cmdbgraph.db")

# SQLite errors after which a connection cannot be trusted to write again: one opened while the
# file was read-only stays read-only, even once the file is writable.
_SQLITE_POISONED = (
    "attempt to write a readonly database",
    "disk i/o error",
    "database or disk is full",
    "unable to open database file",
    "database disk image is malformed",
)
# SQLite errors that mean "not now" rather than "this request is wrong".
_SQLITE_UNAVAILABLE = (*_SQLITE_POISONED, "database is locked")


class DatabaseUnavailable(Exception):
    """The database cannot serve the request now: not the request's fault, worth a retry."""


def _sqlite_message(error: BaseException) -> str | None:
    original = getattr(error, "orig", None) or error
    if isinstance(original, sqlite3.Error):
        return str(original).lower()
    return None


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database is out of reach or out of service, as opposed to
    a fault of the statement or its data."""
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    message = _sqlite_message(error)
    if message is not None:
        return message.startswith(_SQLITE_UNAVAILABLE)
    if isinstance(error, exc.TimeoutError):  # no pooled connection came free in time
        return True
    original = getattr(error, "orig", None) or error
    if isinstance(original, OSError | TimeoutError):  # refused, reset, unreachable, timed out
        return True
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return False
    cause = getattr(original, "__cause__", None)
    return isinstance(
        original,
        asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError
        | asyncpg.TooManyConnectionsError
        | asyncpg.AdminShutdownError
        | asyncpg.InterfaceError,
    ) or isinstance(cause, asyncpg.PostgresConnectionError | OSError)


class Outage:
    """Logs an outage once when it starts and once when it ends, with how many calls failed,
    instead of a traceback per request."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.failures = 0
        # An outage that began with a failed write ends with a write: a read succeeding (the
        # file became read-only, say) proves nothing about writes.
        self.began_writing = False

    def failed(self, error: BaseException, *, writing: bool) -> None:
        self.failures += 1
        if self.since is None:
            self.since = time.monotonic()
            self.began_writing = writing
            original = getattr(error, "orig", None) or error
            log.error(
                "database unavailable (%s: %s); answering 503 until it is back",
                type(original).__name__,
                str(original).splitlines()[0][:300] if str(original) else "",
            )

    def succeeded(self, *, writing: bool) -> None:
        if self.since is None or (self.began_writing and not writing):
            return
        log.warning(
            "database available again after %.1f s; %d calls failed meanwhile",
            time.monotonic() - self.since,
            self.failures,
        )
        self.since = None
        self.failures = 0


class Database:
    """Owns the engines of one database and hands out read and write transactions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = make_url(settings.database_url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            self._writer = _sqlite_engine(settings, writer=True, on_poisoned=self._poisoned)
            self._reader = _sqlite_engine(settings, writer=False, on_poisoned=self._poisoned)
            self._write_lock: asyncio.Lock | None = asyncio.Lock()
        else:
            self._writer = create_async_engine(
                self.url,
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_pool_size,
                pool_pre_ping=True,
                connect_args=_postgresql_connect_args(settings),
            )
            self._reader = self._writer
            self._write_lock = None
        self.outage = Outage()
        # Set when a SQLite connection was discarded as poisoned (see ``_writable_again``).
        self._writer_suspect = False
        # PostgreSQL connections that LISTEN (see ``listen``), closed with the engines.
        self._listeners: list[Any] = []
        self._tasks: set[asyncio.Task] = set()

    @property
    def engine(self) -> AsyncEngine:
        return self._writer

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads, in a transaction that is rolled back at the end.

        Raises ``DatabaseUnavailable`` when the database is out of reach."""
        try:
            async with self._reader.connect() as conn:
                yield conn
        except Exception as error:
            if not self._unavailable(error, writing=False):
                raise
            raise DatabaseUnavailable(str(getattr(error, "orig", None) or error)) from error
        if self.outage.since is not None:
            self.outage.succeeded(writing=False)

    @asynccontextmanager
    async def write(self, *, bulk: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection in a write transaction: committed on success, rolled back on error.

        ``bulk``: the transaction inserts many rows with plain statements. On PostgreSQL it
        then lets the server reuse generic plans, as the foreign-key checks of every inserted
        row would otherwise be planned anew for each row (``force_custom_plan``, below). A
        batch create needs no flag: it plans generically from its lookups on
        (``bulk.generic_plans``).

        Raises ``DatabaseUnavailable`` when the database is out of reach or cannot store."""
        try:
            if self._write_lock is not None:
                async with self._write_lock:
                    if self._writer_suspect:
                        await self._writable_again()
                    async with self._writer.begin() as conn:
                        yield conn
            else:
                async with self._writer.begin() as conn:
                    if bulk:
                        await conn.exec_driver_sql("SET LOCAL plan_cache_mode = auto")
                    yield conn
        except Exception as error:
            if not self._unavailable(error, writing=True):
                raise
            raise DatabaseUnavailable(str(getattr(error, "orig", None) or error)) from error
        if self.outage.since is not None:
            self.outage.succeeded(writing=True)

    def _poisoned(self) -> None:
        self._writer_suspect = True

    async def _writable_again(self) -> None:
        """After a poisoned SQLite connection was discarded, the next one this process opens on
        the same file can inherit its read-only state (SQLite shares per-file state between the
        connections of a process) even once the file is writable again. Open, write nothing
        but the header's own value, and discard, until a connection writes (at most 3)."""
        for _ in range(3):
            try:
                async with self._writer.begin() as conn:
                    version = (await conn.exec_driver_sql("PRAGMA user_version")).scalar_one()
                    await conn.exec_driver_sql(f"PRAGMA user_version = {int(version)}")
            except Exception as error:
                if not is_unavailable(error):
                    raise
                continue
            self._writer_suspect = False
            return

    def _unavailable(self, error: Exception, *, writing: bool) -> bool:
        """Whether ``error`` is an outage not yet translated (and noted)."""
        if isinstance(error, DatabaseUnavailable) or not is_unavailable(error):
            return False
        self.outage.failed(error, writing=writing)
        return True

    async def lock_model_association(self, conn: AsyncConnection, bk_obj_asst_id: str) -> None:
        """Serialize writers deciding on rows of one model association (PostgreSQL only).

        SQLite writers are already serialized by ``BEGIN IMMEDIATE``.
        """
        if self.is_sqlite:
            return
        key = zlib.crc32(bk_obj_asst_id.encode()) - 2**31
        await conn.execute(_LOCK, {"key": key})

    async def lock_events(self, conn: AsyncConnection, notify: str) -> None:
        """Serialize writers of events until they commit (PostgreSQL only), so that event ids
        follow commit order: no lower id can commit after a higher one is visible; and tell
        every listener of the channel ``notify`` when this transaction commits (nothing if it
        rolls back). One statement.

        SQLite writers are already serialized by ``BEGIN IMMEDIATE``."""
        if self.is_sqlite:
            return
        # The key is beyond the 32-bit keys of lock_model_association.
        await conn.execute(
            _LOCK_AND_NOTIFY,
            {"key": _EVENTS_LOCK, "channel": notify},
        )

    async def listen(self, channel: str, callback: Callable[[], None]) -> bool:
        """PostgreSQL only: call ``callback`` on every notification on ``channel``, on a
        connection of its own (to ``database_listen_url`` when set). False where it cannot
        (SQLite; behind a transaction pooler without a direct URL, where LISTEN would
        succeed and no notification ever arrive; the server refused): the caller then looks
        for changes by reading again."""
        if self.is_sqlite:
            return False
        import asyncpg

        if self.settings.database_listen_url:
            url = make_url(self.settings.database_listen_url)
        elif self.settings.database_pooler != "none":
            log.info(
                "no LISTEN on %s through the pooler (database_pooler=%s): watchers read "
                "again instead; set database_listen_url to listen on the server directly",
                channel,
                self.settings.database_pooler,
            )
            return False
        else:
            url = self.url
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            conn = await asyncpg.connect(dsn, timeout=10)
            await conn.add_listener(channel, lambda *_: callback())
        except Exception as error:  # noqa: BLE001 - any failure: fall back to reading again
            log.warning("cannot listen on %s (%s): watchers read again instead", channel, error)
            return False
        self._listeners.append(conn)
        return True

    def keep(self, task: asyncio.Task) -> None:
        """Hold ``task`` (work of this database's watchers) until it ends; ``dispose`` cancels
        it first, so that it never runs a statement on an engine going away."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def dispose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                await listener.close(timeout=5)
        self._listeners.clear()
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()


_EVENTS_LOCK = 2**40 + 1
_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_LOCK_AND_NOTIFY = text("SELECT pg_advisory_xact_lock(:key), pg_notify(:channel, '')")


def _postgresql_connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg's options: straight to PostgreSQL, or through a pooler in transaction mode."""
    if settings.database_pooler == "none":
        return {
            "server_settings": {
                # Prepared statements are planned with their actual parameters every time: a
                # generic plan made while a table was small (a sequential scan) would
                # otherwise be reused as the table grows, and a batch would slow from
                # milliseconds to seconds.
                "plan_cache_mode": "force_custom_plan",
                "application_name": "cmdbgraph",
            }
        }
    # Through a transaction pooler each transaction may run on another server connection,
    # shared with other clients. Statements named by a counter per client connection (asyncpg's
    # default, cached by SQLAlchemy and asyncpg) then collide with another client's ("prepared
    # statement ... already exists") or are missing ("... does not exist"); uniquely named ones
    # (SQLAlchemy's documented workaround) work but pile up on the server connections, as
    # their Close often reaches another one. With both caches off, asyncpg prepares each
    # statement unnamed, inside its transaction, and parses it again with its execution:
    # nothing outlives the transaction, and being parsed anew an unnamed statement is always
    # planned with its actual parameters (what force_custom_plan gets above). A pooler refuses
    # startup parameters it does not know (PgBouncer: "unsupported startup parameter"):
    # application_name only.
    return {
        "statement_cache_size": 0,  # asyncpg's
        "prepared_statement_cache_size": 0,  # SQLAlchemy's
        "server_settings": {"application_name": "cmdbgraph"},
    }


_ROLLBACKS: set[asyncio.Task] = set()


def _interrupt(context) -> None:
    """Stop the statement SQLite's thread runs for a cancelled request, then roll its
    transaction back there: SQLAlchemy discards the connection without closing it, which
    would leave the write lock held until the garbage collector happens by."""
    dbapi_connection = getattr(context.connection, "_dbapi_connection", None)
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is None:
        return
    with contextlib.suppress(sqlite3.Error, ValueError):  # closed already: nothing runs
        driver._conn.interrupt()
        rollback = asyncio.get_running_loop().create_task(driver.rollback())
        _ROLLBACKS.add(rollback)  # kept until done: a task only weakly referenced may vanish
        rollback.add_done_callback(_forget)


def _forget(task: asyncio.Task) -> None:
    _ROLLBACKS.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a connection closed meanwhile needs no rollback


def _sqlite_engine(settings: Settings, *, writer: bool, on_poisoned) -> AsyncEngine:
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
        # Conditions' $regex (services/conditions.py), by RE2.
        dbapi_connection.create_function("regexp", 2, sqlite_regexp, deterministic=True)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn) -> None:  # pragma: no cover - driver hook
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context) -> None:
        # Treated as a lost connection: the pool discards it and the next checkout opens a new
        # one, which sees the file as it is now (writable again, space freed).
        if isinstance(context.original_exception, asyncio.CancelledError):
            # The request was cancelled (a timeout) while SQLite's thread runs a statement.
            _interrupt(context)
            return
        message = _sqlite_message(context.original_exception)
        if message is not None and message.startswith(_SQLITE_POISONED):
            context.is_disconnect = True
            on_poisoned()

    return engine
