"""The change stream's events are written with the change they describe: one per association
created or deleted, on every path, never for a change that did not commit, and in commit order
(a watcher that has read up to an event never later finds an earlier one)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import events as events_table
from cmdbgraph.db.tables import inst_associations
from cmdbgraph.services import associations, catalog, events, idempotency
from cmdbgraph.services import kinds as kind_service
from cmdbgraph.services.caller import SYSTEM
from tests.support.databases import new_instances
from tests.support.siblings import BELONG

EVERY = events.EventFilter()


async def all_events(db: Database) -> list[events.Event]:
    return await events.events_after(db, EVERY, 0, limit=100_000)


def batch(pairs, *, policy=associations.ErrorPolicy.PARTIAL, dry_run=False):
    return associations.BatchCreateRequest(
        "bk_switch",
        "host",
        BELONG,
        [associations.Detail(*p) for p in pairs],
        policy=policy,
        dry_run=dry_run,
    )


async def test_each_created_and_deleted_association_has_its_event(db):
    created = await associations.batch_create(db, SYSTEM, batch([(11, 21), (13, 22), (11, 999)]))
    ids = [item.association.id for item in created.items if item.association is not None]
    assert len(ids) == 2
    await associations.delete_associations(db, SYSTEM, [ids[0]])
    found = await all_events(db)
    assert [(e.event_type, e.resource_id) for e in found] == [
        ("create", ids[0]),
        ("create", ids[1]),
        ("delete", ids[0]),
    ]
    assert [e.id for e in found] == sorted(e.id for e in found)
    first = found[0]
    assert (first.resource, first.bk_obj_id, first.bk_asst_obj_id) == (
        "inst_asst",
        "bk_switch",
        "host",
    )
    assert first.detail["bk_obj_asst_id"] == BELONG
    assert (first.detail["bk_inst_id"], first.detail["bk_asst_inst_id"]) == (11, 21)


async def test_no_event_for_what_was_not_written(db, monkeypatch):
    # A dry run, an all-or-nothing batch that fails, a batch whose transaction fails after
    # the rows were inserted: nothing is stored, no event either.
    await associations.batch_create(db, SYSTEM, batch([(11, 21)], dry_run=True))
    await associations.batch_create(
        db, SYSTEM, batch([(11, 21), (11, 999)], policy=associations.ErrorPolicy.ALL_OR_NOTHING)
    )

    async def fail(*args, **kwargs):
        raise RuntimeError("injected before commit")

    monkeypatch.setattr(idempotency, "store_reply", fail)
    request = associations.BatchCreateRequest(
        "bk_switch", "host", BELONG, [associations.Detail(13, 22)], idempotency_key="k-1"
    )
    with pytest.raises(RuntimeError):
        await associations.batch_create(db, SYSTEM, request)
    async with db.read() as conn:
        assert (await conn.execute(select(inst_associations.c.id))).all() == []
    assert await all_events(db) == []


async def test_events_are_read_in_commit_order_while_writers_race(db, monkeypatch):
    """Writers on several model associations commit concurrently, each a little slow between
    writing its events and committing (as a loaded server is), while a reader follows from its
    last position: the reader sees every event exactly once, none after a later one."""
    sources = await new_instances(db, "bk_switch", "race-sw", 40)
    targets = await new_instances(db, "host", "race-host", 40)
    kinds = ["race_a", "race_b", "race_c", "race_d"]
    for kind in kinds:
        await kind_service.create_kind(db, SYSTEM, kind_service.NewKind(kind, kind))
        await catalog.create_model_association(
            db, SYSTEM, catalog.NewModelAssociation("bk_switch", "host", kind)
        )
    record = events.record_associations

    async def slow_commit(*args, **kwargs):
        await record(*args, **kwargs)
        await asyncio.sleep(random.uniform(0, 0.02))

    monkeypatch.setattr(events, "record_associations", slow_commit)
    done = asyncio.Event()
    seen: list[int] = []

    async def writer(offset: int) -> None:
        kind = kinds[offset]
        for round_ in range(8):
            start = offset * 10 + round_
            pairs = [(sources[(start + k) % 40], targets[(start * 3 + k) % 40]) for k in range(5)]
            request = associations.BatchCreateRequest(
                "bk_switch",
                "host",
                f"bk_switch_{kind}_host",
                [associations.Detail(*p) for p in pairs],
            )
            await associations.batch_create(db, SYSTEM, request)

    async def reader() -> None:
        position = 0
        while True:
            finished = done.is_set()
            found = await events.events_after(db, EVERY, position, limit=50)
            seen.extend(e.id for e in found)
            if found:
                position = found[-1].id
            elif finished:
                return
            await asyncio.sleep(0)

    follow = asyncio.create_task(reader())
    await asyncio.gather(*(writer(i) for i in range(4)))
    done.set()
    await follow
    stored = [e.id for e in await all_events(db)]
    assert stored and seen == stored


async def test_cursors_round_trip_and_refuse_what_this_service_did_not_write():
    moment = datetime(2026, 11, 30, 4, 0, 1, 234000, tzinfo=UTC)
    position = events.Position(42, moment)
    assert events.decode(events.encode(position)) == position
    for garbage in (
        "",
        "abc",
        "MQ0xMDQNNWNmYjY",
        events.encode(position) + "x",
        "Y2cxOi0xOjA",
        "Y2cxOjE6MTphYg",
    ):
        with pytest.raises(events.BadCursor):
            events.decode(garbage)


async def test_the_sweep_keeps_the_retention(db):
    await associations.batch_create(db, SYSTEM, batch([(11, 21)]))
    async with db.write() as conn:
        await conn.execute(
            events_table.update().values(create_time=datetime.now(UTC) - timedelta(days=8))
        )
    await associations.batch_create(db, SYSTEM, batch([(13, 22)]))
    assert await events.sweep(db, timedelta(days=7)) == 1
    assert [e.detail["bk_inst_id"] for e in await all_events(db)] == [13]
    old = events.Position(1, datetime.now(UTC) - timedelta(days=8))
    assert events.expired(old, timedelta(days=7))
    assert not events.expired(events.Position(1, datetime.now(UTC)), timedelta(days=7))


async def test_a_waiter_cancelled_as_a_commit_wakes_it_stays_cancelled():
    """A subscription closed in the same moment a commit wakes its follower: the follower's
    wait ends cancelled, as the close asked. (asyncio.wait_for on Python 3.11 returned
    normally then: the closed subscription went on reading, and the server could not stop.)"""
    signal = events._Signal()
    raced = 0
    for settle in range(4):  # the cancellation a few steps of the loop after the wake-up
        waiter = asyncio.create_task(signal.wait(signal.generation, 30))
        await asyncio.sleep(0)  # waiting now
        signal.bump()
        for _ in range(settle):
            await asyncio.sleep(0)
        if waiter.done():
            break  # woken and returned before the close: nothing left to cancel
        raced += 1
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert signal.waiting == 0
    assert raced >= 1
