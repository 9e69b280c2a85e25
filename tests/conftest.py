"""Fixtures: every database test runs on SQLite and on a throwaway PostgreSQL server."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from cmdbgraph.app import create_app
from cmdbgraph.db.engine import Database
from cmdbgraph.settings import Settings
from tests.support.databases import (
    BACKENDS,
    PG_BUILTIN,
    PG_TEMPLATE,
    DatabaseFactory,
    make_pg_template,
    make_sqlite_template,
    pg_database_names,
    run_in_thread,
)
from tests.support.pgserver import postgres_server, require_binaries
from tests.support.servers import uvicorn_server
from tests.support.skip_report import pytest_terminal_summary  # noqa: F401  (a pytest hook)


@pytest.fixture(scope="session")
def pg_server():
    """The throwaway PostgreSQL cluster. At the end of the run it must hold nothing but its
    built-in databases and the template: every test's database was dropped after it."""
    require_binaries()
    with postgres_server() as server:
        yield server
        left = run_in_thread(lambda: pg_database_names(server)) - PG_BUILTIN - {PG_TEMPLATE}
        assert not left, f"databases left behind by the tests: {sorted(left)}"


@pytest.fixture(scope="session")
def pg_template(pg_server) -> str:
    """A migrated database holding the demo data, copied for each test."""
    return make_pg_template(pg_server, PG_TEMPLATE)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> str:
    return make_sqlite_template(tmp_path_factory.mktemp("template") / "template.sqlite3")


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def fresh_databases(request, tmp_path):
    """The fresh-database factory of this test: ``fresh_databases.new(backend)`` is the URL of a new
    copy of the migrated demo database. The PostgreSQL ones are dropped after the test, once
    every fixture that uses them (``db`` disposes its engines) has been torn down."""
    factory = DatabaseFactory(
        tmp_path,
        sqlite_template=lambda: request.getfixturevalue("sqlite_template"),
        postgres=lambda: (
            request.getfixturevalue("pg_server"),
            request.getfixturevalue("pg_template"),
        ),
    )
    yield factory
    factory.close()


@pytest.fixture
def database_url(backend, fresh_databases) -> str:
    """A fresh migrated database with the demo data, on the backend under test."""
    return fresh_databases.new(backend)


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
    """Base URL of a real ``cmdbgraph serve`` process serving a fresh demo database."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.sqlite3'}"
    env = {**os.environ, "CMDBGRAPH_DATABASE_URL": url, "CMDBGRAPH_LOG_LEVEL": "warning"}
    # As scripts/demo.sh does, in one step: `seed --demo` applies the migrations first.
    _run([sys.executable, "-m", "cmdbgraph.cli", "seed", "--demo"], env)
    with uvicorn_server(url, tmp_path / "server.log") as base_url:
        yield base_url
