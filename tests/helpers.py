"""Helpers shared by the tests: requests in each interface, and SQL statement counting."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import event, func, select

from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import audit_entries, inst_associations

ESB_PATH = "/api/c/compapi/v2/cc/batch_create_instance_association/"
NATIVE_PATH = "/api/v3/createmany/instassociation"

# The demo credentials, as the seeds' request example carries them.
DEMO_CREDENTIALS = {
    "bk_app_code": "esb_test",
    "bk_app_secret": "xxx",
    "bk_username": "xxx",
    "bk_token": "xxx",
}

BATCH_MUTATION = """
mutation Batch($input: BatchCreateInstAssociationsInput!) {
  batchCreateInstAssociations(input: $input) {
    __typename
    ... on BatchCreateInstAssociationsPayload {
      createdCount failedCount written successCreated errorMsg
      results {
        index ok
        association { id bkObjAsstId bkAsstId bkObjId bkInstId bkAsstObjId bkAsstInstId }
        error { code bkErrorCode message }
      }
    }
    ... on RequestError { code bkErrorCode message }
    ... on PermissionDenied { code bkErrorCode message permission }
  }
}
"""


def demo_headers(**extra: str) -> dict[str, str]:
    """Headers carrying the demo credentials the way the BlueKing SDK sends them."""
    import json

    return {
        "X-Bkapi-Authorization": json.dumps(
            {"bk_app_code": "esb_test", "bk_app_secret": "xxx", "bk_username": "admin"}
        ),
        **extra,
    }


async def graphql(
    client: httpx.AsyncClient, query: str, variables: dict | None = None, **headers: str
) -> dict:
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers=demo_headers(**headers),
    )
    assert response.status_code == 200, response.text
    return response.json()


def batch_input(bk_obj_id: str, bk_asst_obj_id: str, bk_obj_asst_id: str, details) -> dict:
    return {
        "bkObjId": bk_obj_id,
        "bkAsstObjId": bk_asst_obj_id,
        "bkObjAsstId": bk_obj_asst_id,
        "details": [{"bkInstId": s, "bkAsstInstId": t} for s, t in details],
    }


def rest_body(bk_obj_id: str, bk_asst_obj_id: str, bk_obj_asst_id: str, details) -> dict:
    return {
        **DEMO_CREDENTIALS,
        "bk_obj_id": bk_obj_id,
        "bk_asst_obj_id": bk_asst_obj_id,
        "bk_obj_asst_id": bk_obj_asst_id,
        "details": [{"bk_inst_id": s, "bk_asst_inst_id": t} for s, t in details],
    }


@contextlib.contextmanager
def count_statements(db: Database) -> Iterator[list[str]]:
    """Collects the SQL statements ``db`` sends (both engines), transaction control excluded."""
    statements: list[str] = []
    engines = {id(e): e for e in (db._writer, db._reader)}.values()

    def record(conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA")):
            statements.append(statement)

    for engine in engines:
        event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        for engine in engines:
            event.remove(engine.sync_engine, "before_cursor_execute", record)


async def row_counts(db: Database) -> tuple[int, int]:
    """How many instance associations and audit entries are stored."""
    async with db.read() as conn:
        return tuple(
            [
                (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                for table in (inst_associations, audit_entries)
            ]
        )


@contextlib.asynccontextmanager
async def writes_nothing(db: Database):
    """Asserts the block leaves the associations and audit entries as they were."""
    before = await row_counts(db)
    yield
    assert await row_counts(db) == before


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    """A real ``cmdbgraph serve`` process and where it answers."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def rss_kb(self) -> int:
        """The process's resident memory, from /proc."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc status")


@contextlib.contextmanager
def live_server(
    database_url: str,
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    command: tuple[str, ...] = (),
) -> Iterator[LiveServer]:
    """A real ``cmdbgraph serve`` process on ``database_url`` (127.0.0.1, a free port), stopped
    at the end; its output goes to ``log_path``. ``env`` adds settings, ``args`` adds options
    to ``serve``, ``command`` runs before it (e.g. ``setpriv ...``)."""
    port = free_port()
    environment = {
        **os.environ,
        "CMDBGRAPH_DATABASE_URL": database_url,
        "CMDBGRAPH_LOG_LEVEL": "warning",
        "CMDBGRAPH_HOST": "127.0.0.1",
        "CMDBGRAPH_PORT": str(port),
        **(env or {}),
    }
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [*command, sys.executable, "-m", "cmdbgraph.cli", "serve", *args],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"the server exited ({server.returncode}):\n{log_path.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not start in time:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield LiveServer(base_url, server, log_path)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)


@contextlib.contextmanager
def uvicorn_server(database_url: str, log_path: Path, **options) -> Iterator[str]:
    """Base URL of a ``live_server`` (same arguments)."""
    with live_server(database_url, log_path, **options) as server:
        yield server.url
