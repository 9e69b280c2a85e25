"""models: upstream's bk_ishidden, position, description and obj_sort_number

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _columns() -> tuple[sa.Column, ...]:
    return (
        sa.Column("bk_ishidden", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("position", sa.String(length=2048), server_default="", nullable=False),
        sa.Column("description", sa.String(length=256), server_default="", nullable=False),
        sa.Column("obj_sort_number", sa.BigInteger(), server_default="0", nullable=False),
    )


def upgrade() -> None:
    # Plain ADD COLUMN on both databases (a constant default fills the existing rows): no
    # table is rebuilt, nothing that points at models is touched.
    for column in _columns():
        op.add_column("models", column)


def downgrade() -> None:
    for column in reversed(_columns()):
        op.drop_column("models", column.name)
