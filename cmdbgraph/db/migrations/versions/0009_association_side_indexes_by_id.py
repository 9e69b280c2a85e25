"""inst_associations: the indexes on each side also ordered by id

An instance's associations are paged by id (``associationsAsSourceConnection``: ``WHERE
bk_inst_id = :i AND id > :after ORDER BY id LIMIT n``). With an index on ``bk_inst_id`` alone,
PostgreSQL reads every association of the instance and sorts them; with ``(bk_inst_id, id)`` a
page is one range of the index, at the same cost anywhere in the list. (SQLite's index already
ends with the rowid, which is ``id``.) As many indexes as before, so writes cost the same.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 06:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_inst_associations_src_inst", table_name="inst_associations")
    op.drop_index("ix_inst_associations_dest_inst", table_name="inst_associations")
    op.create_index(
        "ix_inst_associations_src_inst", "inst_associations", ["bk_inst_id", "id"], unique=False
    )
    op.create_index(
        "ix_inst_associations_dest_inst",
        "inst_associations",
        ["bk_asst_inst_id", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_inst_associations_src_inst", table_name="inst_associations")
    op.drop_index("ix_inst_associations_dest_inst", table_name="inst_associations")
    op.create_index(
        "ix_inst_associations_src_inst", "inst_associations", ["bk_inst_id"], unique=False
    )
    op.create_index(
        "ix_inst_associations_dest_inst", "inst_associations", ["bk_asst_inst_id"], unique=False
    )
