"""Schema migrations (Alembic), run programmatically on the service's own engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from cmdbgraph.db.engine import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any fixed number: upgrades started at the same time by several processes run one by one.
_UPGRADE_LOCK_KEY = 727_001


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return script.get_current_head()


async def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision``. Idempotent, and safe to run from several processes."""
    config = alembic_config(database.settings.database_url)

    def run(connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with database.write() as conn:
        if not database.is_sqlite:
            await conn.execute(text(f"SELECT pg_advisory_xact_lock({_UPGRADE_LOCK_KEY})"))
        await conn.run_sync(run)


async def current_revision(database: Database) -> str | None:
    async with database.read() as conn:
        return await conn.run_sync(
            lambda sync_conn: MigrationContext.configure(sync_conn).get_current_revision()
        )


async def pending(database: Database) -> bool:
    """True when the database is behind the migrations this code ships."""
    return await current_revision(database) != head_revision()
