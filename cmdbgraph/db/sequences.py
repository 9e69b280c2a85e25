"""Raising the next value of an integer primary key, on either database."""

from __future__ import annotations

from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncConnection


async def raise_id_floor(conn: AsyncConnection, table: Table, floor: int) -> None:
    """Make the next generated id of ``table`` greater than ``floor`` (and than every stored id)."""
    pk = next(iter(table.primary_key.columns)).name
    if conn.dialect.name == "sqlite":
        # AUTOINCREMENT tables keep their counter in sqlite_sequence, one row per table.
        current = (
            await conn.execute(
                text(f"SELECT max(coalesce((SELECT max({pk}) FROM {table.name}), 0), :floor)"),
                {"floor": floor},
            )
        ).scalar_one()
        updated = await conn.execute(
            text("UPDATE sqlite_sequence SET seq = max(seq, :value) WHERE name = :name"),
            {"value": current, "name": table.name},
        )
        if updated.rowcount == 0:
            await conn.execute(
                text("INSERT INTO sqlite_sequence (name, seq) VALUES (:name, :value)"),
                {"value": current, "name": table.name},
            )
    else:
        await conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', '{pk}'), "
                f"GREATEST(:floor, (SELECT coalesce(max({pk}), 0) FROM {table.name}), "
                f"(SELECT last_value FROM {table.name}_{pk}_seq)))"
            ),
            {"floor": floor},
        )
