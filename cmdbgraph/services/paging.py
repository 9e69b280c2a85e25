"""Keyset paging: a slice of a list ordered by one unique integer key, after or before a cursor,
at the same cost wherever it is in the list (``WHERE key > :after ORDER BY key LIMIT n`` on an
index, never OFFSET). Cursors are opaque: they name the list they came from and a key, with a
checksum, so that a cursor of another list, or one altered by hand, is refused rather than
misread."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import ColumnElement, Row, Select, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cmdbgraph.db.engine import Database
from cmdbgraph.services import cursors
from cmdbgraph.services.errors import ErrorCode, exceeds_limit, parameter_invalid, verbatim
from cmdbgraph.services.records import build_all

T = TypeVar("T")

_PREFIX = "k1"


def encode(kind: str, key: int) -> str:
    """The cursor of the row whose key is ``key`` in the list ``kind``."""
    return cursors.seal(_PREFIX, kind, key)


def decode(kind: str, cursor: str, argument: str) -> int:
    """The key a cursor of the list ``kind`` names; 1199006 naming ``argument`` for anything
    else."""
    fields = cursors.unseal(cursor)
    if fields is not None and len(fields) == 3:
        prefix, cursor_kind, key_text = fields
        if (
            prefix == _PREFIX
            and cursor_kind == kind
            and key_text.lstrip("-").isdigit()
            and -(2**63) <= int(key_text) < 2**63
        ):
            return int(key_text)
    raise verbatim(ErrorCode.PARAMETER_CHECK_FAILED, f"{argument} is not a cursor of this list")


@dataclass(frozen=True, slots=True)
class Window:
    """Which part of a list: Relay's ``first``/``after`` (forward) or ``last``/``before``
    (backward), keys already decoded. ``size`` is the page size (checked by the caller)."""

    size: int
    backward: bool = False
    after: int | None = None
    before: int | None = None


def window(
    kind: str,
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    default: int,
    maximum: int,
) -> Window:
    """Relay's arguments checked: ``first`` and ``last`` not both (1199006), each within
    0..maximum (1199011 negative, 1199035 beyond), cursors of this list (1199006)."""
    if first is not None and last is not None:
        raise verbatim(ErrorCode.PARAMETER_CHECK_FAILED, "first and last cannot be used together")
    size = last if last is not None else first
    name = "last" if last is not None else "first"
    if size is None:
        size = default
    elif size < 0:
        raise parameter_invalid(name)
    elif size > maximum:
        raise exceeds_limit(name, maximum)
    return Window(
        size=size,
        backward=last is not None,
        after=None if after is None else decode(kind, after, "after"),
        before=None if before is None else decode(kind, before, "before"),
    )


@dataclass(frozen=True, slots=True)
class Slice(Generic[T]):
    """The items of a window, in list order, and whether the list goes on either side: known
    from the page's own read on the side it was read towards; on the other side (the list
    before an ``after``, after a ``before``) asked of the database only when wanted."""

    items: list[T]
    more: bool  # beyond the window, on the side it was read towards
    backward: bool
    other_side: Callable[[], Awaitable[bool]]

    async def has_next(self) -> bool:
        return await self.other_side() if self.backward else self.more

    async def has_previous(self) -> bool:
        return self.more if self.backward else await self.other_side()


def statement(
    query: Select,
    key: ColumnElement,
    where: Sequence[ColumnElement[bool]],
    win: Window,
    *,
    descending: bool = False,
) -> Select:
    """The rows of ``query`` (filtered by ``where``) in ``win`` of the list ordered by ``key``
    (descending when ``descending``), one more than asked (to know whether the list goes on),
    in the order they are read: a backward window from its end towards its start."""
    bounds = list(where)
    if win.after is not None:
        bounds.append(key < win.after if descending else key > win.after)
    if win.before is not None:
        bounds.append(key > win.before if descending else key < win.before)
    reading_down = descending != win.backward
    return (
        query.where(*bounds).order_by(key.desc() if reading_down else key.asc()).limit(win.size + 1)
    )


async def slice_of(
    db: Database,
    rows: Sequence[Row],
    key: ColumnElement,
    where: Sequence[ColumnElement[bool]],
    win: Window,
    build: Callable[[Row], T],
    *,
    descending: bool = False,
) -> Slice[T]:
    """The slice the rows ``statement`` read make. Whether the list goes on on the other side
    of the cursor is one EXISTS on the index, run when asked."""
    more = len(rows) > win.size
    rows = list(rows[: win.size])
    if win.backward:
        rows.reverse()
    items = await build_all(rows, build)
    # The other side: at or before ``after`` (forward), at or after ``before`` (backward).
    cursor = win.before if win.backward else win.after
    if cursor is None:
        other = None
    elif win.backward:
        other = (key <= cursor) if descending else (key >= cursor)
    else:
        other = (key >= cursor) if descending else (key <= cursor)

    async def other_side() -> bool:
        if other is None:
            return False
        async with db.read() as check:
            return bool((await check.execute(select(exists().where(*where, other)))).scalar())

    return Slice(items, more, win.backward, other_side)


async def keyset(
    db: Database,
    query: Select,
    key: ColumnElement,
    where: Sequence[ColumnElement[bool]],
    win: Window,
    build: Callable[[Row], T],
    *,
    descending: bool = False,
    conn: AsyncConnection | None = None,
) -> Slice[T]:
    """The rows of ``query`` (filtered by ``where``) in ``win``, the list ordered by ``key``:
    one query (``statement``), on ``conn`` when given."""
    read = statement(query, key, where, win, descending=descending)
    if conn is None:
        async with db.read() as own:
            rows = (await own.execute(read)).all()
    else:
        rows = (await conn.execute(read)).all()
    return await slice_of(db, rows, key, where, win, build, descending=descending)
