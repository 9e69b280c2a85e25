"""GraphQL subscriptions over websockets (graphql-transport-ws), as a client sees them on a real
socket: the events, their order and filters, resuming by cursor, authentication, the protocol's
refusals, and the limits that protect the server. On both databases."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import websockets
from prometheus_client import REGISTRY

from cmdbgraph import metrics
from cmdbgraph.app import create_app
from cmdbgraph.services import associations, events
from cmdbgraph.services.caller import SYSTEM
from tests.support.calls import ESB_PATH, demo_headers, rest_body
from tests.support.siblings import BELONG, CONNECT, DEFAULT, store
from tests.support.subscriber import (
    StalledClient,
    Subscriber,
    demo_payload,
    serving,
    subscription,
)


@pytest.fixture
async def url(settings, db):
    """ws:// URL of the app (authentication on), short protocol timeouts."""
    app = create_app(
        settings.model_copy(
            update={"websocket_init_timeout_seconds": 1.0, "subscription_send_timeout_seconds": 2}
        ),
        db=db,
    )
    async with serving(app) as ws_url:
        yield ws_url


def http_url(ws_url: str) -> str:
    return ws_url.replace("ws://", "http://").removesuffix("/graphql")


async def delete(db, association_id: int) -> None:
    await associations.delete_associations(db, SYSTEM, [association_id])


async def test_every_change_arrives_once_in_commit_order_with_its_association(url, db):
    async with Subscriber.connect(url) as client:
        await client.subscribe("s", subscription())
        await asyncio.sleep(0.2)  # subscribed: "from now" is before the writes
        created = await store(db, BELONG, (11, 21), (13, 22))
        await delete(db, created[0])
        got = await client.events("s", 3)
    assert [(e["eventType"], e["association"]["id"]) for e in got] == [
        ("CREATE", created[0]),
        ("CREATE", created[1]),
        ("DELETE", created[0]),
    ]
    assert got[0]["association"] == {
        "id": created[0],
        "bkObjAsstId": BELONG,
        "bkInstId": 11,
        "bkAsstInstId": 21,
    }
    positions = [events.decode(e["cursor"]).id for e in got]
    assert positions == sorted(positions) and len(set(positions)) == 3


async def test_from_now_skips_what_came_before(url, db):
    await store(db, BELONG, (11, 21))
    async with Subscriber.connect(url) as client:
        await client.subscribe("s", subscription())
        await client.quiet(0.6)
        (later,) = await store(db, BELONG, (13, 22))
        (event,) = await client.events("s", 1)
    assert event["association"]["id"] == later


async def test_a_deleted_association_still_shows_its_instances(url, db):
    (created,) = await store(db, BELONG, (11, 21))
    async with Subscriber.connect(url) as client:
        fields = "eventType association { id source { bkInstId } target { bkInstId } }"
        await client.subscribe("s", subscription(fields=fields))
        await asyncio.sleep(0.2)
        await delete(db, created)
        (event,) = await client.events("s", 1)
    assert event == {
        "eventType": "DELETE",
        "association": {"id": created, "source": {"bkInstId": 11}, "target": {"bkInstId": 21}},
    }


async def test_filters(url, db):
    async with Subscriber.connect(url) as client:
        await client.subscribe("kind", subscription(f'bkObjAsstId: "{CONNECT}"'))
        await client.subscribe("host", subscription('bkObjId: "host"'))
        await client.subscribe("deletes", subscription("eventTypes: [DELETE]"))
        await asyncio.sleep(0.2)
        belong = await store(db, BELONG, (11, 21))
        connect = await store(db, CONNECT, (13, 22))
        await store(db, DEFAULT, (31, 41))  # no host, not a delete, another kind
        await delete(db, belong[0])
        seen: dict[str, list[tuple[str, int]]] = {"kind": [], "host": [], "deletes": []}
        for _ in range(1 + 3 + 1):
            message = await client.receive()
            event = message["payload"]["data"]["instAssociationEvents"]
            seen[message["id"]].append((event["eventType"], event["association"]["id"]))
        await client.quiet(0.5)
    assert seen == {
        "kind": [("CREATE", connect[0])],
        # Both demo model associations have a host on one side.
        "host": [("CREATE", belong[0]), ("CREATE", connect[0]), ("DELETE", belong[0])],
        "deletes": [("DELETE", belong[0])],
    }


async def test_resume_after_a_disconnect_has_no_gap_and_no_duplicate(url, db):
    async with Subscriber.connect(url) as client:
        await client.subscribe("s", subscription())
        await asyncio.sleep(0.2)
        first = await store(db, BELONG, (11, 21), (13, 22))
        got = await client.events("s", 1)  # mid-stream: one read, one not
    written_meanwhile = await store(db, CONNECT, (11, 22))
    async with Subscriber.connect(url) as client:
        await client.subscribe("s", subscription(f'after: "{got[-1]["cursor"]}"'))
        resumed = await client.events("s", 2)
        later = await store(db, CONNECT, (14, 23))
        resumed += await client.events("s", 1)
        await client.quiet(0.4)
    ids = [e["association"]["id"] for e in got + resumed]
    assert ids == [*first, *written_meanwhile, *later]


# bk_switch_belong_host is n:n: every demo switch to every demo host.
ALL_PAIRS = [(switch, host) for switch in (11, 13, 14) for host in (21, 22, 23)]


async def churn(db, rounds: int) -> list[int]:
    """Create the nine n:n associations and delete them, ``rounds`` times: the association
    ids of the events that makes, in commit order."""
    expected: list[int] = []
    for _ in range(rounds):
        created = await store(db, BELONG, *ALL_PAIRS)
        for association_id in created:
            await delete(db, association_id)
        expected += created + created
    return expected


async def test_many_events_arrive_beyond_one_read(url, db):
    """More than two reads' worth (200 each) of events: all of them, in order."""
    async with Subscriber.connect(url) as client:
        await client.subscribe("s", subscription(fields="association { id }"))
        await asyncio.sleep(0.2)
        expected = await churn(db, 25)
        got = await client.events("s", len(expected), seconds=20)
    assert len(expected) > 400
    assert [event["association"]["id"] for event in got] == expected


@pytest.mark.parametrize(
    "after",
    [
        "garbage",
        "",
        events.encode(events.Position(1, datetime.now(UTC) - timedelta(days=8))),  # expired
        events.encode(events.Position(1, datetime.now(UTC)))[:-2] + "AA",  # altered
    ],
)
async def test_a_cursor_it_cannot_follow_is_refused(url, after):
    async with Subscriber.connect(url) as client:
        query = "subscription ($after: String) { instAssociationEvents(after: $after) { cursor } }"
        await client.subscribe("s", query, {"after": after})
        message = await client.receive()
        assert message["type"] == "error" and message["id"] == "s", message
        (error,) = message["payload"]
        assert error["extensions"] == {"code": "EVENT_NODE_NOT_FOUND", "bkErrorCode": 1103007}
        # The connection goes on: another subscription works.
        await client.subscribe("t", subscription())
        await client.quiet(0.3)


async def test_errors_speak_the_callers_language(url):
    payload = {**demo_headers(), "Blueking-Language": "en"}
    async with Subscriber.connect(url, payload) as client:
        await client.subscribe("s", subscription('after: "garbage"'))
        (error,) = (await client.receive())["payload"]
    assert error["message"] == "Event chain node not exist"


async def test_an_unknown_event_type_is_a_validation_error(url):
    async with Subscriber.connect(url) as client:
        await client.subscribe("s", subscription("eventTypes: [UPDATE]"))
        message = await client.receive()
    assert message["type"] == "error"
    assert message["payload"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


# --- Authentication ---------------------------------------------------------------------------

CREDENTIALS = {"bk_app_code": "esb_test", "bk_app_secret": "xxx", "bk_username": "admin"}


@pytest.mark.parametrize(
    "payload",
    [
        demo_headers(),  # the header's text, as HTTP sends it
        {"X-Bkapi-Authorization": CREDENTIALS},  # an object, as GraphiQL's Headers pane holds it
        {"x-bkapi-authorization": CREDENTIALS},  # names in any case
        CREDENTIALS,  # the ESB body's fields
        {
            "X-Bkapi-Authorization": {
                "bk_app_code": "esb_test",
                "bk_app_secret": "xxx",
                "access_token": "xxx",
            }
        },
    ],
    ids=["header-text", "header-object", "lower-case", "body-fields", "token"],
)
async def test_the_connection_is_proven_by_its_init_payload(url, db, payload):
    async with Subscriber.connect(url, payload) as client:
        await client.subscribe("s", subscription())
        await asyncio.sleep(0.2)
        (created,) = await store(db, BELONG, (11, 21))
        (event,) = await client.events("s", 1)
    assert event["association"]["id"] == created


async def test_or_by_the_handshake_headers(url, db):
    async with Subscriber.connect(url, {}, additional_headers=demo_headers()) as client:
        await client.subscribe("s", subscription())
        await asyncio.sleep(0.2)
        (created,) = await store(db, BELONG, (11, 21))
        assert (await client.events("s", 1))[0]["association"]["id"] == created


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"X-Bkapi-Authorization": {**CREDENTIALS, "bk_app_secret": "wrong"}},
        {"X-Bkapi-Authorization": "not json"},
        # Identity headers only a trusted proxy may send, in a payload no proxy vouches for.
        {"X-Bkcmdb-User": "admin", "X-Bkcmdb-App-Code": "esb_test"},
    ],
    ids=["nothing", "wrong-secret", "garbage", "proxy-headers"],
)
async def test_a_connection_that_cannot_be_proven_is_closed_4403(url, payload):
    async with Subscriber.connect(url, init=False) as client:
        await client.send({"type": "connection_init", "payload": payload})
        closed = await client.closed()
    assert closed.code == 4403 and closed.reason.startswith("Forbidden: "), closed


async def test_refusals_speak_the_callers_language(url):
    async with Subscriber.connect(url, init=False) as client:
        await client.send({"type": "connection_init", "payload": {"Blueking-Language": "en"}})
        closed = await client.closed()
    assert (closed.code, closed.reason) == (4403, "Forbidden: call source authentication failed.")


async def test_a_page_of_another_site_cannot_open_one(url):
    """A browser sends the page's origin: one of another site is refused at the handshake (the
    browser would carry no header of ours, but a websocket needs no CORS to be opened)."""
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with Subscriber.connect(url, init=False, origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    async with Subscriber.connect(url, origin=http_url(url)):
        pass  # the server's own pages (GraphiQL) may


# --- The protocol's refusals -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("not json", "WebSocket message must be valid JSON"),
        ("[1]", "A message must be a JSON object"),
        ('"connection_init"', "A message must be a JSON object"),
        ("{}", "A message needs a type"),
        ('{"type": "unknown"}', "Unknown message type: unknown"),
        ('{"type": "subscribe", "id": "1", "payload": "x"}', "subscribe needs a payload object"),
        (
            '{"type": "subscribe", "id": 1, "payload": {"query": "{a}"}}',
            "subscribe needs an id string",
        ),
        (
            '{"type": "subscribe", "id": "1", "payload": {"query": 5}}',
            "subscribe needs a query string",
        ),
        (
            '{"type": "subscribe", "id": "1", "payload": {"query": "{a}", "variables": []}}',
            "variables must be an object",
        ),
        (
            '{"type": "subscribe", "id": "1", "payload": {"query": "{"}}',
            "Syntax Error: Expected Name, found <EOF>.",
        ),
        ('{"type": "complete"}', "complete needs an id string"),
        (b"\x00\x01", "WebSocket message type must be text"),
    ],
)
async def test_a_message_outside_the_protocol_closes_with_4400(url, db, message, reason):
    async with Subscriber.connect(url) as bystander:
        await bystander.subscribe("s", subscription())
        async with Subscriber.connect(url) as client:
            await client.send(message)
            closed = await client.closed()
        assert (closed.code, closed.reason) == (4400, reason)
        # Nothing else is affected.
        await asyncio.sleep(0.1)
        (created,) = await store(db, BELONG, (11, 21))
        assert (await bystander.events("s", 1))[0]["association"]["id"] == created


async def test_an_init_payload_that_is_not_an_object_closes_with_4400(url):
    async with Subscriber.connect(url, init=False) as client:
        await client.send({"type": "connection_init", "payload": ["x"]})
        closed = await client.closed()
    assert (closed.code, closed.reason) == (4400, "Invalid connection init payload")


async def test_no_connection_init_in_time_closes_with_4408(url):
    async with Subscriber.connect(url, init=False) as client:
        closed = await client.closed(seconds=5)
    assert (closed.code, closed.reason) == (4408, "Connection initialisation timeout")


async def test_subscribing_before_init_closes_with_4401(url):
    async with Subscriber.connect(url, init=False) as client:
        await client.subscribe("s", subscription())
        closed = await client.closed()
    assert (closed.code, closed.reason) == (4401, "Unauthorized")


async def test_a_second_init_closes_with_4429(url):
    async with Subscriber.connect(url) as client:
        await client.send({"type": "connection_init", "payload": demo_headers()})
        closed = await client.closed()
    assert (closed.code, closed.reason) == (4429, "Too many initialisation requests")


async def test_an_id_in_use_closes_with_4409(url):
    async with Subscriber.connect(url) as client:
        await client.subscribe("s", subscription())
        await client.subscribe("s", subscription())
        closed = await client.closed()
    assert (closed.code, closed.reason) == (4409, "Subscriber for s already exists")


async def test_the_legacy_protocol_is_not_offered(url):
    async with websockets.connect(url, subprotocols=["graphql-ws"]) as ws:
        assert ws.subprotocol is None
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd.code == 4406


async def test_queries_and_mutations_run_over_the_connection_too(url):
    async with Subscriber.connect(url) as client:
        await client.subscribe("q", "{ instance(bkInstId: 11) { bkInstName } }")
        reply = await client.receive()
        assert reply == {
            "id": "q",
            "type": "next",
            "payload": {"data": {"instance": {"bkInstName": "sw-01"}}},
        }
        assert (await client.receive())["type"] == "complete"
        await client.subscribe("bad", "{ nope }")
        refused = await client.receive()
    assert refused["type"] == "error"
    assert refused["payload"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


# --- Limits ---------------------------------------------------------------------------------------


async def test_subscriptions_beyond_the_limit_are_refused_until_one_ends(settings, db):
    app = create_app(settings.model_copy(update={"max_subscriptions": 2}), db=db)
    async with serving(app) as url, Subscriber.connect(url) as client:
        await client.subscribe("a", subscription())
        await client.subscribe("b", subscription())
        await asyncio.sleep(0.3)
        assert REGISTRY.get_sample_value("cmdbgraph_subscriptions_open") == 2
        await client.subscribe("c", subscription())
        refused = await client.receive()
        assert refused["type"] == "error" and refused["id"] == "c"
        assert refused["payload"][0]["extensions"] == {
            "code": "TOO_MANY_REQUESTS",
            "bkErrorCode": 1199997,
        }
        await client.send({"id": "a", "type": "complete"})
        await asyncio.sleep(0.3)
        await client.subscribe("c", subscription())
        await asyncio.sleep(0.2)
        (created,) = await store(db, BELONG, (11, 21))
        seen = {(await client.receive())["id"] for _ in range(2)}
    assert seen == {"b", "c"}
    assert events.FOLLOWERS.taken == 0


async def test_operations_beyond_the_connections_limit_are_refused(settings, db):
    app = create_app(settings.model_copy(update={"max_subscriptions_per_connection": 2}), db=db)
    async with serving(app) as url, Subscriber.connect(url) as client:
        for ident in "abc":
            await client.subscribe(ident, subscription())
        refused = await client.receive()
    assert refused["id"] == "c" and refused["payload"][0]["message"] == "Subscription limit reached"


async def test_idle_subscribers_hold_no_database_connection(settings, db):
    """Forty subscribers waiting on a pool of two connections: writes and reads go on, and each
    subscriber gets the event."""
    app = create_app(settings.model_copy(update={"db_pool_size": 2}), db=db)
    async with serving(app) as url, contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Subscriber.connect(url)) for _ in range(40)]
        for client in clients:
            await client.subscribe("s", subscription())
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=http_url(url), timeout=30) as http:
            written = await http.post(
                ESB_PATH, json=rest_body("bk_switch", "host", BELONG, [(11, 21)])
            )
            assert written.json()["data"]["success_created"], written.text
        got = await asyncio.gather(*(client.events("s", 1, seconds=30) for client in clients))
    assert {event["association"]["bkInstId"] for (event,) in got} == {11}


async def test_idle_subscribers_do_not_each_poll_the_database(url, monkeypatch):
    """Thirty subscribers waiting: the process looks for other processes' commits with one
    query a quarter second (SQLite) or every two seconds (PostgreSQL, which also notifies),
    not one per subscriber."""
    reads: dict[str, int] = {"_read_after": 0, "head": 0}
    for name in reads:
        original = getattr(events, name)

        async def counted(*args, _original=original, _name=name, **kwargs):
            reads[_name] += 1
            return await _original(*args, **kwargs)

        monkeypatch.setattr(events, name, counted)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(30):
            client = await stack.enter_async_context(Subscriber.connect(url))
            await client.subscribe("s", subscription())
        await asyncio.sleep(1.0)  # all subscribed and waiting
        before = dict(reads)
        await asyncio.sleep(2.0)
        during = {name: reads[name] - before[name] for name in reads}
    assert during["_read_after"] == 0, during
    assert during["head"] <= 10, during


def dropped_so_far() -> float:
    return metrics.SUBSCRIBERS_DROPPED._value.get()


async def test_a_subscriber_that_does_not_read_is_dropped_and_resumes(url, db, caplog):
    """A client that stops reading: once a message to it waits longer than the send timeout,
    the server closes the connection with 4429 and keeps no queue for it, however far behind it
    falls; the client resumes from its last cursor and misses nothing. A client that reads
    meanwhile is not affected."""
    # Large messages (about 7 kB an event), so that the buffers between the server and the
    # client fill after a few hundred events.
    association = "association { id bkObjAsstId bkObjId bkAsstObjId bkSupplierAccount creator }"
    fields = "cursor " + " ".join(f"a{n}: {association}" for n in range(25))
    expected: list[int] = []
    before = dropped_so_far()
    async with Subscriber.connect(url) as reader:
        await reader.subscribe("r", subscription(fields="association { id }"))
        stalled = await asyncio.to_thread(
            StalledClient, url, demo_payload(), subscription(fields=fields)
        )
        await asyncio.sleep(0.2)
        (first,) = await store(db, CONNECT, (13, 22))
        last_read = await asyncio.to_thread(stalled.first_event)
        await reader.events("r", 1)
        assert last_read["a0"]["id"] == first
        # The stalled client reads nothing more; the server's messages to it pile up in the
        # socket buffers until a send waits longer than the timeout (2 s here).
        began = time.monotonic()
        while dropped_so_far() == before:
            assert time.monotonic() - began < 60, "the stalled subscriber was never dropped"
            round_ids = await churn(db, 2)
            expected += round_ids
            got = await reader.events("r", len(round_ids), seconds=20)
            assert [e["association"]["id"] for e in got] == round_ids
        await asyncio.sleep(0.1)
        assert events.FOLLOWERS.taken == 1  # the reader's: the dropped one's is free already
        received, ended = await asyncio.to_thread(stalled.finish)
    assert (ended.code, ended.reason) == (
        4429,
        "Too slow: the subscriber did not read its messages; subscribe again with after: the "
        "last cursor it read",
    )
    assert received < len(expected)  # it did fall behind
    assert (
        "dropped a subscriber that read nothing for 2 s (app esb_test, user admin)" in caplog.text
    )
    async with Subscriber.connect(url) as again:
        after = f'after: "{last_read["cursor"]}"'
        await again.subscribe("s", subscription(after, fields="association { id }"))
        resumed = await again.events("s", len(expected), seconds=30)
        await again.quiet(0.3)
    assert [e["association"]["id"] for e in resumed] == expected


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_over_http_a_subscription_is_told_to_use_the_websocket(client, method):
    query = subscription()
    if method == "POST":
        reply = await client.post("/graphql", json={"query": query}, headers=demo_headers())
    else:
        reply = await client.get("/graphql", params={"query": query}, headers=demo_headers())
    assert reply.status_code == 400
    assert reply.json() == {
        "data": None,
        "errors": [
            {
                "message": "Subscriptions run over a websocket at this path (the "
                "graphql-transport-ws protocol), not over HTTP.",
                "extensions": {"code": "WEBSOCKET_REQUIRED"},
            }
        ],
    }


async def test_a_long_subscription_does_not_grow_the_servers_memory(url, db):
    """Thousands of events to one subscriber: what the server holds for it stays flat (each
    event used to leave about 2 kB behind for as long as the subscription lived)."""
    async with Subscriber.connect(url) as client:
        await client.subscribe("s", subscription())
        await asyncio.sleep(0.2)

        async def follow_and_churn(rounds: int) -> None:
            reading = asyncio.create_task(client.events("s", rounds * 2 * len(ALL_PAIRS), 60))
            await churn(db, rounds)
            await reading

        await follow_and_churn(20)  # warm: caches filled, pools sized
        tracemalloc.start()
        try:
            await follow_and_churn(100)  # 1,800 events: whatever fills once, fills here
            gc.collect()
            before, _ = tracemalloc.get_traced_memory()
            await follow_and_churn(100)  # 1,800 more
            gc.collect()
            after, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert after - before < 1_000_000, f"grew {after - before:,} bytes over 1,800 events"
