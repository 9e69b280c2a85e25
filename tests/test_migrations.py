"""The migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from cmdbgraph.db import migrate
from cmdbgraph.db.tables import metadata


async def test_migrations_match_the_declared_tables(db):
    def differences(sync_conn):
        context = MigrationContext.configure(sync_conn, opts={"compare_type": False})
        return compare_metadata(context, metadata)

    async with db.read() as conn:
        found = await conn.run_sync(differences)
    assert found == []


async def test_upgrade_is_idempotent(db):
    await migrate.upgrade(db)
    await migrate.upgrade(db)
    assert await migrate.current_revision(db) == migrate.head_revision()
    assert not await migrate.pending(db)
