"""A GiST index over (dominant_class_id, position) for bbox + class roxel pages.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_index("ix_roxel_class_position", "roxel", ["dominant_class_id", "position"],
                    unique=False, postgresql_using="gist")


def downgrade() -> None:
    op.drop_index("ix_roxel_class_position", table_name="roxel", postgresql_using="gist")
