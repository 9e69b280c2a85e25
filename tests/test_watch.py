"""upstream's resource_watch for inst_asst: the newest event, the events since a time, the
events after a cursor as soon as one commits (a long poll that holds no connection), upstream's
refusals in its order; and across two real server processes on one database."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from cmdbgraph.app import create_app
from cmdbgraph.db.tables import events as events_table
from cmdbgraph.services import events
from tests.support.calls import ESB_PATH, demo_headers, rest_body
from tests.support.servers import live_server
from tests.support.siblings import BELONG, CONNECT, ROUTES, call, store
from tests.support.upstream import Upstream, check_failed, mongodb

WATCH = "resource_watch"
NODE_NOT_FOUND = Upstream(1103007, "事件节点不存在", "Event chain node not exist")
WAIT = 1.0  # the long poll's wait in these tests


@pytest.fixture
async def client(settings, db):
    """The app with a short long-poll wait."""
    app = create_app(settings.model_copy(update={"watch_wait_seconds": WAIT}), db=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", timeout=30
    ) as http:
        yield http


async def watch(client, route, body, *, language="zh"):
    return await call(client, WATCH, route, {"bk_resource": "inst_asst", **body}, language=language)


def cursor_of(reply) -> str:
    return reply.data["bk_events"][-1]["bk_cursor"]


@pytest.mark.parametrize("route", ROUTES)
async def test_from_now_answers_the_newest_event(client, db, route):
    empty = await watch(client, route, {})
    assert (empty.code, empty.data["bk_watched"]) == (0, False)
    (none,) = empty.data["bk_events"]
    assert list(none) == ["bk_cursor", "bk_resource", "bk_event_type", "bk_detail"]
    assert (none["bk_resource"], none["bk_event_type"], none["bk_detail"]) == (
        "inst_asst",
        "",
        None,
    )
    ids = await store(db, BELONG, (11, 21), (13, 22))
    newest = await watch(client, route, {})
    assert newest.data["bk_watched"] is True
    (event,) = newest.data["bk_events"]
    assert (event["bk_event_type"], event["bk_detail"]["id"]) == ("create", ids[1])
    # upstream's stored document, its keys sorted.
    assert list(event["bk_detail"]) == [
        "bk_asst_id",
        "bk_asst_inst_id",
        "bk_asst_obj_id",
        "bk_biz_id",
        "bk_inst_id",
        "bk_obj_asst_id",
        "bk_obj_id",
        "bk_supplier_account",
        "id",
    ]
    assert event["bk_detail"] | {} == {
        "bk_asst_id": "belong",
        "bk_asst_inst_id": 22,
        "bk_asst_obj_id": "host",
        "bk_biz_id": 0,
        "bk_inst_id": 13,
        "bk_obj_asst_id": BELONG,
        "bk_obj_id": "bk_switch",
        "bk_supplier_account": "0",
        "id": ids[1],
    }


@pytest.mark.parametrize("route", ROUTES)
async def test_a_cursor_reads_on_in_order_with_filters_and_fields(client, db, route):
    start = await watch(client, route, {})
    cursor = cursor_of(start)
    belong = await store(db, BELONG, (11, 21), (13, 22))
    connect = await store(db, CONNECT, (14, 23))
    await call(
        client, "delete_related_inst_asso", "native", {"bk_obj_id": "bk_switch", "id": belong[:1]}
    )
    every = await watch(client, route, {"bk_cursor": cursor})
    assert every.data["bk_watched"] is True
    assert [(e["bk_event_type"], e["bk_detail"]["id"]) for e in every.data["bk_events"]] == [
        ("create", belong[0]),
        ("create", belong[1]),
        ("create", connect[0]),
        ("delete", belong[0]),
    ]
    deletes = await watch(client, route, {"bk_cursor": cursor, "bk_event_types": ["delete"]})
    assert [e["bk_detail"]["id"] for e in deletes.data["bk_events"]] == belong[:1]
    # Fields: those keys, in the order asked, null for what there is not.
    projected = await watch(
        client, route, {"bk_cursor": cursor, "bk_fields": ["id", "bk_obj_id", "nope"]}
    )
    assert projected.data["bk_events"][0]["bk_detail"] == {
        "id": belong[0],
        "bk_obj_id": "bk_switch",
        "nope": None,
    }
    # A model: events whose source or target is of it.
    by_model = await watch(
        client, route, {"bk_cursor": cursor, "bk_filter": {"bk_sub_resource": "bk_router"}}
    )
    assert by_model.data["bk_watched"] is False
    host = await watch(
        client, route, {"bk_cursor": cursor, "bk_filter": {"bk_sub_resource": "host"}}
    )
    assert len(host.data["bk_events"]) == 4
    # Going on from the last event: nothing more, after the wait.
    began = time.monotonic()
    after = await watch(client, route, {"bk_cursor": cursor_of(every)})
    assert after.data["bk_watched"] is False
    assert WAIT <= time.monotonic() - began < WAIT + 5
    # Its cursor goes on from there: the next event, and only it.
    later = await store(db, BELONG, (14, 21))
    resumed = await watch(client, route, {"bk_cursor": cursor_of(after)})
    assert [e["bk_detail"]["id"] for e in resumed.data["bk_events"]] == later


async def test_a_waiting_watch_answers_as_soon_as_an_event_commits(client, db, settings):
    position = cursor_of(await watch(client, "native", {}))
    long_wait = create_app(settings.model_copy(update={"watch_wait_seconds": 20}), db=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=long_wait), base_url="http://testserver", timeout=30
    ) as waiting:
        began = time.monotonic()
        pending = asyncio.create_task(watch(waiting, "native", {"bk_cursor": position}))
        await asyncio.sleep(0.3)
        assert not pending.done()
        created = await store(db, BELONG, (11, 21))
        reply = await pending
    assert [e["bk_detail"]["id"] for e in reply.data["bk_events"]] == created
    assert time.monotonic() - began < 5


@pytest.mark.parametrize("route", ROUTES)
async def test_start_from_answers_the_events_since_then(client, db, route):
    old = await store(db, BELONG, (11, 21))
    async with db.write() as conn:
        await conn.execute(
            update(events_table).values(create_time=datetime.now(UTC) - timedelta(hours=2))
        )
    recent = await store(db, BELONG, (13, 22))
    since = int(time.time()) - 3600
    reply = await watch(client, route, {"bk_start_from": since})
    assert [e["bk_detail"]["id"] for e in reply.data["bk_events"]] == recent
    assert old != recent
    nothing = await watch(client, route, {"bk_start_from": int(time.time())})
    assert nothing.data["bk_watched"] is False


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("route", ROUTES)
async def test_refusals_in_upstreams_order(client, db, route, language):
    now = int(time.time())
    stale = events.encode(events.Position(1, datetime.now(UTC) - timedelta(days=8)))
    cases = [
        (
            {"bk_event_types": ["create", "modify"], "bk_start_from": now, "bk_cursor": "x"},
            mongodb("unsupported event type"),
        ),
        ({"bk_event_types": [None]}, mongodb("unsupported event type")),
        (
            {"bk_start_from": now, "bk_cursor": "x"},
            mongodb("bk_start_from and bk_cursor can not use at the same time"),
        ),
        ({"bk_cursor": "MQ0yDTE1ODkyMDcyODENMQ01ZWI3ZWZjNTBiOTA5ZTYyMGFmYWQzZGY="}, NODE_NOT_FOUND),
        ({"bk_cursor": stale}, NODE_NOT_FOUND),
        ({"bk_start_from": now + 60}, check_failed("bk_start_from")),
        ({"bk_start_from": now - 8 * 86400}, check_failed("bk_start_from")),
        ({"bk_start_from": -1}, check_failed("bk_start_from")),
        (
            {"bk_cursor": 5},
            Upstream(1199000, "反序列化JSON数据失败", "Deserializing JSON data failed"),
        ),
        # This service's own bound on what one reply costs.
        (
            {"bk_fields": ["id"] * 101},
            Upstream(1199035, "bk_fields 超过限制 100", "bk_fields exceed the limit 100"),
        ),
    ]
    for body, expected in cases:
        reply = await watch(client, route, body, language=language)
        assert (reply.code, reply.message) == (expected.code, expected.text(language)), body
    for resource, expected in [
        ("host", mongodb("unsupported cursor type host")),
        ("nope", mongodb("unsupported cursor type nope")),
    ]:
        reply = await call(client, WATCH, route, {"bk_resource": resource}, language=language)
        assert (reply.code, reply.message) == (expected.code, expected.text(language))
    sub = await call(
        client, WATCH, route, {"bk_resource": "nope", "bk_filter": {"bk_sub_resource": "x"}}
    )
    assert sub.message == "nope event cannot have sub resource"


async def test_upstreams_no_event_cursor_reads_from_the_first_event(client, db):
    created = await store(db, BELONG, (11, 21))
    reply = await watch(client, "native", {"bk_cursor": events.NO_EVENT_CURSOR})
    assert [e["bk_detail"]["id"] for e in reply.data["bk_events"]] == created


async def test_watches_beyond_the_limit_are_refused(settings, db):
    app = create_app(settings.model_copy(update={"watch_wait_seconds": 3, "max_watches": 2}), db=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", timeout=30
    ) as http:
        cursor = cursor_of(await watch(http, "native", {}))
        held = [asyncio.create_task(watch(http, "native", {"bk_cursor": cursor})) for _ in range(2)]
        await asyncio.sleep(0.5)
        refused = await watch(http, "native", {"bk_cursor": cursor})
        assert refused.code == 1199997
        for task in held:
            assert (await task).code == 0
        assert (await watch(http, "native", {"bk_cursor": cursor})).code == 0


def test_a_watch_on_one_process_sees_a_commit_of_another(database_url, tmp_path):
    """Two real server processes on one database: a watch held by the first answers with an
    association the second created, well within the wait."""
    env = {"CMDBGRAPH_WATCH_WAIT_SECONDS": "15"}
    with (
        live_server(database_url, tmp_path / "a.log", env=env) as first_server,
        live_server(database_url, tmp_path / "b.log", env=env) as second_server,
    ):
        first, second = first_server.url, second_server.url
        headers = demo_headers()
        url = f"{first}/api/v3/event/watch/resource/inst_asst"
        head = httpx.post(url, json={}, headers=headers, timeout=30).json()
        cursor = head["data"]["bk_events"][-1]["bk_cursor"]

        async def scenario():
            async with httpx.AsyncClient(timeout=30) as http:
                began = time.monotonic()
                pending = asyncio.create_task(
                    http.post(url, json={"bk_cursor": cursor}, headers=headers)
                )
                # Just after a look at the table (the safeguard reads every 2 s).
                await asyncio.sleep(2.3)
                written = await http.post(
                    f"{second}{ESB_PATH}",
                    json=rest_body("bk_switch", "host", BELONG, [(11, 21)]),
                )
                committed = time.monotonic()
                assert written.json()["data"]["success_created"]
                reply = (await pending).json()
                return reply, time.monotonic() - began, time.monotonic() - committed

        reply, took, after_commit = asyncio.run(scenario())
    assert reply["data"]["bk_watched"] is True
    assert [e["bk_detail"]["bk_inst_id"] for e in reply["data"]["bk_events"]] == [11]
    # Woken by the other process's commit (PostgreSQL: NOTIFY; SQLite: reading again every
    # quarter second), not by the end of the wait nor the safeguard's 2 s.
    assert took < 8 and after_commit < 1.2, (took, after_commit)


async def test_the_wait_ends_before_the_request_timeout(settings, db):
    """A wait set longer than the request timeout is cut to three quarters of it: the watch
    answers bk_watched false, never the timeout's 504."""
    app = create_app(
        settings.model_copy(update={"watch_wait_seconds": 20, "request_timeout_seconds": 2}),
        db=db,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", timeout=30
    ) as http:
        cursor = cursor_of(await watch(http, "native", {}))
        began = time.monotonic()
        reply = await watch(http, "native", {"bk_cursor": cursor})
    assert (reply.status, reply.code, reply.data["bk_watched"]) == (200, 0, False)
    assert 1.4 <= time.monotonic() - began < 2


async def test_waiting_watches_hold_no_database_connection(settings, db):
    """Twenty watches waiting on a pool of two connections: a write goes through at once, and
    every watch answers with its event."""
    app = create_app(
        settings.model_copy(update={"watch_wait_seconds": 15, "db_pool_size": 2}), db=db
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", timeout=30
    ) as http:
        cursor = cursor_of(await watch(http, "native", {}))
        waiting = [
            asyncio.create_task(watch(http, "native", {"bk_cursor": cursor})) for _ in range(20)
        ]
        await asyncio.sleep(0.5)
        began = time.monotonic()
        written = await http.post(
            ESB_PATH,
            json=rest_body("bk_switch", "host", BELONG, [(11, 21)]),
            headers=demo_headers(),
        )
        assert written.json()["data"]["success_created"], written.text
        assert time.monotonic() - began < 3
        replies = await asyncio.gather(*waiting)
    assert all(reply.data["bk_watched"] for reply in replies)
    assert {reply.data["bk_events"][0]["bk_detail"]["bk_inst_id"] for reply in replies} == {11}
