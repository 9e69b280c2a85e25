"""The change stream: one event per change of an instance association, written in the
transaction of the change (a committed change always has its event, a rolled-back one never
does), its id the position a cursor encodes. Ids follow commit order (``Database.lock_events``),
so a watcher that has read up to an id never later finds a lower one.

Watchers read events from the table only; a commit in this process wakes them at once, and they
look again at a short interval for commits of other processes."""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import overload

import orjson
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cmdbgraph.db import bulk
from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import events
from cmdbgraph.services import cursors
from cmdbgraph.services.errors import CmdbError, ErrorCode, parameter_check_failed, verbatim
from cmdbgraph.services.records import InstAssociation

INST_ASST = "inst_asst"
CREATE, UPDATE, DELETE = "create", "update", "delete"
EVENT_TYPES = (CREATE, UPDATE, DELETE)
# How often a process looks for other processes' commits (one query, whoever waits): on
# SQLite, and on PostgreSQL when it cannot LISTEN; with LISTEN, a commit anywhere wakes the
# watchers, and the look is only a safeguard against a lost notification.
POLL_SECONDS = 0.25
LISTENING_POLL_SECONDS = 2.0
# How long a watcher waits before it reads again on its own: the lookout wakes it before.
SAFEGUARD_SECONDS = 30.0
CHANNEL = "cmdbgraph_events"


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    resource: str
    event_type: str
    resource_id: int
    bk_obj_id: str
    bk_asst_obj_id: str
    detail: dict
    create_time: datetime


_COLUMNS = [
    events.c.id,
    events.c.resource,
    events.c.event_type,
    events.c.resource_id,
    events.c.bk_obj_id,
    events.c.bk_asst_obj_id,
    events.c.detail,
    events.c.create_time,
]


def _event(row) -> Event:
    return Event(*row)


# --- Cursors ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Position:
    """Where a watcher stands: after the event ``id`` (0: before every event), written at
    ``moment`` (the cursor's age, to tell one the retention may have passed)."""

    id: int
    moment: datetime


class BadCursor(ValueError):
    """A cursor this service did not write."""


_CURSOR_PREFIX = "cg1"


def encode(position: Position) -> str:
    """The opaque cursor of ``position``."""
    return cursors.seal(_CURSOR_PREFIX, position.id, int(position.moment.timestamp() * 1000))


def decode(cursor: str) -> Position:
    """The position a cursor of ``encode`` names; raises ``BadCursor`` for anything else."""
    fields = cursors.unseal(cursor)
    if fields is None or len(fields) != 3:
        raise BadCursor(cursor)
    prefix, id_text, millis_text = fields
    if prefix != _CURSOR_PREFIX or not id_text.isdigit() or not millis_text.isdigit():
        raise BadCursor(cursor)
    position_id, millis = int(id_text), int(millis_text)
    if position_id >= 2**63 or millis > 253402300799999:  # int64; year 9999
        raise BadCursor(cursor)
    return Position(position_id, datetime.fromtimestamp(millis / 1000, UTC))


def position_of(event: Event) -> Position:
    return Position(event.id, event.create_time)


# The keys of an association's event detail as callers read it: upstream's stored document,
# its keys sorted.
DETAIL_KEYS = (
    "bk_asst_id",
    "bk_asst_inst_id",
    "bk_asst_obj_id",
    "bk_biz_id",
    "bk_inst_id",
    "bk_obj_asst_id",
    "bk_obj_id",
    "bk_supplier_account",
    "id",
)


def upstream_detail(event: Event, fields: Sequence[str] = ()) -> dict:
    """The event's association as upstream's watch shows it; only ``fields``, in their order
    (null for what there is not), when given."""
    stored = {key: event.detail.get(key) for key in DETAIL_KEYS}
    if not fields:
        return stored
    return {name: stored.get(name) for name in fields}


# --- Writing ----------------------------------------------------------------------------


def association_detail(a: InstAssociation) -> dict:
    """An association as its event carries it (the three ids first: ``record_associations``
    encodes the rest once for the associations that share it)."""
    return {
        "id": a.id,
        "bk_inst_id": a.bk_inst_id,
        "bk_asst_inst_id": a.bk_asst_inst_id,
        "bk_obj_id": a.bk_obj_id,
        "bk_asst_obj_id": a.bk_asst_obj_id,
        "bk_supplier_account": a.bk_supplier_account,
        "bk_obj_asst_id": a.bk_obj_asst_id,
        "bk_asst_id": a.bk_asst_id,
        "bk_biz_id": a.bk_biz_id,
        "creator": a.creator,
        "create_time": a.create_time.astimezone(UTC).isoformat(),
    }


def association_of(event: Event) -> InstAssociation:
    """The association an event of ``INST_ASST`` carries: as created, or as it was deleted."""
    d = event.detail
    return InstAssociation(
        id=d["id"],
        bk_obj_asst_id=d["bk_obj_asst_id"],
        bk_asst_id=d["bk_asst_id"],
        bk_obj_id=d["bk_obj_id"],
        bk_inst_id=d["bk_inst_id"],
        bk_asst_obj_id=d["bk_asst_obj_id"],
        bk_asst_inst_id=d["bk_asst_inst_id"],
        bk_supplier_account=d["bk_supplier_account"],
        bk_biz_id=d["bk_biz_id"],
        creator=d.get("creator") or "",
        create_time=datetime.fromisoformat(d["create_time"])
        if d.get("create_time")
        else event.create_time,
    )


async def record_associations(
    db: Database,
    conn: AsyncConnection,
    event_type: str,
    associations: Sequence[InstAssociation],
    *,
    now: datetime,
) -> None:
    """One event per association created or deleted, in ``conn``'s transaction. Takes the
    events lock: the transaction should commit soon after."""
    if not associations:
        return
    # Each detail as JSON text, ``association_detail(a)`` encoded. The associations of a batch
    # differ only in their ids: what follows the ids is encoded once per run of associations
    # that share it.
    rows = []
    shared: tuple | None = None
    rest = ""
    for a in associations:
        key = (
            a.bk_obj_id,
            a.bk_asst_obj_id,
            a.bk_supplier_account,
            a.bk_obj_asst_id,
            a.bk_asst_id,
            a.bk_biz_id,
            a.creator,
            a.create_time,
        )
        if key != shared:
            shared = key
            detail = association_detail(a)
            del detail["id"], detail["bk_inst_id"], detail["bk_asst_inst_id"]
            rest = orjson.dumps(detail).decode()[1:]  # without its "{"
        text = (
            f'{{"id":{int(a.id)},"bk_inst_id":{int(a.bk_inst_id)},'
            f'"bk_asst_inst_id":{int(a.bk_asst_inst_id)},{rest}'
        )
        rows.append((a.id, a.bk_obj_id, a.bk_asst_obj_id, text))
    await db.lock_events(conn, notify=CHANNEL)
    await bulk.insert_events(conn, resource=INST_ASST, event_type=event_type, now=now, rows=rows)


# --- Waking watchers ----------------------------------------------------------------------


class _Signal:
    """Commits of events to one database seen by this process: ``generation`` counts them, and
    ``changed`` is set (then replaced) at each. A watcher notes the generation before it reads,
    and reads again at once if it moved meanwhile: no commit slips between a read that found
    nothing and the wait that follows. ``waiting`` counts the watchers waiting now."""

    __slots__ = ("changed", "generation", "waiting")

    def __init__(self) -> None:
        self.generation = 0
        self.waiting = 0
        self.changed = asyncio.Event()

    def bump(self) -> None:
        self.generation += 1
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    async def wait(self, generation: int, seconds: float) -> None:
        """Return once a commit after ``generation`` is seen, or after ``seconds``."""
        if self.generation != generation:
            return
        self.waiting += 1
        try:
            # Not asyncio.wait_for: on Python 3.11 it returns normally when the event comes
            # in the same moment the waiter is cancelled, and the cancellation is lost (a
            # closed subscription would go on reading).
            async with asyncio.timeout(seconds):
                await self.changed.wait()
        except TimeoutError:
            pass
        finally:
            self.waiting -= 1


_signals: weakref.WeakKeyDictionary[Database, _Signal] = weakref.WeakKeyDictionary()
# Whether this process LISTENs for the commits of every process on a database (PostgreSQL).
_listening: weakref.WeakKeyDictionary[Database, bool] = weakref.WeakKeyDictionary()
# Where it cannot, one task per database looks for other processes' commits for every watcher.
_lookouts: weakref.WeakKeyDictionary[Database, asyncio.Task] = weakref.WeakKeyDictionary()


def _signal(db: Database) -> _Signal:
    signal = _signals.get(db)
    if signal is None:
        signal = _signals[db] = _Signal()
    return signal


def committed(db: Database) -> None:
    """Wake this process's watchers of ``db``: events were just committed (here, or in another
    process that notified)."""
    _signal(db).bump()


async def _poll_seconds(db: Database) -> float:
    """How long a watcher may wait before it reads again on its own. Commits wake it: this
    process's at once (``committed``), other processes' through one lookout task per process
    (``_look_out``); reading again after this long is only a safeguard."""
    if db not in _listening:
        _listening[db] = False
        _listening[db] = await db.listen(CHANNEL, lambda: committed(db))
    lookout = _lookouts.get(db)
    if lookout is None or lookout.done():
        _lookouts[db] = lookout = asyncio.create_task(_look_out(db))
        db.keep(lookout)
    return SAFEGUARD_SECONDS


async def _look_out(db: Database) -> None:
    """While watchers of ``db`` wait, read the newest event id and wake them when it moved
    (another process committed): every ``POLL_SECONDS``, or with LISTEN (which wakes them
    itself) every ``LISTENING_POLL_SECONDS`` in case a notification was lost. One query per
    interval however many watchers wait. Ends once nobody has waited for a few intervals."""
    signal = _signal(db)
    interval = LISTENING_POLL_SECONDS if _listening.get(db) else POLL_SECONDS
    # The first look wakes everyone: a commit may have come between a watcher's read and it.
    newest: int | None = -1
    idle_rounds = 0
    while idle_rounds < 8:
        now_newest: int | None
        try:
            now_newest = await head(db)
        except Exception:  # the database away for a moment: look again next round
            now_newest = newest
        if now_newest != newest:
            committed(db)
        newest = now_newest
        await asyncio.sleep(interval)
        idle_rounds = 0 if signal.waiting else idle_rounds + 1


# --- Reading ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventFilter:
    resource: str = INST_ASST
    event_types: tuple[str, ...] = ()  # all when empty
    bk_obj_id: str | None = None  # events whose source or target is of this model


def _where(flt: EventFilter) -> list:
    where = [events.c.resource == flt.resource]
    if flt.event_types:
        where.append(events.c.event_type.in_(flt.event_types))
    if flt.bk_obj_id is not None:
        where.append(
            (events.c.bk_obj_id == flt.bk_obj_id) | (events.c.bk_asst_obj_id == flt.bk_obj_id)
        )
    return where


async def events_after(db: Database, flt: EventFilter, after: int, *, limit: int) -> list[Event]:
    """Up to ``limit`` events after the id ``after``, oldest first."""
    async with db.read() as conn:
        rows = await conn.execute(
            select(*_COLUMNS)
            .where(events.c.id > after, *_where(flt))
            .order_by(events.c.id)
            .limit(limit)
        )
        return [_event(row) for row in rows]


async def position_at(db: Database, moment: datetime) -> Position:
    """The position just before the first event written at or after ``moment``.

    Event times ascend with ids (``bulk.insert_events``): the first event at or after
    ``moment`` is the first of the oldest time at or after it, two seeks in the index on
    create_time whatever the table's size. (The lowest id of every event at or after
    ``moment`` read them all, or every event before it.)"""
    first_time = (
        select(func.min(events.c.create_time))
        .where(events.c.create_time >= moment)
        .scalar_subquery()
    )
    async with db.read() as conn:
        first = (
            await conn.execute(
                select(func.min(events.c.id)).where(events.c.create_time == first_time)
            )
        ).scalar_one()
        if first is None:
            last = (await conn.execute(select(func.max(events.c.id)))).scalar_one()
            return Position(last or 0, moment)
        return Position(first - 1, moment)


async def latest(db: Database, flt: EventFilter) -> Event | None:
    """The newest event of the resource (whatever its type or models)."""
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(*_COLUMNS)
                .where(events.c.resource == flt.resource)
                .order_by(events.c.id.desc())
                .limit(1)
            )
        ).first()
        return None if row is None else _event(row)


@dataclass(frozen=True, slots=True)
class Watched:
    events: list[Event]  # empty: none came within the wait


async def wait_for_events(
    db: Database, flt: EventFilter, after: int, *, limit: int, wait_seconds: float
) -> Watched:
    """The events after ``after``, as soon as there is one, waiting up to ``wait_seconds``;
    no database connection is held while waiting."""
    deadline = time.monotonic() + wait_seconds
    signal = _signal(db)
    while True:
        generation = signal.generation
        found = await events_after(db, flt, after, limit=limit)
        remaining = deadline - time.monotonic()
        if found or remaining <= 0:
            return Watched(found)
        poll = await _poll_seconds(db)
        await signal.wait(generation, min(remaining, poll))


def expired(position: Position, retention: timedelta, *, now: datetime | None = None) -> bool:
    """Whether events after ``position`` may have been swept: its moment is older than the
    retention."""
    return position.moment < (now or datetime.now(UTC)) - retention


async def sweep(db: Database, retention: timedelta) -> int:
    """Delete the events older than ``retention``; how many. Writes nothing (takes no write
    lock) when there is nothing to delete."""
    cutoff = datetime.now(UTC) - retention
    async with db.read() as conn:
        # The oldest time: one seek in the index on create_time. (A row older than the
        # cutoff, LIMIT 1, was planned by PostgreSQL as a sequential scan while its statistics
        # still counted the rows the last sweep deleted, and then read the whole table.)
        oldest = (await conn.execute(select(func.min(events.c.create_time)))).scalar_one()
        if oldest is None or oldest >= cutoff:
            return 0
    async with db.write() as conn:
        result = await conn.execute(delete(events).where(events.c.create_time < cutoff))
        return result.rowcount or 0


class Slots:
    """How many of something this process holds open, below a limit."""

    def __init__(self) -> None:
        self.taken = 0

    def check(self, limit: int) -> None:
        """1199997 when all ``limit`` slots are taken."""
        if self.taken >= limit:
            raise CmdbError(ErrorCode.TOO_MANY_REQUESTS)

    @contextlib.contextmanager
    def take(self, limit: int) -> Iterator[None]:
        """Hold one slot; 1199997 when all ``limit`` are taken."""
        self.check(limit)
        self.taken += 1
        try:
            yield
        finally:
            self.taken -= 1


WATCHES = Slots()  # REST watches waiting
FOLLOWERS = Slots()  # GraphQL subscriptions


# --- upstream's resource_watch --------------------------------------------------------------

# Upstream's cursor that means "before every event retained" (it answers it when nothing is
# retained); accepted here too, for callers that kept one.
NO_EVENT_CURSOR = "MQ0xDTVlYTZkM2YzOTRjMWY1ZDk4NmU5YmQ4Ng1ub0V2ZW50DTENMQ0="
# Resources upstream lets a watch filter by model; this service watches inst_asst only.
_SUB_RESOURCES = ("object_instance", "mainline_instance", INST_ASST, "kube_workload")
MAX_EVENTS = 200


@dataclass(frozen=True, slots=True)
class WatchRequest:
    resource: str
    event_types: tuple[str, ...] = ()
    cursor: str = ""
    start_from: int = 0  # unix seconds; 0: not given
    sub_resource: str = ""


@dataclass(frozen=True, slots=True)
class WatchReply:
    """``events`` when any came (``watched``); otherwise ``cursor`` is where to go on from."""

    watched: bool
    events: list[Event]
    cursor: str


def _unknown(text: str) -> CmdbError:
    return verbatim(ErrorCode.UNKNOWN, text)


def check_watch(request: WatchRequest) -> None:
    """Upstream's checks of a watch, in its order (1199998 with its words)."""
    if any(kind not in EVENT_TYPES for kind in request.event_types):
        raise _unknown("unsupported event type")
    if request.start_from and request.cursor:
        raise _unknown("bk_start_from and bk_cursor can not use at the same time")
    if request.sub_resource and request.resource not in _SUB_RESOURCES:
        raise _unknown(f"{request.resource} event cannot have sub resource")
    if request.resource != INST_ASST:
        raise _unknown(f"unsupported cursor type {request.resource}")


async def watch(
    db: Database,
    request: WatchRequest,
    *,
    retention: timedelta,
    wait_seconds: float,
    max_watches: int,
) -> WatchReply:
    """Upstream's resource_watch for ``inst_asst``: after a cursor, the next events as soon as
    one commits (waiting up to ``wait_seconds``); from ``start_from``, the events since then
    at once; with neither, the newest event. At most 200 events, oldest first."""
    check_watch(request)
    flt = EventFilter(
        event_types=tuple(dict.fromkeys(request.event_types)),
        bk_obj_id=request.sub_resource or None,
    )
    now = datetime.now(UTC)
    if request.cursor:
        if request.cursor == NO_EVENT_CURSOR:
            position = Position(0, now)
        else:
            position = start(request.cursor, retention=retention)
        with WATCHES.take(max_watches):
            found = await wait_for_events(
                db, flt, position.id, limit=MAX_EVENTS, wait_seconds=wait_seconds
            )
        if found.events:
            return WatchReply(True, found.events, "")
        newest = await latest(db, flt)
        head = position if newest is None or newest.id <= position.id else position_of(newest)
        return WatchReply(False, [], encode(Position(head.id, now)))
    if request.start_from:
        age = now.timestamp() - request.start_from
        if age < 0 or age > retention.total_seconds():
            raise parameter_check_failed("bk_start_from")
        moment = datetime.fromtimestamp(request.start_from + 1, UTC)  # after that second
        since = await position_at(db, moment)
        found_events = await events_after(db, flt, since.id, limit=MAX_EVENTS)
        if found_events:
            return WatchReply(True, found_events, "")
        return WatchReply(False, [], await _head_cursor(db, flt, now))
    newest = await latest(db, flt)
    if newest is not None and _matches(newest, flt):
        return WatchReply(True, [newest], "")
    return WatchReply(False, [], await _head_cursor(db, flt, now))


def _matches(event: Event, flt: EventFilter) -> bool:
    if flt.event_types and event.event_type not in flt.event_types:
        return False
    return flt.bk_obj_id is None or flt.bk_obj_id in (event.bk_obj_id, event.bk_asst_obj_id)


async def _head_cursor(db: Database, flt: EventFilter, now: datetime) -> str:
    """A cursor after the newest event (before every event when there is none)."""
    return encode(Position(await head(db), now))


# --- Following the stream ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamFilter:
    """Which instance association events a follower wants: all when a field is empty."""

    event_types: frozenset[str] = frozenset()
    bk_obj_id: str | None = None  # the source's or the target's model
    bk_obj_asst_id: str | None = None

    def matches(self, event: Event) -> bool:
        return (
            event.resource == INST_ASST
            and (not self.event_types or event.event_type in self.event_types)
            and (
                self.bk_obj_id is None or self.bk_obj_id in (event.bk_obj_id, event.bk_asst_obj_id)
            )
            and (
                self.bk_obj_asst_id is None
                or event.detail.get("bk_obj_asst_id") == self.bk_obj_asst_id
            )
        )


@overload
def start(cursor: str, *, retention: timedelta) -> Position: ...
@overload
def start(cursor: None, *, retention: timedelta) -> None: ...
def start(cursor: str | None, *, retention: timedelta) -> Position | None:
    """Where a follower that gives ``cursor`` starts: after its event; None (no cursor) for
    the newest event. 1103007 for a cursor this service did not write, or one older than the
    retention (events after it may be gone: never a silent gap)."""
    if cursor is None:
        return None
    try:
        position = decode(cursor)
    except BadCursor:
        raise CmdbError(ErrorCode.EVENT_NODE_NOT_FOUND) from None
    if expired(position, retention):
        raise CmdbError(ErrorCode.EVENT_NODE_NOT_FOUND)
    return position


async def head(db: Database) -> int:
    """The id of the newest event (0 when there is none)."""
    async with db.read() as conn:
        return (await conn.execute(select(func.max(events.c.id)))).scalar_one() or 0


# The reads in flight, by database and position: followers at the same position (a commit
# wakes them together) share one query.
_reads: weakref.WeakKeyDictionary[Database, dict[int, asyncio.Task[list[Event]]]] = (
    weakref.WeakKeyDictionary()
)


async def _read_after(db: Database, after: int) -> list[Event]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(*_COLUMNS).where(events.c.id > after).order_by(events.c.id).limit(MAX_EVENTS)
        )
        return [_event(row) for row in rows]


async def _shared_read(db: Database, after: int) -> list[Event]:
    """The events after ``after`` (up to ``MAX_EVENTS``), read once for every follower that
    asks from there meanwhile. A follower that goes away does not cancel the others' read."""
    pending = _reads.setdefault(db, {})
    read = pending.get(after)
    if read is None:
        read = pending[after] = asyncio.create_task(_read_after(db, after))

        def done(finished: asyncio.Task[list[Event]]) -> None:
            if pending.get(after) is finished:
                del pending[after]
            if not finished.cancelled():
                finished.exception()  # retrieved here: nobody may be left to await it

        read.add_done_callback(done)
        db.keep(read)
    return await asyncio.shield(read)


async def follow(db: Database, after: int, flt: StreamFilter) -> AsyncIterator[Event]:
    """Every event after the id ``after`` that ``flt`` matches, oldest first, as they commit
    in any process, until the caller stops. Reads only from the table; holds no connection
    while it waits."""
    signal = _signal(db)
    while True:
        generation = signal.generation
        batch = await _shared_read(db, after)
        for event in batch:
            if flt.matches(event):
                yield event
        if batch:
            after = batch[-1].id
        if len(batch) < MAX_EVENTS:
            await signal.wait(generation, await _poll_seconds(db))
