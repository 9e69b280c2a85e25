"""association kinds: ids of up to 128 characters, as upstream allows

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Every column that holds a kind's id.
_COLUMNS = (
    ("association_kinds", "bk_asst_id"),
    ("model_associations", "bk_asst_id"),
    ("inst_associations", "bk_asst_id"),
)


def upgrade() -> None:
    # SQLite does not enforce a string's length: only PostgreSQL's columns change (a longer
    # varchar is binary-compatible: no row is rewritten).
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in _COLUMNS:
        op.alter_column(
            table, column, type_=sa.String(length=128), existing_type=sa.String(length=64)
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in reversed(_COLUMNS):
        op.alter_column(
            table, column, type_=sa.String(length=64), existing_type=sa.String(length=128)
        )
