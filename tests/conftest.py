"""Fixtures: every database test runs on SQLite and on a throwaway PostgreSQL server."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import sys
import threading

import asyncpg
import httpx
import pytest

from cmdbgraph.app import create_app
from cmdbgraph.db import migrate
from cmdbgraph.db.engine import Database
from cmdbgraph.services import demo
from cmdbgraph.settings import Settings
from tests.helpers import uvicorn_server
from tests.pgserver import postgres_server, require_binaries
from tests.skip_report import pytest_terminal_summary  # noqa: F401  (a pytest hook)

BACKENDS = ["sqlite", "postgresql"]
_counter = itertools.count()


def _run_in_thread(make_coroutine) -> None:
    """Run a coroutine to completion on its own loop, even when called from a running loop."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(make_coroutine())
        except BaseException as error:  # re-raised in the caller
            errors.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


async def _migrate(url: str) -> None:
    db = Database(Settings(database_url=url))
    try:
        await migrate.upgrade(db)
        await demo.seed_demo(db)
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def pg_server():
    require_binaries()
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def pg_template(pg_server) -> str:
    """A migrated database holding the demo data, copied for each test."""

    async def create() -> None:
        conn = await asyncpg.connect(pg_server.dsn())
        try:
            await conn.execute("CREATE DATABASE cmdbgraph_template")
        finally:
            await conn.close()
        await _migrate(pg_server.url("cmdbgraph_template"))

    _run_in_thread(create)
    return "cmdbgraph_template"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    _run_in_thread(lambda: _migrate(f"sqlite+aiosqlite:///{path}"))
    return str(path)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
async def database_url(backend, request, tmp_path) -> str:
    """A fresh migrated database with the demo data, on the backend under test."""
    if backend == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "test.sqlite3"
        shutil.copyfile(template, path)
        return f"sqlite+aiosqlite:///{path}"
    server = request.getfixturevalue("pg_server")
    template = request.getfixturevalue("pg_template")
    name = f"test_{os.getpid()}_{next(_counter)}"
    conn = await asyncpg.connect(server.dsn())
    try:
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    finally:
        await conn.close()
    return server.url(name)


@pytest.fixture
def settings(database_url) -> Settings:
    return Settings(database_url=database_url)


@pytest.fixture
async def db(settings):
    database = Database(settings)
    yield database
    await database.dispose()


@pytest.fixture
def app(settings, db):
    return create_app(settings, db=db)


@pytest.fixture
async def client(app):
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        yield http


# A real server process, as a newcomer runs it ------------------------------------------------


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture
def demo_server(tmp_path):
    """Base URL of a real uvicorn process serving a fresh demo database."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.sqlite3'}"
    env = {**os.environ, "CMDBGRAPH_DATABASE_URL": url, "CMDBGRAPH_LOG_LEVEL": "warning"}
    # As scripts/demo.sh does, in one step: `seed --demo` applies the migrations first.
    _run([sys.executable, "-m", "cmdbgraph.cli", "seed", "--demo"], env)
    with uvicorn_server(url, tmp_path / "server.log") as base_url:
        yield base_url
