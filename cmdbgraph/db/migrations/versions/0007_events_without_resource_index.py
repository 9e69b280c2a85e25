"""events: no index on (resource, id)

Every event is read through the primary key (after an id, in id order) with the resource as a
filter, and only one resource is watched: the index ordered the rows as the primary key does,
and cost every event written one more index entry.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 04:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_resource_id"))


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_resource_id"), ["resource", "id"], unique=False)
