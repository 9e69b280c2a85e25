"""Persisted GraphQL documents, kept in the database by the SHA-256 of their text (lowercase
hex), so that every server process shares them.

Two kinds of rows:

- **automatic**: stored by a client through automatic persisted queries (Apollo's APQ: the
  client sends the hash; when the server does not know it, the document with its hash once).
  At most ``max_automatic`` are kept: storing one more drops the oldest (a client whose
  document was dropped is told ``PersistedQueryNotFound`` and sends it again). A document over
  ``MAX_AUTOMATIC_BYTES`` runs but is not stored (10,000 tokens, ``CMDBGRAPH_MAX_TOKENS``'s
  default, take well under that): the table holds at most ``max_automatic`` times that.
- **registered**: stored by an operator (``cmdbgraph queries register``): the allow-list, never
  dropped, and not counted against that bound.

Each process keeps the documents it found in a small LRU cache (``DocumentCache``: 1,024
documents and 16 Mi characters at most, each for a minute): a hit reads nothing from the
database. Misses are not cached,
so a document stored by another process is found at once; a document an operator removed may
still run in a process for up to a minute.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import persisted_queries

# The APQ protocol version this service speaks (the only one there is).
VERSION = 1
# The largest document (UTF-8) stored for automatic persisted queries.
MAX_AUTOMATIC_BYTES = 100_000

_HASH = re.compile(r"[0-9a-fA-F]{64}")


def document_hash(document: str) -> str:
    """The SHA-256 of ``document``'s UTF-8 text, in lowercase hex: what clients send."""
    return hashlib.sha256(document.encode("utf-8", "surrogatepass")).hexdigest()


def is_hash(value: object) -> bool:
    """``value`` is a SHA-256 in hex (64 hex digits, either case)."""
    return isinstance(value, str) and _HASH.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class PersistedQuery:
    sha256_hash: str
    document: str
    registered: bool
    create_time: datetime


@dataclass(frozen=True, slots=True)
class _Cached:
    document: str
    registered: bool
    expires: float


class DocumentCache:
    """The documents a process found lately, by hash: at most ``size`` of them and
    ``max_chars`` characters in all, each kept for ``ttl_seconds``, the least recently used
    dropped first."""

    def __init__(
        self,
        size: int = 1024,
        ttl_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_chars: int = 16 * 1024 * 1024,
    ) -> None:
        self.size = size
        self.ttl_seconds = ttl_seconds
        self.max_chars = max_chars
        self._clock = clock
        self._entries: OrderedDict[str, _Cached] = OrderedDict()
        self._chars = 0

    def get(self, sha256_hash: str) -> _Cached | None:
        entry = self._entries.get(sha256_hash)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            self._drop(sha256_hash)
            return None
        self._entries.move_to_end(sha256_hash)
        return entry

    def put(self, sha256_hash: str, document: str, registered: bool) -> None:
        self._drop(sha256_hash)
        if len(document) > self.max_chars:
            return
        expires = self._clock() + self.ttl_seconds
        self._entries[sha256_hash] = _Cached(document, registered, expires)
        self._chars += len(document)
        while len(self._entries) > self.size or self._chars > self.max_chars:
            self._drop(next(iter(self._entries)))

    def _drop(self, sha256_hash: str) -> None:
        entry = self._entries.pop(sha256_hash, None)
        if entry is not None:
            self._chars -= len(entry.document)

    def __len__(self) -> int:
        return len(self._entries)


class PersistedQueries:
    """The persisted documents as one server process sees them: the table, behind a
    ``DocumentCache``."""

    def __init__(
        self, db: Database, *, max_automatic: int, cache: DocumentCache | None = None
    ) -> None:
        self.db = db
        self.max_automatic = max_automatic
        self.cache = cache or DocumentCache()

    async def find(self, sha256_hash: str, *, registered_only: bool = False) -> str | None:
        """The document stored under ``sha256_hash`` (lowercase hex); with ``registered_only``,
        only a registered one. None when there is none."""
        cached = self.cache.get(sha256_hash)
        if cached is not None and (cached.registered or not registered_only):
            return cached.document
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(persisted_queries.c.document, persisted_queries.c.registered).where(
                        persisted_queries.c.sha256_hash == sha256_hash
                    )
                )
            ).first()
        if row is None:
            return None
        self.cache.put(sha256_hash, row.document, row.registered)
        if registered_only and not row.registered:
            return None
        return row.document

    async def store(self, sha256_hash: str, document: str) -> None:
        """Keep ``document`` (whose hash the caller checked) as an automatic persisted query,
        unless it is kept already or larger than ``MAX_AUTOMATIC_BYTES``; beyond
        ``max_automatic`` automatic ones, drop the oldest."""
        if self.cache.get(sha256_hash) is not None:
            return
        if len(document.encode("utf-8", "surrogatepass")) > MAX_AUTOMATIC_BYTES:
            return
        insert = sqlite_insert if self.db.is_sqlite else postgresql_insert
        statement = (
            insert(persisted_queries)
            .values(
                sha256_hash=sha256_hash,
                document=document,
                registered=False,
                create_time=datetime.now(UTC),
            )
            .on_conflict_do_nothing(index_elements=[persisted_queries.c.sha256_hash])
        )
        async with self.db.write() as conn:
            stored = (await conn.execute(statement)).rowcount
            if stored:
                await _drop_oldest_automatic(conn, self.max_automatic)
        if stored:
            self.cache.put(sha256_hash, document, registered=False)


async def _drop_oldest_automatic(conn: AsyncConnection, keep: int) -> None:
    table = persisted_queries
    automatic = ~table.c.registered
    count = (
        await conn.execute(select(func.count()).select_from(table).where(automatic))
    ).scalar_one()
    if count <= keep:
        return
    oldest = (
        select(table.c.sha256_hash)
        .where(automatic)
        .order_by(table.c.create_time, table.c.sha256_hash)
        .limit(count - keep)
    )
    await conn.execute(delete(table).where(automatic, table.c.sha256_hash.in_(oldest)))


# Managing the allow-list (the command line) -------------------------------------------------


async def register(db: Database, documents: Iterable[str]) -> dict[str, bool]:
    """Store ``documents`` as registered (an automatic row of the same hash becomes
    registered), in one transaction: by each one's hash, whether it was not registered
    before."""
    by_hash = {document_hash(document): document for document in documents}
    table = persisted_queries
    async with db.write() as conn:
        before = {
            row.sha256_hash: row.registered
            for row in await conn.execute(
                select(table.c.sha256_hash, table.c.registered).where(
                    table.c.sha256_hash.in_(list(by_hash))
                )
            )
        }
        now = datetime.now(UTC)
        new = [
            {"sha256_hash": h, "document": d, "registered": True, "create_time": now}
            for h, d in by_hash.items()
            if h not in before
        ]
        if new:
            await conn.execute(table.insert(), new)
        promoted = [h for h, registered in before.items() if not registered]
        if promoted:
            await conn.execute(
                update(table).where(table.c.sha256_hash.in_(promoted)).values(registered=True)
            )
    return {h: not before.get(h, False) for h in by_hash}


async def list_queries(db: Database, *, registered_only: bool = False) -> list[PersistedQuery]:
    """Every persisted document (or every registered one), registered first, oldest first."""
    table = persisted_queries
    statement = select(table).order_by(
        table.c.registered.desc(), table.c.create_time, table.c.sha256_hash
    )
    if registered_only:
        statement = statement.where(table.c.registered)
    async with db.read() as conn:
        return [
            PersistedQuery(row.sha256_hash, row.document, row.registered, row.create_time)
            for row in await conn.execute(statement)
        ]


async def get(db: Database, sha256_hash: str) -> PersistedQuery | None:
    table = persisted_queries
    async with db.read() as conn:
        row = (
            await conn.execute(select(table).where(table.c.sha256_hash == sha256_hash.lower()))
        ).first()
    if row is None:
        return None
    return PersistedQuery(row.sha256_hash, row.document, row.registered, row.create_time)


async def remove(db: Database, sha256_hash: str) -> bool:
    """Remove the document stored under ``sha256_hash``; False when there is none. Running
    servers may still run it for up to a minute (their caches)."""
    table = persisted_queries
    async with db.write() as conn:
        removed = await conn.execute(
            delete(table).where(table.c.sha256_hash == sha256_hash.lower())
        )
    return bool(removed.rowcount)
