"""The change stream's promise, tried the way it is used: writers in two real server processes
commit batches concurrently (some all-or-nothing batches fail, some fail by a fault injected in
the database after their rows and events were written, some associations are deleted again),
while three followers started before the burst follow: upstream's resource_watch over REST on
one process, a GraphQL subscription through a mainstream client (gql's websockets transport) on
the other, and ``cmdbgraph watch associations``. Afterwards each has seen every committed event
exactly once, in commit order, and nothing of what was rolled back. Also: SIGTERM closes a
subscription cleanly. On both databases."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport
from sqlalchemy import select, text

from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import events as events_table
from cmdbgraph.services import idempotency, instances
from cmdbgraph.services.caller import SYSTEM, Caller
from cmdbgraph.settings import Settings
from tests.support.calls import ESB_PATH, demo_headers, rest_body
from tests.support.databases import run_in_thread
from tests.support.servers import live_server
from tests.support.siblings import BELONG
from tests.support.subscriber import Subscriber, subscription

WRITERS_PER_SERVER = 2
ROUNDS = 8  # per writer
BATCH = 6  # pairs per batch
FAULT_KEYS = [f"fault-{n}" for n in range(WRITERS_PER_SERVER * 2 * ROUNDS)]

SUBSCRIPTION = GraphQLRequest(
    "subscription Follow($after: String) { instAssociationEvents(after: $after) "
    "{ cursor eventType association { id bkInstId bkAsstInstId } } }"
)


async def _prepare(url: str) -> tuple[list[int], list[int]]:
    """Fresh switches and hosts to pair, and a fault: storing the idempotency reply of a batch
    sent with one of ``FAULT_KEYS`` fails, after its associations and their events were
    written in the same transaction."""
    db = Database(Settings(database_url=url))
    try:
        switches = await instances.create_instances(
            db, SYSTEM, "bk_switch", [instances.NewInstance(f"x-sw-{n}") for n in range(30)]
        )
        hosts = await instances.create_instances(
            db, SYSTEM, "host", [instances.NewInstance(f"x-host-{n}") for n in range(30)]
        )
        caller = Caller(username="xxx", app_code="esb_test")  # as rest_body sends
        keys = ", ".join(f"'{idempotency.stored_key(caller, key)}'" for key in FAULT_KEYS)
        async with db.write() as conn:
            if db.is_sqlite:
                await conn.execute(
                    text(
                        "CREATE TRIGGER injected_fault BEFORE INSERT ON idempotency_keys "
                        f"WHEN NEW.key IN ({keys}) "
                        "BEGIN SELECT RAISE(ABORT, 'injected fault before commit'); END"
                    )
                )
            else:
                await conn.execute(
                    text(
                        "CREATE FUNCTION injected_fault() RETURNS trigger AS $$ BEGIN "
                        f"IF NEW.key IN ({keys}) THEN "
                        "RAISE EXCEPTION 'injected fault before commit'; END IF; "
                        "RETURN NEW; END $$ LANGUAGE plpgsql"
                    )
                )
                await conn.execute(
                    text(
                        "CREATE TRIGGER injected_fault BEFORE INSERT ON idempotency_keys "
                        "FOR EACH ROW EXECUTE FUNCTION injected_fault()"
                    )
                )
        return [s.bk_inst_id for s in switches], [h.bk_inst_id for h in hosts]
    finally:
        await db.dispose()


async def _committed_events(url: str) -> list[tuple[str, int]]:
    """What the table holds: every committed event, in id (commit) order."""
    db = Database(Settings(database_url=url))
    try:
        async with db.read() as conn:
            rows = await conn.execute(
                select(events_table.c.event_type, events_table.c.resource_id).order_by(
                    events_table.c.id
                )
            )
            return [(kind.upper(), int(resource_id)) for kind, resource_id in rows]
    finally:
        await db.dispose()


class CommandFollower:
    """``cmdbgraph watch associations`` in a process of its own, its lines read as they come."""

    def __init__(self, url: str, cursor: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cmdbgraph.cli", "watch", "associations"]
            + ["--from-cursor", cursor, "--database-url", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.seen: list[tuple[str, int]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            event = json.loads(line)
            self.seen.append((event["event_type"].upper(), event["detail"]["id"]))

    def stop(self) -> str:
        self.process.send_signal(signal.SIGINT)
        _, stderr = self.process.communicate(timeout=30)
        self.reader.join(timeout=10)
        assert self.process.returncode == 130, stderr
        return stderr


def _pairs(switches: list[int], hosts: list[int]) -> Iterator[list[tuple[int, int]]]:
    """Batches of distinct pairs, none used twice."""
    everything = [(s, h) for s in switches for h in hosts]
    random.Random(7).shuffle(everything)
    while everything:
        yield [everything.pop() for _ in range(min(BATCH, len(everything)))]


def test_every_follower_sees_every_committed_event_once_in_commit_order(database_url, tmp_path):
    switches, hosts = run_in_thread(lambda: _prepare(database_url))
    batches = _pairs(switches, hosts)
    env = {"CMDBGRAPH_WATCH_WAIT_SECONDS": "2"}
    with (
        live_server(database_url, tmp_path / "a.log", env=env) as first,
        live_server(database_url, tmp_path / "b.log", env=env) as second,
    ):
        headers = demo_headers()
        watch_url = f"{first.url}/api/v3/event/watch/resource/inst_asst"
        head = httpx.post(watch_url, json={}, headers=headers, timeout=30).json()
        start = head["data"]["bk_events"][-1]["bk_cursor"]
        command = CommandFollower(database_url, start)
        outcome: dict[str, object] = {}

        async def rest_follower(done: asyncio.Event, seen: list) -> None:
            cursor = start
            async with httpx.AsyncClient(timeout=30, headers=headers) as http:
                while not done.is_set():
                    reply = (await http.post(watch_url, json={"bk_cursor": cursor})).json()
                    assert reply["result"], reply
                    data = reply["data"]
                    if data["bk_watched"]:
                        for event in data["bk_events"]:
                            seen.append((event["bk_event_type"].upper(), event["bk_detail"]["id"]))
                    cursor = data["bk_events"][-1]["bk_cursor"]

        async def graphql_follower(seen: list) -> None:
            transport = WebsocketsTransport(
                url=second.url.replace("http://", "ws://") + "/graphql",
                subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
                init_payload=headers,
            )
            async with Client(transport=transport) as session:
                request = GraphQLRequest(SUBSCRIPTION, variable_values={"after": start})
                async for result in session.subscribe(request):
                    event = result["instAssociationEvents"]
                    seen.append((event["eventType"], int(event["association"]["id"])))

        async def writer(base_url: str, number: int, written: dict) -> None:
            async with httpx.AsyncClient(base_url=base_url, timeout=60, headers=headers) as http:
                for round_number in range(ROUNDS):
                    pairs = next(batches)
                    kind = round_number % 4
                    body = rest_body("bk_switch", "host", BELONG, pairs)
                    if kind == 1:  # all or nothing, one item refused: nothing written
                        body["details"].append({"bk_inst_id": switches[0], "bk_asst_inst_id": 999})
                        body["error_policy"] = "all_or_nothing"
                    elif kind == 2:  # written, then a fault before commit: rolled back
                        body["idempotency_key"] = FAULT_KEYS[number * ROUNDS + round_number]
                    reply = await http.post(ESB_PATH, json=body)
                    data = reply.json().get("data") or {}
                    created = [int(i) for i in (data.get("success_created") or {}).values()]
                    if kind in (1, 2):
                        assert not created, reply.text
                        written["refused"] += pairs
                        continue
                    assert len(created) == len(pairs), reply.text
                    written["created"] += created
                    if kind == 3:  # and one deleted again, on the native route
                        gone = created[0]
                        deleted = await http.delete(f"/api/v3/delete/instassociation/host/{gone}")
                        assert deleted.json()["result"], deleted.text
                        written["deleted"].append(gone)

        async def scenario() -> None:
            done = asyncio.Event()
            rest_seen: list = []
            graphql_seen: list = []
            followers = [
                asyncio.create_task(rest_follower(done, rest_seen)),
                asyncio.create_task(graphql_follower(graphql_seen)),
            ]
            await asyncio.sleep(1.0)  # the followers are in place (they start at `start` anyway)
            written: dict = {"created": [], "deleted": [], "refused": []}
            servers = [first.url, second.url] * WRITERS_PER_SERVER
            await asyncio.gather(
                *(writer(url, number, written) for number, url in enumerate(servers))
            )
            expected = await asyncio.to_thread(
                run_in_thread, lambda: _committed_events(database_url)
            )
            deadline = time.monotonic() + 60
            # Polled: the command's lines arrive on a thread.
            while time.monotonic() < deadline and not all(  # noqa: ASYNC110
                len(seen) >= len(expected) for seen in (rest_seen, graphql_seen, command.seen)
            ):
                await asyncio.sleep(0.2)
            await asyncio.sleep(2.5)  # anything more would come now
            done.set()
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
            outcome.update(
                expected=expected,
                written=written,
                rest=rest_seen,
                graphql=graphql_seen,
            )

        try:
            asyncio.run(scenario())
        finally:
            stderr = command.stop()
    expected = outcome["expected"]
    written = outcome["written"]
    assert isinstance(expected, list) and isinstance(written, dict)
    # The table holds exactly what the writers were told was written.
    assert sorted(i for kind, i in expected if kind == "CREATE") == sorted(written["created"])
    assert sorted(i for kind, i in expected if kind == "DELETE") == sorted(written["deleted"])
    assert written["refused"] and written["deleted"]
    # Each follower: every committed event, once, in commit order; nothing else.
    assert outcome["rest"] == expected
    assert outcome["graphql"] == expected
    assert command.seen == expected, stderr


def test_sigterm_closes_subscriptions_cleanly(database_url, tmp_path):
    """A subscriber of a server told to stop gets 1012 (service restart: connect again and
    resume by cursor) at once, and the server exits."""
    with live_server(database_url, tmp_path / "server.log") as server:

        async def scenario() -> tuple[int | None, float]:
            url = server.url.replace("http://", "ws://") + "/graphql"
            async with Subscriber.connect(url) as client:
                await client.subscribe("s", subscription())
                await asyncio.sleep(0.3)
                began = time.monotonic()
                server.process.send_signal(signal.SIGTERM)
                closed = await client.closed(seconds=20)
                return closed.code, time.monotonic() - began

        code, took = asyncio.run(scenario())
        server.process.wait(timeout=30)
    assert code == 1012 and took < 5, (code, took)
    assert "Traceback" not in server.log(), server.log()


def test_a_websocket_message_beyond_the_body_limit_closes_the_connection(database_url, tmp_path):
    """A real server holds websocket messages to CMDBGRAPH_MAX_BODY_BYTES: 1009 (message too
    big), and nothing else is affected."""
    env = {"CMDBGRAPH_MAX_BODY_BYTES": "4096"}
    with live_server(database_url, tmp_path / "server.log", env=env) as server:

        async def scenario() -> int | None:
            url = server.url.replace("http://", "ws://") + "/graphql"
            async with Subscriber.connect(url) as client:
                await client.subscribe("s", "{ models { bkObjId } }" + " " * 5000)
                closed = await client.closed()
            async with Subscriber.connect(url) as other:
                await other.subscribe("q", "{ models { bkObjId } }")
                assert (await other.receive())["type"] == "next"
            return closed.code

        assert asyncio.run(scenario()) == 1009
