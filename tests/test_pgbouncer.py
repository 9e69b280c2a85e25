"""Several server processes behind PgBouncer in transaction pooling mode (README, "Behind
PgBouncer"), where each transaction of a client may run on another server connection, shared
with the other clients.

A database made empty on the server is migrated and seeded through PgBouncer with the command
line; two real ``cmdbgraph serve`` processes then run through it with
``CMDBGRAPH_DATABASE_POOLER=pgbouncer``: they answer the batch contract, their concurrent
batches on one hot 1:1 model association keep the rules, and a watch on either process wakes
on a commit of the other (the first LISTENs on a direct URL to PostgreSQL, the second reads
the event table instead). No statement stays prepared on PgBouncer's server connections, and
nothing LISTENs through the pooler, where notifications never arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack

import asyncpg
import httpx
import pytest
from sqlalchemy import select, text

from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import audit_entries, inst_associations
from cmdbgraph.services import associations, events
from cmdbgraph.services.caller import Caller
from cmdbgraph.settings import Settings
from tests.support import upstream
from tests.support.calls import (
    BATCH_MUTATION,
    ESB_PATH,
    NATIVE_PATH,
    batch_input,
    demo_headers,
    graphql,
    rest_body,
)
from tests.support.contract import CONTRACT
from tests.support.databases import drop_pg_databases, new_instances, run_in_thread
from tests.support.pgbouncer import POOL_SIZE, PgBouncer, pgbouncer, require_binary
from tests.support.pgserver import PostgresServer
from tests.support.servers import LiveServer, live_server
from tests.support.siblings import BELONG, DEFAULT

POOLER = {"CMDBGRAPH_DATABASE_POOLER": "pgbouncer"}
CALLER = Caller(username="admin", app_code="tests", request_id="pgbouncer")
MISSING_ID = 10**12
ESB_KEYS = ["result", "code", "message", "permission", "request_id", "data"]
NATIVE_KEYS = ["result", "bk_error_code", "bk_error_msg", "permission", "data"]
BELONG_DUPLICATE = upstream.item_error(upstream.DUPLICATE.code, "bk_switch", "host").zh


@pytest.fixture(scope="module")
def bouncer(request) -> Iterator[PgBouncer]:
    """PgBouncer in front of the throwaway PostgreSQL (started only when PgBouncer is here)."""
    require_binary()
    with pgbouncer(request.getfixturevalue("pg_server")) as running:
        yield running


async def _create_database(server: PostgresServer, name: str) -> None:
    conn = await asyncpg.connect(server.dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def database(pg_server, bouncer) -> Iterator[str]:
    """A database made empty on the server, then migrated and seeded with the demo data
    through PgBouncer by the command line, as a user does; its name."""
    name = f"pgbouncer_{os.getpid()}"
    run_in_thread(lambda: _create_database(pg_server, name))
    try:
        env = {**os.environ, "CMDBGRAPH_DATABASE_URL": bouncer.url(name), **POOLER}
        for command in (["db", "upgrade"], ["seed", "--demo"]):
            done = subprocess.run(
                [sys.executable, "-m", "cmdbgraph.cli", *command],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, (
                f"{command} through PgBouncer:\n{done.stdout}\n{done.stderr}\n{bouncer.log()}"
            )
        yield name
    finally:
        run_in_thread(lambda: drop_pg_databases(pg_server, [name]))


@pytest.fixture(scope="module")
def servers(pg_server, bouncer, database, tmp_path_factory) -> Iterator[list[LiveServer]]:
    """Two ``cmdbgraph serve`` processes through PgBouncer: the first LISTENs for the other's
    commits on a direct URL to PostgreSQL, the second has none and reads the event table."""
    logs = tmp_path_factory.mktemp("pgbouncer-servers")
    common = {**POOLER, "CMDBGRAPH_WATCH_WAIT_SECONDS": "15"}
    listening = {"CMDBGRAPH_DATABASE_LISTEN_URL": pg_server.url(database)}
    reading = {"CMDBGRAPH_DATABASE_LISTEN_URL": ""}
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                live_server(bouncer.url(database), logs / f"{name}.log", env={**common, **extra})
            )
            for name, extra in (("listening", listening), ("reading", reading))
        ]


@contextlib.asynccontextmanager
async def pooled(bouncer: PgBouncer, database: str, **settings) -> AsyncIterator[Database]:
    """A ``Database`` of this process through PgBouncer, as the servers have."""
    db = Database(
        Settings(database_url=bouncer.url(database), database_pooler="pgbouncer", **settings)
    )
    try:
        yield db
    finally:
        await db.dispose()


def assert_served_cleanly(servers: list[LiveServer]) -> None:
    for server in servers:
        assert server.process.poll() is None, server.log()
        log = server.log()
        assert "Traceback" not in log and "prepared statement" not in log, log


def belong_request(pairs) -> associations.BatchCreateRequest:
    return associations.BatchCreateRequest(
        "bk_switch", "host", BELONG, [associations.Detail(s, d) for s, d in pairs]
    )


async def stored(db: Database, bk_obj_asst_id: str, sources: list[int]) -> list[tuple]:
    """(id, source, target) of the associations of ``bk_obj_asst_id`` from ``sources``."""
    ia = inst_associations.c
    async with db.read() as conn:
        rows = await conn.execute(
            select(ia.id, ia.bk_inst_id, ia.bk_asst_inst_id).where(
                ia.bk_obj_asst_id == bk_obj_asst_id, ia.bk_inst_id.in_(sources)
            )
        )
        return [tuple(row) for row in rows]


async def audited_creates(db: Database, sources: list[int]) -> list[int]:
    """The association ids of the audit entries of creations from ``sources``."""
    ae = audit_entries.c
    async with db.read() as conn:
        details = await conn.execute(
            select(ae.operation_detail).where(
                ae.action == "create",
                ae.resource_type == "instance_association",
                ae.resource_id.in_(sources),
            )
        )
        return [detail["inst_asst_id"] for (detail,) in details]


# ---------------------------------------------------------------------------------------------
# The engine through the pooler.


async def test_no_statement_stays_prepared_on_the_server_connections(bouncer, database):
    """Concurrent batches and reads leave no prepared statement on any of PgBouncer's server
    connections: each would wait there for a client that may never come back to it (or
    collide with another client's of the same name)."""
    async with pooled(bouncer, database) as db:
        switches = await new_instances(db, "bk_switch", "ps-sw", 6)
        hosts = await new_instances(db, "host", "ps-host", 6)
        rng = random.Random(3)
        batches = [
            belong_request(rng.sample([(s, h) for s in switches for h in hosts], 5))
            for _ in range(24)
        ]
        results = await asyncio.gather(
            *(associations.batch_create(db, CALLER, batch) for batch in batches),
            *(stored(db, BELONG, switches) for _ in range(24)),
        )
        assert len(await stored(db, BELONG, switches)) == sum(
            r.created_count for r in results[: len(batches)]
        )

        # Transactions open at once, each on a server connection of its own: all of them.
        everyone_looked = asyncio.Barrier(POOL_SIZE)

        async def look() -> tuple[int, int]:
            async with db.read() as conn:
                pid, count = (
                    await conn.execute(
                        text("SELECT pg_backend_pid(), count(*) FROM pg_prepared_statements")
                    )
                ).one()
                await everyone_looked.wait()
                return pid, count

        seen = await asyncio.wait_for(asyncio.gather(*(look() for _ in range(POOL_SIZE))), 30)
    assert len({pid for pid, _ in seen}) == POOL_SIZE, seen
    assert [count for _, count in seen] == [0] * POOL_SIZE, seen


async def test_listen_goes_straight_to_postgresql_or_not_at_all(pg_server, bouncer, database):
    """Through the pooler LISTEN would succeed and no notification ever arrive: without a
    direct URL nothing listens (watchers read the table instead); with one, a commit made
    through the pooler wakes the listener."""
    async with pooled(bouncer, database) as db:
        assert await db.listen(events.CHANNEL, lambda: None) is False
    async with pooled(bouncer, database, database_listen_url=pg_server.url(database)) as db:
        woke = asyncio.Event()
        assert await db.listen(events.CHANNEL, woke.set) is True
        (switch,) = await new_instances(db, "bk_switch", "listen-sw", 1)
        result = await associations.batch_create(db, CALLER, belong_request([(switch, 21)]))
        assert result.created_count == 1
        await asyncio.wait_for(woke.wait(), 5)


# ---------------------------------------------------------------------------------------------
# Two server processes through the pooler.


async def test_the_batch_contract_through_pgbouncer(bouncer, database, servers):
    """A full batch of 200 on one process, the same again through GraphQL on the other (each
    item a duplicate now), partial failures and a request-level refusal: upstream's replies,
    as the OpenAPI document describes them, and the rows the replies say."""
    first, second = servers
    async with pooled(bouncer, database) as db:
        switches = await new_instances(db, "bk_switch", "contract-sw", 20)
        hosts = await new_instances(db, "host", "contract-host", 10)
    pairs = [(s, h) for s in switches for h in hosts]
    async with httpx.AsyncClient(timeout=60) as http:
        full = await http.post(
            f"{first.url}{ESB_PATH}", json=rest_body("bk_switch", "host", BELONG, pairs)
        )
        body = CONTRACT.check_response(full)
        assert list(body) == ESB_KEYS and (body["result"], body["code"]) == (True, 0), body
        created = body["data"]["success_created"]
        assert list(body["data"]) == ["success_created", "error_msg"]
        assert body["data"]["error_msg"] == {}
        # Go's order of a map's keys: as strings.
        assert list(created) == sorted(str(i) for i in range(200))
        assert len(set(created.values())) == 200

    async with httpx.AsyncClient(base_url=second.url, timeout=60) as http:
        again = await graphql(
            http, BATCH_MUTATION, {"input": batch_input("bk_switch", "host", BELONG, pairs)}
        )
        payload = again["data"]["batchCreateInstAssociations"]
        assert (payload["createdCount"], payload["failedCount"]) == (0, 200), payload
        assert payload["successCreated"] == {}
        assert set(payload["errorMsg"].values()) == {BELONG_DUPLICATE}

    extra_switch, extra_host = switches[0], 21
    mixed = [
        (extra_switch, extra_host),  # created
        (MISSING_ID, hosts[0]),
        (switches[1], MISSING_ID),
        (extra_switch, extra_host),  # a duplicate within the batch
        pairs[5],  # stored by the full batch
        (switches[2], 22),  # created
    ]
    async with httpx.AsyncClient(timeout=60) as http:
        partial = await http.post(
            f"{second.url}{NATIVE_PATH}",
            json=rest_body("bk_switch", "host", BELONG, mixed),
            headers=demo_headers(),
        )
        body = CONTRACT.check_response(partial)
        assert list(body) == NATIVE_KEYS and body["bk_error_code"] == 0, body
        assert list(body["data"]["success_created"]) == ["0", "5"]
        assert body["data"]["error_msg"] == {
            "1": upstream.SOURCE_MISSING.zh,
            "2": upstream.TARGET_MISSING.zh,
            "3": BELONG_DUPLICATE,
            "4": BELONG_DUPLICATE,
        }
        too_many = await http.post(
            f"{first.url}{ESB_PATH}",
            json=rest_body("bk_switch", "host", BELONG, [*pairs, (switches[3], 23)]),
        )
        body = CONTRACT.check_response(too_many)
        expected = upstream.too_many("details", 200)
        assert (body["result"], body["code"], body["message"], body["data"]) == (
            False,
            expected.code,
            expected.zh,
            None,
        )

    async with pooled(bouncer, database) as db:
        rows = await stored(db, BELONG, switches)
        ids = sorted([*created.values(), *partial.json()["data"]["success_created"].values()])
        assert sorted(row[0] for row in rows) == ids
        assert sorted(await audited_creates(db, switches)) == ids
    assert_served_cleanly(servers)


async def test_concurrent_batches_on_one_hot_1to1_association(bouncer, database, servers):
    """Both processes send batches at once over the same few routers and firewalls (1:1):
    every request is answered, no association is stored twice, no router nor firewall gets
    two, and what is stored is exactly what the replies say was created, audited once."""
    async with pooled(bouncer, database) as db:
        routers = await new_instances(db, "bk_router", "hot-rt", 8)
        firewalls = await new_instances(db, "bk_firewall", "hot-fw", 8)
    rng = random.Random(11)
    batches = [
        [(rng.choice(routers), rng.choice(firewalls)) for _ in range(rng.randint(1, 8))]
        for _ in range(48)
    ]
    async with httpx.AsyncClient(timeout=60) as http:

        async def send(number: int, pairs) -> dict:
            server = servers[number % 2]
            response = await http.post(
                f"{server.url}{ESB_PATH}",
                json=rest_body("bk_router", "bk_firewall", DEFAULT, pairs),
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert (body["result"], body["code"]) == (True, 0), body
            data = body["data"]
            assert set(data["success_created"]) | set(data["error_msg"]) == {
                str(i) for i in range(len(pairs))
            }
            return data

        replies = await asyncio.wait_for(
            asyncio.gather(*(send(n, pairs) for n, pairs in enumerate(batches))), 90
        )
    reported = [i for data in replies for i in data["success_created"].values()]
    failures = Counter(message for data in replies for message in data["error_msg"].values())
    one_to_one = upstream.ONE_TO_ONE.zh
    assert failures[one_to_one] > 0, failures  # the batches did compete
    assert set(failures) <= {
        one_to_one,
        upstream.item_error(upstream.DUPLICATE.code, "bk_router", "bk_firewall").zh,
    }

    async with pooled(bouncer, database) as db:
        rows = await stored(db, DEFAULT, routers)
        audited = await audited_creates(db, routers)
    assert sorted(row[0] for row in rows) == sorted(reported) == sorted(audited)
    assert len(set(reported)) == len(reported)
    assert max(Counter(src for _, src, _ in rows).values()) == 1, rows
    assert max(Counter(dest for _, _, dest in rows).values()) == 1, rows
    assert_served_cleanly(servers)


async def test_a_watch_on_either_process_sees_a_commit_of_the_other(bouncer, database, servers):
    """A watch held by the listening process answers with an association the other created
    (NOTIFY sent through the pooler, heard on the direct connection); one held by the
    reading process answers with one the listening process created (the event table read a
    few times a second). Both well within the wait, and sooner than the 2-second safeguard
    of a process that believes it listens."""
    async with pooled(bouncer, database) as db:
        switches = await new_instances(db, "bk_switch", "watch-sw", 2)
    headers = demo_headers()

    async def scenario(watcher: LiveServer, writer: LiveServer, switch: int):
        url = f"{watcher.url}/api/v3/event/watch/resource/inst_asst"
        async with httpx.AsyncClient(timeout=30) as http:
            head = (await http.post(url, json={}, headers=headers)).json()
            cursor = head["data"]["bk_events"][-1]["bk_cursor"]
            pending = asyncio.create_task(
                http.post(url, json={"bk_cursor": cursor}, headers=headers)
            )
            # Just after a look at the table (the first watch on the process starts its
            # look-out, no earlier test watches): a process reading at the safeguard's pace
            # (every 2 s) would only see the commit 1.7 s after it.
            await asyncio.sleep(2.3)
            written = await http.post(
                f"{writer.url}{ESB_PATH}",
                json=rest_body("bk_switch", "host", BELONG, [(switch, 22)]),
            )
            committed = time.monotonic()
            assert written.json()["data"]["success_created"], written.text
            reply = (await pending).json()
            return reply, time.monotonic() - committed

    listening, reading = servers
    for (watcher, writer), switch in zip(
        [(listening, reading), (reading, listening)], switches, strict=True
    ):
        reply, after_commit = await scenario(watcher, writer, switch)
        assert reply["data"]["bk_watched"] is True, reply
        assert [e["bk_detail"]["bk_inst_id"] for e in reply["data"]["bk_events"]] == [switch]
        assert after_commit < 1.2, (watcher.log_path.stem, after_commit)
    assert_served_cleanly(servers)


def test_the_pooler_settings_are_checked():
    """A pooler is for PostgreSQL, and LISTEN needs a PostgreSQL URL."""
    with pytest.raises(ValueError, match="pooler"):
        Settings(database_url="sqlite:///x.sqlite3", database_pooler="pgbouncer")
    with pytest.raises(ValueError, match="LISTEN"):
        Settings(database_url="postgres://u:p@db/x", database_listen_url="sqlite:///x")
    settings = Settings(
        database_url="postgres://u:p@bouncer:6432/x",
        database_pooler="PgBouncer",
        database_listen_url="postgres://u:p@db/x",
    )
    assert (settings.database_pooler, settings.database_listen_url) == (
        "pgbouncer",
        "postgresql+asyncpg://u:p@db/x",
    )
